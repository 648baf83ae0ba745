//! `kindling`: one daemon and one YAML file for network boot.
//!
//! `kindling serve [--config FILE]`, `kindling check-config FILE`,
//! `kindling print-config [--config FILE]`, `kindling leases [--config FILE] [--json]`,
//! `kindling explain --mac MAC [...]`, `kindling --version`.

mod cli;
mod explain;
mod installed;
mod lease_names;
mod leases;
mod profile_scripts;
mod serve;
mod services;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("kindling: error: {error:#}");
            ExitCode::from(1)
        }
    }
}
