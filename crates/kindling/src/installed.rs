//! "Install once, then boot from disk": the machines that reported their install done, kept
//! durably in `state_dir/installed`, one line per machine (`aa:bb:cc:dd:ee:ff PROFILE`).
//!
//! The file is small and rewritten whole (a temporary file, fsync, rename, fsync of the
//! directory), under an advisory lock on `installed.lock` so that the daemon recording a
//! machine and `kindling profiles reset` removing one never lose each other's change. The
//! daemon reads it at each script fetch, so a reset takes effect at the machine's next boot
//! without a signal.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

/// The file in `state_dir`.
pub(crate) const FILE: &str = "installed";
const LOCK: &str = "installed.lock";

pub(crate) type Mac = [u8; 6];

pub(crate) fn mac_text(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The machines recorded, with the profile each installed from. A missing file is none.
pub(crate) fn load(state_dir: &Path) -> io::Result<BTreeMap<Mac, String>> {
    let text = match std::fs::read_to_string(state_dir.join(FILE)) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(error),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (mac, profile) = line.split_once(' ')?;
            let mac = kindling_dhcp::v4::server::parse_mac(mac)?.0;
            Some((mac, profile.to_string()))
        })
        .collect())
}

/// Records `mac` as installed from `profile`; true when that is news.
pub(crate) fn record(state_dir: &Path, mac: Mac, profile: &str) -> io::Result<bool> {
    change(state_dir, |machines| {
        machines.insert(mac, profile.to_string()).as_deref() != Some(profile)
    })
}

/// Forgets `mac`, so it gets its install script again; true when it was recorded.
pub(crate) fn reset(state_dir: &Path, mac: Mac) -> io::Result<bool> {
    change(state_dir, |machines| machines.remove(&mac).is_some())
}

fn change(
    state_dir: &Path,
    edit: impl FnOnce(&mut BTreeMap<Mac, String>) -> bool,
) -> io::Result<bool> {
    std::fs::create_dir_all(state_dir)?;
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(state_dir.join(LOCK))?;
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| io::Error::from(errno))?;
    let mut machines = load(state_dir)?;
    if !edit(&mut machines) {
        return Ok(false);
    }
    let temp = state_dir.join(format!("{FILE}.tmp"));
    let mut file = File::create(&temp)?;
    for (mac, profile) in &machines {
        writeln!(file, "{} {profile}", mac_text(mac))?;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, state_dir.join(FILE))?;
    File::open(state_dir)?.sync_all()?;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn machines_are_recorded_durably_and_reset_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = [0x52, 0x54, 0, 0, 0, 0x10];
        let b = [0x52, 0x54, 0, 0, 0, 0x11];
        assert!(load(dir.path()).unwrap().is_empty());
        assert!(record(dir.path(), a, "workers").unwrap());
        assert!(!record(dir.path(), a, "workers").unwrap(), "no news");
        assert!(record(dir.path(), b, "db").unwrap());
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert_eq!(text, "52:54:00:00:00:10 workers\n52:54:00:00:00:11 db\n");
        assert!(reset(dir.path(), a).unwrap());
        assert!(!reset(dir.path(), a).unwrap());
        let left = load(dir.path()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left.get(&b).map(String::as_str), Some("db"));
    }
}
