//! Kindling's TFTP service: our codec (`wire`), the sans-IO transfer engine (`proto`) and the
//! tokio shell (`server`). Files come from the boot tree (`kindling-files`): the shell asks it
//! what a name means and never opens paths itself.

mod error;
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
