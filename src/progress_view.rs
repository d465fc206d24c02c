//! Progress on stderr, drawn for whoever reads it. On a terminal: a live bar
//! per experiment (per kernel and experiment in a matrix) with its cases
//! done out of all, cleared before the summary prints, so a run of `tcplab
//! all` no longer pushes its own summary off the screen. Elsewhere (a pipe,
//! a CI log) and with `-v`: one line per case, as before, because a log
//! needs every line and logs interleave badly with bars. `--quiet`: nothing.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tcplab::experiment::runner::Event;

/// How progress is shown for one run.
pub enum ProgressView {
    Quiet,
    /// One line per case on stderr.
    Lines,
    /// Live bars on the terminal.
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<String, ProgressBar>>,
    },
}

impl ProgressView {
    /// Bars when stderr is a terminal and no log (`-v`, `RUST_LOG`) writes
    /// to it too; lines otherwise.
    pub fn for_stderr(quiet: bool) -> ProgressView {
        let logging = tracing::enabled!(tracing::Level::ERROR);
        if quiet {
            ProgressView::Quiet
        } else if std::io::stderr().is_terminal() && !logging {
            ProgressView::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: Mutex::new(HashMap::new()),
            }
        } else {
            ProgressView::Lines
        }
    }

    pub fn show(&self, event: Event<'_>) {
        match self {
            ProgressView::Quiet => {}
            ProgressView::Lines => {
                if let Event::Line { text, .. } = event {
                    let _ = writeln!(std::io::stderr(), "{text}");
                }
            }
            ProgressView::Bars { multi, bars } => {
                let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
                match event {
                    Event::Start { key, cases } => {
                        let bar = multi.add(ProgressBar::new(cases as u64));
                        bar.set_style(bar_style());
                        bar.set_prefix(key.to_string());
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bars.insert(key.to_string(), bar);
                    }
                    Event::Line {
                        key,
                        text,
                        case_done,
                    } => {
                        let Some(bar) = bars.get(key) else { return };
                        if case_done {
                            bar.inc(1);
                            if text.contains("NOT as expected") {
                                bar.set_message("a case was NOT as expected");
                            }
                            if bar.position() >= bar.length().unwrap_or(0) {
                                bar.finish();
                            }
                        } else {
                            // Skipped, saying why: the bar ends with the reason.
                            bar.finish_with_message(text.to_string());
                        }
                    }
                }
            }
        }
    }

    /// Clears the bars, before the summary prints.
    pub fn finish(&self) {
        if let ProgressView::Bars { multi, .. } = self {
            let _ = multi.clear();
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix:<22} [{bar:24}] {pos}/{len} cases {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}
