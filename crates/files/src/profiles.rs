//! Per-machine boot scripts: the `profiles` of the config, chosen for a machine by their
//! selectors and rendered from its facts with minijinja.
//!
//! Choosing: every selector a profile gives must match (within one selector, any listed value
//! does); among the profiles that match, the one with the most selectors wins, the earlier in
//! the config on a tie; a profile without selectors is the default. Rendering: the template sees
//! only the facts ([`Facts`]), each always defined (empty when unknown, so a machine without a
//! host name still boots); any other name is an error (strict undefined), and a template gets a
//! bounded amount of work (fuel) and recursion, so a loop an operator wrote cannot stall a
//! boot. iPXE's own `${...}` variables are plain text to minijinja and pass through.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use kindling_config::{ProfileConfig, ProfileMatch};
use minijinja::{Environment, UndefinedBehavior, Value};

/// The work one rendering may do (minijinja fuel: about one unit per instruction).
const FUEL: u64 = 200_000;
/// How deep templates may nest (macros, includes of themselves).
const RECURSION_LIMIT: usize = 32;
/// The longest script a rendering may produce.
pub const MAX_SCRIPT_LEN: usize = 256 * 1024;

/// What Kindling knows about a machine when it fetches its script.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub mac: Option<[u8; 6]>,
    pub ip: Option<IpAddr>,
    pub hostname: Option<String>,
    /// SMBIOS UUID, RFC 4122 byte order.
    pub uuid: Option<[u8; 16]>,
    /// Client architecture (DHCPv4 option 93 / DHCPv6 option 61).
    pub arch: Option<u16>,
    /// The client kind, named as the `boot` keys (`bios`, `uefi_x64`, `ipxe`, ...).
    pub kind: Option<String>,
    /// Its reservation's labels.
    pub labels: BTreeMap<String, String>,
    /// This box's address, as the machine reaches it.
    pub server: Option<IpAddr>,
    /// This box's HTTP base URL (`http://address:port`), when HTTP is served.
    pub http_base: Option<String>,
}

impl Facts {
    /// Facts a check renders every template with: every fact known.
    pub fn sample(selectors: &ProfileMatch) -> Facts {
        Facts {
            mac: Some([0x52, 0x54, 0, 0, 0, 1]),
            ip: Some(IpAddr::from([192, 0, 2, 10])),
            hostname: Some("sample".into()),
            uuid: Some([0x11; 16]),
            arch: Some(7),
            kind: Some("ipxe".into()),
            labels: selectors.labels.clone(),
            server: Some(IpAddr::from([192, 0, 2, 1])),
            http_base: Some("http://192.0.2.1:8080".into()),
        }
    }

    /// `aa:bb:cc:dd:ee:ff`, lower case.
    pub fn mac_text(&self) -> String {
        self.mac.map_or_else(String::new, |m| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        })
    }

    /// `8-4-4-4-12`, lower case.
    pub fn uuid_text(&self) -> String {
        self.uuid.map_or_else(String::new, |u| {
            let hex: String = u.iter().map(|b| format!("{b:02x}")).collect();
            format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
        })
    }

    fn context(&self) -> Value {
        let text = |v: Option<String>| Value::from(v.unwrap_or_default());
        minijinja::context! {
            mac => self.mac_text(),
            ip => text(self.ip.map(|a| a.to_string())),
            hostname => text(self.hostname.clone()),
            uuid => self.uuid_text(),
            arch => text(self.arch.map(|a| a.to_string())),
            kind => text(self.kind.clone()),
            labels => Value::from(self.labels.clone()),
            server => text(self.server.map(|a| a.to_string())),
            http_base => text(self.http_base.clone()),
        }
    }
}

/// Why a profile could not be compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError {
    /// The profile's name.
    pub profile: String,
    /// The config file line the problem is on, when minijinja says where.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(
                f,
                "profile \"{}\" (line {line}): {}",
                self.profile, self.message
            ),
            None => write!(f, "profile \"{}\": {}", self.profile, self.message),
        }
    }
}

impl std::error::Error for ProfileError {}

#[derive(Debug)]
struct Compiled {
    name: String,
    selectors: ProfileMatch,
    /// The config file line of the template's first line.
    line: usize,
}

/// The profile chosen for a machine, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected<'a> {
    pub index: usize,
    pub name: &'a str,
    /// What matched, for `kindling explain` and logs (`mac, labels.role`; `default`).
    pub why: String,
}

/// The compiled profiles of one config.
#[derive(Debug)]
pub struct Profiles {
    env: Environment<'static>,
    profiles: Vec<Compiled>,
}

