//! `--keep-on-failure` at the CLI edge: the run's hosts are a lab that is
//! up (`tcplab lab hold --until-kept`), and the run says at its end whether
//! to keep it. A case failed: the keeper is told `keep` and the lab stays,
//! with how to step in. Every case passed, the run failed or was
//! interrupted: the lab is taken down. The orchestrator killed outright
//! (`kill -9`): its end of the keeper's stdin closes, and the keeper takes
//! the lab down by itself, so nothing is left.

use std::io::Write;
use std::process::{Child, ChildStdin};

use anyhow::anyhow;
use tcplab::lab::LabChoice;
use tcplab::lab::kept::record::KeptLab;

use crate::cli::KeptLabArgs;
use crate::cli::RunOptions;
use crate::lab_command::{Keeping, bring_up, how_to_step_in, take_down};
use crate::outcome::{Failure, usage};

/// A lab held for one run until it says whether to keep it.
pub struct ProvisionalLab {
    lab: KeptLab,
    keeper: Child,
    /// Taken when the run has said; closing it without `keep` lets the lab go.
    stdin: Option<ChildStdin>,
}

impl ProvisionalLab {
    /// A netns lab for the run `options` asks for, up and ready.
    pub fn start(options: &RunOptions) -> Result<ProvisionalLab, Failure> {
        if !matches!(options.lab.lab, LabChoice::Auto | LabChoice::Netns) {
            use clap::ValueEnum;
            let named = options.lab.lab.to_possible_value();
            return Err(usage(anyhow!(
                "--keep-on-failure keeps a netns lab (as `tcplab lab up` does); \
                 --lab {} cannot be kept",
                named.as_ref().map_or("?", |v| v.get_name())
            )));
        }
        let (lab, mut keeper) = bring_up(
            None,
            &KeptLabArgs {
                family: options.lab.family,
                ..KeptLabArgs::default()
            },
            Keeping::UntilKept,
        )?;
        let stdin = keeper.stdin.take();
        Ok(ProvisionalLab { lab, keeper, stdin })
    }

    pub fn name(&self) -> &str {
        &self.lab.name
    }

    /// Keeps the lab (and says on stderr how to step in) or takes it down.
    pub fn settle(mut self, keep: bool) -> Result<(), Failure> {
        if !keep {
            return self.let_go();
        }
        if let Some(mut stdin) = self.stdin.take() {
            // Had the keeper gone, the lab is gone with it: say so below.
            let _ = stdin.write_all(b"keep\n");
        }
        if self.lab.state() == tcplab::lab::kept::record::LabState::Up {
            eprintln!(
                "tcplab: a case failed, so its hosts stay up for you to step in:\n{}",
                how_to_step_in(&self.lab)
            );
        } else {
            eprintln!("tcplab: a case failed, but its lab {} went", self.lab.name);
        }
        Ok(())
    }

    fn let_go(&mut self) -> Result<(), Failure> {
        if self.stdin.take().is_none() {
            return Ok(());
        }
        let gone = take_down(&self.lab);
        let _ = self.keeper.wait();
        gone
    }
}

impl Drop for ProvisionalLab {
    /// A run that ends early (an error, `?`) takes its lab down.
    fn drop(&mut self) {
        let _ = self.let_go();
    }
}
