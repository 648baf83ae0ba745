//! Kindling's HTTP service: the boot tree over HTTP, read-only.
//!
//! Names mean what they mean over TFTP: the request path is percent-decoded once and handed to
//! the boot tree's resolver (`kindling_files::BootTree::resolve`), which applies the same name
//! rules, root confinement and inbox rule (the write inbox is never served over HTTP). Nothing
//! here opens a path. There are no directory listings and no redirects.
//!
//! - `answer.rs`: one request to one response (method, name, preconditions, range, body).
//!   Validators and ranges are parsed with the `headers` crate.
//! - `server.rs`: listening sockets, connection limits and timeouts (hyper's HTTP/1 server),
//!   shutdown.

mod answer;
mod error;
mod server;
mod stall;

pub use answer::router;
pub use error::HttpError;
pub use server::{HttpService, MAX_HEADER_BYTES};
