//! Kindling's configuration: the YAML schema, validation with every problem reported at once,
//! human units, and the embedded default.
//!
//! The text is read into a small position-carrying YAML tree ([`saphyr_parser`] events), then
//! decoded by hand into the [`model`] types. The decoder records each problem and keeps
//! going, so one run names every unknown key, bad value and inconsistency with its line.

mod decode;
pub use decode::{CLIENT_KINDS, parse_uuid};
mod emit;
mod environment;
mod model;
pub mod units;
mod yaml;

use std::fmt;
use std::path::Path;

pub use environment::check_environment;
pub use model::*;

/// The configuration `kindling serve` runs with when given no `--config`: safe on any LAN.
pub const EMBEDDED_DEFAULT: &str = include_str!("default.yaml");

/// The origin used for diagnostics of [`EMBEDDED_DEFAULT`].
pub const EMBEDDED_ORIGIN: &str = "<embedded default>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Stops `serve` (and makes `check-config` exit non-zero).
    Error,
    /// Worth a look; the config is still used.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem, with where it is in the file when that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Dotted path such as `tftp.write.max_size` or `dhcp.subnets[0].range`; empty for the
    /// file as a whole (a YAML syntax error, an unreadable file).
    pub key: String,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.severity)?;
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(f, "line {line}: ")?,
            _ => {}
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Why a config was refused: every error, plus the warnings found on the way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(origin, errors, warnings))]
pub struct ConfigErrors {
    /// The file path, or `<embedded default>`.
    pub origin: String,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

/// One line per diagnostic, each prefixed by the origin and ending in a newline.
fn render(origin: &str, errors: &[Diagnostic], warnings: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in errors.iter().chain(warnings) {
        out.push_str(&format!("{origin}: {d}\n"));
    }
    out
}

/// A config that validated, and what is worth a look in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.line.unwrap_or(usize::MAX), d.column.unwrap_or(0)));
}

/// Errors and warnings, each sorted by position.
fn split(diagnostics: Vec<Diagnostic>) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let (mut errors, mut warnings): (Vec<_>, Vec<_>) = diagnostics
        .into_iter()
        .partition(|d| d.severity == Severity::Error);
    sort(&mut errors);
    sort(&mut warnings);
    (errors, warnings)
}

/// `Err` when any diagnostic is an error.
fn finish(
    origin: &str,
    config: Config,
    diagnostics: Vec<Diagnostic>,
) -> Result<Loaded, ConfigErrors> {
    let (errors, warnings) = split(diagnostics);
    if errors.is_empty() {
        Ok(Loaded { config, warnings })
    } else {
        Err(ConfigErrors {
            origin: origin.to_string(),
            errors,
            warnings,
        })
    }
}

/// Parses and validates without looking at the filesystem. The `Err` holds every error.
fn parse_inner(text: &str, origin: &str) -> Result<(Config, decode::Ctx), ConfigErrors> {
    let (root, problems) = yaml::parse(text);
    let mut ctx = decode::Ctx::default();
    let fatal = root.is_none() && !problems.is_empty();
    for p in problems {
        ctx.push(Severity::Error, "", Some((p.line, p.column)), p.message);
    }
    if !fatal {
        let config = decode::decode(root.as_ref(), &mut ctx);
        if !ctx
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
        {
            // Only on a config without errors: elsewhere it would judge fallback values.
            decode::cross_check(&mut ctx, &config);
            return Ok((config, ctx));
        }
    }
    let (errors, warnings) = split(ctx.diagnostics);
    Err(ConfigErrors {
        origin: origin.to_string(),
        errors,
        warnings,
    })
}

/// Parses and validates a config text. Pure: no filesystem access (see [`check_environment`]).
pub fn parse(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
    let (config, ctx) = parse_inner(text, origin)?;
    finish(origin, config, ctx.diagnostics)
}

/// Parses, validates, then adds the filesystem checks, placing them at the line of the key
/// they are about.
fn parse_and_check(text: &str, origin: &str) -> Result<Loaded, ConfigErrors> {
    let (config, mut ctx) = parse_inner(text, origin)?;
    for mut d in check_environment(&config) {
        if d.line.is_none()
            && let Some((line, column)) = ctx.position_of(&d.key)
        {
            d.line = Some(line);
            d.column = Some(column);
        }
        ctx.diagnostics.push(d);
    }
    finish(origin, config, ctx.diagnostics)
}

/// Reads, parses and validates a config file, then checks it against the filesystem.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let origin = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_and_check(&text, &origin),
        Err(e) => Err(ConfigErrors {
            origin,
            errors: vec![Diagnostic {
                severity: Severity::Error,
                key: String::new(),
                line: None,
                column: None,
                message: format!("cannot read the config file: {e}"),
            }],
            warnings: Vec::new(),
        }),
    }
}

/// The embedded default, validated and checked against the filesystem.
pub fn embedded_default() -> Result<Loaded, ConfigErrors> {
    parse_and_check(EMBEDDED_DEFAULT, EMBEDDED_ORIGIN)
}

/// The effective config as YAML with every default filled in; [`parse`] reads it back into
/// an equal [`Config`].
pub fn to_yaml(config: &Config) -> String {
    emit::to_yaml(config)
}
