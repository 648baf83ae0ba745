//! Command-line interface: argument parsing and the small commands that do not serve.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kindling_config::{ConfigErrors, Loaded, Severity};

#[derive(Debug, Parser)]
#[command(
    name = "kindling",
    version,
    about = "Network boot in one daemon: DHCP, DNS and TFTP"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve with the given config, or with the embedded default (TFTP read-only from
    /// ./tftpboot; DHCP in proxy mode; DNS off).
    Serve {
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// Log format; overrides `log.format` in the config.
        #[arg(long, value_enum)]
        log_format: Option<LogFormatArg>,
    },
    /// Validate a config file without serving. Exits non-zero only for problems that would
    /// stop `serve`; warnings are printed but do not fail the check.
    CheckConfig {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the effective config, every default filled in.
    PrintConfig {
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// List the DHCP leases in `state_dir` (reads the lease journal without locking it, so it
    /// works while the daemon runs).
    Leases {
        #[arg(long, short = 'c', value_name = "FILE")]
        config: Option<PathBuf>,
        /// One JSON object per lease per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Given a MAC and a client kind, print the DHCP reply Kindling would send and why.
    Explain(crate::explain::Args),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormatArg {
    Text,
    Json,
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config, log_format } => {
            let (loaded, origin) = load(config.as_deref())?;
            crate::serve::run(loaded, origin, config, log_format)
        }
        Command::CheckConfig { file } => Ok(check_config(&file)),
        Command::PrintConfig { config } => {
            let loaded = parse_only(config.as_deref())?;
            for warning in &loaded.warnings {
                eprintln!("{warning}");
            }
            print!("{}", kindling_config::to_yaml(&loaded.config));
            Ok(ExitCode::SUCCESS)
        }
        Command::Leases { config, json } => crate::leases::run(config.as_deref(), json),
        Command::Explain(args) => crate::explain::run(&args),
    }
}

/// Loads the config file, or the embedded default when none is given.
pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<(Loaded, String)> {
    let (result, origin) = match path {
        Some(path) => (kindling_config::load(path), path.display().to_string()),
        None => (
            kindling_config::embedded_default(),
            "<embedded default>".to_string(),
        ),
    };
    let loaded = result.map_err(|errors| anyhow::anyhow!("{}", errors_text(&errors)))?;
    Ok((loaded, origin))
}

/// Parses and validates the config without looking at the filesystem, so that the effective
/// config can be printed on a machine where its paths do not exist yet.
pub(crate) fn parse_only(path: Option<&Path>) -> anyhow::Result<Loaded> {
    let result = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| anyhow::anyhow!("reading {}: {error}", path.display()))?;
            kindling_config::parse(&text, &path.display().to_string())
        }
        None => kindling_config::parse(kindling_config::EMBEDDED_DEFAULT, "<embedded default>"),
    };
    result.map_err(|errors| anyhow::anyhow!("{}", errors_text(&errors)))
}

fn errors_text(errors: &ConfigErrors) -> String {
    format!("the config does not validate:\n{errors}")
}

/// The profiles' template errors: each template compiled, then rendered with sample facts.
fn profile_errors(config: &kindling_config::Config) -> Vec<kindling_files::profiles::ProfileError> {
    kindling_files::profiles::check(&config.profiles)
}

fn check_config(file: &Path) -> ExitCode {
    match kindling_config::load(file) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                println!("{warning}");
            }
            let template_errors = profile_errors(&loaded.config);
            if !template_errors.is_empty() {
                for error in &template_errors {
                    println!("{}: error: {error}", file.display());
                }
                let count = template_errors.len();
                println!("{}: {count} error{}", file.display(), plural(count));
                return ExitCode::from(2);
            }
            let warnings = loaded.warnings.len();
            println!(
                "{}: ok ({warnings} warning{})",
                file.display(),
                plural(warnings)
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            print!("{errors}");
            let count = errors
                .errors
                .iter()
                .filter(|d| d.severity == Severity::Error)
                .count();
            println!("{}: {count} error{}", file.display(), plural(count));
            ExitCode::from(2)
        }
    }
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
