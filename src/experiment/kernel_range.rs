//! Ranges of kernel versions, for expectations that depend on the kernel: a
//! case may say that a range of kernels shows something else, for behaviour
//! that really changed (`[[case.on_kernel]]`, see `spec::KernelOverride`).
//!
//! ```toml
//! [[case]]
//! old_reuseaddr = true
//! new_reuseaddr = true
//! bind = "ok"
//!   [[case.on_kernel]]
//!   kernels = ">=5.16, <5.17"        # a range of `uname -r` versions
//!   bind = "EADDRINUSE"              # what those kernels give instead
//!   reason = "why, with a reference"
//! ```
//!
//! A range is one or more comparisons joined by commas, each `<`, `<=`, `>`,
//! `>=` or `=` (or nothing, meaning `=`) and a version of one to three
//! numbers; `=6.1` matches every 6.1.x. A malformed range is refused when
//! the file is read, with its line. Nothing is assumed: a kernel outside
//! every range must meet the case's own expectation.

use std::cmp::Ordering;

use serde::Deserialize;

/// `>=5.16, <6.2`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct KernelRange {
    text: String,
    bounds: Vec<(Comparison, Vec<u32>)>,
}

impl std::fmt::Display for KernelRange {
    /// As the file wrote it: `>=5.16, <6.2`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
}

impl TryFrom<String> for KernelRange {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let mut bounds = Vec::new();
        for part in text.split(',').map(str::trim) {
            let (comparison, version) = [
                ("<=", Comparison::LessOrEqual),
                (">=", Comparison::GreaterOrEqual),
                ("<", Comparison::Less),
                (">", Comparison::Greater),
                ("=", Comparison::Equal),
            ]
            .iter()
            .find_map(|(op, c)| part.strip_prefix(op).map(|rest| (*c, rest.trim())))
            .unwrap_or((Comparison::Equal, part));
            let numbers: Option<Vec<u32>> = version.split('.').map(|n| n.parse().ok()).collect();
            match numbers {
                Some(numbers) if (1..=3).contains(&numbers.len()) => {
                    bounds.push((comparison, numbers))
                }
                _ => {
                    return Err(format!(
                        "{part:?} in {text:?} is not a kernel version comparison \
                         (e.g. \">=5.16, <6.2\" or \"6.1\")"
                    ));
                }
            }
        }
        Ok(KernelRange { text, bounds })
    }
}

/// The numeric version at the start of a release: `6.1.0-50-cloud-amd64` is
/// 6.1.0, `6.12.117+deb13` is 6.12.117.
pub fn version_of(release: &str) -> Vec<u32> {
    release
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or("")
        .split('.')
        .filter_map(|n| n.parse().ok())
        .collect()
}

impl KernelRange {
    /// Does the kernel `release` fall in the range? Each bound compares as
    /// many numbers as it gives.
    pub fn contains(&self, release: &str) -> bool {
        let version = version_of(release);
        !version.is_empty()
            && self.bounds.iter().all(|(comparison, bound)| {
                let ordering = version
                    .iter()
                    .chain(std::iter::repeat(&0))
                    .take(bound.len())
                    .cmp(bound.iter());
                match comparison {
                    Comparison::Less => ordering == Ordering::Less,
                    Comparison::LessOrEqual => ordering != Ordering::Greater,
                    Comparison::Greater => ordering == Ordering::Greater,
                    Comparison::GreaterOrEqual => ordering != Ordering::Less,
                    Comparison::Equal => ordering == Ordering::Equal,
                }
            })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> KernelRange {
        KernelRange::try_from(text.to_string()).unwrap()
    }

    #[test]
    fn ranges_compare_as_many_numbers_as_they_give() {
        assert!(range("<6.1").contains("5.10.0-32-cloud-amd64"));
        assert!(!range("<6.1").contains("6.1.0-50-cloud-amd64"));
        assert!(range("6.1").contains("6.1.0-50-cloud-amd64"));
        assert!(!range("6.1").contains("6.12.117+deb13-cloud-amd64"));
        assert!(range(">=5.16, <5.17").contains("5.16.5"));
        assert!(!range(">=5.16, <5.17").contains("5.17.0"));
        assert!(range(">6.1").contains("6.12.117+deb13-cloud-amd64"));
        assert!(range("<=6.1.100").contains("6.1.0"));
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in ["", "six", ">=6.x", "6.1.2.3", "=>6.1", "<6.1,"] {
            assert!(KernelRange::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn versions_come_from_the_start_of_a_release() {
        assert_eq!(version_of("6.12.117+deb13-cloud-amd64"), vec![6, 12, 117]);
        assert_eq!(version_of("6.18.44-fc-v669"), vec![6, 18, 44]);
    }
}
