//! Requests through the router without a socket: methods, names, validators, ranges.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use kindling_files::{AccessError, BootTree, Client, Generator, TreeConfig};
use tower::ServiceExt;

struct Tree {
    _dir: tempfile::TempDir,
    tree: BootTree,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("ipxe.efi"), b"MZ efi image").unwrap();
    std::fs::write(root.join("disk.img"), b"img").unwrap();
    std::fs::write(root.join("live.iso"), b"iso").unwrap();
    std::fs::write(
        root.join("big.bin"),
        (0..600_000u32).map(|i| i as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    std::fs::create_dir(root.join("boot")).unwrap();
    std::fs::create_dir(root.join("uploads")).unwrap();
    std::fs::write(root.join("uploads/sw1.cfg"), b"enable secret").unwrap();
    let tree = BootTree::open(&TreeConfig {
        root: root.to_path_buf(),
        cache_size: 1 << 20,
        inbox: "uploads".into(),
    })
    .unwrap();
    Tree { _dir: dir, tree }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).map(|value| value.to_str().unwrap())
    }
}

async fn send(tree: &Tree, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = kindling_http::router(tree.tree.clone())
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

fn big() -> Vec<u8> {
    (0..600_000u32).map(|i| i as u8).collect()
}

#[tokio::test]
async fn get_and_head_serve_the_file_with_its_type_and_validators() {
    let tree = tree();
    let get = send(&tree, "GET", "/ipxe.efi", &[]).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.body, b"MZ efi image");
    assert_eq!(get.header(header::CONTENT_TYPE), Some("application/efi"));
    assert_eq!(get.header(header::CONTENT_LENGTH), Some("12"));
    assert_eq!(get.header(header::ACCEPT_RANGES), Some("bytes"));
    let etag = get.header(header::ETAG).unwrap();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "strong: {etag}"
    );
    assert!(get.header(header::LAST_MODIFIED).is_some());

    let head = send(&tree, "HEAD", "/ipxe.efi", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    assert_eq!(head.header(header::CONTENT_LENGTH), Some("12"));
    assert_eq!(head.header(header::ETAG), Some(etag));

    for (path, kind) in [
        ("/disk.img", "application/vnd.efi-img"),
        ("/live.iso", "application/vnd.efi-iso"),
        ("/big.bin", "application/octet-stream"),
    ] {
        assert_eq!(
            send(&tree, "GET", path, &[])
                .await
                .header(header::CONTENT_TYPE),
            Some(kind)
        );
    }
    let whole = send(&tree, "GET", "/big.bin", &[]).await;
    assert_eq!(
        whole.body,
        big(),
        "a file larger than one body chunk arrives whole"
    );
}

