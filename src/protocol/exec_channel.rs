//! The exec channel of a kept microvm guest: how `tcplab lab exec` runs a
//! person's command inside a VM of a lab that is up.
//!
//! It is not the agent protocol. The agent answers a closed set of typed
//! requests; this channel runs whatever command line comes, which is the
//! point of stepping into a lab. It exists only in guests booted by
//! `tcplab lab up --lab microvm`, on virtio serial ports of their own
//! ([`EXEC_PORTS`] per guest, so that a server, an `nc` and an `ss` can run
//! side by side). On this machine each port is a Unix socket inside the
//! lab's directory, which only the lab's owner can enter.
//!
//! One session per connection: the client sends [`Frame::Start`], then
//! stdin as it comes; the guest answers [`Frame::Started`] with the same
//! nonce, then the command's output, then [`Frame::Exit`]. Frames are a
//! kind byte, a big-endian u32 length and that many bytes. A guest's writes
//! wait while no client is connected, so output of a session whose client
//! left may reach the next client first: the nonce tells it which frames
//! are its own.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Command channels per guest: sessions that can run at once on one host.
pub const EXEC_PORTS: usize = 4;
/// The longest frame either side accepts.
const MAX_FRAME: usize = 1024 * 1024;

/// The virtio serial port name of channel `index`.
pub fn exec_port_name(index: usize) -> String {
    format!("tcplab.exec.{index}")
}

/// A terminal's size, for a command given a terminal of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStart {
    /// Echoed in [`Frame::Started`]: what came before it is not this session's.
    pub nonce: u64,
    pub argv: Vec<String>,
    /// A terminal of this size, or plain pipes.
    pub tty: Option<WindowSize>,
    /// The client's `$TERM`, for a command given a terminal.
    pub term: Option<String>,
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// Why it could not start (no such command, say).
    pub error: Option<String>,
}

/// One frame, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Start(ExecStart),
    Stdin(Vec<u8>),
    StdinEnd,
    Started(u64),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(ExecExit),
}

impl Frame {
    /// The frame as it goes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body) = match self {
            Frame::Start(start) => (1, serde_json::to_vec(start).unwrap_or_default()),
            Frame::Stdin(bytes) => (2, bytes.clone()),
            Frame::StdinEnd => (3, Vec::new()),
            Frame::Started(nonce) => (4, nonce.to_be_bytes().to_vec()),
            Frame::Stdout(bytes) => (5, bytes.clone()),
            Frame::Stderr(bytes) => (6, bytes.clone()),
            Frame::Exit(exit) => (7, serde_json::to_vec(exit).unwrap_or_default()),
        };
        let mut wire = Vec::with_capacity(5 + body.len());
        wire.push(kind);
        wire.extend_from_slice(&(body.len() as u32).to_be_bytes());
        wire.extend_from_slice(&body);
        wire
    }

    /// Writes the frame whole.
    pub fn write_to(&self, writer: &mut impl Write) -> io::Result<()> {
        writer.write_all(&self.encode())?;
        writer.flush()
    }

    /// The next frame, or `None` when the stream ends between frames.
    pub fn read_from(reader: &mut impl Read) -> io::Result<Option<Frame>> {
        let mut header = [0u8; 5];
        match reader.read(&mut header[..1])? {
            0 => return Ok(None),
            _ => reader.read_exact(&mut header[1..])?,
        }
        let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        if length > MAX_FRAME {
            return Err(invalid(format!("a frame of {length} bytes")));
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        Frame::decode(header[0], body).map(Some)
    }

    fn decode(kind: u8, body: Vec<u8>) -> io::Result<Frame> {
        Ok(match kind {
            1 => Frame::Start(json(&body)?),
            2 => Frame::Stdin(body),
            3 => Frame::StdinEnd,
            4 => Frame::Started(u64::from_be_bytes(
                body.try_into()
                    .map_err(|_| invalid("a nonce of the wrong size".into()))?,
            )),
            5 => Frame::Stdout(body),
            6 => Frame::Stderr(body),
            7 => Frame::Exit(json(&body)?),
            other => return Err(invalid(format!("unknown frame kind {other}"))),
        })
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("exec channel: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_frame_reads_back_as_written() {
        let frames = [
            Frame::Start(ExecStart {
                nonce: 7,
                argv: vec!["nc".into(), "c2".into(), "8080".into()],
                tty: Some(WindowSize { rows: 24, cols: 80 }),
                term: Some("xterm".into()),
            }),
            Frame::Stdin(b"hello\n".to_vec()),
            Frame::StdinEnd,
            Frame::Started(7),
            Frame::Stdout(vec![0, 255, 10]),
            Frame::Stderr(Vec::new()),
            Frame::Exit(ExecExit {
                code: Some(3),
                signal: None,
                error: None,
            }),
        ];
        let wire: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        let mut reader = &wire[..];
        for frame in &frames {
            assert_eq!(Frame::read_from(&mut reader).unwrap().as_ref(), Some(frame));
        }
        assert_eq!(Frame::read_from(&mut reader).unwrap(), None);
    }

    #[test]
    fn a_huge_or_unknown_frame_is_an_error() {
        let mut huge = &[2u8, 0xff, 0xff, 0xff, 0xff][..];
        assert!(Frame::read_from(&mut huge).is_err());
        let mut unknown = &[9u8, 0, 0, 0, 0][..];
        assert!(Frame::read_from(&mut unknown).is_err());
        let mut cut = &[2u8, 0, 0, 0, 9, 1][..];
        assert!(Frame::read_from(&mut cut).is_err());
    }
}
