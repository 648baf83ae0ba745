//! One request to one response.
//!
//! Order (RFC 9110 13.2.2): the method (GET or HEAD, else 405), the name (percent-decoded once,
//! then the boot tree: 403 for a name the rules refuse or a file that is not served, 404 for a
//! missing one), the preconditions (If-Match, If-Unmodified-Since: 412; If-None-Match,
//! If-Modified-Since: 304), then Range: one satisfiable byte range is a 206 with
//! Content-Range, a Range with none satisfiable a 416; several ranges are ignored and the
//! whole file sent (allowed by RFC 9110 14.2; firmware asks for one). If-Range is honoured.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Bound;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use headers::{
    AcceptRanges, ContentLength, ContentRange, ETag, HeaderMapExt, IfMatch, IfModifiedSince,
    IfNoneMatch, IfRange, IfUnmodifiedSince, LastModified, Range,
};
use kindling_files::{AccessError, BootFile, BootTree, Contents, Inbox, Lookup, Origin};
use tracing::info;

/// Bytes read from a file per body chunk.
const CHUNK: u64 = 256 * 1024;

/// The peer of a connection, put into each request's extensions by the server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// Every path, GET and HEAD, answered from `tree`.
pub fn router(tree: BootTree) -> Router {
    Router::new().fallback(boot_file).with_state(tree)
}

async fn boot_file(State(tree): State<BootTree>, request: Request) -> Response {
    let started = Instant::now();
    let peer = request.extensions().get::<Peer>().map(|peer| peer.0);
    let log = RequestLog {
        peer,
        method: request.method().clone(),
        path: printable(request.uri().path()),
        started,
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        log.done(response.status(), 0);
        return response;
    }
    let name: Vec<u8> = percent_encoding::percent_decode(request.uri().path().as_bytes()).collect();
    let client = peer.map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |peer| peer.ip());
    let resolved = tokio::task::spawn_blocking(move || {
        tree.resolve(
            &Lookup {
                name: &name,
                client,
                // The write inbox holds switch configs; HTTP never serves it.
                inbox: Inbox::Hidden,
            },
            Instant::now(),
        )
    })
    .await;
    let file = match resolved {
        Ok(Ok(file)) => file,
        Ok(Err(refusal)) => {
            let response = status(refusal_status(&refusal));
            log.refused(response.status(), &refusal);
            return response;
        }
        Err(join_error) => {
            let response = status(StatusCode::INTERNAL_SERVER_ERROR);
            log.refused(response.status(), &join_error);
            return response;
        }
    };
    let head = request.method() == Method::HEAD;
    answer(&file, request.headers(), head, log)
}

