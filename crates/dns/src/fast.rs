//! The fast path: exact positive answers from our zones, served from precomputed bytes.
//!
//! hickory-server's catalog parses every query into owned values, looks it up behind an async
//! lock and serializes a fresh response: about 89k queries/s on the benchmark machine, where
//! dnsmasq does ~239k. Almost all of a netboot LAN's traffic is the same few questions ("what
//! is node12's address?"), so for those the receive loop answers from a table built when the
//! names change: per (lower-case name, type) the complete response to a canonical query (id 0,
//! RD and CD clear, the question in lower case), once without EDNS and once with it. At answer
//! time only the id, the RD and CD bits, the question bytes (exactly as the client sent them,
//! case and all) and, with EDNS, the OPT record's payload size are copied in.
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
//! # What hickory-server 0.26.3 does with EDNS
//!
//! `Catalog::handle_request` never echoes the client's OPT record; it makes a fresh `Edns`:
//! - max payload: the client's, raised to 512 (hickory-proto already reads a smaller OPT class
//!   as 512); version 0; extended rcode: the high bits of the response code (0 for NOERROR);
//!   the Z flags clear.
//! - DO: copied from the query only when hickory-server is built with its `__dnssec` feature
//!   (`dnssec-ring`, `dnssec-aws-lc-rs`), which this workspace does not enable: the answer's DO
//!   is always clear, so DO set or clear gives the same bytes. (DO also asks for RRSIGs, and
//!   our zones have none.)
//! - options: none. NSID is answered only when `Catalog::set_nsid` gave a payload, which we
//!   never do (if we ever do, NSID queries must go to the catalog); COOKIE, padding, keepalive
//!   and every code hickory-proto does not know are kept as opaque bytes nobody reads (hickory
//!   has no server cookies). Client subnet (ECS, code 8) is the one option hickory-proto
//!   parses on the way in, and a body it rejects makes the whole query FORMERR.
//! - a version above 0: BADVERS (rcode high bits 1 in the OPT, header rcode 0), no answer.
//! - the query's own extended rcode and Z bits change nothing: the response header is made
//!   by `Metadata::response_from_request`, which resets the rcode.
//! - FORMERR for an OPT whose owner is not the root, a second OPT, an RDATA length past the
//!   end of the datagram and an option longer than the whole RDATA; an option that only runs
//!   past the end of the RDATA makes hickory drop all the options with a warning and answer.
//!   Bytes after the last record are ignored.
//!
//! The OPT goes last in the additional section. Over UDP the whole response is encoded with a
//! limit of the answer OPT's payload size: records that do not fit are left out with TC set
//! (the OPT too when it does not fit). The limit is only checked as bytes are written, so an
//! answer that fits comes out the same whatever the limit.
//!
//! # What the fast path takes
//!
//! A query: QR clear, opcode QUERY, one question, no answer or authority records, class IN, an
//! uncompressed name, and after the question either nothing (then the answer must fit 512
//! bytes) or exactly one OPT record that the catalog answers like any other: root owner, type
//! 41, version 0, any payload size, extended rcode, DO and Z bits, and options that are each
//! whole inside the RDATA, which ends the datagram, none of them ECS. The answer is the EDNS
//! template (the answer without EDNS, one more additional record: an empty OPT, in which the
//! client's payload size raised to 512 is patched), taken only when it fits that size.
//! Everything else is left to the catalog: a query the fast path does not take is answered
//! exactly as if the fast path did not exist. Names and types in the table are those with an
//! RRset whose answer fits without truncation in 512 bytes (plain) or 65535 bytes (EDNS).

use std::collections::HashMap;
use std::iter;
use std::sync::Arc;

use hickory_proto::op::{Edns, MessageType, Metadata, OpCode};
use hickory_proto::rr::{LowerName, Name, RData, RecordSet, RecordType, RrKey};
use hickory_proto::serialize::binary::{BinDecoder, BinEncodable, BinEncoder};
use hickory_server::zone_handler::{LookupOptions, LookupRecords, MessageResponseBuilder, Queries};

use crate::names::ZoneData;

