//! `tcplab sockets`: the TCP sockets of this network namespace, as a
//! netstat-like table or as a JSON document whose `sockets` each have a
//! `state`, `local`, `remote` and `timer_ms`.

use crate::protocol::SocketEntry;

use super::ReportError;

/// The header and one `netstat -tan`-style line per socket.
pub fn table(sockets: &[SocketEntry]) -> String {
    let mut out = format!(
        "{:<5} {:>6} {:>6} {:<23} {:<23} {:<11} Timer\n",
        "Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State"
    );
    for socket in sockets {
        out.push_str(&socket.netstat_line());
        out.push('\n');
    }
    out
}

/// The sockets as one JSON document: `{"tool", "schema_version",
/// "sockets": [...]}`.
pub fn json(sockets: &[SocketEntry]) -> Result<String, ReportError> {
    #[derive(serde::Serialize)]
    struct Sockets<'a> {
        sockets: &'a [SocketEntry],
    }
    Ok(super::document::to_json(&Sockets { sockets })?)
}
