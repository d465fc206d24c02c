//! The address-reuse options of a listening socket: SO_REUSEADDR (the
//! article's subject) and SO_REUSEPORT (its younger relative).
//!
//! Both the server that gets killed and the bind probe set them explicitly,
//! through this one type, so "old" and "new" sockets are described the same
//! way in requests, experiment files and reports.

use serde::{Deserialize, Serialize};
use socket2::Socket;

/// Which reuse options a socket sets before `bind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReuseOptions {
    pub reuseaddr: bool,
    #[serde(default)]
    pub reuseport: bool,
}

impl ReuseOptions {
    /// Sets both options on `socket`, to true or false: never left to a default.
    pub fn apply(&self, socket: &Socket) -> std::io::Result<()> {
        socket.set_reuse_address(self.reuseaddr)?;
        socket.set_reuse_port(self.reuseport)
    }

    /// `SO_REUSEADDR=1`, or with SO_REUSEPORT when it is set.
    pub fn describe(&self) -> String {
        let mut text = format!("SO_REUSEADDR={}", self.reuseaddr as u8);
        if self.reuseport {
            text.push_str(" SO_REUSEPORT=1");
        }
        text
    }
}