impl Profiles {
    /// Compiles every template; the errors name each profile that does not compile.
    pub fn compile(config: &[ProfileConfig]) -> Result<Profiles, Vec<ProfileError>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_recursion_limit(RECURSION_LIMIT);
        // A script keeps its last newline, and a line holding only a `{% ... %}` tag leaves
        // no blank line behind (iPXE scripts are line-oriented).
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        // Scripts, not HTML: nothing is escaped.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let mut errors = Vec::new();
        let mut profiles = Vec::new();
        for p in config {
            if let Err(error) = env.add_template_owned(p.name.clone(), p.ipxe.clone()) {
                errors.push(error_of(&p.name, p.ipxe_line, &error));
                continue;
            }
            profiles.push(Compiled {
                name: p.name.clone(),
                selectors: p.selectors.clone(),
                line: p.ipxe_line,
            });
        }
        if errors.is_empty() {
            Ok(Profiles { env, profiles })
        } else {
            Err(errors)
        }
    }

    /// No profiles at all: every machine gets the file `boot.ipxe` names.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    /// The profile for a machine: the most specific match, else the default, else none.
    pub fn select(&self, facts: &Facts) -> Option<Selected<'_>> {
        let mut best: Option<(usize, usize, Vec<&'static str>)> = None;
        for (index, p) in self.profiles.iter().enumerate() {
            let Some(matched) = matches(&p.selectors, facts) else {
                continue;
            };
            let specificity = p.selectors.specificity();
            if best.as_ref().is_none_or(|(_, s, _)| specificity > *s) {
                best = Some((index, specificity, matched));
            }
        }
        best.map(|(index, _, matched)| Selected {
            index,
            name: &self.profiles[index].name,
            why: if matched.is_empty() {
                "the default profile (no match)".to_string()
            } else {
                format!("matched by {}", matched.join(", "))
            },
        })
    }

    /// Renders profile `index` for a machine.
    pub fn render(&self, index: usize, facts: &Facts) -> Result<String, ProfileError> {
        let Some(p) = self.profiles.get(index) else {
            return Err(ProfileError {
                profile: format!("#{index}"),
                line: None,
                message: "no such profile".into(),
            });
        };
        let script = self
            .env
            .get_template(&p.name)
            .and_then(|t| t.render(facts.context()))
            .map_err(|error| error_of(&p.name, p.line, &error))?;
        if script.len() > MAX_SCRIPT_LEN {
            return Err(ProfileError {
                profile: p.name.clone(),
                line: None,
                message: format!(
                    "the rendered script is {} bytes, more than the {MAX_SCRIPT_LEN} allowed",
                    script.len()
                ),
            });
        }
        Ok(script)
    }

    /// Renders every profile with sample facts ([`Facts::sample`]): what `check-config` runs.
    pub fn check(&self) -> Vec<ProfileError> {
        self.profiles
            .iter()
            .enumerate()
            .filter_map(|(i, p)| self.render(i, &Facts::sample(&p.selectors)).err())
            .collect()
    }
}

/// Every problem of every profile, in config order: templates that do not compile, and those
/// that fail with sample facts. What `kindling check-config` reports.
pub fn check(config: &[ProfileConfig]) -> Vec<ProfileError> {
    config
        .iter()
        .flat_map(|p| match Profiles::compile(std::slice::from_ref(p)) {
            Ok(one) => one.check(),
            Err(errors) => errors,
        })
        .collect()
}

fn error_of(profile: &str, first_line: usize, error: &minijinja::Error) -> ProfileError {
    let mut message = error.kind().to_string();
    if let Some(detail) = error.detail() {
        message = format!("{message}: {detail}");
    }
    ProfileError {
        profile: profile.to_string(),
        line: error.line().map(|l| first_line + l.saturating_sub(1)),
        message,
    }
}