/// The status for a refusal of the boot tree; never a reason or a server path.
fn refusal_status(refusal: &AccessError) -> StatusCode {
    match refusal {
        AccessError::NotFound => StatusCode::NOT_FOUND,
        AccessError::Forbidden(_) => StatusCode::FORBIDDEN,
        AccessError::Exists | AccessError::NoSpace | AccessError::Io(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn answer(
    file: &BootFile,
    request: &axum::http::HeaderMap,
    head: bool,
    log: RequestLog,
) -> Response {
    let len = file.len();
    let (tag, modified) = validators(file);
    let etag: Option<ETag> = format!("\"{tag}\"").parse().ok();
    let last_modified = modified.map(LastModified::from);

    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    if let Some(etag) = &etag {
        headers.typed_insert(etag.clone());
    }
    if let Some(last_modified) = last_modified {
        headers.typed_insert(last_modified);
    }
    headers.typed_insert(AcceptRanges::bytes());
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&file.relative)),
    );

    if let Some(code) = precondition_failure(request, etag.as_ref(), modified) {
        *response.status_mut() = code;
        if code == StatusCode::PRECONDITION_FAILED {
            response.headers_mut().remove(header::CONTENT_TYPE);
        }
        log.done(code, 0);
        return response;
    }

    let mut start = 0;
    let mut end = len;
    let range = request.typed_get::<Range>().filter(|_| {
        // A Range under an If-Range that no longer matches is ignored: the whole file.
        request
            .typed_get::<IfRange>()
            .is_none_or(|if_range| !if_range.is_modified(etag.as_ref(), last_modified.as_ref()))
    });
    if let Some(range) = range {
        // headers keeps a range that starts past the end; `bounds` drops it.
        let ranges: Vec<(u64, u64)> = range
            .satisfiable_ranges(len)
            .filter_map(|(from, to)| bounds(from, to, len))
            .collect();
        match ranges.as_slice() {
            [] => {
                *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                response
                    .headers_mut()
                    .typed_insert(ContentRange::unsatisfied_bytes(len));
                response.headers_mut().remove(header::CONTENT_TYPE);
                response.headers_mut().typed_insert(ContentLength(0));
                log.done(StatusCode::RANGE_NOT_SATISFIABLE, 0);
                return response;
            }
            [(first, past_last)] => {
                if let Ok(content_range) = ContentRange::bytes(*first..*past_last, len) {
                    start = *first;
                    end = *past_last;
                    *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                    response.headers_mut().typed_insert(content_range);
                }
            }
            // Several ranges: the whole file (a multipart answer is not worth it for boot).
            _ => {}
        }
    }
    response
        .headers_mut()
        .typed_insert(ContentLength(end - start));
    let code = response.status();
    if head {
        log.done(code, 0);
        return response;
    }
    *response.body_mut() = body(file.contents.clone(), start, end, log, code);
    response
}

/// The strong validator and modification time of a file: from what the file is on disk, or
/// from the bytes of a generated one (which has no modification time).
fn validators(file: &BootFile) -> (String, Option<SystemTime>) {
    match file.origin {
        Origin::Disk(identity) => (identity.version_tag(), Some(identity.modified())),
        Origin::Generated => {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::hash::DefaultHasher::new();
            let mut buf = vec![0u8; usize::try_from(file.len()).unwrap_or(0)];
            let n = file.contents.read_at(0, &mut buf).unwrap_or(0);
            buf[..n].hash(&mut hasher);
            (format!("g-{:x}-{:x}", n, hasher.finish()), None)
        }
    }
}

