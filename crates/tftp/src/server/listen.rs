//! Listening and admission's first step: one task per listening socket receives datagrams,
//! routes those of transfers already running (repeats, `single_port` inboxes), parses requests
//! and hands RRQs and WRQs to `admission::admit`; a malformed request gets an ERROR from the
//! address it was sent to.

use std::net::IpAddr;
use std::sync::Arc;

use kindling_udp::{RecvMeta, UdpEndpoint};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::admission::{Route, admit};
use super::report::printable;
use super::{Direction, Shared};
use crate::wire::{self, ErrorCode, MAX_PACKET, Packet};

pub(super) async fn listen(
    endpoint: Arc<UdpEndpoint>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_PACKET];
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            received = endpoint.recv(&mut buf) => received,
        };
        let meta = match received {
            Ok(meta) => meta,
            Err(recv_error) => {
                debug!(error = %recv_error, "tftp receive error");
                continue;
            }
        };
        if meta.truncated {
            debug!(peer = %meta.source, "oversize datagram dropped");
            continue;
        }
        let datagram = &buf[..meta.len];
        match shared.route(meta.source, datagram) {
            Route::Repeat(repeat) => {
                // A full signal already means "resend": one more adds nothing.
                let _ = repeat.try_send(());
                debug!(peer = %meta.source, "request repeated");
                continue;
            }
            Route::Inbox(inbox) => {
                if inbox.try_send(datagram.to_vec()).is_err() {
                    debug!(peer = %meta.source, "transfer inbox full, datagram dropped");
                }
                continue;
            }
            Route::Listener => {}
        }
        match Packet::parse(datagram) {
            Ok(Packet::Rrq(_)) => admit(
                &shared,
                Direction::Read,
                datagram,
                meta,
                &endpoint,
                &shutdown,
            ),
            Ok(Packet::Wrq(_)) => admit(
                &shared,
                Direction::Write,
                datagram,
                meta,
                &endpoint,
                &shutdown,
            ),
            Ok(_) => debug!(peer = %meta.source, "not a request on the listening port, dropped"),
            Err(parse_error) if is_request(datagram) && parse_error.reply_code().is_some() => {
                if shared.tally.refused_request.note() {
                    info!(peer = %meta.source, error = %parse_error, "malformed request refused (further refusals in this period are counted in the admission summary)");
                } else {
                    debug!(peer = %meta.source, error = %parse_error, "malformed request refused");
                }
                let code = parse_error
                    .reply_code()
                    .unwrap_or(ErrorCode::IllegalOperation);
                reply_from_listener(&endpoint, &meta, code, &parse_error.to_string());
            }
            Err(parse_error) => {
                debug!(peer = %meta.source, error = %parse_error, "malformed request dropped");
            }
        }
    }
}

/// Sends an ERROR from the listening socket, sourced from the address the request was sent to.
pub(super) fn reply_from_listener(
    endpoint: &Arc<UdpEndpoint>,
    meta: &RecvMeta,
    code: ErrorCode,
    message: &str,
) {
    let mut buf = [0u8; 256];
    let len = wire::emit_error(&mut buf, code, message);
    let packet = buf[..len].to_vec();
    let endpoint = Arc::clone(endpoint);
    let (to, from, ifindex) = (meta.source, meta.local_ip, meta.ifindex);
    tokio::spawn(async move {
        let sent = match from {
            Some(from) if usable_source(from) => {
                endpoint.send_from(&packet, to, from, ifindex).await
            }
            _ => endpoint.send_to(&packet, to).await,
        };
        if let Err(send_error) = sent {
            debug!(peer = %to, error = %send_error, "could not send ERROR");
        }
    });
}

/// Only a datagram that claims to be an RRQ or WRQ is answered when it does not parse: an
/// answer to anything else could start a ping-pong with another server.
fn is_request(datagram: &[u8]) -> bool {
    matches!(datagram, [0, 1 | 2, ..])
}

pub(super) fn usable_source(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast()),
    }
}

pub(super) fn request_name(datagram: &[u8]) -> String {
    match Packet::parse(datagram) {
        Ok(Packet::Rrq(request) | Packet::Wrq(request)) => printable(request.filename),
        _ => String::new(),
    }
}
