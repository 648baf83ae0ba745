//! How a transfer talks to its peer: its own socket (the RFC 1350 transfer identifier) or the
//! shared listening socket (`single_port`), single and segmented sends, and the ERROR packets
//! a refusal turns into.

use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use kindling_files::AccessError;
use kindling_udp::UdpEndpoint;
use tokio::sync::mpsc;
use tracing::debug;

use crate::proto::Transmit;
use crate::segments::{MAX_SEGMENTS, Segments};
use crate::wire::{self, ErrorCode};

/// How a transfer talks to its peer.
pub(super) enum Transport {
    /// A socket of its own: the RFC 1350 transfer identifier.
    Own(UdpEndpoint),
    /// The listening socket, shared by every transfer (`single_port`).
    Shared {
        endpoint: Arc<UdpEndpoint>,
        local_ip: IpAddr,
        ifindex: Option<u32>,
        inbox: mpsc::Receiver<Vec<u8>>,
        peer: SocketAddr,
    },
}

impl Transport {
    pub(super) async fn send(&self, packet: &[u8], to: SocketAddr) -> std::io::Result<usize> {
        self.send_vectored(&[IoSlice::new(packet)], to).await
    }

    pub(super) async fn send_vectored(
        &self,
        parts: &[IoSlice<'_>],
        to: SocketAddr,
    ) -> std::io::Result<usize> {
        let (endpoint, from) = self.sender();
        endpoint.send_vectored(parts, to, from).await
    }

    /// The socket to send on, and the source address to send from when it is shared.
    pub(super) fn sender(&self) -> (&UdpEndpoint, Option<(IpAddr, Option<u32>)>) {
        match self {
            Transport::Own(endpoint) => (endpoint, None),
            Transport::Shared {
                endpoint,
                local_ip,
                ifindex,
                ..
            } => (endpoint, Some((*local_ip, *ifindex))),
        }
    }

    /// Sends the gathered blocks with one segmented `sendmsg` while the kernel takes them
    /// (`gso` turns false for good when it does not), else one by one. Failures are only
    /// logged, as in [`Transport::send_transmit`].
    pub(super) async fn send_segments(&self, segments: &Segments<'_>, gso: &mut bool) {
        let Some(to) = segments.to() else {
            return;
        };
        if *gso && segments.len() > 1 {
            let mut slices = [IoSlice::new(&[]); 2 * MAX_SEGMENTS];
            let parts = segments.io_slices(&mut slices);
            let (endpoint, source) = self.sender();
            match endpoint
                .send_segmented(parts, segments.segment_len(), to, source)
                .await
            {
                Ok(_) => return,
                Err(error) if error.kind() == std::io::ErrorKind::Unsupported => {
                    debug!(peer = %to, %error, "segmented send unsupported; sending blocks one by one");
                    *gso = false;
                }
                Err(error) => {
                    debug!(peer = %to, %error, "send failed");
                    return;
                }
            }
        }
        for index in 0..segments.len() {
            if let Err(send_error) = self.send_vectored(&segments.datagram(index), to).await {
                debug!(peer = %to, error = %send_error, "send failed");
            }
        }
    }

    /// Sends what the core asked for: the head in `buf`, then the block the source lent,
    /// gathered by the kernel. A failed send is only logged, since the core's retransmission
    /// timer covers a datagram that never left.
    pub(super) async fn send_transmit(&self, buf: &[u8], transmit: &Transmit<'_>) {
        let parts = [
            IoSlice::new(&buf[..transmit.len]),
            IoSlice::new(transmit.tail),
        ];
        let parts = if transmit.tail.is_empty() {
            &parts[..1]
        } else {
            &parts[..]
        };
        if let Err(send_error) = self.send_vectored(parts, transmit.to).await {
            debug!(peer = %transmit.to, error = %send_error, "send failed");
        }
    }

    /// Receives the next datagram for this transfer: its length and its source.
    pub(super) async fn recv(&mut self, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
        match self {
            Transport::Own(endpoint) => loop {
                // The buffer holds the largest TFTP packet, so a datagram that fills it was
                // oversize (and cut by the kernel).
                match endpoint.recv_from(buf).await {
                    Ok((len, source)) if len >= buf.len() => {
                        debug!(peer = %source, "oversize datagram dropped");
                    }
                    Ok((len, source)) => return Some((len, source)),
                    Err(recv_error) => debug!(error = %recv_error, "tftp transfer receive error"),
                }
            },
            Transport::Shared { inbox, peer, .. } => {
                let datagram = inbox.recv().await?;
                let len = datagram.len().min(buf.len());
                buf[..len].copy_from_slice(&datagram[..len]);
                Some((len, *peer))
            }
        }
    }
}

pub(super) async fn send_error(
    transport: &Transport,
    peer: SocketAddr,
    code: ErrorCode,
    message: &str,
) {
    let mut buf = [0u8; 512];
    let len = wire::emit_error(&mut buf, code, message);
    if let Err(send_error) = transport.send(&buf[..len], peer).await {
        debug!(peer = %peer, error = %send_error, "could not send ERROR");
    }
}

pub(super) async fn send_access_error(
    transport: &Transport,
    peer: SocketAddr,
    access_error: &AccessError,
) {
    // The transfer's report says it too, at a bounded rate.
    debug!(peer = %peer, reason = %access_error, "request refused");
    send_error(
        transport,
        peer,
        access_code(access_error),
        client_message(access_error),
    )
    .await;
}

/// The TFTP error code (RFC 1350) for a refusal of the boot tree.
pub(super) fn access_code(access_error: &AccessError) -> ErrorCode {
    match access_error {
        AccessError::NotFound => ErrorCode::FileNotFound,
        AccessError::Forbidden(_) => ErrorCode::AccessViolation,
        AccessError::NoSpace => ErrorCode::DiskFull,
        AccessError::Exists => ErrorCode::FileExists,
        AccessError::Io(_) => ErrorCode::NotDefined,
    }
}

/// The message sent to the client: short, and never a server path or reason.
pub(super) fn client_message(access_error: &AccessError) -> &'static str {
    match access_error {
        AccessError::NotFound => "File not found",
        AccessError::Forbidden(_) => "Access violation",
        AccessError::NoSpace => "Disk full or allocation exceeded",
        AccessError::Exists => "File already exists",
        AccessError::Io(_) => "I/O error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn boot_tree_refusals_map_to_tftp_codes_without_leaking_paths() {
        let cases = [
            (AccessError::NotFound, 1),
            (
                AccessError::forbidden("symlink leaves root: /srv/tftp/x"),
                2,
            ),
            (AccessError::NoSpace, 3),
            (AccessError::Exists, 6),
            (AccessError::Io(std::io::Error::other("/srv/tftp/x")), 0),
        ];
        for (err, code) in cases {
            assert_eq!(access_code(&err).as_u16(), code, "{err:?}");
            assert!(!client_message(&err).contains("/srv"), "{err:?}");
            assert!(!client_message(&err).is_empty());
        }
    }
}
