//! `kindling serve`: the runtime, the services, signals, reload and shutdown.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kindling_config::{Config, DhcpMode, Loaded, LogFormat};
use kindling_dhcp::service::{DhcpHandle, DhcpService, RaConfig, RaService, ServiceConfig};
use kindling_dhcp::v4::server::{Environment, Settings};
use kindling_dns::{DnsError, DnsHandle, DnsService, DnsSettings};
use kindling_files::{BootTree, TreeConfig};
use kindling_tftp::{TftpHandle, TftpService};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::lease_names::{self, NameBridge};

use crate::cli::LogFormatArg;

/// SIGINT/SIGTERM must end the process within 5 s; transfers get most of that to send their
/// ERROR packets and remove partial uploads.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(4000);

pub(crate) fn run(
    loaded: Loaded,
    origin: String,
    config_path: Option<PathBuf>,
    log_format: Option<LogFormatArg>,
) -> anyhow::Result<ExitCode> {
    init_logging(&loaded.config, log_format);
    for warning in &loaded.warnings {
        warn!(config = %origin, "{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kindling")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(loaded.config, config_path))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(config: &Config, log_format: Option<LogFormatArg>) {
    let filter = EnvFilter::try_from_env("KINDLING_LOG")
        .or_else(|_| EnvFilter::try_new(quiet_hickory(&config.log.level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match log_format {
        Some(LogFormatArg::Json) => true,
        Some(LogFormatArg::Text) => false,
        None => config.log.format == LogFormat::Json,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
}

/// hickory logs malformed queries itself (a warning per packet with an unknown EDNS version),
/// which would let anyone on the network fill the log; Kindling logs what it drops at debug.
/// A filter that names hickory is left as written.
fn quiet_hickory(level: &str) -> String {
    if level.contains("hickory") {
        level.to_string()
    } else {
        format!("{level},hickory_server=error,hickory_proto=error")
    }
}

struct RunningTftp {
    handle: TftpHandle,
    tree: BootTree,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
}

async fn start_tftp(config: &Config) -> anyhow::Result<Option<RunningTftp>> {
    let Some(tftp_config) = &config.tftp else {
        info!("tftp is off (no tftp section, or enabled: false)");
        return Ok(None);
    };
    let tree = BootTree::open(&TreeConfig::from_tftp(tftp_config))
        .with_context(|| format!("opening tftp.root {}", tftp_config.root.display()))?;
    let service = TftpService::bind(Arc::new(tftp_config.clone()), tree.clone())
        .await
        .context("starting the TFTP service")?;
    for addr in service.local_addrs() {
        info!(addr = %addr, root = %tftp_config.root.display(), "tftp listening");
    }
    let handle = service.handle();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(service.run(shutdown.clone()));
    Ok(Some(RunningTftp {
        handle,
        tree,
        task,
        shutdown,
    }))
}

struct RunningDhcp {
    handle: DhcpHandle,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    mode: DhcpMode,
    state_dir: PathBuf,
    /// DHCPv6 is served (port 547 is bound): turning it on or off restarts the service.
    v6: bool,
}

fn dhcp_service_config(config: &Config) -> Option<ServiceConfig> {
    let dhcp = config.dhcp.as_ref()?;
    let dns_domain = config.dns.as_ref().map(|dns| dns.domain.clone());
    let environment = Environment {
        dns_domain: dns_domain.clone(),
    };
    Some(ServiceConfig {
        settings: Settings::new(dhcp, &config.boot, environment),
        interfaces: dhcp.interfaces.clone(),
        state_dir: config.state_dir.clone(),
        ping_timeout: dhcp.ping_timeout,
        other_servers_expected: dhcp.other_servers_expected,
        v6: dhcp6_settings(config, dhcp, dns_domain),
    })
}

/// The DHCPv6 settings, with the server DUID kept in `state_dir`; `None` when the config
/// serves no DHCPv6, or (with a warning) when the DUID cannot be read or stored.
fn dhcp6_settings(
    config: &Config,
    dhcp: &kindling_config::DhcpConfig,
    dns_domain: Option<String>,
) -> Option<kindling_dhcp::v6::server::Settings> {
    // Only a config that serves DHCPv6 gets a DUID file.
    kindling_dhcp::v6::server::Settings::from_config(dhcp, &config.boot, Vec::new(), None)?;
    match kindling_dhcp::service::server_duid(&config.state_dir) {
        Ok(duid) => {
            kindling_dhcp::v6::server::Settings::from_config(dhcp, &config.boot, duid, dns_domain)
        }
        Err(error) => {
            warn!(
                state_dir = %config.state_dir.display(),
                "dhcpv6 is not served: the server DUID cannot be kept: {error}"
            );
            None
        }
    }
}

async fn start_dhcp(config: &Config) -> anyhow::Result<Option<RunningDhcp>> {
    let (Some(dhcp), Some(service_config)) = (&config.dhcp, dhcp_service_config(config)) else {
        info!("dhcp is off (no dhcp section, or mode: off)");
        return Ok(None);
    };
    let v6 = service_config.v6.is_some();
    let (service, report) = DhcpService::bind(service_config, std::time::SystemTime::now())
        .context("starting the DHCP service")?;
    if let Some(report) = report {
        let leases = service.leases();
        if report.is_clean() {
            info!(
                state_dir = %config.state_dir.display(),
                leases = leases.len(),
                "dhcp lease store opened"
            );
        } else {
            warn!(
                state_dir = %config.state_dir.display(),
                leases = leases.len(),
                "dhcp lease store recovered from damage: {report:?}"
            );
        }
    }
    let handle = service.handle();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(service.run(shutdown.clone()));
    Ok(Some(RunningDhcp {
        handle,
        task,
        shutdown,
        mode: dhcp.mode,
        state_dir: config.state_dir.clone(),
        v6,
    }))
}

async fn stop_dhcp(running: RunningDhcp) {
    running.shutdown.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, running.task)
        .await
        .is_err()
    {
        warn!("dhcp did not stop within the grace period; exiting anyway");
    }
}

/// The router advertisement service (`dhcp.v6.router_advertisements`, `dhcp.v6.quiet_ra`),
/// beside the DHCP service.
struct RunningRa {
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    reload: tokio::sync::watch::Sender<RaConfig>,
}

fn ra_config(config: &Config) -> Option<RaConfig> {
    RaConfig::from_config(config.dhcp.as_ref()?)
}

/// Starts the service; one that cannot start is a warning, not a failure: iPXE then waits
/// for a router as it would without it.
fn start_ra(config: &Config) -> Option<RunningRa> {
    let ra = ra_config(config)?;
    match RaService::bind(ra.clone()) {
        Ok(service) => {
            let shutdown = CancellationToken::new();
            let (reload, updates) = tokio::sync::watch::channel(ra);
            let task = tokio::spawn(service.run(shutdown.clone(), updates));
            Some(RunningRa {
                task,
                shutdown,
                reload,
            })
        }
        Err(ra_error) => {
            warn!(
                "no router advertisements (dhcp.v6.router_advertisements, dhcp.v6.quiet_ra): \
                 {ra_error}; clients wait for another router's advertisement"
            );
            None
        }
    }
}

/// Stops the service (an interface that was a default router sends its final advertisement).
async fn stop_ra(running: RunningRa) {
    running.shutdown.cancel();
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, running.task).await;
}

/// After a reload: hands the running service its new settings, or starts or stops it.
async fn reload_ra(running: &mut Option<RunningRa>, config: &Config) {
    match (running.as_ref(), ra_config(config)) {
        (Some(r), Some(wanted)) => {
            r.reload.send_if_modified(|current| {
                let changed = *current != wanted;
                *current = wanted;
                changed
            });
        }
        (Some(_), None) => {
            if let Some(old) = running.take() {
                stop_ra(old).await;
            }
        }
        (None, Some(_)) => *running = start_ra(config),
        (None, None) => {}
    }
}

/// What the config asks for that this mode does not do, said once at start.
fn note_unserved(config: &Config) {
    let Some(dhcp) = config.dhcp.as_ref() else {
        return;
    };
    let Some(v6) = dhcp.v6.as_ref() else {
        return;
    };
    if v6.router_advertisements && dhcp.mode == DhcpMode::Proxy {
        warn!(
            "dhcp.v6.router_advertisements is not sent in proxy mode: the segment's own router \
             advertises (its M flag tells clients to use DHCPv6)"
        );
    } else if v6.router_advertisements && v6.subnets.is_empty() {
        warn!(
            "dhcp.v6.router_advertisements: true but dhcp.v6.subnets is empty: no interface has \
             a prefix to advertise"
        );
    }
    if dhcp.mode == DhcpMode::Proxy && !v6.subnets.is_empty() {
        info!(
            "dhcp.v6.subnets are not served in proxy mode (the network's own DHCPv6 server hands out addresses)"
        );
    }
}

struct RunningDns {
    handle: DnsHandle,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    /// The task that turns DHCP lease events into names, and hands its memory of what DNS
    /// was told back when stopped (so a reconnection can bring DNS in line).
    names: Option<(JoinHandle<NameBridge>, CancellationToken)>,
}

/// The networks DHCP serves: their reverse zones, and who may recurse by default.
fn served_networks(config: &Config) -> Vec<ipnet::IpNet> {
    let Some(dhcp) = &config.dhcp else {
        return Vec::new();
    };
    let v6 = dhcp.v6.iter().flat_map(|v6| v6.subnets.iter());
    dhcp.subnets.iter().chain(v6).map(|s| s.network).collect()
}

fn dns_settings(config: &Config) -> anyhow::Result<Option<DnsSettings>> {
    let Some(dns) = &config.dns else {
        return Ok(None);
    };
    let settings = DnsSettings::new(
        dns,
        &served_networks(config),
        &lease_names::reserved_names(config),
    )
    .context("building the DNS zones")?;
    Ok(Some(settings))
}

/// The leases DNS names come from: a subscription to the lease events and the live leases
/// on disk. Subscribing first and reading the journal second loses nothing: an event is
/// published only after its lease is durable.
fn lease_feed(
    dhcp: Option<&RunningDhcp>,
) -> Option<(
    tokio::sync::broadcast::Receiver<kindling_dhcp::event::LeaseEvent>,
    Vec<kindling_dns::LeaseName>,
    PathBuf,
)> {
    let dhcp = dhcp.filter(|d| d.mode == DhcpMode::Server)?;
    let events = dhcp.handle.subscribe();
    let records = match kindling_dhcp::lease::read_snapshot(&dhcp.state_dir) {
        Ok((records, _)) => records,
        Err(error) => {
            warn!(%error, "dns: could not read the lease journal; lease names start empty");
            kindling_dhcp::lease::Snapshot::default()
        }
    };
    let live = lease_names::live_names(&records, std::time::SystemTime::now());
    Some((events, live, dhcp.state_dir.clone()))
}

async fn start_dns(
    config: &Config,
    dhcp: Option<&RunningDhcp>,
) -> anyhow::Result<Option<RunningDns>> {
    let Some(settings) = dns_settings(config)? else {
        info!("dns is off (no dns section, or enabled: false)");
        return Ok(None);
    };
    let feed = lease_feed(dhcp);
    let initial = feed
        .as_ref()
        .map(|(_, live, _)| live.clone())
        .unwrap_or_default();
    let service = DnsService::bind(settings, initial.clone())
        .await
        .context("starting the DNS service")?;
    let handle = service.handle();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            if let Err(dns_error) = service.run(shutdown).await {
                error!("dns stopped: {dns_error}");
            }
        }
    });
    let mut running = RunningDns {
        handle,
        task,
        shutdown,
        names: None,
    };
    if let Some((events, _, state_dir)) = feed {
        spawn_names(&mut running, events, NameBridge::new(&initial), state_dir);
    }
    Ok(Some(running))
}