#[tokio::test]
async fn single_ranges_are_206_and_unsatisfiable_ones_416() {
    let tree = tree();
    let part = send(&tree, "GET", "/big.bin", &[("range", "bytes=100-199")]).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.body, big()[100..200]);
    assert_eq!(
        part.header(header::CONTENT_RANGE),
        Some("bytes 100-199/600000")
    );
    assert_eq!(part.header(header::CONTENT_LENGTH), Some("100"));

    let tail = send(&tree, "GET", "/big.bin", &[("range", "bytes=599990-")]).await;
    assert_eq!(tail.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.body, big()[599_990..]);
    let suffix = send(&tree, "GET", "/big.bin", &[("range", "bytes=-10")]).await;
    assert_eq!(suffix.body, big()[599_990..]);
    let past = send(&tree, "GET", "/big.bin", &[("range", "bytes=200-9999999")]).await;
    assert_eq!(
        past.header(header::CONTENT_RANGE),
        Some("bytes 200-599999/600000")
    );
    assert_eq!(past.body, big()[200..]);

    // Invalid byte ranges are answered like unsatisfiable ones (RFC 9110 15.5.17).
    for unsatisfiable in [
        "bytes=600000-",
        "bytes=700000-700010",
        "bytes=-0",
        "bytes=abc",
    ] {
        let reply = send(&tree, "GET", "/big.bin", &[("range", unsatisfiable)]).await;
        assert_eq!(
            reply.status,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "{unsatisfiable}"
        );
        assert_eq!(reply.header(header::CONTENT_RANGE), Some("bytes */600000"));
        assert!(reply.body.is_empty());
    }
    // Other units are ignored, several ranges get the whole file.
    for ignored in ["lines=1-2", "bytes=0-1,5-6"] {
        let reply = send(&tree, "GET", "/big.bin", &[("range", ignored)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{ignored}");
        assert_eq!(reply.body.len(), 600_000);
    }
}

#[tokio::test]
async fn preconditions_follow_the_strong_etag_and_the_modification_time() {
    let tree = tree();
    let first = send(&tree, "GET", "/big.bin", &[]).await;
    let etag = first.header(header::ETAG).unwrap().to_string();
    let modified = first.header(header::LAST_MODIFIED).unwrap().to_string();

    let cached = send(&tree, "GET", "/big.bin", &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.body.is_empty());
    let changed = send(&tree, "GET", "/big.bin", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(changed.status, StatusCode::OK);
    let since = send(
        &tree,
        "GET",
        "/big.bin",
        &[("if-modified-since", &modified)],
    )
    .await;
    assert_eq!(since.status, StatusCode::NOT_MODIFIED);
    let old = send(
        &tree,
        "GET",
        "/big.bin",
        &[("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    )
    .await;
    assert_eq!(old.status, StatusCode::OK);

    // EDK2 resumes with Range and If-Match.
    let resumed = send(
        &tree,
        "GET",
        "/big.bin",
        &[("range", "bytes=500000-"), ("if-match", &etag)],
    )
    .await;
    assert_eq!(resumed.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(resumed.body, big()[500_000..]);
    let stale = send(
        &tree,
        "GET",
        "/big.bin",
        &[("range", "bytes=500000-"), ("if-match", "\"other\"")],
    )
    .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert!(stale.body.is_empty());
    let weak = format!("W/{etag}");
    let weak = send(&tree, "GET", "/big.bin", &[("if-match", &weak)]).await;
    assert_eq!(
        weak.status,
        StatusCode::PRECONDITION_FAILED,
        "If-Match compares strongly"
    );
    let unmodified = send(
        &tree,
        "GET",
        "/big.bin",
        &[("if-unmodified-since", "Mon, 01 Jan 2001 00:00:00 GMT")],
    )
    .await;
    assert_eq!(unmodified.status, StatusCode::PRECONDITION_FAILED);

    // If-Range: the range only while the validator still matches.
    let same = send(
        &tree,
        "GET",
        "/big.bin",
        &[("range", "bytes=0-9"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(same.status, StatusCode::PARTIAL_CONTENT);
    let other = send(
        &tree,
        "GET",
        "/big.bin",
        &[("range", "bytes=0-9"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body.len(), 600_000);
}

#[tokio::test]
async fn only_files_of_the_tree_are_served_and_never_the_inbox() {
    let tree = tree();
    for (path, expected) in [
        ("/missing", StatusCode::NOT_FOUND),
        ("/", StatusCode::FORBIDDEN),
        ("/boot", StatusCode::FORBIDDEN),
        ("/boot/", StatusCode::FORBIDDEN),
        ("/uploads/sw1.cfg", StatusCode::FORBIDDEN),
        ("/uploads%2fsw1.cfg", StatusCode::FORBIDDEN),
        ("/../ipxe.efi", StatusCode::FORBIDDEN),
        ("/%2e%2e/ipxe.efi", StatusCode::FORBIDDEN),
        ("/%252e%252e/ipxe.efi", StatusCode::NOT_FOUND),
        ("/..%5cipxe.efi", StatusCode::FORBIDDEN),
        ("/ipxe.efi%00", StatusCode::FORBIDDEN),
        ("/%ff", StatusCode::FORBIDDEN),
    ] {
        let reply = send(&tree, "GET", path, &[]).await;
        assert_eq!(reply.status, expected, "{path}");
        assert!(reply.body.is_empty(), "{path}");
        assert!(
            reply.header(header::LOCATION).is_none(),
            "no redirects: {path}"
        );
    }
    let encoded = send(&tree, "GET", "/ipxe%2eefi", &[]).await;
    assert_eq!(
        encoded.body, b"MZ efi image",
        "a percent-encoded name is decoded once"
    );
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let reply = send(&tree, method, "/ipxe.efi", &[]).await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.header(header::ALLOW), Some("GET, HEAD"));
    }
}

#[derive(Debug)]
struct Script;

impl Generator for Script {
    fn generate(&self, name: &str, _client: &Client) -> Option<Result<Vec<u8>, AccessError>> {
        (name == "boot.ipxe").then(|| Ok(b"#!ipxe\necho generated\n".to_vec()))
    }
}

#[tokio::test]
async fn generated_files_are_served_with_a_content_etag() {
    let tree = tree();
    tree.tree.set_generator(Some(Arc::new(Script)));
    let reply = send(&tree, "GET", "/boot.ipxe", &[]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, b"#!ipxe\necho generated\n");
    let etag = reply.header(header::ETAG).unwrap().to_string();
    let again = send(&tree, "GET", "/boot.ipxe", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}
