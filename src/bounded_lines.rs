//! Reading lines from a peer with a bound that holds before anything is
//! buffered.
//!
//! `AsyncBufReadExt::lines` keeps reading until it finds a newline, however
//! far away that is, and ends the stream on bytes that are not UTF-8. The
//! agent and the orchestrator read what another machine sends, so both use
//! this instead: a line longer than the limit is skipped up to its newline
//! (never held in memory) and reported as [`Line::TooLong`]; a line that is
//! not UTF-8 is reported as [`Line::NotText`]. Either way the next line reads
//! normally, so the reader can answer with an error and carry on.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// One line, or why it could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Text(String),
    /// Longer than the limit; its bytes were discarded.
    TooLong,
    /// Not valid UTF-8.
    NotText,
}

/// Lines of at most `limit` bytes (newline excluded) from `R`.
pub struct BoundedLines<R> {
    reader: BufReader<R>,
    limit: usize,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    pub fn new(inner: R, limit: usize) -> BoundedLines<R> {
        BoundedLines {
            reader: BufReader::new(inner),
            limit,
            line: Vec::new(),
        }
    }

    /// The next line; `None` at the end of input.
    pub async fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.line.clear();
        let mut too_long = false;
        let mut read_any = false;
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                if !read_any {
                    return Ok(None);
                }
                break;
            }
            read_any = true;
            let newline = available.iter().position(|b| *b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            if !too_long {
                if self.line.len() + chunk.len() > self.limit {
                    too_long = true;
                    self.line = Vec::new();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let consumed = newline.map_or(available.len(), |at| at + 1);
            self.reader.consume(consumed);
            if newline.is_some() {
                break;
            }
        }
        if too_long {
            return Ok(Some(Line::TooLong));
        }
        Ok(Some(
            match String::from_utf8(std::mem::take(&mut self.line)) {
                Ok(text) => Line::Text(text),
                Err(_) => Line::NotText,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn lines_of(input: &[u8], limit: usize) -> Vec<Line> {
        let mut reader = BoundedLines::new(input, limit);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            lines.push(line);
        }
        lines
    }

    #[tokio::test]
    async fn long_and_binary_lines_are_reported_and_skipped() {
        let mut input = b"first\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        input.extend(b"\n\xff\xfe\nlast");
        assert_eq!(
            lines_of(&input, 1024).await,
            vec![
                Line::Text("first".into()),
                Line::TooLong,
                Line::NotText,
                Line::Text("last".into()),
            ]
        );
    }

    #[tokio::test]
    async fn a_line_of_exactly_the_limit_is_kept() {
        assert_eq!(
            lines_of(b"abcd\n", 4).await,
            vec![Line::Text("abcd".into())]
        );
        assert_eq!(lines_of(b"abcde\n", 4).await, vec![Line::TooLong]);
        assert_eq!(lines_of(b"", 4).await, vec![]);
    }
}
