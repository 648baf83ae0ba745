//! `kindling serve`: the runtime, the services, signals, reload and shutdown.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kindling_config::{Config, DhcpMode, Loaded, LogFormat};
use kindling_dhcp::service::{RaConfig, RaService, ServiceConfig};
use kindling_dhcp::v4::server::{Environment, Settings};
use kindling_dns::DnsSettings;
use kindling_files::{BootTree, TreeConfig};
use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

use crate::lease_names::{self, NameBridge};
use crate::services::{
    Change, RunningDhcp, RunningDns, RunningHttp, RunningTftp, SHUTDOWN_GRACE, Service, Stop,
    Wiring, apply, start,
};

use crate::cli::LogFormatArg;

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
    let template_errors = kindling_files::profiles::check(&loaded.config.profiles);
    if !template_errors.is_empty() {
        let list: Vec<String> = template_errors.iter().map(ToString::to_string).collect();
        anyhow::bail!(
            "the config's profiles do not render ({origin}):\n{}",
            list.join("\n")
        );
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

/// The port of the HTTP service for clients of one family: the first `http.listen` address of
/// that family (`0.0.0.0` for IPv4, `[::]` for IPv6), else the first one. `None` when HTTP is
/// off: UEFI HTTP boot clients then need a URL in their boot key.
pub(crate) fn http_port(config: &Config, v6: bool) -> Option<u16> {
    let listen = &config.http.as_ref()?.listen;
    listen
        .iter()
        .find(|a| a.is_ipv6() == v6)
        .or_else(|| listen.first())
        .map(std::net::SocketAddr::port)
}

pub(crate) fn dhcp_service_config(config: &Config) -> Option<ServiceConfig> {
    let dhcp = config.dhcp.as_ref()?;
    let dns_domain = config.dns.as_ref().map(|dns| dns.domain.clone());
    let environment = Environment {
        dns_domain: dns_domain.clone(),
    };
    let mut settings = Settings::new(dhcp, &config.boot, environment);
    settings.http_port = http_port(config, false);
    Some(ServiceConfig {
        settings,
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
                .map(|mut settings| {
                    settings.http_port = http_port(config, true);
                    settings
                })
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

/// The networks DHCP serves: their reverse zones, and who may recurse by default.
fn served_networks(config: &Config) -> Vec<ipnet::IpNet> {
    let Some(dhcp) = &config.dhcp else {
        return Vec::new();
    };
    let v6 = dhcp.v6.iter().flat_map(|v6| v6.subnets.iter());
    dhcp.subnets.iter().chain(v6).map(|s| s.network).collect()
}

pub(crate) fn dns_settings(config: &Config) -> anyhow::Result<Option<DnsSettings>> {
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
pub(crate) fn lease_feed(
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

pub(crate) fn spawn_names(
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

/// The services and what they share.
#[derive(Default)]
struct Services {
    /// The boot tree TFTP serves from, when the config has a `tftp` section.
    tree: Option<BootTree>,
    tftp: Option<RunningTftp>,
    dhcp: Option<RunningDhcp>,
    dns: Option<RunningDns>,
    http: Option<RunningHttp>,
}

impl Services {
    async fn start(config: &Config) -> anyhow::Result<Services> {
        let mut services = Services {
            tree: open_tree(config)?,
            ..Services::default()
        };
        if let Some(tree) = &services.tree {
            crate::profile_scripts::install(tree, config);
        }
        services.tftp = start(config, services.wiring()).await?;
        services.dhcp = start(config, services.wiring()).await?;
        services.dns = start(config, services.wiring()).await?;
        services.http = start(config, services.wiring()).await?;
        Ok(services)
    }

    fn wiring(&self) -> Wiring<'_> {
        Wiring {
            tree: self.tree.as_ref(),
            dhcp: self.dhcp.as_ref(),
        }
    }

    /// Applies a new config to every service. Whatever can be refused is checked first (the
    /// new root opens, the DNS zones build), so a refused config changes nothing.
    async fn reload(&mut self, config: &Config) -> anyhow::Result<()> {
        let prepared = match &config.tftp {
            Some(tftp) => Some(
                BootTree::prepare(&TreeConfig::from_tftp(tftp))
                    .with_context(|| format!("opening tftp.root {}", tftp.root.display()))?,
            ),
            None => None,
        };
        dns_settings(config)?;
        if self.tree.is_none() {
            self.tree = open_tree(config)?;
        }
        let Services {
            tree,
            tftp,
            dhcp,
            dns,
            http,
        } = self;
        let tree = tree.as_ref();
        apply(tftp, config, Wiring { tree, dhcp: None }).await?;
        let dhcp_change = apply(dhcp, config, Wiring { tree, dhcp: None }).await?;
        let wiring = Wiring {
            tree,
            dhcp: dhcp.as_ref(),
        };
        let dns_change = apply(dns, config, wiring).await?;
        apply(http, config, Wiring { tree, dhcp: None }).await?;
        if dhcp_change == Change::Replaced
            && dns_change == Change::Reloaded
            && let Some(running) = self.dns.as_mut()
        {
            reconnect_names(running, self.dhcp.as_ref()).await;
        }
        match (prepared, &self.tree) {
            (Some(prepared), Some(tree)) => {
                tree.install(prepared);
                crate::profile_scripts::install(tree, config);
            }
            (None, _) => self.tree = None,
            (Some(_), None) => {}
        }
        Ok(())
    }

    /// One line per service that runs, with where it listens.
    fn log_stats(&self) {
        fn line<S: Service>(service: Option<&S>) {
            if let Some(service) = service {
                let stats = service.stats();
                info!(service = S::NAME, listening = ?stats.listening, "serving");
            }
        }
        line(self.tftp.as_ref());
        line(self.dhcp.as_ref());
        line(self.dns.as_ref());
        line(self.http.as_ref());
    }

    /// Stops every service, the DNS names first and the file transfers last.
    async fn stop(mut self) {
        if let Some(running) = self.http.take() {
            running.stop(Stop::Now).await;
        }
        if let Some(running) = self.dns.take() {
            running.stop(Stop::Now).await;
        }
        if let Some(running) = self.dhcp.take() {
            running.stop(Stop::Now).await;
        }
        if let Some(running) = self.tftp.take() {
            running.stop(Stop::Now).await;
        }
    }
}

fn open_tree(config: &Config) -> anyhow::Result<Option<BootTree>> {
    let Some(tftp) = &config.tftp else {
        return Ok(None);
    };
    let tree = BootTree::open(&TreeConfig::from_tftp(tftp))
        .with_context(|| format!("opening tftp.root {}", tftp.root.display()))?;
    Ok(Some(tree))
}

async fn serve(config: Config, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;

    note_unserved(&config);
    let mut services = Services::start(&config).await?;
    let mut ra = start_ra(&config);
    let mut current = config;
    notify(&[sd_notify::NotifyState::Ready]);
    services.log_stats();
    info!(version = env!("CARGO_PKG_VERSION"), "kindling ready");

    loop {
        tokio::select! {
            _ = hangup.recv() => {
                let mut reloading = vec![sd_notify::NotifyState::Reloading];
                if let Ok(stamp) = sd_notify::NotifyState::monotonic_usec_now() {
                    reloading.push(stamp);
                }
                notify(&reloading);
                match reload(&current, config_path.as_ref(), &mut services).await {
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
    if let Some(running) = ra.take() {
        stop_ra(running).await;
    }
    services.stop().await;
    info!("stopped");
    Ok(())
}

async fn reload(
    current: &Config,
    config_path: Option<&PathBuf>,
    services: &mut Services,
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
    let template_errors = kindling_files::profiles::check(&new_config.profiles);
    if !template_errors.is_empty() {
        let list: Vec<String> = template_errors.iter().map(ToString::to_string).collect();
        anyhow::bail!("the new profiles do not render:\n{}", list.join("\n"));
    }
    if new_config.log != current.log {
        warn!("log settings changed; they take effect at the next restart");
    }
    services.reload(&new_config).await?;
    note_unserved(&new_config);
    Ok(Some(new_config))
}

fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if let Err(notify_error) = sd_notify::notify(states) {
        warn!("sd_notify failed: {notify_error}");
    }
}
