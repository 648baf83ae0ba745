//! Checks of a validated config against the filesystem (`check-config`, `serve`, SIGHUP).

use std::io::ErrorKind;

use crate::decode::{boot_entries, is_url};
use crate::model::{BootConfig, Config};
use crate::{Diagnostic, Severity};

fn diagnostic(severity: Severity, key: &str, message: String) -> Diagnostic {
    Diagnostic {
        severity,
        key: key.to_string(),
        line: None,
        column: None,
        message,
    }
}

/// Filesystem checks: what would stop `serve` is an error (the TFTP root missing or not a
/// directory), what is worth a look is a warning (a boot file that is not there yet, an
/// upload directory the server will have to create). Diagnostics carry no line; [`crate::load`]
/// adds the line of the key they name.
pub fn check_environment(config: &Config) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Some(dhcp_state) = config.dhcp.as_ref().map(|_| &config.state_dir)
        && let Ok(meta) = std::fs::metadata(dhcp_state)
        && !meta.is_dir()
    {
        out.push(diagnostic(
            Severity::Error,
            "state_dir",
            format!(
                "\"{}\" exists and is not a directory (leases are kept there)",
                dhcp_state.display()
            ),
        ));
    }
    let Some(tftp) = &config.tftp else { return out };
    let root = &tftp.root;
    match std::fs::metadata(root) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            out.push(diagnostic(
                Severity::Error,
                "tftp.root",
                format!(
                    "\"{}\" does not exist (relative paths are relative to the working directory)",
                    root.display()
                ),
            ));
            return out;
        }
        Err(e) => {
            out.push(diagnostic(
                Severity::Error,
                "tftp.root",
                format!("\"{}\" cannot be used: {e}", root.display()),
            ));
            return out;
        }
        Ok(meta) if !meta.is_dir() => {
            out.push(diagnostic(
                Severity::Error,
                "tftp.root",
                format!("\"{}\" is not a directory", root.display()),
            ));
            return out;
        }
        Ok(_) => {}
    }
    let mut boots: Vec<(String, &BootConfig)> = vec![("boot".to_string(), &config.boot)];
    if let Some(dhcp) = &config.dhcp {
        for (i, r) in dhcp.reservations.iter().enumerate() {
            boots.push((format!("dhcp.reservations[{i}].boot"), &r.boot));
        }
    }
    for (path, boot) in boots {
        for (name, value) in boot_entries(boot) {
            if is_url(value) {
                continue;
            }
            let file = root.join(value.trim_start_matches('/'));
            if !file.is_file() {
                out.push(diagnostic(
                    Severity::Warning,
                    &format!("{path}.{name}"),
                    format!(
                        "\"{value}\" is not a file under the TFTP root \"{}\": \
                         clients asking for it will get file-not-found",
                        root.display()
                    ),
                ));
            }
        }
    }
    if tftp.write.enabled {
        let dir = root.join(&tftp.write.dir);
        match std::fs::metadata(&dir) {
            Err(e) if e.kind() == ErrorKind::NotFound => out.push(diagnostic(
                Severity::Warning,
                "tftp.write.dir",
                format!(
                    "\"{}\" does not exist; kindling serve creates it",
                    dir.display()
                ),
            )),
            Ok(meta) if !meta.is_dir() => out.push(diagnostic(
                Severity::Error,
                "tftp.write.dir",
                format!("\"{}\" exists and is not a directory", dir.display()),
            )),
            _ => {}
        }
    }
    out
}
