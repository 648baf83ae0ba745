//! The fast path: exact positive answers from our zones, served from precomputed bytes.
//!
//! hickory-server's catalog parses every query into owned values, looks it up behind an async
//! lock and serializes a fresh response: about 89k queries/s on the benchmark machine, where
//! dnsmasq does ~239k. Almost all of a netboot LAN's traffic is the same few questions ("what
//! is node12's address?"), so for those the receive loop answers from a table built when the
//! names change: per (lower-case name, type) the complete response to a canonical query (id 0,
//! RD and CD clear, the question in lower case). At answer time only the id, the RD and CD
//! bits and the question bytes (exactly as the client sent them, case and all) are copied in.
//!
//! The table entry for a name is made the way the catalog makes its answer, from the same
//! RRsets and with hickory's own serializer (`MessageResponseBuilder`): AA set, RA clear, the
//! RRset in zone order, NS in the authority section of an SOA answer, A then AAAA of an SRV or
//! NS target in the additional section. The catalog never compresses names against the
//! question (it copies the question bytes and remembers them as one unit, question type and
//! class included, which no name can match), so the bytes after the question do not depend on
//! the question's case, and a template made with a lower-case question fits every spelling.
//! The tests in `equality.rs` prove the two paths equal byte for byte.
//!
//! Everything else is left to the catalog: a query the fast path does not take is answered
//! exactly as if the fast path did not exist. It takes only a plain query: QR clear, opcode
//! QUERY, one question, no other records (so no EDNS), class IN, an uncompressed name, nothing
//! after the question, and a name and type that have an RRset whose answer fits 512 bytes.

use std::collections::HashMap;
use std::iter;
use std::sync::Arc;

use hickory_proto::op::{MessageType, Metadata, OpCode};
use hickory_proto::rr::{LowerName, Name, RData, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder};
use hickory_server::zone_handler::{LookupOptions, LookupRecords, MessageResponseBuilder, Queries};

use crate::names::ZoneData;

/// The longest UDP answer without EDNS (RFC 1035 4.2.1).
const PLAIN_UDP_MAX: usize = 512;
/// Header length.
const HEADER: usize = 12;
/// A name on the wire is at most 255 bytes; the key adds the two type bytes.
const MAX_KEY: usize = 255 + 2;

/// Types the table holds; anything else goes to the catalog.
const FAST_TYPES: [RecordType; 8] = [
    RecordType::A,
    RecordType::AAAA,
    RecordType::CNAME,
    RecordType::TXT,
    RecordType::SRV,
    RecordType::PTR,
    RecordType::SOA,
    RecordType::NS,
];

/// Types whose answer depends on more than their own RRset (the SOA serial, the addresses of
/// a target): always made afresh.
const DEPENDENT_TYPES: [RecordType; 3] = [RecordType::SOA, RecordType::NS, RecordType::SRV];

/// Precomputed responses, keyed by the lower-case wire name followed by the query type.
#[derive(Debug, Default)]
pub(crate) struct FastTable {
    answers: HashMap<Box<[u8]>, Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    response: Arc<[u8]>,
    /// The RRset the response was made from, to reuse it when a rebuild finds it unchanged.
    source: Arc<RecordSet>,
}

impl FastTable {
    /// Builds the table from the zones the catalog serves, reusing the responses of
    /// `previous` for RRsets that did not change.
    pub(crate) fn build(zones: &[ZoneData], previous: Option<&FastTable>) -> FastTable {
        let mut answers = HashMap::with_capacity(previous.map_or(0, |p| p.answers.len()));
        for zone in zones {
            for (key, rrset) in &zone.records {
                if !FAST_TYPES.contains(&key.record_type) || rrset.name().is_wildcard() {
                    continue;
                }
                let Ok(mut wire) = rrset.name().to_lowercase().to_bytes() else {
                    continue;
                };
                wire.extend_from_slice(&u16::from(key.record_type).to_be_bytes());
                let reused = previous
                    .filter(|_| !DEPENDENT_TYPES.contains(&key.record_type))
                    .and_then(|previous| previous.answers.get(&wire[..]))
                    .filter(|old| Arc::ptr_eq(&old.source, rrset) || *old.source == **rrset);
                let entry = match reused {
                    Some(old) => Entry {
                        response: old.response.clone(),
                        source: rrset.clone(),
                    },
                    None => {
                        let Some(response) = template(zone, rrset) else {
                            continue;
                        };
                        Entry {
                            response: response.into(),
                            source: rrset.clone(),
                        }
                    }
                };
                answers.insert(wire.into_boxed_slice(), entry);
            }
        }
        FastTable { answers }
    }

