//! Colour on a terminal: each verdict, `pass` in green and `FAIL` in red,
//! in the human reports on stdout. `--color auto` (the default) colours
//! only a terminal and honours `NO_COLOR` (no-color.org); `always` and
//! `never` say so. JSON, files and stderr are never coloured.
//!
//! The reports are rendered as plain text and escaped (text from agents is
//! in them); the colour goes on after that, in one place, on the words a
//! verdict is written with: the last word of a line (`… pass`, `… FAIL`)
//! and a report's closing `PASS:` or `FAIL:`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set
    #[default]
    Auto,
    Always,
    Never,
}

static ON: AtomicBool = AtomicBool::new(false);

/// Decides, once, whether stdout gets colour.
pub fn choose(choice: ColorChoice) {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && std::io::stdout().is_terminal(),
    };
    ON.store(on, Ordering::Relaxed);
}

const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[1;31m";
const RESET: &str = "\x1b[0m";

/// `text` with its verdicts coloured, if stdout gets colour.
pub fn paint(text: &str) -> String {
    if !ON.load(Ordering::Relaxed) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        out.push_str(&paint_line(line));
    }
    out
}

fn paint_line(line: &str) -> String {
    let (body, newline) = match line.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (line, ""),
    };
    let colour = |passed: bool| if passed { GREEN } else { RED };
    for (word, passed) in [("PASS:", true), ("FAIL:", false)] {
        if let Some(rest) = body.strip_prefix(word) {
            return format!("{}{word}{RESET}{rest}{newline}", colour(passed));
        }
    }
    for (word, passed) in [(" pass", true), (" FAIL", false)] {
        if let Some(head) = body.strip_suffix(word) {
            let word = &word[1..];
            return format!("{head} {}{word}{RESET}{newline}", colour(passed));
        }
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_verdict_words_are_coloured() {
        assert_eq!(
            paint_line("  0     0     FIN_WAIT2  EADDRINUSE  pass\n"),
            "  0     0     FIN_WAIT2  EADDRINUSE  \x1b[32mpass\x1b[0m\n"
        );
        assert_eq!(
            paint_line("FAIL: 3 of 4 cases as expected"),
            "\x1b[1;31mFAIL:\x1b[0m 3 of 4 cases as expected"
        );
        let plain = "  c2  bind 0.0.0.0:8080 with SO_REUSEADDR=0: EADDRINUSE at bind\n";
        assert_eq!(paint_line(plain), plain);
        assert_eq!(paint_line("a password\n"), "a password\n");
    }
}
