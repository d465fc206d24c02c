//! Text for a terminal from strings tcplab did not write itself.
//!
//! Agents on ssh hosts and guests send error messages, transcript lines, a
//! JVM's banner and kernel releases; a compromised host could put escape
//! sequences in them (clear the screen, set the title, draw a fake PASS) or
//! bidi controls that reorder what a reader sees. Human output goes through
//! [`escape_controls`] on its way out: every C0 and C1 control but newline
//! and tab, DEL, and the bidi embedding, override and isolate characters are
//! shown as `\x1b` or `\u{202e}`. JSON output needs none of this: serde_json
//! escapes controls itself, and a program, not a terminal, reads it.

use std::borrow::Cow;
use std::fmt::Write;

/// Is `c` a character that must not reach a terminal as it is?
fn is_dangerous(c: char) -> bool {
    (c.is_control() && c != '\n' && c != '\t')
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every dangerous character written out as an escape.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_dangerous) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_dangerous(c) {
            escaped.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(escaped, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(escaped, "\\u{{{:04x}}}", c as u32);
        }
    }
    Cow::Owned(escaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_sequences_and_bidi_but_keeps_lines_and_tabs() {
        assert!(matches!(
            escape_controls("PASS: 4 of 4\n\tok"),
            Cow::Borrowed(_)
        ));
        assert_eq!(escape_controls("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape_controls("\u{1b}]0;title\u{7}"), "\\x1b]0;title\\x07");
        assert_eq!(escape_controls("x\u{9b}31m"), "x\\x9b31m");
        assert_eq!(escape_controls("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(escape_controls("\r\u{7f}"), "\\x0d\\x7f");
    }
}
