//! The matrix on a terminal: the table (words in each cell for a few
//! kernels, [`super::render`]; a letter per outcome beyond,
//! [`super::compact`]), then where the kernels differ and the verdict.

use super::MatrixResult;
use super::{compact, render};

/// Past this many kernels a cell's words no longer fit: letters instead.
const WORDS_UP_TO: usize = 4;

/// The whole text, at most `width` columns wide.
pub fn table(matrix: &MatrixResult, width: u16) -> String {
    let mut text = if matrix.kernels.len() > WORDS_UP_TO {
        compact::table(matrix, usize::from(width)) + "\n"
    } else {
        render::words_table(matrix, width)
    };
    text.push_str(&render::notes(matrix));
    text.push_str(&render::verdict(matrix));
    text
}
