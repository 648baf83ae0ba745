//! The slow path: everything the fast path does not take goes through hickory-server's
//! `Catalog`, whose answer is captured as bytes and sent back by our own sockets.
//!
//! A [`Snapshot`] is one consistent state of the service: the fast table, the catalogs and the
//! recursion ACL, all built from the same zone data. The receive loops load the current one
//! (an `ArcSwap`), so a lease update never makes a query wait.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::{LowerName, Name, Record};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::forwarder::ForwardZoneHandler;
use hickory_server::zone_handler::{
    Catalog, MessageResponse, MessageResponseBuilder, Queries, ZoneHandler,
};
use ipnet::IpNet;

#[cfg(test)]
use crate::DnsError;
use crate::fast::FastTable;
use crate::names::ZoneData;
use crate::settings::may_recurse;
use crate::zone::LocalZone;

/// The plain-DNS UDP limit when the client sent no EDNS.
const PLAIN_UDP_MAX: u16 = 512;

/// One consistent state of the service.
pub(crate) struct Snapshot {
    pub(crate) fast: FastTable,
    /// Our zones only: what clients that may not recurse are answered from (REFUSED for every
    /// other name).
    local: Catalog,
    /// Our zones plus the forwarder on `.`; `None` without upstreams.
    recursive: Option<Catalog>,
    recursion_from: Vec<IpNet>,
}

impl Snapshot {
    /// Builds the catalogs and the fast table from `zones`, reusing what `previous` made from
    /// RRsets that did not change.
    pub(crate) fn build(
        zones: &[ZoneData],
        forwarder: Option<&Arc<ForwardZoneHandler>>,
        recursion_from: Vec<IpNet>,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let handlers = zones
            .iter()
            .map(|zone| Arc::new(LocalZone::new(zone)) as Arc<dyn ZoneHandler>)
            .collect();
        Snapshot::assemble(
            zones,
            handlers,
            forwarder,
            recursion_from,
            previous.map(|p| &p.fast),
        )
    }

    /// The same with hickory's plain `InMemoryZoneHandler`s, to prove `LocalZone` changes no
    /// answer.
    #[cfg(test)]
    pub(crate) fn build_plain(
        zones: &[ZoneData],
        recursion_from: Vec<IpNet>,
    ) -> Result<Snapshot, DnsError> {
        use hickory_server::net::runtime::TokioRuntimeProvider;
        use hickory_server::store::in_memory::InMemoryZoneHandler;
        use hickory_server::zone_handler::{AxfrPolicy, ZoneType};
        let mut handlers: Vec<Arc<dyn ZoneHandler>> = Vec::new();
        for zone in zones {
            let records = zone
                .records
                .iter()
                .map(|(key, set)| (key.clone(), (**set).clone()))
                .collect();
            let handler = InMemoryZoneHandler::<TokioRuntimeProvider>::new(
                zone.origin.clone(),
                records,
                ZoneType::Primary,
                AxfrPolicy::Deny,
            )
            .map_err(|reason| DnsError::Zone {
                zone: zone.origin.to_string(),
                reason,
            })?;
            handlers.push(Arc::new(handler));
        }
        Ok(Snapshot::assemble(
            zones,
            handlers,
            None,
            recursion_from,
            None,
        ))
    }

    fn assemble(
        zones: &[ZoneData],
        handlers: Vec<Arc<dyn ZoneHandler>>,
        forwarder: Option<&Arc<ForwardZoneHandler>>,
        recursion_from: Vec<IpNet>,
        previous: Option<&FastTable>,
    ) -> Snapshot {
        let catalog = |forwarder: Option<&Arc<ForwardZoneHandler>>| {
            let mut catalog = Catalog::new();
            for handler in &handlers {
                catalog.upsert(handler.origin().clone(), vec![handler.clone()]);
            }
            if let Some(forwarder) = forwarder {
                catalog.upsert(
                    LowerName::from(Name::root()),
                    vec![forwarder.clone() as Arc<dyn ZoneHandler>],
                );
            }
            catalog
        };
        Snapshot {
            fast: FastTable::build(zones, previous),
            local: catalog(None),
            recursive: forwarder.map(|forwarder| catalog(Some(forwarder))),
            recursion_from,
        }
    }

    /// The catalog `client` is answered from.
    fn catalog_for(&self, client: SocketAddr) -> &Catalog {
        match &self.recursive {
            Some(recursive) if may_recurse(&self.recursion_from, client.ip()) => recursive,
            _ => &self.local,
        }
    }
}

/// Answers one query through the catalog. `None`: nothing to send (too short to have a
/// header, or a response rather than a query); otherwise the response bytes, FORMERR for what
/// does not parse.
pub(crate) async fn respond(
    snapshot: &Snapshot,
    raw: Vec<u8>,
    client: SocketAddr,
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let header = match Header::read(&mut BinDecoder::new(&raw)) {
        Ok(header) => header,
        Err(error) => {
            tracing::debug!(%client, %error, len = raw.len(), "dns: dropped a datagram without a header");
            return None;
        }
    };
    if header.metadata.message_type == MessageType::Response {
        tracing::debug!(%client, "dns: dropped a response sent as a query");
        return None;
    }
    let capture = Capture::new(protocol);
    match Request::from_bytes(raw, client, protocol) {
        Ok(request) => {
            snapshot
                .catalog_for(client)
                .handle_request::<_, TokioTime>(&request, capture.clone())
                .await;
        }
        Err(error) => {
            tracing::debug!(%client, %error, "dns: malformed query; answering FORMERR");
            // No question is echoed, as hickory's own server does for what it cannot parse.
            let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
                return None;
            };
            let response = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            let mut sink = capture.clone();
            if let Err(error) = sink.send_response(response).await {
                tracing::debug!(%client, %error, "dns: could not encode FORMERR");
            }
        }
    }
    capture.take()
}

/// A `ResponseHandler` that serializes the catalog's response exactly as hickory's own
/// `ResponseHandle` does (512 bytes over UDP without EDNS, the client's EDNS size with it,
/// 64 KiB over TCP; SERVFAIL if encoding fails) and keeps the bytes.
#[derive(Clone)]
struct Capture {
    protocol: Protocol,
    out: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Capture {
    fn new(protocol: Protocol) -> Capture {
        Capture {
            protocol,
            out: Arc::new(Mutex::new(None)),
        }
    }

    fn take(&self) -> Option<Vec<u8>> {
        self.out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let id = response.metadata().id;
        let max = match self.protocol {
            Protocol::Udp => response
                .edns()
                .map_or(PLAIN_UDP_MAX, |edns| edns.max_payload()),
            _ => u16::MAX,
        };
        let mut bytes = Vec::with_capacity(usize::from(PLAIN_UDP_MAX));
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "dns: could not encode a response; answering SERVFAIL");
                bytes.clear();
                let mut encoder = BinEncoder::new(&mut bytes);
                encoder.set_max_size(PLAIN_UDP_MAX);
                let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header {
                    metadata,
                    counts: HeaderCounts::default(),
                };
                hickory_proto::serialize::binary::BinEncodable::emit(&header, &mut encoder)?;
                ResponseInfo::from(header)
            }
        };
        *self.out.lock().unwrap_or_else(PoisonError::into_inner) = Some(bytes);
        Ok(info)
    }
}