fn spawn_names(
    dns: &mut RunningDns,
    events: tokio::sync::broadcast::Receiver<kindling_dhcp::event::LeaseEvent>,
    bridge: NameBridge,
    state_dir: PathBuf,
) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(lease_names::forward(
        events,
        dns.handle.clone(),
        bridge,
        state_dir,
        stop.clone(),
    ));
    dns.names = Some((task, stop));
}

/// Reconnects DNS to the (possibly restarted) DHCP service: stops the old feed, and brings the
/// names in line with the journal before following the new one.
async fn reconnect_names(dns: &mut RunningDns, dhcp: Option<&RunningDhcp>) {
    let mut bridge = NameBridge::default();
    if let Some((task, stop)) = dns.names.take() {
        stop.cancel();
        if let Ok(old) = task.await {
            bridge = old;
        }
    }
    let (events, live, state_dir) = match lease_feed(dhcp) {
        Some(feed) => feed,
        None => {
            // No lease store any more (DHCP off or in proxy mode): every lease name goes.
            for change in bridge.resync(Vec::new()) {
                dns.handle.apply(change);
            }
            return;
        }
    };
    for change in bridge.resync(live) {
        dns.handle.apply(change);
    }
    spawn_names(dns, events, bridge, state_dir);
}

async fn stop_dns(running: RunningDns) {
    if let Some((task, stop)) = running.names {
        stop.cancel();
        let _ = task.await;
    }
    running.shutdown.cancel();
    if tokio::time::timeout(SHUTDOWN_GRACE, running.task)
        .await
        .is_err()
    {
        warn!("dns did not stop within the grace period; exiting anyway");
    }
}