/// The longest UDP answer without EDNS (RFC 1035 4.2.1), and the least payload size an EDNS
/// answer advertises (RFC 6891 6.2.3, `Edns::set_max_payload`).
const PLAIN_UDP_MAX: u16 = 512;
/// Header length.
const HEADER: usize = 12;
/// A name on the wire is at most 255 bytes; the key adds the two type bytes.
const MAX_KEY: usize = 255 + 2;
/// RR type OPT.
const OPT_TYPE: u16 = 41;
/// EDNS option code of client subnet (RFC 7871): hickory-proto parses its body, and a body it
/// rejects makes the whole query FORMERR.
const CLIENT_SUBNET: u16 = 8;
/// An OPT record's fixed part: root owner (1), type (2), payload size (2), extended rcode,
/// version and flags (4), RDATA length (2).
const OPT_FIXED: usize = 11;
/// The empty OPT record that ends an EDNS template, with the payload size it is built with
/// (patched per query).
const TEMPLATE_OPT: [u8; OPT_FIXED] = [0, 0, 41, 0x02, 0x00, 0, 0, 0, 0, 0, 0];
/// Where the payload size sits, counted back from the end of an EDNS template.
const TEMPLATE_PAYLOAD_FROM_END: usize = OPT_FIXED - 3;

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
    /// The answer to a query without EDNS; `None` when it does not fit 512 bytes.
    plain: Option<Arc<[u8]>>,
    /// The answer to an EDNS(0) query, ending with [`TEMPLATE_OPT`]; `None` when it does not
    /// fit 65535 bytes. The same whatever DO, Z and options the query has (module doc).
    edns: Option<Arc<[u8]>>,
    /// The RRset the responses were made from, to reuse them when a rebuild finds it unchanged.
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
                        source: rrset.clone(),
                        ..old.clone()
                    },
                    None => {
                        let Some(templates) = templates(zone, rrset) else {
                            continue;
                        };
                        Entry {
                            plain: templates.plain.map(Arc::from),
                            edns: templates.edns.map(Arc::from),
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

    /// The keys (lower-case wire name followed by the type) that answer queries without EDNS.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.answers
            .iter()
            .filter(|(_, entry)| entry.plain.is_some())
            .map(|(key, _)| &key[..])
    }

    /// The keys that answer EDNS queries, with the length of that answer.
    #[cfg(test)]
    pub(crate) fn edns_keys(&self) -> impl Iterator<Item = (&[u8], usize)> {
        self.answers
            .iter()
            .filter_map(|(key, entry)| Some((&key[..], entry.edns.as_ref()?.len())))
    }

    /// Answers `query` into `out` if it is a query the fast path takes (module doc) for an
    /// RRset in the table; returns false (and leaves `out` alone) otherwise.
    pub(crate) fn answer(&self, query: &[u8], out: &mut Vec<u8>) -> bool {
        let Some(parsed) = parse(query) else {
            return false;
        };
        let Some(entry) = self.answers.get(&parsed.key[..parsed.key_len]) else {
            return false;
        };
        let template = match parsed.payload {
            None => entry.plain.as_deref(),
            Some(payload) => entry
                .edns
                .as_deref()
                .filter(|edns| edns.len() <= usize::from(payload)),
        };
        let Some(template) = template else {
            return false;
        };
        // The template's question has the same length: same name, no compression.
        let question = &query[HEADER..parsed.question_end];
        if template.len() < HEADER + question.len() + parsed.payload.map_or(0, |_| OPT_FIXED) {
            return false;
        }
        out.clear();
        out.extend_from_slice(template);
        out[0] = query[0];
        out[1] = query[1];
        out[2] |= query[2] & 0x01; // RD
        out[3] |= query[3] & 0x10; // CD
        out[HEADER..HEADER + question.len()].copy_from_slice(question);
        if let Some(payload) = parsed.payload {
            let at = out.len() - TEMPLATE_PAYLOAD_FROM_END;
            out[at..at + 2].copy_from_slice(&payload.to_be_bytes());
        }
        true
    }
}

