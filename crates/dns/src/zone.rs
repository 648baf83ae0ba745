//! Our zones as hickory zone handlers.
//!
//! Each zone is an `InMemoryZoneHandler` loaded with the RRsets from `names`, wrapped in
//! [`LocalZone`], which answers one question itself: "this name has no such record; does the
//! name exist?". hickory's in-memory handler answers it by scanning every record of the zone,
//! so NXDOMAIN and NODATA (the AAAA query every dual-stack resolver sends for an IPv4-only
//! lease) cost O(zone size): about 300 µs each with 5000 leases. The wrapper keeps the set of
//! names that exist (owners and the names between them and the origin) and gives the same
//! answer from it; the catalog builds the response as before. It steps aside whenever
//! hickory would do more than look up one RRset: ANY, AXFR/IXFR, a CNAME or ANAME at the name, a
//! wildcard that might match, a delegation in the zone. `equality` tests prove the responses
//! equal with and without the wrapper.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, RecordSet, RecordType, RrKey, TSigResponseContext};
use hickory_server::server::{Request, RequestInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{
    AuthLookup, AxfrPolicy, LookupControlFlow, LookupError, LookupOptions, ZoneHandler,
    ZoneTransfer, ZoneType,
};

use crate::names::ZoneData;

/// An in-memory zone with a fast negative answer.
pub(crate) struct LocalZone {
    inner: InMemoryZoneHandler,
    records: BTreeMap<RrKey, Arc<RecordSet>>,
    /// Every owner name and every name between an owner and the origin.
    existing: HashSet<LowerName>,
    /// Parents of wildcard owners (`*.dev.lab.test.` -> `dev.lab.test.`).
    wildcard_parents: Vec<LowerName>,
    /// NS records below the origin (none today; if ever, hickory handles the referral).
    delegations: bool,
}

impl LocalZone {
    pub(crate) fn new(zone: &ZoneData) -> LocalZone {
        let mut inner =
            InMemoryZoneHandler::empty(zone.origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
        // The same RRsets, shared: what `InMemoryZoneHandler::new` would build record by
        // record, without copying them.
        inner.records_get_mut().clone_from(&zone.records);
        let origin = LowerName::new(&zone.origin);
        let mut existing = HashSet::new();
        let mut wildcard_parents = Vec::new();
        let mut delegations = false;
        for key in zone.records.keys() {
            let owner: Name = key.name().into();
            if owner.is_wildcard() {
                wildcard_parents.push(LowerName::new(&owner.base_name()));
            }
            if key.record_type == RecordType::NS && *key.name() != origin {
                delegations = true;
            }
            let mut name = key.name().clone();
            while existing.insert(name.clone()) && name != origin && !name.is_root() {
                name = name.base_name();
            }
        }
        LocalZone {
            inner,
            records: zone.records.clone(),
            existing,
            wildcard_parents,
            delegations,
        }
    }

    /// The negative answer hickory's in-memory handler would give, when it is certain there
    /// is no record to find; `None` when the inner handler must look.
    fn negative(&self, name: &LowerName, query_type: RecordType) -> Option<LookupError> {
        if self.delegations
            || matches!(
                query_type,
                RecordType::ANY | RecordType::AXFR | RecordType::IXFR
            )
        {
            return None;
        }
        let has = |record_type| {
            self.records
                .contains_key(&RrKey::new(name.clone(), record_type))
        };
        if has(query_type) || has(RecordType::CNAME) || has(RecordType::ANAME) {
            return None;
        }
        if self
            .wildcard_parents
            .iter()
            .any(|parent| parent.zone_of(name))
        {
            return None;
        }
        Some(if self.existing.contains(name) {
            LookupError::NameExists
        } else if self.inner.origin().zone_of(name) {
            LookupError::from(ResponseCode::NXDomain)
        } else {
            LookupError::from(ResponseCode::Refused)
        })
    }
}

#[async_trait::async_trait]
impl ZoneHandler for LocalZone {
    fn zone_type(&self) -> ZoneType {
        self.inner.zone_type()
    }

    fn axfr_policy(&self) -> AxfrPolicy {
        self.inner.axfr_policy()
    }

    fn can_validate_dnssec(&self) -> bool {
        self.inner.can_validate_dnssec()
    }

    async fn update(
        &self,
        update: &Request,
        now: u64,
    ) -> (Result<bool, ResponseCode>, Option<TSigResponseContext>) {
        self.inner.update(update, now).await
    }

    fn origin(&self) -> &LowerName {
        self.inner.origin()
    }

    async fn lookup(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        match self.negative(name, rtype) {
            Some(error) => LookupControlFlow::Continue(Err(error)),
            None => {
                self.inner
                    .lookup(name, rtype, request_info, lookup_options)
                    .await
            }
        }
    }

    async fn consult(
        &self,
        name: &LowerName,
        rtype: RecordType,
        request_info: Option<&RequestInfo<'_>>,
        lookup_options: LookupOptions,
        last_result: LookupControlFlow<AuthLookup>,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        self.inner
            .consult(name, rtype, request_info, lookup_options, last_result)
            .await
    }

    async fn search(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
    ) -> (LookupControlFlow<AuthLookup>, Option<TSigResponseContext>) {
        // As InMemoryZoneHandler::search, with our lookup.
        let request_info = match request.request_info() {
            Ok(info) => info,
            Err(error) => return (LookupControlFlow::Break(Err(error)), None),
        };
        let name = request_info.query.name();
        let query_type = request_info.query.query_type();
        if query_type == RecordType::AXFR {
            return self.inner.search(request, lookup_options).await;
        }
        (
            self.lookup(name, query_type, Some(&request_info), lookup_options)
                .await,
            None,
        )
    }

    async fn nsec_records(
        &self,
        name: &LowerName,
        lookup_options: LookupOptions,
    ) -> LookupControlFlow<AuthLookup> {
        self.inner.nsec_records(name, lookup_options).await
    }

    async fn zone_transfer(
        &self,
        request: &Request,
        lookup_options: LookupOptions,
        now: u64,
    ) -> Option<(
        Result<ZoneTransfer, LookupError>,
        Option<TSigResponseContext>,
    )> {
        self.inner.zone_transfer(request, lookup_options, now).await
    }
}
