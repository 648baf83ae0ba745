//! One shape for every service the binary runs: bind, reload, stop, stats.
//!
//! Each service (TFTP, DHCP, DNS, HTTP) has a small adapter here that implements [`Service`] over
//! its crate's own handle and picks its section out of the [`Config`]. `serve.rs` then starts,
//! reloads and stops all of them with the same two generic functions, [`start`] and
//! [`apply`]; what differs between services (which config section, whether a change needs a
//! fresh bind) stays inside the adapter. What connects services (the boot tree, DHCP's lease
//! events to DNS) comes in as [`Wiring`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kindling_config::{Config, DhcpMode};
use kindling_dhcp::service::{DhcpHandle, DhcpService};
use kindling_dns::{DnsError, DnsHandle, DnsService};
use kindling_files::BootTree;
use kindling_http::HttpService;
use kindling_tftp::{TftpHandle, TftpService};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::lease_names::NameBridge;
use crate::serve::{dhcp_service_config, dns_settings, lease_feed, spawn_names};

/// SIGINT/SIGTERM must end the process within 5 s; transfers get most of that to send their
/// ERROR packets and remove partial uploads.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_millis(4000);

/// What a running service reports about itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    /// The addresses it is bound to (with the real port where the config said 0); empty for a
    /// service that listens per interface.
    pub(crate) listening: Vec<SocketAddr>,
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reloaded {
    /// The running service took the new config.
    Applied,
    /// The change needs a fresh bind (the reason is logged); nothing was changed yet.
    Restart(&'static str),
}

/// How a service stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Shutdown: abort work in flight, within [`SHUTDOWN_GRACE`].
    Now,
    /// A reload turned the service off: stop accepting, let work in flight finish.
    Drain,
}

/// What the services share, built by `serve.rs`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Wiring<'a> {
    /// The boot tree, when the config has a `tftp` section.
    pub(crate) tree: Option<&'a BootTree>,
    /// The running DHCP service, whose lease events name machines in DNS.
    pub(crate) dhcp: Option<&'a RunningDhcp>,
}

/// A service as the binary runs it.
pub(crate) trait Service: Sized {
    /// The name in log lines and error messages.
    const NAME: &'static str;

    /// Whether the config turns the service on.
    fn enabled(config: &Config) -> bool;

    /// Binds its sockets and starts serving.
    async fn bind(config: &Config, wiring: Wiring<'_>) -> anyhow::Result<Self>;

    /// Applies a new config; on error nothing changed.
    async fn reload(&mut self, config: &Config, wiring: Wiring<'_>) -> anyhow::Result<Reloaded>;

    /// Stops serving and returns once it has (or the grace period is over).
    async fn stop(self, how: Stop);

    fn stats(&self) -> Stats;
}

/// Starts `S` if the config turns it on.
pub(crate) async fn start<S: Service>(
    config: &Config,
    wiring: Wiring<'_>,
) -> anyhow::Result<Option<S>> {
    if !S::enabled(config) {
        info!(service = S::NAME, "{} is off", S::NAME);
        return Ok(None);
    }
    let service = S::bind(config, wiring)
        .await
        .with_context(|| format!("starting the {} service", S::NAME))?;
    Ok(Some(service))
}

/// What [`apply`] did to one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Off before and after.
    Unchanged,
    /// Running before and after, with the new config.
    Reloaded,
    /// Started, restarted or stopped: its handles are new or gone.
    Replaced,
}

/// Brings one service in line with a new config: reload it, start it, restart it or stop it.
pub(crate) async fn apply<S: Service>(
    slot: &mut Option<S>,
    config: &Config,
    wiring: Wiring<'_>,
) -> anyhow::Result<Change> {
    let enabled = S::enabled(config);
    let Some(running) = slot.as_mut() else {
        if !enabled {
            return Ok(Change::Unchanged);
        }
        *slot = start(config, wiring).await?;
        return Ok(Change::Replaced);
    };
    if !enabled {
        info!(service = S::NAME, "{} turned off by reload", S::NAME);
        if let Some(old) = slot.take() {
            old.stop(Stop::Drain).await;
        }
        return Ok(Change::Replaced);
    }
    let reloaded = running
        .reload(config, wiring)
        .await
        .with_context(|| format!("applying the new {} section", S::NAME))?;
    match reloaded {
        Reloaded::Applied => Ok(Change::Reloaded),
        Reloaded::Restart(reason) => {
            info!(
                service = S::NAME,
                "{reason}: restarting the {} service",
                S::NAME
            );
            if let Some(old) = slot.take() {
                old.stop(Stop::Now).await;
            }
            *slot = start(config, wiring).await?;
            Ok(Change::Replaced)
        }
    }
}

/// Waits for a service task, at most the grace period.
async fn join_within_grace(name: &str, task: JoinHandle<()>) {
    if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
        warn!(
            service = name,
            "{name} did not stop within the grace period; exiting anyway"
        );
    }
}