async fn serve(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    note_unserved(&config);
    let mut tftp = start_tftp(&config).await?;
    let mut dhcp = start_dhcp(&config).await?;
    let mut ra = start_ra(&config);
    let mut dns = start_dns(&config, dhcp.as_ref()).await?;
    let mut current = config;
    notify(&[sd_notify::NotifyState::Ready]);
    info!(version = env!("CARGO_PKG_VERSION"), "kindling ready");

    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let mut reloading = vec![sd_notify::NotifyState::Reloading];
                if let Ok(stamp) = sd_notify::NotifyState::monotonic_usec_now() {
                    reloading.push(stamp);
                }
                notify(&reloading);
                match reload(&current, config_path.as_ref(), &mut tftp, &mut dhcp, &mut dns).await {
                    Ok(Some(new_config)) => {
                        current = new_config;
                        reload_ra(&mut ra, &current).await;
                        info!("config reloaded");
                    }
                    Ok(None) => {}
                    Err(reload_error) => {
                        error!("config reload refused, keeping the running config: {reload_error:#}");
                    }
                }
                notify(&[sd_notify::NotifyState::Ready]);
            }
            _ = terminate.recv() => { info!("SIGTERM: shutting down"); break; }
            _ = interrupt.recv() => { info!("SIGINT: shutting down"); break; }
        }
    }

    notify(&[sd_notify::NotifyState::Stopping]);
    if let Some(running) = dns.take() {
        stop_dns(running).await;
    }
    if let Some(running) = ra.take() {
        stop_ra(running).await;
    }
    if let Some(running) = dhcp.take() {
        stop_dhcp(running).await;
    }
    if let Some(running) = tftp.take() {
        running.shutdown.cancel();
        if tokio::time::timeout(SHUTDOWN_GRACE, running.task)
            .await
            .is_err()
        {
            warn!("tftp did not stop within the grace period; exiting anyway");
        }
    }
    info!("stopped");
    Ok(())
}

