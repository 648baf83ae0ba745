//! Kindling's TFTP service: our codec (`wire`), the sans-IO transfer engine (`proto`), root
//! confinement and uploads (`fs`), and the tokio shell (`server`).

mod cache;
mod error;
pub mod fs;
#[doc(hidden)]
pub mod fuzzing;
pub mod netascii;
pub mod proto;
mod segments;
mod server;
mod unconfirmed;
pub mod wire;

pub use error::TftpError;
pub use server::{TftpHandle, TftpService};