struct Parsed {
    /// Lower-case wire name, then the type.
    key: [u8; MAX_KEY],
    key_len: usize,
    question_end: usize,
    /// With EDNS: the payload size the answer advertises, the client's raised to 512.
    payload: Option<u16>,
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
    // One question, no answers or authority records, at most one additional record (the OPT).
    if query[4..11] != [0, 1, 0, 0, 0, 0, 0] || query[11] > 1 {
        return None;
    }
    let with_opt = query[11] == 1;
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
    // Class IN only.
    if tail[2..4] != [0, 1] {
        return None;
    }
    let question_end = at + 4;
    let rest = query.get(question_end..)?;
    let payload = if with_opt {
        Some(parse_opt(rest)?)
    } else if rest.is_empty() {
        None
    } else {
        return None;
    };
    key[key_len..key_len + 2].copy_from_slice(&tail[0..2]);
    Some(Parsed {
        key,
        key_len: key_len + 2,
        question_end,
        payload,
    })
}

/// `record` is one OPT record that hickory reads into an `Edns` and answers like every EDNS(0)
/// query (module doc), and nothing follows it: the payload size of the answer's OPT.
fn parse_opt(record: &[u8]) -> Option<u16> {
    let (fixed, mut options) = record.split_at_checked(OPT_FIXED)?;
    // Root owner (hickory refuses any other with FORMERR), type OPT.
    if fixed[0] != 0 || u16::from_be_bytes([fixed[1], fixed[2]]) != OPT_TYPE {
        return None;
    }
    let payload = u16::from_be_bytes([fixed[3], fixed[4]]);
    // fixed[5], the query's extended rcode, and fixed[7..9], DO and Z, do not change the
    // answer; a version above 0 is answered BADVERS.
    if fixed[6] != 0 {
        return None;
    }
    // The RDATA ends the datagram: a shorter one leaves bytes hickory would ignore, a longer
    // one would be FORMERR.
    if usize::from(u16::from_be_bytes([fixed[9], fixed[10]])) != options.len() {
        return None;
    }
    // Every option whole, so hickory keeps them all and none is half read.
    while !options.is_empty() {
        let (head, rest) = options.split_at_checked(4)?;
        if u16::from_be_bytes([head[0], head[1]]) == CLIENT_SUBNET {
            return None;
        }
        options = rest.get(usize::from(u16::from_be_bytes([head[2], head[3]]))..)?;
    }
    Some(payload.max(PLAIN_UDP_MAX))
}

/// The responses of one table entry.
struct Templates {
    plain: Option<Vec<u8>>,
    edns: Option<Vec<u8>>,
}