async fn reload(
    current: &Config,
    config_path: Option<&PathBuf>,
    tftp: &mut Option<RunningTftp>,
    dhcp: &mut Option<RunningDhcp>,
    dns: &mut Option<RunningDns>,
) -> anyhow::Result<Option<Config>> {
    let Some(path) = config_path else {
        info!("SIGHUP: serving the embedded default, nothing to reload");
        return Ok(None);
    };
    let loaded = kindling_config::load(path).map_err(|errors| anyhow::anyhow!("{errors}"))?;
    for warning in &loaded.warnings {
        warn!(config = %path.display(), "{warning}");
    }
    let new_config = loaded.config;
    if new_config.log != current.log {
        warn!("log settings changed; they take effect at the next restart");
    }
    match (tftp.as_ref(), &new_config.tftp) {
        (Some(running), Some(new_tftp)) => {
            let layout = BootTree::prepare(&TreeConfig::from_tftp(new_tftp))
                .with_context(|| format!("opening tftp.root {}", new_tftp.root.display()))?;
            running
                .handle
                .reload(Arc::new(new_tftp.clone()))
                .await
                .context("applying the new tftp section")?;
            running.tree.install(layout);
        }
        (None, Some(_)) => {
            *tftp = start_tftp(&new_config).await?;
        }
        (Some(_), None) => {
            if let Some(running) = tftp.take() {
                info!("tftp turned off by reload; transfers in flight finish first");
                running.handle.stop_listening();
                tokio::spawn(async move {
                    let _ = running.task.await;
                    drop(running.shutdown);
                });
            }
        }
        (None, None) => {}
    }
    let new_service_config = dhcp_service_config(&new_config);
    let same_service = dhcp.as_ref().is_some_and(|running| {
        new_config.dhcp.as_ref().map(|d| d.mode) == Some(running.mode)
            && new_config.state_dir == running.state_dir
            && new_service_config.as_ref().is_some_and(|c| c.v6.is_some()) == running.v6
    });
    let new_dns = dns_settings(&new_config)?;
    let mut dhcp_restarted = false;
    match (dhcp.as_ref(), new_service_config) {
        (Some(running), Some(service_config)) if same_service => {
            running
                .handle
                .reload(service_config)
                .await
                .context("applying the new dhcp section")?;
        }
        (None, None) => {}
        _ => {
            if let Some(running) = dhcp.take() {
                info!(
                    "dhcp mode, state_dir or DHCPv6 changed by reload: restarting the DHCP service"
                );
                stop_dhcp(running).await;
            }
            *dhcp = start_dhcp(&new_config).await?;
            dhcp_restarted = true;
        }
    }
    match (dns.as_mut(), new_dns) {
        (Some(running), Some(settings)) => match running.handle.reload(settings) {
            Ok(()) => {
                if dhcp_restarted {
                    reconnect_names(running, dhcp.as_ref()).await;
                }
            }
            Err(DnsError::RestartNeeded { .. }) => {
                info!("dns listen addresses changed by reload: restarting the DNS service");
                if let Some(old) = dns.take() {
                    stop_dns(old).await;
                }
                *dns = start_dns(&new_config, dhcp.as_ref()).await?;
            }
            Err(dns_error) => {
                return Err(anyhow::Error::new(dns_error).context("applying the new dns section"));
            }
        },
        (None, Some(_)) => *dns = start_dns(&new_config, dhcp.as_ref()).await?,
        (Some(_), None) => {
            if let Some(old) = dns.take() {
                info!("dns turned off by reload");
                stop_dns(old).await;
            }
        }
        (None, None) => {}
    }
    note_unserved(&new_config);
    Ok(Some(new_config))
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(notify_error) = sd_notify::notify(states) {
        warn!("sd_notify failed: {notify_error}");
    }
}
