//! Every Debian cloud kernel build the archive offers, by line (`6.12`) and
//! build (`6.12.43`), read from the signed indexes of every suite this
//! machine's mirror carries.
//!
//! One private apt state (see [`PrivateApt`]) holds the indexes of every
//! suite from bullseye on, with its `-updates`, `-backports` and
//! `-security` pockets (the last from the security archive the apt sources
//! name), `sid` and `experimental`: apt checks their signatures with
//! Debian's archive keyring, and a suite the mirror does not carry is left
//! out. `apt-cache madison` then lists each `linux-image-*-cloud-amd64`
//! package with its version and suite. What it found is kept in the cache
//! ([`INDEX_FILE`]) for a day, or until `tcplab lab kernels --refresh`.
//!
//! A build is named by its upstream version: `6.1.192`, `7.3~rc7`. The
//! same build can be in several suites (a release and its backports): the
//! release's own package is taken, as Debian built it for that release.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::super::cache::write_atomically;
use super::super::error::LabError;
use super::kernel_fetch::{PrivateApt, run};

/// Releases with a cloud kernel of 5.10 or newer, oldest first.
const RELEASES: [&str; 5] = ["bullseye", "bookworm", "trixie", "forky", "duke"];
/// Where the list of builds is kept, under the cache's `kernels/`.
pub const INDEX_FILE: &str = "archive-index.tsv";
/// After this, the next use reads the archive again.
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One kernel build in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KernelBuild {
    /// The upstream version: `6.12.43`.
    pub version: String,
    /// Its line: `6.12`.
    pub line: String,
    /// The package holding (or, from 6.19 on, pulling in) the kernel.
    pub package: String,
    /// The package's version: `6.12.43-1~bpo12+1`.
    pub package_version: String,
    pub suite: String,
    /// Why the build cannot boot, when a package it needs is in no suite
    /// (seen on 2026-12-01: 6.19, 7.0 and 7.1 name linux-modules-*
    /// packages that the archive does not hold).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<String>,
}

impl KernelBuild {
    /// `pkg=version`, as apt takes one exact package.
    pub fn apt_spec(&self) -> String {
        format!("{}={}", self.package, self.package_version)
    }
}

/// The builds the archive offers, oldest first.
#[derive(Debug, Clone)]
pub struct ArchiveIndex {
    pub builds: Vec<KernelBuild>,
    /// When the archive was read.
    pub read_at: SystemTime,
}

impl ArchiveIndex {
    /// The cached index if it is fresh (and `refresh` is false), else the
    /// archive read again. A stale index serves when the archive cannot be
    /// reached and no refresh was asked for.
    pub fn load(kernels_dir: &Path, refresh: bool) -> Result<ArchiveIndex, LabError> {
        let path = kernels_dir.join(INDEX_FILE);
        let cached = ArchiveIndex::read(&path);
        let fresh = cached
            .as_ref()
            .is_some_and(|index| index.read_at.elapsed().unwrap_or(Duration::MAX) < MAX_AGE);
        if fresh && !refresh {
            return cached.ok_or_else(|| LabError::Setup("the index vanished".into()));
        }
        match ArchiveIndex::read_archive(&kernels_dir.join("archive-apt")) {
            Ok(index) => {
                index.write(&path)?;
                Ok(index)
            }
            Err(error) => match cached {
                Some(stale) if !refresh => {
                    tracing::warn!(%error, "using the cached kernel index");
                    Ok(stale)
                }
                _ => Err(error),
            },
        }
    }

    /// Reads every suite's index with a private apt under `apt_dir`.
    fn read_archive(apt_dir: &Path) -> Result<ArchiveIndex, LabError> {
        let apt = PrivateApt::new(apt_dir, &sources_list()?)?;
        // A suite the mirror lacks fails apt's update; the others are read.
        let update = apt.command("apt-get").arg("update").output();
        let update = update.map_err(|e| LabError::Setup(format!("apt-get update: {e}")))?;
        let names = run(
            apt.command("apt-cache").args([
                "search",
                "--names-only",
                "^linux-image-[0-9][^ ]*-cloud-amd64$",
            ]),
            "apt-cache search linux-image",
        )?;
        let packages: Vec<&str> = names.lines().filter_map(|l| l.split(' ').next()).collect();
        if packages.is_empty() {
            return Err(LabError::Setup(format!(
                "no Debian cloud kernel in the archive's indexes ({})",
                String::from_utf8_lossy(&update.stderr).trim()
            )));
        }
        let text = run(
            apt.command("apt-cache").arg("madison").args(&packages),
            "apt-cache madison",
        )?;
        let mut builds = builds_from_madison(&text);
        let specs: Vec<String> = builds.iter().map(KernelBuild::apt_spec).collect();
        let shown = run(
            apt.command("apt-cache").arg("show").args(&specs),
            "apt-cache show linux-image",
        )?;
        let known = run(
            apt.command("apt-cache").args(["pkgnames", "linux-"]),
            "apt-cache pkgnames",
        )?;
        let known: std::collections::HashSet<&str> = known.lines().collect();
        for build in &mut builds {
            build.missing = missing_parts(&shown, build, &known);
        }
        Ok(ArchiveIndex {
            builds,
            read_at: SystemTime::now(),
        })
    }

