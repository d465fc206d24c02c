//! Which Debian mirror this machine's apt already uses: tcplab fetches
//! Debian's kernels (and the box build its packages) from it, and never
//! from a host written into the code.
//!
//! apt reads two formats, and so does this parser: one-line entries in
//! `sources.list` and `sources.list.d/*.list` (`deb [opt=val …] URI SUITE
//! COMPONENT…`), and deb822 stanzas in `sources.list.d/*.sources` (`Types:`,
//! `URIs:`, `Suites:`, `Enabled:`, with continuation lines). Like apt, it
//! reads no other file names (`foo.list.disabled`, `foo.save`), skips
//! `Enabled: no` stanzas and `deb-src` lines.
//!
//! Debian's archive is told from others (Ubuntu's, a vendor's) by its
//! suites: an entry counts when one of its suites is a Debian release name,
//! not a `-security` one (that archive carries only security updates).
//! `TCPLAB_DEBIAN_MIRROR` overrides all of it, for machines whose sources
//! name no Debian mirror.

use std::path::{Path, PathBuf};

/// The variable that names a Debian mirror when the apt sources have none.
pub const MIRROR_VARIABLE: &str = "TCPLAB_DEBIAN_MIRROR";

/// Debian's release names, and the aliases apt accepts for them.
const DEBIAN_SUITES: [&str; 14] = [
    "buster",
    "bullseye",
    "bookworm",
    "trixie",
    "forky",
    "duke",
    "sid",
    "experimental",
    "oldoldstable",
    "oldstable",
    "stable",
    "testing",
    "unstable",
    "rc-buggy",
];

/// Why no mirror could be named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// `TCPLAB_DEBIAN_MIRROR` is set to something that is not a mirror.
    #[error("{MIRROR_VARIABLE}={0}: a mirror is an http:// or https:// URI")]
    BadVariable(String),
    /// The sources name no Debian archive; says what they name.
    #[error("{0}; set {MIRROR_VARIABLE}=URI to a Debian mirror")]
    NoneInSources(String),
}

/// One `deb` entry of the apt sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    pub uri: String,
    pub suites: Vec<String>,
    /// The file it came from, for messages.
    pub file: PathBuf,
}

impl AptSource {
    /// A Debian archive (not the security one): a suite named after a
    /// Debian release, with or without `-updates`, `-backports`, `-proposed-updates`.
    pub fn is_debian_archive(&self) -> bool {
        let web = self.uri.starts_with("http://") || self.uri.starts_with("https://");
        web && self.suites.iter().any(|suite| {
            let (release, pocket) = suite.split_once('-').unwrap_or((suite, ""));
            DEBIAN_SUITES.contains(&release) && pocket != "security"
        })
    }
}

/// The `deb` entries of one-line `text` (from `file`).
pub fn parse_one_line(text: &str, file: &Path) -> Vec<AptSource> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or_default().trim();
            let rest = line.strip_prefix("deb")?;
            if !rest.starts_with([' ', '\t']) {
                return None; // deb-src, or not an entry
            }
            let rest = rest.trim_start();
            // Options in brackets may hold spaces: `[ arch=amd64 signed-by=… ]`.
            let rest = match rest.strip_prefix('[') {
                Some(options) => options.split_once(']')?.1,
                None => rest,
            };
            let mut words = rest.split_whitespace();
            let uri = words.next()?.to_string();
            let suite = words.next()?.to_string();
            Some(AptSource {
                uri,
                suites: vec![suite],
                file: file.to_path_buf(),
            })
        })
        .collect()
}

/// The enabled `deb` stanzas of deb822 `text` (from `file`).
pub fn parse_deb822(text: &str, file: &Path) -> Vec<AptSource> {
    let mut sources = Vec::new();
    for stanza in stanzas(text) {
        let field = |name: &str| {
            stanza
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_str())
        };
        let words = |name: &str| -> Vec<String> {
            field(name)
                .unwrap_or_default()
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        let enabled = field("Enabled").is_none_or(|v| !v.trim().eq_ignore_ascii_case("no"));
        if !enabled || !words("Types").iter().any(|t| t == "deb") {
            continue;
        }
        let suites = words("Suites");
        for uri in words("URIs") {
            sources.push(AptSource {
                uri,
                suites: suites.clone(),
                file: file.to_path_buf(),
            });
        }
    }
    sources
}