pub(crate) struct RunningTftp {
    handle: TftpHandle,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    listening: Vec<SocketAddr>,
}

impl Service for RunningTftp {
    const NAME: &'static str = "tftp";

    fn enabled(config: &Config) -> bool {
        config.tftp.is_some()
    }

    async fn bind(config: &Config, wiring: Wiring<'_>) -> anyhow::Result<Self> {
        let (Some(tftp_config), Some(tree)) = (&config.tftp, wiring.tree) else {
            anyhow::bail!("no tftp section or no boot tree");
        };
        let service = TftpService::bind(Arc::new(tftp_config.clone()), tree.clone()).await?;
        let listening = service.local_addrs();
        for addr in &listening {
            info!(addr = %addr, root = %tftp_config.root.display(), "tftp listening");
        }
        let handle = service.handle();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(service.run(shutdown.clone()));
        Ok(RunningTftp {
            handle,
            task,
            shutdown,
            listening,
        })
    }

    async fn reload(&mut self, config: &Config, _wiring: Wiring<'_>) -> anyhow::Result<Reloaded> {
        if let Some(tftp_config) = &config.tftp {
            self.handle.reload(Arc::new(tftp_config.clone())).await?;
        }
        Ok(Reloaded::Applied)
    }

    async fn stop(self, how: Stop) {
        match how {
            Stop::Now => {
                self.shutdown.cancel();
                join_within_grace(Self::NAME, self.task).await;
            }
            Stop::Drain => {
                // Transfers in flight finish first; the task ends when they have.
                self.handle.stop_listening();
                tokio::spawn(async move {
                    let _ = self.task.await;
                    drop(self.shutdown);
                });
            }
        }
    }

    fn stats(&self) -> Stats {
        Stats {
            listening: self.listening.clone(),
        }
    }
}

pub(crate) struct RunningDhcp {
    pub(crate) handle: DhcpHandle,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    pub(crate) mode: DhcpMode,
    pub(crate) state_dir: PathBuf,
    /// DHCPv6 is served (port 547 is bound): turning it on or off restarts the service.
    v6: bool,
}

impl Service for RunningDhcp {
    const NAME: &'static str = "dhcp";

    fn enabled(config: &Config) -> bool {
        dhcp_service_config(config).is_some()
    }

    async fn bind(config: &Config, _wiring: Wiring<'_>) -> anyhow::Result<Self> {
        let (Some(dhcp), Some(service_config)) = (&config.dhcp, dhcp_service_config(config)) else {
            anyhow::bail!("no dhcp section");
        };
        let v6 = service_config.v6.is_some();
        let (service, report) = DhcpService::bind(service_config, std::time::SystemTime::now())?;
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
        Ok(RunningDhcp {
            handle,
            task,
            shutdown,
            mode: dhcp.mode,
            state_dir: config.state_dir.clone(),
            v6,
        })
    }

    async fn reload(&mut self, config: &Config, _wiring: Wiring<'_>) -> anyhow::Result<Reloaded> {
        let Some(service_config) = dhcp_service_config(config) else {
            return Ok(Reloaded::Restart("dhcp turned off"));
        };
        let same_service = config.dhcp.as_ref().map(|d| d.mode) == Some(self.mode)
            && config.state_dir == self.state_dir
            && service_config.v6.is_some() == self.v6;
        if !same_service {
            return Ok(Reloaded::Restart(
                "dhcp mode, state_dir or DHCPv6 changed by reload",
            ));
        }
        self.handle.reload(service_config).await?;
        Ok(Reloaded::Applied)
    }

