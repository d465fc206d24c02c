//! How wide the tables on stdout may be: the terminal's width when stdout
//! is one, 80 columns in a pipe or a file (so logs and diffs stay stable).

use std::io::IsTerminal;

/// The columns a table on stdout may use.
pub fn stdout_columns() -> u16 {
    if !std::io::stdout().is_terminal() {
        return 80;
    }
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own.
    let got = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if got == 0 && size.ws_col >= 40 {
        size.ws_col
    } else {
        80
    }
}
