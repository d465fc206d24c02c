//! The few kernel settings an experiment may change on a host, and putting
//! them back.
//!
//! Only named TCP settings can be set, never a path a request chooses. They
//! live under /proc/sys/net, which is per network namespace: on the netns lab
//! a change touches the lab's own namespace only; on a real host it changes
//! the host, so the session restores every old value when it ends.

use crate::agent::error::{AgentError, failed};
use crate::protocol::{AgentErrorKind, Sysctl};

// The setting itself is protocol data (`protocol::Sysctl`); reading and
// writing it on this host is the agent's.

impl Sysctl {
    fn path(self) -> String {
        format!("/proc/sys/{}", self.name().replace('.', "/"))
    }

    /// The setting's text as /proc shows it (`40000\t40000` for a range).
    pub fn read_raw(self) -> Result<String, AgentError> {
        let path = self.path();
        std::fs::read_to_string(&path)
            .map(|text| text.trim().to_string())
            .map_err(|e| failed(format!("reading {path}: {e}")))
    }

    pub fn write(self, value: u32) -> Result<(), AgentError> {
        if !self.allowed().contains(&value) {
            return Err(AgentError::new(
                AgentErrorKind::BadRequest,
                format!(
                    "{} = {value} is out of range {:?}",
                    self.name(),
                    self.allowed()
                ),
            ));
        }
        self.write_raw(&self.text_for(value))
    }

    /// Writes back a value as /proc showed it before (from a session or a
    /// journal): digits and blanks only, never anything else.
    pub fn write_original(self, text: &str) -> Result<(), AgentError> {
        if text.is_empty()
            || !text
                .chars()
                .all(|c| c.is_ascii_digit() || c == ' ' || c == '\t')
        {
            return Err(failed(format!(
                "{}: refusing to write {text:?}",
                self.name()
            )));
        }
        self.write_raw(text)
    }

    fn write_raw(self, text: &str) -> Result<(), AgentError> {
        let path = self.path();
        std::fs::write(&path, text).map_err(|e| {
            let kind = if e.kind() == std::io::ErrorKind::PermissionDenied {
                AgentErrorKind::Privilege
            } else {
                AgentErrorKind::Failed
            };
            AgentError::new(kind, format!("writing {text:?} to {path}: {e}"))
        })
    }
}

/// The settings a session changed, with the values to put back.
#[derive(Default)]
pub struct SysctlSession {
    /// The old values as /proc showed them, written back verbatim.
    saved: Vec<(Sysctl, String)>,
}

impl SysctlSession {
    /// Sets `setting` to `value`; `original` is what it was before this
    /// session's first change (the caller journals it first).
    pub fn set(&mut self, setting: Sysctl, value: u32, original: String) -> Result<(), AgentError> {
        setting.write(value)?;
        if !self.saved.iter().any(|(s, _)| *s == setting) {
            self.saved.push((setting, original));
        }
        Ok(())
    }

    /// Has this session changed anything?
    pub fn is_empty(&self) -> bool {
        self.saved.is_empty()
    }

    /// Puts every changed setting back, newest first. What could not be put
    /// back stays listed.
    pub fn restore_all(&mut self) -> Result<(), AgentError> {
        let mut first_error = None;
        let mut stuck = Vec::new();
        while let Some((setting, old)) = self.saved.pop() {
            if let Err(error) = setting.write_original(&old) {
                first_error.get_or_insert(error);
                stuck.push((setting, old));
            }
        }
        self.saved = stuck;
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_proc_paths() {
        assert_eq!(
            Sysctl::TcpFinTimeout.path(),
            "/proc/sys/net/ipv4/tcp_fin_timeout"
        );
        assert!(
            Sysctl::TcpFinTimeout
                .read_raw()
                .unwrap()
                .parse::<u32>()
                .unwrap()
                > 0
        );
        assert_eq!(Sysctl::IpLocalPortRange.text_for(40000), "40000 40000");
    }

    #[test]
    fn out_of_range_values_are_refused_before_writing() {
        let error = Sysctl::TcpTwReuse.write(7).unwrap_err();
        assert_eq!(error.kind, AgentErrorKind::BadRequest);
    }
}
