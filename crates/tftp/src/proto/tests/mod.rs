//! Tests of the sans-IO transfer engine, named after the rule each one checks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests: a panic is the failure report"
)]

mod confirm;
mod harness;
mod negotiate;
mod props;
mod read;
mod write;
