//! Word wrapping for the human reports, which are meant for 80 columns, done
//! by the `textwrap` crate (display width, not bytes: the matrix's `≠` and
//! the reports' `⇄` count as one column).

/// The width human reports are written for.
pub const WIDTH: usize = 80;

/// Wraps `text` at word boundaries to [`WIDTH`] columns; the first line
/// starts with `first`, the others with `rest`. Runs of spaces count as one.
/// Ends with a newline.
pub fn wrap(text: &str, first: &str, rest: &str) -> String {
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let options = textwrap::Options::new(WIDTH)
        .initial_indent(first)
        .subsequent_indent(rest)
        // An over-long word (a URL, a quoted command) stays whole.
        .break_words(false);
    let mut out = textwrap::fill(&words, options);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_80_columns_with_indent() {
        let text = "word ".repeat(40);
        let wrapped = wrap(&text, "", "  ");
        assert!(wrapped.lines().all(|l| l.chars().count() <= WIDTH));
        assert!(wrapped.lines().skip(1).all(|l| l.starts_with("  word")));
    }

    #[test]
    fn a_long_word_is_not_cut() {
        let long = "x".repeat(100);
        let wrapped = wrap(&format!("see {long} here"), "", "");
        assert!(wrapped.lines().any(|l| l == long), "{wrapped}");
    }
}