    fn read(path: &Path) -> Option<ArchiveIndex> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut lines = text.lines();
        let seconds: u64 = lines.next()?.strip_prefix("# read at ")?.parse().ok()?;
        // A line of another layout (an older tcplab's) discards the whole
        // index: it is read again from the archive.
        let builds: Option<Vec<KernelBuild>> = lines
            .map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                let [version, line, package, package_version, suite, missing] = f.as_slice() else {
                    return None;
                };
                Some(KernelBuild {
                    version: version.to_string(),
                    line: line.to_string(),
                    package: package.to_string(),
                    package_version: package_version.to_string(),
                    suite: suite.to_string(),
                    missing: (!missing.is_empty()).then(|| missing.to_string()),
                })
            })
            .collect();
        Some(ArchiveIndex {
            builds: builds.filter(|b| !b.is_empty())?,
            read_at: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds),
        })
    }

    fn write(&self, path: &Path) -> Result<(), LabError> {
        let seconds = self
            .read_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut text = format!("# read at {seconds}\n");
        for b in &self.builds {
            let missing = b.missing.as_deref().unwrap_or("");
            let fields = [
                b.version.as_str(),
                &b.line,
                &b.package,
                &b.package_version,
                &b.suite,
                missing,
            ];
            text.push_str(&fields.join("\t"));
            text.push('\n');
        }
        write_atomically(path, text.as_bytes())
    }

    /// The lines, oldest first.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = Vec::new();
        for build in &self.builds {
            if !lines.contains(&build.line) {
                lines.push(build.line.clone());
            }
        }
        lines
    }

    /// The newest build of `line` that can boot.
    pub fn newest(&self, line: &str) -> Option<&KernelBuild> {
        self.builds
            .iter()
            .rev()
            .find(|b| b.line == line && b.missing.is_none())
    }

    /// The lines none of whose builds can boot, with why.
    pub fn unbootable_lines(&self) -> Vec<(String, String)> {
        self.lines()
            .into_iter()
            .filter(|line| self.newest(line).is_none())
            .filter_map(|line| {
                let why = self.builds.iter().rev().find(|b| b.line == line)?;
                Some((line, why.missing.clone().unwrap_or_default()))
            })
            .collect()
    }

    /// `all` (the newest bootable build of every line that has one), a
    /// line, or one build.
    pub fn resolve(&self, wanted: &str) -> Result<Vec<KernelBuild>, LabError> {
        if wanted == "all" {
            return Ok(self
                .lines()
                .iter()
                .filter_map(|line| self.newest(line).cloned())
                .collect());
        }
        if let Some(build) = self.newest(wanted) {
            return Ok(vec![build.clone()]);
        }
        let named = self
            .builds
            .iter()
            .rev()
            .find(|b| b.line == wanted || b.version == wanted);
        if let Some(KernelBuild {
            missing: Some(missing),
            version,
            ..
        }) = named
        {
            return Err(LabError::Environment {
                host: "Debian's archive".into(),
                message: format!(
                    "--kernel {wanted}: build {version} cannot boot: {missing} \
                     (`tcplab lab kernels` shows which builds can)"
                ),
            });
        }
        if let Some(build) = self.builds.iter().find(|b| b.version == wanted) {
            return Ok(vec![build.clone()]);
        }
        Err(LabError::Usage(format!(
            "--kernel {wanted}: Debian's archive has no such kernel line or build; \
             nearest: {} (`tcplab lab kernels` lists them all)",
            self.nearest(wanted).join(", ")
        )))
    }

    /// The builds and lines closest to `wanted` by version, at most five.
    fn nearest(&self, wanted: &str) -> Vec<String> {
        let Ok(target) = wanted.parse::<debversion::Version>() else {
            return self.lines();
        };
        let mut names: Vec<String> = self.lines();
        names.extend(self.builds.iter().map(|b| b.version.clone()));
        let position = names
            .iter()
            .filter(|n| n.parse::<debversion::Version>().is_ok_and(|v| v < target))
            .count();
        names.sort_by_key(|n| n.parse::<debversion::Version>().ok());
        let start = position.saturating_sub(2);
        names.into_iter().skip(start).take(5).collect()
    }
}