/// RFC 9110 13.2.2, steps 1 to 4.
fn precondition_failure(
    request: &axum::http::HeaderMap,
    etag: Option<&ETag>,
    modified: Option<SystemTime>,
) -> Option<StatusCode> {
    if let Some(if_match) = request.typed_get::<IfMatch>() {
        if !etag.is_some_and(|etag| if_match.precondition_passes(etag)) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let (Some(if_unmodified), Some(modified)) =
        (request.typed_get::<IfUnmodifiedSince>(), modified)
        && !if_unmodified.precondition_passes(modified)
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    if let Some(if_none_match) = request.typed_get::<IfNoneMatch>() {
        if etag.is_some_and(|etag| !if_none_match.precondition_passes(etag)) {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let (Some(if_modified), Some(modified)) =
        (request.typed_get::<IfModifiedSince>(), modified)
        && !if_modified.is_modified(modified)
    {
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
}

/// `[first, past_last)` of a satisfiable range.
fn bounds(from: Bound<u64>, to: Bound<u64>, len: u64) -> Option<(u64, u64)> {
    let first = match from {
        Bound::Included(n) => n,
        Bound::Excluded(n) => n.checked_add(1)?,
        Bound::Unbounded => 0,
    };
    let past_last = match to {
        Bound::Included(n) => n.checked_add(1)?.min(len),
        Bound::Excluded(n) => n.min(len),
        Bound::Unbounded => len,
    };
    (first < past_last).then_some((first, past_last))
}

/// What UEFI HTTP boot looks for (an `.efi` image, or an ISO or disk image it boots as a RAM
/// disk); everything else is bytes.
fn content_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    match extension.as_deref() {
        Some("efi") => "application/efi",
        Some("iso") => "application/vnd.efi-iso",
        Some("img") => "application/vnd.efi-img",
        Some("ipxe") | Some("cfg") | Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn status(code: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = code;
    response.headers_mut().typed_insert(ContentLength(0));
    response
}

/// The body from `start` to `end`: slices of the shared in-memory copy without a copy, or
/// chunks read from the file on the blocking pool; never the whole file at once. The log line
/// is written when the body is done (or the client went away), with the bytes that left.
fn body(contents: Contents, start: u64, end: u64, log: RequestLog, code: StatusCode) -> Body {
    let state = BodyState {
        contents,
        offset: start,
        end,
        sent: 0,
        log: Some(log),
        code,
    };
    Body::from_stream(futures_util::stream::unfold(state, next_chunk))
}

struct BodyState {
    contents: Contents,
    offset: u64,
    end: u64,
    sent: u64,
    log: Option<RequestLog>,
    code: StatusCode,
}

impl Drop for BodyState {
    fn drop(&mut self) {
        if let Some(log) = self.log.take() {
            log.done(self.code, self.sent);
        }
    }
}

async fn next_chunk(mut state: BodyState) -> Option<(std::io::Result<Bytes>, BodyState)> {
    if state.offset >= state.end {
        return None;
    }
    let len = (state.end - state.offset).min(CHUNK);
    let offset = state.offset;
    let chunk = match lent(&state.contents, offset, len) {
        Some(bytes) => Ok(bytes),
        None => {
            let contents = state.contents.clone();
            tokio::task::spawn_blocking(move || read_chunk(&contents, offset, len))
                .await
                .unwrap_or_else(|join_error| Err(std::io::Error::other(join_error)))
        }
    };
    match chunk {
        Ok(bytes) if !bytes.is_empty() => {
            state.offset += bytes.len() as u64;
            state.sent += bytes.len() as u64;
            Some((Ok(bytes), state))
        }
        // The file shrank under us: end the body short, the client sees a truncated reply.
        Ok(_) => None,
        Err(error) => {
            state.offset = state.end;
            Some((Err(error), state))
        }
    }
}

/// A slice of the in-memory copy, shared rather than copied.
fn lent(contents: &Contents, offset: u64, len: u64) -> Option<Bytes> {
    let len = usize::try_from(len).ok()?;
    contents.lend(offset, len)?;
    Some(Bytes::from_owner(Lent {
        contents: contents.clone(),
        offset,
        len,
    }))
}

struct Lent {
    contents: Contents,
    offset: u64,
    len: usize,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // In memory when the slice was made, and an in-memory copy never goes away while a
        // clone of it is held.
        self.contents
            .lend(self.offset, self.len)
            .unwrap_or_default()
    }
}

fn read_chunk(contents: &Contents, offset: u64, len: u64) -> std::io::Result<Bytes> {
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let n = contents.read_at(offset, &mut buf)?;
    buf.truncate(n);
    Ok(Bytes::from(buf))
}

/// A client-supplied path made safe for a log line.
fn printable(path: &str) -> String {
    let cut = path.char_indices().nth(256).map_or(path.len(), |(i, _)| i);
    path[..cut].escape_debug().to_string()
}

/// What the one log line of a request needs.
struct RequestLog {
    peer: Option<SocketAddr>,
    method: Method,
    path: String,
    started: Instant,
}

impl RequestLog {
    fn done(self, code: StatusCode, bytes: u64) {
        let peer = self
            .peer
            .map_or_else(|| "-".to_string(), |peer| peer.to_string());
        info!(
            peer = %peer, method = %self.method, path = %self.path, status = code.as_u16(), bytes,
            duration_ms = self.started.elapsed().as_millis() as u64,
            "http request"
        );
    }

    fn refused(self, code: StatusCode, reason: &dyn std::fmt::Display) {
        let peer = self
            .peer
            .map_or_else(|| "-".to_string(), |peer| peer.to_string());
        info!(
            peer = %peer, method = %self.method, path = %self.path, status = code.as_u16(), bytes = 0u64,
            duration_ms = self.started.elapsed().as_millis() as u64, reason = %reason,
            "http request"
        );
    }
}
