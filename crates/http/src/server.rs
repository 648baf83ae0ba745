//! Listening sockets and connections.
//!
//! One loop accepts connections from every listening socket while fewer than
//! `http.max_connections` are open (the rest wait in the kernel's backlog) and serves each on a task of its own with
//! hyper's HTTP/1 server: keep-alive, a request line and headers of at most
//! [`MAX_HEADER_BYTES`] (more is refused by hyper with 431), and `http.header_timeout` for a
//! client to send them; a client that takes no bytes of a reply for `http.send_timeout` is
//! disconnected (`stall.rs`). On shutdown the listeners stop and open connections are closed.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use kindling_config::HttpConfig;
use kindling_files::BootTree;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::debug;

use crate::answer::{Peer, router};
use crate::error::HttpError;
use crate::stall::StallGuard;

/// The largest request line plus headers read from a client (hyper's buffer limit).
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A bound HTTP service, ready to `run`.
#[derive(Debug)]
pub struct HttpService {
    config: Arc<HttpConfig>,
    tree: BootTree,
    listeners: Vec<(SocketAddr, TcpListener)>,
}

impl HttpService {
    /// Binds every listening address; files are served from `tree`. Nothing is served until
    /// `run`.
    pub fn bind(config: Arc<HttpConfig>, tree: BootTree) -> Result<Self, HttpError> {
        let listeners = config
            .listen
            .iter()
            .map(|&addr| {
                let listener = listen(addr).map_err(|source| HttpError::Bind { addr, source })?;
                let local = listener
                    .local_addr()
                    .map_err(|source| HttpError::Bind { addr, source })?;
                Ok((local, listener))
            })
            .collect::<Result<Vec<_>, HttpError>>()?;
        Ok(HttpService {
            config,
            tree,
            listeners,
        })
    }

    /// The bound addresses (with the real port where the config said 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners.iter().map(|(addr, _)| *addr).collect()
    }

    /// Serves until `shutdown` is cancelled, then closes every connection and returns.
    pub async fn run(self, shutdown: CancellationToken) {
        let connections = TaskTracker::new();
        accept(
            &self.listeners,
            router(self.tree.clone()),
            &self.config,
            &connections,
            &shutdown,
        )
        .await;
        connections.close();
        connections.wait().await;
    }
}

/// A listening TCP socket; an IPv6 one takes IPv6 only, so `0.0.0.0:P` and `[::]:P` coexist.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// One loop for every listening socket: a connection is accepted (from whichever socket has
/// one) only once a connection slot is free, so the slots are shared by all addresses and the
/// connections over the limit wait in the kernel's backlog.
async fn accept(
    listeners: &[(SocketAddr, TcpListener)],
    app: axum::Router,
    config: &Arc<HttpConfig>,
    connections: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let next = std::future::poll_fn(|cx| {
            for (_, listener) in listeners {
                if let std::task::Poll::Ready(accepted) = listener.poll_accept(cx) {
                    return std::task::Poll::Ready(accepted);
                }
            }
            std::task::Poll::Pending
        });
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = next => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    debug!(%error, "http accept failed");
                    continue;
                }
            },
        };
        let app = app.clone();
        let config = Arc::clone(config);
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(Peer(peer));
                    app.clone().oneshot(request.map(axum::body::Body::new))
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .keep_alive(true)
                .header_read_timeout(config.header_timeout)
                .max_buf_size(MAX_HEADER_BYTES);
            let stream = StallGuard::new(stream, config.send_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        debug!(peer = %peer, %error, "http connection ended with an error");
                    }
                }
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