/// One `deb` line per suite: the main mirror's releases and pockets, and
/// the security archive's pockets when the apt sources name one.
pub fn sources_list() -> Result<String, LabError> {
    use crate::lab::debian_sources::{MirrorError, debian_mirror};
    let mirror = debian_mirror().map_err(|error| match error {
        MirrorError::BadVariable(_) => LabError::Usage(error.to_string()),
        MirrorError::NoneInSources(_) => LabError::Environment {
            host: "this machine".into(),
            message: format!("{error}, or give --kernel FILE --modules DIR"),
        },
    })?;
    let security = crate::lab::debian_sources::security_mirror();
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    let options = format!("[signed-by={keyring} arch=amd64 targets=Packages]");
    let mut text = String::new();
    for release in RELEASES {
        for pocket in ["", "-updates", "-backports"] {
            text.push_str(&format!("deb {options} {mirror} {release}{pocket} main\n"));
        }
        if let Some(security) = &security {
            text.push_str(&format!(
                "deb {options} {security} {release}-security main\n"
            ));
        }
    }
    for suite in ["sid", "experimental"] {
        text.push_str(&format!("deb {options} {mirror} {suite} main\n"));
    }
    Ok(text)
}

/// `linux-image-X | 6.12.43-1 | URI trixie/main amd64 Packages` lines, as
/// builds sorted oldest first, one per upstream version.
pub fn builds_from_madison(text: &str) -> Vec<KernelBuild> {
    let mut builds: Vec<KernelBuild> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            let (package, package_version, origin) =
                (fields.next()?, fields.next()?, fields.next()?);
            let suite = origin.split_whitespace().nth(1)?.split('/').next()?;
            let version = package_version.rsplit_once('-')?.0.to_string();
            Some(KernelBuild {
                line: line_of(&version),
                version,
                package: package.to_string(),
                package_version: package_version.to_string(),
                suite: suite.to_string(),
                missing: None,
            })
        })
        .collect();
    // A rebuild for another release ("~bpo12+1" in backports, "~deb11u1"
    // in an older release's security pocket) after the release's own build
    // of the same version. (Seen on 2026-12-01: the index listed 6.1.176's
    // bullseye-security rebuild, whose file the pool no longer held.)
    builds.sort_by_key(|b| {
        (
            b.version.parse::<debversion::Version>().ok(),
            b.package_version.contains('~'),
        )
    });
    builds.dedup_by(|later, earlier| later.version == earlier.version);
    builds
}

/// Which packages a build's image depends on that no suite holds, from
/// `apt-cache show` of every image (stanzas of Package:, Version:, Depends:).
fn missing_parts(
    shown: &str,
    build: &KernelBuild,
    known: &std::collections::HashSet<&str>,
) -> Option<String> {
    let (package, version) = (
        format!("Package: {}", build.package),
        format!("Version: {}", build.package_version),
    );
    let stanza = shown.split("\n\n").find(|stanza| {
        stanza.lines().any(|l| l == package) && stanza.lines().any(|l| l == version)
    })?;
    let depends = stanza.lines().find_map(|l| l.strip_prefix("Depends:"))?;
    let absent: Vec<&str> = depends
        .split(',')
        .filter_map(|item| item.split_whitespace().next())
        .filter(|name| name.starts_with("linux-modules-") || name.starts_with("linux-binary-"))
        .filter(|name| !known.contains(name))
        .collect();
    (!absent.is_empty()).then(|| {
        format!(
            "{} names {}, which no suite of the archive holds",
            build.package,
            absent.join(" and ")
        )
    })
}

/// `6.12` of `6.12.43`, `7.3` of `7.3~rc7`.
pub fn line_of(version: &str) -> String {
    let numbers: Vec<&str> = version
        .split(['.', '~', '+'])
        .take_while(|part| part.chars().all(|c| c.is_ascii_digit()))
        .take(2)
        .collect();
    numbers.join(".")
}

/// Where a build lives in the cache.
pub fn build_dir(kernels_dir: &Path, build: &KernelBuild) -> PathBuf {
    kernels_dir.join(&build.version)
}

#[cfg(test)]
#[path = "kernel_archive_tests.rs"]
mod tests;
