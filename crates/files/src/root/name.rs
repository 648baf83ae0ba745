//! Client-supplied file names: validation and normalisation, before anything touches the disk.

/// Longest request name accepted, in bytes.
pub(crate) const MAX_NAME: usize = 1024;
/// Longest path component accepted, in bytes (NAME_MAX on Linux).
pub(crate) const MAX_COMPONENT: usize = 255;
/// Marks the hidden temporary files of uploads in flight; such names are never served or
/// written by a client.
pub(crate) const TEMP_MARKER: &str = ".kindling-tmp-";

/// A request name split into its components: valid UTF-8, no control characters, no `..`,
/// no empty or `.` components, at least one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name {
    components: Vec<String>,
}

impl Name {
    /// Validates and normalises a name as a client sent it. The error is the reason, for the
    /// log only.
    ///
    /// - bytes must be UTF-8; control characters (C0, DEL and C1) and NUL are refused;
    /// - `\` is a separator like `/` (Windows Deployment Services sends `boot\x64\wdsnbp.com`);
    /// - leading `/` mean the root, empty and `.` components are skipped;
    /// - any `..` component is refused outright, never resolved lexically;
    /// - names over [`MAX_NAME`] bytes or with a component over [`MAX_COMPONENT`] are refused.
    pub(crate) fn parse(raw: &[u8]) -> Result<Name, &'static str> {
        if raw.len() > MAX_NAME {
            return Err("name too long");
        }
        let text = std::str::from_utf8(raw).map_err(|_| "name is not valid UTF-8")?;
        if text.chars().any(char::is_control) {
            return Err("control character in name");
        }
        let mut components = Vec::new();
        for component in text.split(['/', '\\']) {
            match component {
                "" | "." => {}
                ".." => return Err("'..' component in name"),
                _ if component.len() > MAX_COMPONENT => return Err("name component too long"),
                _ => components.push(component.to_owned()),
            }
        }
        if components.is_empty() {
            return Err("empty name");
        }
        if components.iter().any(|c| is_temp_name(c)) {
            return Err("temporary upload file");
        }
        Ok(Name { components })
    }

    /// Normalises a configured directory (relative to the root; a leading `/` also means the
    /// root). An empty result means the root itself.
    pub(crate) fn parse_dir(raw: &[u8]) -> Result<Vec<String>, &'static str> {
        match Name::parse(raw) {
            Ok(name) => Ok(name.components),
            Err("empty name") => Ok(Vec::new()),
            Err(reason) => Err(reason),
        }
    }

    /// A name from components that are already normalised (from [`Name::parse_dir`]).
    pub(crate) fn from_components(components: Vec<String>) -> Name {
        Name { components }
    }

    pub(crate) fn components(&self) -> &[String] {
        &self.components
    }

    /// The last component (the file name).
    pub(crate) fn file_name(&self) -> &str {
        self.components.last().map_or("", String::as_str)
    }

    /// All components but the last.
    pub(crate) fn parent(&self) -> &[String] {
        let n = self.components.len().saturating_sub(1);
        &self.components[..n]
    }

    /// The normalised name, components joined with `/`, for logs and as the path handed to
    /// the kernel below the root.
    pub(crate) fn relative(&self) -> String {
        self.components.join("/")
    }
}

/// Whether a component is (or imitates) one of our hidden temporary upload files.
pub(crate) fn is_temp_name(component: &str) -> bool {
    component.starts_with('.') && component.contains(TEMP_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &[u8]) -> String {
        match Name::parse(raw) {
            Ok(name) => name.relative(),
            Err(reason) => panic!("{raw:?} refused: {reason}"),
        }
    }

    fn refused(raw: &[u8]) -> &'static str {
        match Name::parse(raw) {
            Ok(name) => panic!("{raw:?} accepted as {:?}", name.relative()),
            Err(reason) => reason,
        }
    }

    #[test]
    fn normalises_allowed_names() {
        assert_eq!(ok(b"/pxelinux.0"), "pxelinux.0");
        assert_eq!(ok(b"///pxelinux.0"), "pxelinux.0");
        assert_eq!(ok(b"boot\\x64\\wdsnbp.com"), "boot/x64/wdsnbp.com");
        assert_eq!(ok(b"a//b"), "a/b");
        assert_eq!(ok(b"./a"), "a");
        assert_eq!(ok(b"a/./b/"), "a/b");
        assert_eq!(ok(b"%2e%2e/x"), "%2e%2e/x");
        assert_eq!(ok(b"..."), "...");
        assert_eq!(ok(b"a..b/..c"), "a..b/..c");
        assert_eq!(ok("ünïcødé/файл".as_bytes()), "ünïcødé/файл");
        assert_eq!(ok(&[b'a'; 255]).len(), 255);
    }

    #[test]
    fn refuses_hostile_names() {
        assert_eq!(refused(b"../etc/passwd"), "'..' component in name");
        assert_eq!(refused(b"..\\..\\windows"), "'..' component in name");
        assert_eq!(refused(b"a/./../../b"), "'..' component in name");
        assert_eq!(refused(b"foo/.."), "'..' component in name");
        assert_eq!(refused(b""), "empty name");
        assert_eq!(refused(b"////"), "empty name");
        assert_eq!(refused(b"."), "empty name");
        assert_eq!(refused(b"a\nb"), "control character in name");
        assert_eq!(refused(b"a\0b"), "control character in name");
        assert_eq!(refused(b"a\x7f"), "control character in name");
        assert_eq!(refused("a\u{9b}b".as_bytes()), "control character in name");
        assert_eq!(refused(b"\xc0\xaf"), "name is not valid UTF-8");
        assert_eq!(refused(&[b'a'; 256]), "name component too long");
        assert_eq!(refused(&[b'a'; 1025]), "name too long");
        assert_eq!(
            refused(b"up/.x.kindling-tmp-1-2-3"),
            "temporary upload file"
        );
    }

    #[test]
    fn parses_directories() {
        assert_eq!(Name::parse_dir(b"uploads/"), Ok(vec!["uploads".to_owned()]));
        assert_eq!(
            Name::parse_dir(b"/a//b"),
            Ok(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(Name::parse_dir(b"."), Ok(Vec::new()));
        assert!(Name::parse_dir(b"../x").is_err());
    }
}