    pub(crate) fn len(&self) -> usize {
        self.answers.len()
    }

    /// The keys: lower-case wire name followed by the type.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.answers.keys().map(|key| &key[..])
    }

    /// Answers `query` into `out` if it is a plain query for an RRset in the table; returns
    /// false (and leaves `out` alone) otherwise.
    pub(crate) fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(parsed) = parse(query) else {
            return false;
        };
        let Some(entry) = self.answers.get(&parsed.key[..parsed.key_len]) else {
            return false;
        };
        let template = &entry.response;
        // The template's question has the same length: same name, no compression.
        let question = &query[HEADER..parsed.question_end];
        if template.len() < HEADER + question.len() {
            return false;
        }
        out.clear();
        out.extend_from_slice(template);
        out[0] = query[0];
        out[1] = query[1];
        out[2] |= query[2] & 0x01; // RD
        out[3] |= query[3] & 0x10; // CD
        out[HEADER..HEADER + question.len()].copy_from_slice(question);
        true
    }
}

struct Parsed {
    /// Lower-case wire name, then the type.
    key: [u8; MAX_KEY],
    key_len: usize,
    question_end: usize,
}

fn parse(query: &[u8]) -> Option<Parsed> {
    if query.len() < HEADER + 5 {
        return None;
    }
    let flags = query[2];
    // QR must be clear and the opcode QUERY (0); AA, TC and RD do not matter to the answer.
    if flags & 0xf8 != 0 {
        return None;
    }
    // One question, and nothing else: no answers, authority or additional records (an OPT
    // record would be one).
    if query[4..12] != [0, 1, 0, 0, 0, 0, 0, 0] {
        return None;
    }
    let mut key = [0u8; MAX_KEY];
    let mut at = HEADER;
    let mut key_len = 0;
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            key[key_len] = 0;
            key_len += 1;
            at += 1;
            break;
        }
        // Pointers (0xc0) and the obsolete extended label types: leave them to the catalog.
        if len > 63 {
            return None;
        }
        let label = query.get(at + 1..at + 1 + len)?;
        // The name with its final zero byte must fit 255 bytes.
        if key_len + 1 + len + 1 > 255 {
            return None;
        }
        key[key_len] = len as u8;
        for (slot, byte) in key[key_len + 1..key_len + 1 + len].iter_mut().zip(label) {
            *slot = byte.to_ascii_lowercase();
        }
        key_len += 1 + len;
        at += 1 + len;
    }
    let tail = query.get(at..at + 4)?;
    // Class IN only, and nothing may follow the question.
    if tail[2..4] != [0, 1] || query.len() != at + 4 {
        return None;
    }
    key[key_len..key_len + 2].copy_from_slice(&tail[0..2]);
    Some(Parsed {
        key,
        key_len: key_len + 2,
        question_end: at + 4,
    })
}