    async fn stop(self, _how: Stop) {
        self.shutdown.cancel();
        join_within_grace(Self::NAME, self.task).await;
    }

    fn stats(&self) -> Stats {
        Stats::default()
    }
}

pub(crate) struct RunningDns {
    pub(crate) handle: DnsHandle,
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    listening: Vec<SocketAddr>,
    /// The task that turns DHCP lease events into names, and hands its memory of what DNS
    /// was told back when stopped (so a reconnection can bring DNS in line).
    pub(crate) names: Option<(JoinHandle<NameBridge>, CancellationToken)>,
}

impl Service for RunningDns {
    const NAME: &'static str = "dns";

    fn enabled(config: &Config) -> bool {
        config.dns.is_some()
    }

    async fn bind(config: &Config, wiring: Wiring<'_>) -> anyhow::Result<Self> {
        let Some(settings) = dns_settings(config)? else {
            anyhow::bail!("no dns section");
        };
        let feed = lease_feed(wiring.dhcp);
        let initial = feed
            .as_ref()
            .map(|(_, live, _)| live.clone())
            .unwrap_or_default();
        let service = DnsService::bind(settings, initial.clone()).await?;
        let listening = service.local_addrs();
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
            listening,
            names: None,
        };
        if let Some((events, _, state_dir)) = feed {
            spawn_names(&mut running, events, NameBridge::new(&initial), state_dir);
        }
        Ok(running)
    }

    async fn reload(&mut self, config: &Config, _wiring: Wiring<'_>) -> anyhow::Result<Reloaded> {
        let Some(settings) = dns_settings(config)? else {
            return Ok(Reloaded::Restart("dns turned off"));
        };
        match self.handle.reload(settings) {
            Ok(()) => Ok(Reloaded::Applied),
            Err(DnsError::RestartNeeded { .. }) => {
                Ok(Reloaded::Restart("dns listen addresses changed by reload"))
            }
            Err(dns_error) => Err(dns_error.into()),
        }
    }

    async fn stop(self, _how: Stop) {
        if let Some((task, stop)) = self.names {
            stop.cancel();
            let _ = task.await;
        }
        self.shutdown.cancel();
        join_within_grace(Self::NAME, self.task).await;
    }

    fn stats(&self) -> Stats {
        Stats {
            listening: self.listening.clone(),
        }
    }
}

pub(crate) struct RunningHttp {
    task: JoinHandle<()>,
    shutdown: CancellationToken,
    config: kindling_config::HttpConfig,
    listening: Vec<SocketAddr>,
}

impl Service for RunningHttp {
    const NAME: &'static str = "http";

    fn enabled(config: &Config) -> bool {
        config.http.is_some()
    }

    async fn bind(config: &Config, wiring: Wiring<'_>) -> anyhow::Result<Self> {
        let (Some(http_config), Some(tree)) = (&config.http, wiring.tree) else {
            anyhow::bail!("no http section or no boot tree (http needs the tftp section)");
        };
        let service = HttpService::bind(Arc::new(http_config.clone()), tree.clone())?;
        let listening = service.local_addrs();
        for addr in &listening {
            info!(addr = %addr, "http listening");
        }
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(service.run(shutdown.clone()));
        Ok(RunningHttp {
            task,
            shutdown,
            config: http_config.clone(),
            listening,
        })
    }

    async fn reload(&mut self, config: &Config, _wiring: Wiring<'_>) -> anyhow::Result<Reloaded> {
        // The boot tree is shared: a new root reaches HTTP without a restart. Sockets and
        // limits are set at bind.
        if config.http.as_ref() == Some(&self.config) {
            Ok(Reloaded::Applied)
        } else {
            Ok(Reloaded::Restart("http settings changed by reload"))
        }
    }

    async fn stop(self, _how: Stop) {
        self.shutdown.cancel();
        join_within_grace(Self::NAME, self.task).await;
    }

    fn stats(&self) -> Stats {
        Stats {
            listening: self.listening.clone(),
        }
    }
}