/// The selectors that matched, or `None` when one given does not.
fn matches(selectors: &ProfileMatch, facts: &Facts) -> Option<Vec<&'static str>> {
    let mut matched = Vec::new();
    if !selectors.mac.is_empty() {
        let mac = facts.mac_text();
        selectors.mac.iter().find(|m| **m == mac)?;
        matched.push("mac");
    }
    if !selectors.uuid.is_empty() {
        let uuid = facts.uuid?;
        selectors.uuid.iter().find(|u| **u == uuid)?;
        matched.push("uuid");
    }
    if !selectors.arch.is_empty() {
        let arch = facts.arch?;
        selectors.arch.iter().find(|a| **a == arch)?;
        matched.push("arch");
    }
    if !selectors.kind.is_empty() {
        let kind = facts.kind.as_deref()?;
        selectors.kind.iter().find(|k| *k == kind)?;
        matched.push("kind");
    }
    if !selectors.hostname.is_empty() {
        let hostname = facts.hostname.as_deref()?.to_ascii_lowercase();
        selectors.hostname.iter().find(|h| **h == hostname)?;
        matched.push("hostname");
    }
    for (name, value) in &selectors.labels {
        if facts.labels.get(name) != Some(value) {
            return None;
        }
        matched.push("labels");
    }
    matched.dedup();
    Some(matched)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn profile(name: &str, selectors: ProfileMatch, ipxe: &str) -> ProfileConfig {
        ProfileConfig {
            name: name.into(),
            selectors,
            ipxe: ipxe.into(),
            ipxe_line: 10,
        }
    }

    fn by_mac(mac: &str) -> ProfileMatch {
        ProfileMatch {
            mac: vec![mac.into()],
            ..ProfileMatch::default()
        }
    }

    fn labelled(role: &str) -> ProfileMatch {
        ProfileMatch {
            labels: [("role".to_string(), role.to_string())].into(),
            ..ProfileMatch::default()
        }
    }

    fn machine(mac: [u8; 6], role: Option<&str>) -> Facts {
        Facts {
            mac: Some(mac),
            labels: role
                .map(|r| [("role".to_string(), r.to_string())].into())
                .unwrap_or_default(),
            ..Facts::default()
        }
    }

    #[test]
    fn the_most_specific_match_wins_and_the_default_catches_the_rest() {
        let mut both = by_mac("52:54:00:00:00:10");
        both.labels = labelled("worker").labels;
        let profiles = Profiles::compile(&[
            profile("default", ProfileMatch::default(), "d"),
            profile("workers", labelled("worker"), "w"),
            profile("node10", by_mac("52:54:00:00:00:10"), "n"),
            profile("node10-worker", both, "nw"),
        ])
        .unwrap();
        let pick = |facts: &Facts| profiles.select(facts).map(|s| s.name.to_string());
        let node10 = [0x52, 0x54, 0, 0, 0, 0x10];
        assert_eq!(
            pick(&machine(node10, Some("worker"))).as_deref(),
            Some("node10-worker")
        );
        assert_eq!(pick(&machine(node10, None)).as_deref(), Some("node10"));
        assert_eq!(
            pick(&machine([2; 6], Some("worker"))).as_deref(),
            Some("workers")
        );
        let other = profiles.select(&machine([2; 6], Some("db"))).unwrap();
        assert_eq!(other.name, "default");
        assert_eq!(other.why, "the default profile (no match)");
        let why = profiles
            .select(&machine(node10, Some("worker")))
            .unwrap()
            .why;
        assert_eq!(why, "matched by mac, labels");
    }

    #[test]
    fn on_a_tie_the_earlier_profile_wins_and_without_a_default_nothing_is_chosen() {
        let profiles = Profiles::compile(&[
            profile("first", labelled("worker"), "1"),
            profile("second", by_mac("52:54:00:00:00:10"), "2"),
        ])
        .unwrap();
        let facts = machine([0x52, 0x54, 0, 0, 0, 0x10], Some("worker"));
        assert_eq!(profiles.select(&facts).unwrap().name, "first");
        assert_eq!(profiles.select(&machine([2; 6], None)), None);
    }

    #[test]
    fn every_selector_given_must_match_and_a_missing_fact_matches_nothing() {
        let selectors = ProfileMatch {
            arch: vec![7, 9],
            kind: vec!["ipxe".into()],
            hostname: vec!["node10".into()],
            uuid: vec![[0x11; 16]],
            ..ProfileMatch::default()
        };
        let profiles = Profiles::compile(&[profile("p", selectors, "x")]).unwrap();
        let full = Facts {
            arch: Some(9),
            kind: Some("ipxe".into()),
            hostname: Some("Node10".into()),
            uuid: Some([0x11; 16]),
            ..Facts::default()
        };
        assert!(
            profiles.select(&full).is_some(),
            "host names compare without case"
        );
        for broken in [
            Facts {
                arch: Some(0),
                ..full.clone()
            },
            Facts {
                arch: None,
                ..full.clone()
            },
            Facts {
                kind: Some("bios".into()),
                ..full.clone()
            },
            Facts {
                hostname: None,
                ..full.clone()
            },
            Facts {
                uuid: Some([0x12; 16]),
                ..full.clone()
            },
        ] {
            assert_eq!(profiles.select(&broken), None, "{broken:?}");
        }
    }

    #[test]
    fn a_script_renders_its_facts_and_leaves_ipxe_variables_alone() {
        let profiles = Profiles::compile(&[profile(
            "p",
            ProfileMatch::default(),
            "#!ipxe\necho {{ hostname }} {{ mac }} {{ ip }} {{ uuid }} {{ arch }} {{ kind }} {{ labels.role }}\n\
             chain {{ http_base }}/x?mac=${mac:hexhyp} {{ server }}\n",
        )])
        .unwrap();
        let facts = Facts {
            mac: Some([0x52, 0x54, 0, 0xab, 0, 0x10]),
            ip: Some("10.99.0.10".parse().unwrap()),
            hostname: Some("node10".into()),
            uuid: Some([0x4c; 16]),
            arch: Some(7),
            kind: Some("ipxe".into()),
            labels: [("role".to_string(), "worker".to_string())].into(),
            server: Some("10.99.0.1".parse().unwrap()),
            http_base: Some("http://10.99.0.1:8080".into()),
        };
        assert_eq!(
            profiles.render(0, &facts).unwrap(),
            "#!ipxe\necho node10 52:54:00:ab:00:10 10.99.0.10 4c4c4c4c-4c4c-4c4c-4c4c-4c4c4c4c4c4c 7 ipxe worker\n\
             chain http://10.99.0.1:8080/x?mac=${mac:hexhyp} 10.99.0.1\n"
        );
    }

    #[test]
    fn block_tags_leave_no_blank_lines_and_the_last_newline_stays() {
        let profiles = Profiles::compile(&[profile(
            "p",
            ProfileMatch::default(),
            "#!ipxe\n  {% if hostname %}\necho {{ hostname }}\n  {% endif %}\nboot\n",
        )])
        .unwrap();
        let facts = Facts {
            hostname: Some("n1".into()),
            ..Facts::default()
        };
        assert_eq!(
            profiles.render(0, &facts).unwrap(),
            "#!ipxe\necho n1\nboot\n"
        );
        assert_eq!(
            profiles.render(0, &Facts::default()).unwrap(),
            "#!ipxe\nboot\n"
        );
    }

    #[test]
    fn unknown_facts_are_empty_so_a_machine_without_a_name_still_boots() {
        let profiles = Profiles::compile(&[profile(
            "p",
            ProfileMatch::default(),
            "[{{ hostname }}|{{ mac }}]",
        )])
        .unwrap();
        assert_eq!(profiles.render(0, &Facts::default()).unwrap(), "[|]");
    }

    #[test]
    fn a_name_that_is_not_a_fact_is_an_error_with_its_config_line() {
        let profiles = Profiles::compile(&[profile(
            "typo",
            ProfileMatch::default(),
            "#!ipxe\n\necho {{ hostnme }}\n",
        )])
        .unwrap();
        let error = profiles.render(0, &Facts::default()).unwrap_err();
        assert_eq!(error.profile, "typo");
        assert_eq!(
            error.line,
            Some(12),
            "template line 3 of a template starting at line 10"
        );
        assert!(error.message.contains("undefined"), "{error}");
        assert_eq!(profiles.check(), vec![error]);
    }

    #[test]
    fn a_syntax_error_fails_the_compile_with_its_line() {
        let errors = Profiles::compile(&[
            profile("good", ProfileMatch::default(), "ok"),
            profile("bad", by_mac("52:54:00:00:00:10"), "#!ipxe\n{% if %}\n"),
        ])
        .unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].profile, "bad");
        assert_eq!(errors[0].line, Some(11));
    }

    #[test]
    fn a_template_that_loops_forever_or_recurses_runs_out_and_fails() {
        let profiles = Profiles::compile(&[
            profile(
                "loop",
                ProfileMatch::default(),
                "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
            ),
            profile(
                "recurse",
                by_mac("52:54:00:00:00:10"),
                "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            ),
        ])
        .unwrap();
        let started = std::time::Instant::now();
        let error = profiles.render(0, &Facts::default()).unwrap_err();
        assert!(error.message.contains("fuel"), "{error}");
        assert!(profiles.render(1, &Facts::default()).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn check_reports_compile_and_render_errors_of_every_profile_in_order() {
        let errors = check(&[
            profile("undefined", ProfileMatch::default(), "{{ nope }}"),
            profile("fine", by_mac("52:54:00:00:00:11"), "{{ mac }}"),
            profile("syntax", by_mac("52:54:00:00:00:10"), "{% if %}"),
        ]);
        let names: Vec<&str> = errors.iter().map(|e| e.profile.as_str()).collect();
        assert_eq!(names, ["undefined", "syntax"]);
    }

    #[test]
    fn check_renders_every_profile_with_sample_facts_including_its_labels() {
        let profiles = Profiles::compile(&[profile(
            "w",
            labelled("worker"),
            "{{ labels.role }} {{ hostname }}",
        )])
        .unwrap();
        assert!(profiles.check().is_empty());
        assert_eq!(
            profiles
                .render(0, &Facts::sample(&labelled("worker")))
                .unwrap(),
            "worker sample"
        );
    }
}
