//! The pieces every scenario's steps share: the transcript of a case, the
//! hosts' kernel settings and firewall rules, and the test seam that pauses
//! a case before a step.

use crate::protocol::{AddFirewallRule, SetSysctl};
use std::io::Write;

use super::result::{Mark, TranscriptLine};
use super::spec::{CaseSpec, Experiment, TIME_WAIT_GUARD};
use crate::clock::monotonic_us;
use crate::interrupt::Interrupt;
use crate::lab::LabHostPair;
use crate::lab::error::LabError;
pub(super) use crate::protocol::unspecified_like;

/// Collects what one case does and sees, host by host.
#[derive(Default)]
pub(super) struct Transcript(pub(super) Vec<TranscriptLine>);

impl Transcript {
    pub(super) fn say(&mut self, host: &str, text: impl Into<String>) {
        self.push(host, text.into(), None);
    }

    /// A line the report's picture marks on the host's lifeline.
    pub(super) fn mark(&mut self, host: &str, mark: Mark, text: impl Into<String>) {
        self.push(host, text.into(), Some(mark));
    }

    fn push(&mut self, host: &str, text: String, mark: Option<Mark>) {
        self.0.push(TranscriptLine {
            host: host.to_string(),
            text,
            t_us: monotonic_us(),
            mark,
        });
    }
}

/// Kernel settings and firewall rules of the case, on both hosts. Returns
/// whether c1 got any rule.
pub(super) async fn prepare_hosts(
    experiment: &Experiment,
    case: &CaseSpec,
    port: u16,
    hosts: &mut LabHostPair,
    transcript: &mut Transcript,
) -> Result<bool, LabError> {
    let spec = &experiment.spec;
    let ipv6 = hosts.link.c2.is_ipv6();
    let mut c1_settings = spec.c1.sysctl.settings();
    c1_settings.extend(case.c1_sysctl.settings());
    let mut c2_settings = spec.c2.sysctl.settings();
    for settings in [&mut c1_settings, &mut c2_settings] {
        if experiment.time_wait_guard && !settings.iter().any(|(s, _)| *s == TIME_WAIT_GUARD.0) {
            settings.insert(0, TIME_WAIT_GUARD);
        }
    }
    for (host, settings) in [(&mut hosts.c1, c1_settings), (&mut hosts.c2, c2_settings)] {
        for (setting, value) in settings {
            host.call(SetSysctl { setting, value }).await?;
            let name = host.host().to_string();
            let text = setting.text_for(value);
            let shown = if text.contains(' ') {
                format!("\"{text}\"")
            } else {
                text
            };
            transcript.say(&name, format!("sysctl -w {}={shown}", setting.name()));
        }
    }
    let no_rules = Vec::new();
    let (c1_rules, c2_rules) = if case.firewall {
        (&spec.c1.firewall, &spec.c2.firewall)
    } else {
        (&no_rules, &no_rules)
    };
    for rule in c1_rules {
        let add = AddFirewallRule {
            rule: rule.moved_to(spec.port, port),
            ipv6,
        };
        let shown = hosts.c1.call(add).await?.display;
        transcript.say("c1", shown);
    }
    for rule in c2_rules {
        let add = AddFirewallRule {
            rule: rule.moved_to(spec.port, port),
            ipv6,
        };
        let shown = hosts.c2.call(add).await?.display;
        transcript.say("c2", shown);
    }
    Ok(!c1_rules.is_empty())
}

/// A seam for fault-injection tests: with `TCPLAB_PAUSE_BEFORE=STEP`
/// (firewall, serve, connect, kill or probe) every case holds just before
/// that step until SIGUSR1 (go on) or an interrupt, so a test can kill tcplab
/// or one of its agents at that very moment and prove nothing is left.
pub(super) async fn pause_before(step: &str, interrupt: &Interrupt) {
    if !std::env::var("TCPLAB_PAUSE_BEFORE").is_ok_and(|wanted| wanted == step) {
        return;
    }
    // The handler exists before the line that invites SIGUSR1 is printed.
    let resume = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1());
    let _ = writeln!(
        std::io::stderr(),
        "tcplab: paused before {step} (TCPLAB_PAUSE_BEFORE; SIGUSR1 resumes)"
    );
    match resume {
        Ok(mut resume) => {
            tokio::select! {
                _ = resume.recv() => {}
                _ = interrupt.cancelled() => {}
            }
        }
        Err(_) => {
            interrupt.cancelled().await;
        }
    }
}