/// deb822 paragraphs as (field, value) lists; continuation lines (those
/// that start with a space) join their field's value, comments go.
fn stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut stanzas: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            stanzas.push(Vec::new());
            continue;
        }
        let Some(stanza) = stanzas.last_mut() else {
            continue;
        };
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = stanza.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            stanza.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    stanzas.retain(|s| !s.is_empty());
    stanzas
}

/// Every `deb` entry apt reads under `etc_apt` (normally `/etc/apt`), in
/// apt's order: `sources.list`, then `sources.list.d` by name.
pub fn read_sources(etc_apt: &Path) -> Vec<AptSource> {
    let main = etc_apt.join("sources.list");
    let mut sources = std::fs::read_to_string(&main)
        .map(|text| parse_one_line(&text, &main))
        .unwrap_or_default();
    let mut parts: Vec<PathBuf> = std::fs::read_dir(etc_apt.join("sources.list.d"))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    parts.sort();
    for path in parts {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        match path.extension().and_then(|x| x.to_str()) {
            Some("list") => sources.extend(parse_one_line(&text, &path)),
            Some("sources") => sources.extend(parse_deb822(&text, &path)),
            _ => {} // apt ignores every other name, and so do we
        }
    }
    sources
}

/// The Debian mirror to use: `TCPLAB_DEBIAN_MIRROR`, else the first Debian
/// archive the apt sources under `etc_apt` name. The error says what to do.
pub fn debian_mirror_in(etc_apt: &Path, variable: Option<String>) -> Result<String, MirrorError> {
    if let Some(mirror) = variable.filter(|m| !m.trim().is_empty()) {
        let mirror = mirror.trim().to_string();
        if !(mirror.starts_with("http://") || mirror.starts_with("https://")) {
            return Err(MirrorError::BadVariable(mirror));
        }
        return Ok(mirror);
    }
    let sources = read_sources(etc_apt);
    sources
        .iter()
        .find(|s| s.is_debian_archive())
        .map(|s| s.uri.trim_end_matches('/').to_string())
        .ok_or_else(|| {
            let read: Vec<String> = sources
                .iter()
                .map(|s| format!("{} {} ({})", s.uri, s.suites.join(","), s.file.display()))
                .collect();
            MirrorError::NoneInSources(format!(
                "the apt sources under {} name no Debian mirror (a deb entry for a Debian \
                 suite such as bookworm){}",
                etc_apt.display(),
                if read.is_empty() {
                    String::new()
                } else {
                    format!(": they name {}", read.join("; "))
                }
            ))
        })
}

/// The Debian security archive the apt sources under `etc_apt` name (a
/// `deb` entry for a `<release>-security` suite), if any: kernels' security
/// builds live there, not on the main mirror.
pub fn security_mirror_in(etc_apt: &Path, variable: Option<String>) -> Option<String> {
    if let Some(mirror) = variable.filter(|m| m.starts_with("http://") || m.starts_with("https://"))
    {
        return Some(mirror.trim().trim_end_matches('/').to_string());
    }
    read_sources(etc_apt)
        .into_iter()
        .find(|source| {
            let web = source.uri.starts_with("http://") || source.uri.starts_with("https://");
            web && source.suites.iter().any(|suite| {
                suite
                    .strip_suffix("-security")
                    .is_some_and(|release| DEBIAN_SUITES.contains(&release))
            })
        })
        .map(|source| source.uri.trim_end_matches('/').to_string())
}

/// This machine's security archive (see [`security_mirror_in`]), or
/// `TCPLAB_DEBIAN_SECURITY_MIRROR`.
pub fn security_mirror() -> Option<String> {
    security_mirror_in(
        Path::new("/etc/apt"),
        std::env::var("TCPLAB_DEBIAN_SECURITY_MIRROR").ok(),
    )
}

/// The Debian mirror of this machine (see [`debian_mirror_in`]).
pub fn debian_mirror() -> Result<String, MirrorError> {
    debian_mirror_in(Path::new("/etc/apt"), std::env::var(MIRROR_VARIABLE).ok())
}

#[cfg(test)]
#[path = "debian_sources_tests.rs"]
mod tests;
