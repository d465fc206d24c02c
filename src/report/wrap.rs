//! Word wrapping for the human reports, which are meant for 80 columns.

/// The width human reports are written for.
pub const WIDTH: usize = 80;

/// Wraps `text` at word boundaries to [`WIDTH`] columns; the first line
/// starts with `first`, the others with `rest`. Ends with a newline.
pub fn wrap(text: &str, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_string();
    let mut empty = true;
    for word in text.split_whitespace() {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = rest.to_string();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(line.trim_end());
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
}