/// The catalog's answers to canonical queries for `rrset`, without and with EDNS, or `None`
/// when the fast path should leave this name and type to the catalog.
fn templates(zone: &ZoneData, rrset: &RecordSet) -> Option<Templates> {
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
    let encode = |edns: Option<&Edns>, max: u16| {
        let response = MessageResponseBuilder::new(&queries, edns).build(
            metadata,
            answers.iter(),
            authorities.iter(),
            iter::empty(),
            additionals.iter(),
        );
        let mut bytes = Vec::with_capacity(usize::from(PLAIN_UDP_MAX));
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder).ok()?;
        (!info.truncation && bytes.len() <= usize::from(max)).then_some(bytes)
    };
    // The catalog's answer OPT for an EDNS(0) query (module doc), its payload size patched
    // per query.
    let mut edns = Edns::new();
    edns.set_max_payload(PLAIN_UDP_MAX).set_version(0);
    let plain = encode(None, PLAIN_UDP_MAX);
    // If hickory ever puts more in the OPT, this entry is left to the catalog.
    let edns = encode(Some(&edns), u16::MAX).filter(|bytes| bytes.ends_with(&TEMPLATE_OPT));
    (plain.is_some() || edns.is_some()).then_some(Templates { plain, edns })
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
    use crate::equality::{NO_OPTIONS, opt, with_additionals};

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

    fn payload(q: &[u8]) -> Option<u16> {
        parse(q)?.payload
    }

    #[test]
    fn parse_takes_one_whole_opt_record_and_nothing_else() {
        let plain = query("Nas.Lab.Test", 1);
        let cookie = [7u8; 8];
        let options: [(u16, &[u8]); 5] = [
            (10, &cookie),
            (3, &[]),
            (12, &[0; 5]),
            (65_001, b"x"),
            (11, &[]),
        ];
        let record = opt(1232, [0, 0, 0x80, 0], &options);
        let good = with_additionals(plain.clone(), 1, &record);
        let parsed = parse(&good).unwrap();
        assert_eq!(parsed.payload, Some(1232));
        assert_eq!(parsed.question_end, plain.len());
        assert_eq!(
            &parsed.key[..parsed.key_len],
            b"\x03nas\x03lab\x04test\x00\x00\x01"
        );
        // Sizes under 512 mean 512; extended rcode and Z bits do not matter.
        for (size, ttl, answer) in [
            (0, [0, 0, 0, 0], 512),
            (511, [0xff, 0, 0xff, 0xff], 512),
            (512, [1, 0, 0, 0], 512),
            (65_535, [0, 0, 0x7f, 0xff], 65_535),
        ] {
            let q = with_additionals(plain.clone(), 1, &opt(size, ttl, NO_OPTIONS));
            assert_eq!(payload(&q), Some(answer), "size {size}");
        }

        // The OPT cut short anywhere: in the fixed part, in an option header, in its data.
        for len in plain.len()..good.len() {
            assert!(parse(&good[..len]).is_none(), "cut at {len}");
        }
        // An RDATA length past the end of the datagram, or short of it.
        let at = plain.len() + 9;
        let rdlen = u16::from_be_bytes([good[at], good[at + 1]]);
        for wrong in [rdlen + 1, rdlen - 1, 0, u16::MAX] {
            let mut q = good.clone();
            q[at..at + 2].copy_from_slice(&wrong.to_be_bytes());
            assert!(parse(&q).is_none(), "rdlength {wrong}");
        }
        // An option whose length runs past the RDATA, one with half a header.
        let mut q = good.clone();
        let end = q.len();
        q[end - 2..].copy_from_slice(&[0, 1]);
        assert!(parse(&q).is_none());
        let q = with_additionals(plain.clone(), 1, &{
            let mut record = opt(1232, [0; 4], NO_OPTIONS);
            record[10] = 3;
            record.extend_from_slice(&[0, 10, 0]);
            record
        });
        assert!(parse(&q).is_none());
        // Bytes after the OPT.
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(parse(&trailing).is_none());
        // An owner other than the root.
        let mut named = vec![1, b'a'];
        named.extend_from_slice(&record);
        assert!(parse(&with_additionals(plain.clone(), 1, &named)).is_none());
        // Two OPTs, counted or not.
        let two = [record.clone(), record.clone()].concat();
        assert!(parse(&with_additionals(plain.clone(), 2, &two)).is_none());
        assert!(parse(&with_additionals(plain.clone(), 1, &two)).is_none());
        // The count says one record and there is none.
        assert!(parse(&with_additionals(plain.clone(), 1, &[])).is_none());
        // An OPT and no count for it.
        assert!(parse(&with_additionals(plain.clone(), 0, &record)).is_none());
        // Another record type in the additional section.
        let mut a = record.clone();
        a[2] = 1;
        assert!(parse(&with_additionals(plain.clone(), 1, &a)).is_none());
        // Version 1 is answered BADVERS; client subnet is parsed by hickory.
        let version1 = opt(1232, [0, 1, 0, 0], NO_OPTIONS);
        assert!(parse(&with_additionals(plain.clone(), 1, &version1)).is_none());
        let subnet = opt(1232, [0; 4], &[(8, &[0, 1, 24, 0, 10, 99, 0])]);
        assert!(parse(&with_additionals(plain.clone(), 1, &subnet)).is_none());
        // Answer or authority records next to the OPT.
        let mut answers = with_additionals(plain.clone(), 1, &record);
        answers[7] = 1;
        assert!(parse(&answers).is_none());
    }
}