/// The catalog's answer to a canonical query for `rrset`, or `None` when the fast path should
/// leave this name and type to the catalog.
fn template(zone: &ZoneData, rrset: &RecordSet) -> Option<Vec<u8>> {
    let query_type = rrset.record_type();
    let owner = rrset.name().to_lowercase();
    let mut question = owner.to_bytes().ok()?;
    question.extend_from_slice(&u16::from(query_type).to_be_bytes());
    question.extend_from_slice(&1u16.to_be_bytes());
    let queries = Queries::read(&mut BinDecoder::new(&question), 1).ok()?;

    let answers: Vec<_> = rrset.records_without_rrsigs().cloned().collect();
    // An SOA answer carries the zone's NS records in the authority section.
    let authorities: Vec<_> = if query_type == RecordType::SOA {
        zone.records
            .get(&RrKey::new(LowerName::new(&owner), RecordType::NS))
            .map(|ns| ns.records_without_rrsigs().cloned().collect())
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let additionals = match additional_target(rrset) {
        Some(target) => additionals(zone, &target)?,
        None => Vec::new(),
    };
    let additionals = LookupRecords::many(LookupOptions::default(), additionals);

    let mut metadata = Metadata::new(0, MessageType::Response, OpCode::Query);
    metadata.authoritative = true;
    let response = MessageResponseBuilder::new(&queries, None).build(
        metadata,
        answers.iter(),
        authorities.iter(),
        iter::empty(),
        additionals.iter(),
    );
    let mut bytes = Vec::with_capacity(PLAIN_UDP_MAX);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(PLAIN_UDP_MAX as u16);
    let info = response.destructive_emit(&mut encoder).ok()?;
    if info.truncation || bytes.len() > PLAIN_UDP_MAX {
        return None;
    }
    Some(bytes)
}

/// The name whose addresses go in the additional section, as hickory's in-memory zone does it:
/// the target of the first record of an NS or SRV RRset.
fn additional_target(rrset: &RecordSet) -> Option<Name> {
    match &rrset.records_without_rrsigs().next()?.data {
        RData::NS(ns) if rrset.record_type() == RecordType::NS => Some(ns.0.clone()),
        RData::SRV(srv) if rrset.record_type() == RecordType::SRV => Some(srv.target.clone()),
        _ => None,
    }
}

/// The A and AAAA RRsets of `target` in this zone. `None` (leave it to the catalog) when the
/// lookup would meet a CNAME or could match a wildcard: the cases where hickory follows
/// chains or synthesizes records.
fn additionals(zone: &ZoneData, target: &Name) -> Option<Vec<Arc<RecordSet>>> {
    let target = LowerName::new(target);
    if zone
        .records
        .contains_key(&RrKey::new(target.clone(), RecordType::CNAME))
    {
        return None;
    }
    let mut found = Vec::new();
    let mut missing = false;
    for record_type in [RecordType::A, RecordType::AAAA] {
        match zone.records.get(&RrKey::new(target.clone(), record_type)) {
            Some(set) => found.push(set.clone()),
            None => missing = true,
        }
    }
    if missing && may_match_wildcard(zone, &target) {
        return None;
    }
    Some(found)
}

fn may_match_wildcard(zone: &ZoneData, name: &LowerName) -> bool {
    zone.records.keys().any(|key| {
        let owner: Name = key.name().into();
        owner.is_wildcard()
            && owner.base_name().zone_of(&Name::from(name))
            && owner != Name::from(name)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.trim_end_matches('.').split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn parse_takes_plain_queries_only() {
        let plain = query("Nas.Lab.Test", 1);
        let parsed = parse(&plain).unwrap();
        assert_eq!(
            &parsed.key[..parsed.key_len],
            b"\x03nas\x03lab\x04test\x00\x00\x01"
        );
        let mut response = plain.clone();
        response[2] |= 0x80;
        assert!(parse(&response).is_none());
        let mut notify = plain.clone();
        notify[2] = 4 << 3;
        assert!(parse(&notify).is_none());
        let mut chaos = plain.clone();
        let last = chaos.len() - 1;
        chaos[last] = 3;
        assert!(parse(&chaos).is_none());
        let mut trailing = plain.clone();
        trailing.push(0);
        assert!(parse(&trailing).is_none());
        let mut with_opt = plain.clone();
        with_opt[11] = 1;
        assert!(parse(&with_opt).is_none());
        let mut pointer = plain[..12].to_vec();
        pointer.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
        assert!(parse(&pointer).is_none());
        assert!(parse(&plain[..plain.len() - 1]).is_none());
    }
}
