//! tcplab reproduces TCP socket-state experiments between two hosts, c1
//! (client) and c2 (server), and checks what the kernel really does.
//!
//! The map (the README's "How it works" has the picture):
//! - [`experiment`]: experiment files, the built-in catalogue, the runner, results;
//! - [`lab`]: bringing c1 and c2 up (network namespaces, ssh, Vagrant, qemu
//!   microVMs) and talking to the agent on each;
//! - [`protocol`]: every type that crosses the wire between the two, each
//!   request tied to its reply;
//! - [`agent`]: what runs on a host and answers the protocol: the server that
//!   gets killed, the client, firewall rules, sock_diag, the bind probe;
//! - [`report`]: the human table and `--json`;
//! - [`tcp_state`], [`clock`], [`interrupt`], [`process`]: small shared pieces.

pub mod agent;
pub mod bisect;
pub mod bisect_page;
pub mod bounded_lines;
pub mod clock;
pub mod experiment;
pub mod interrupt;
pub mod lab;
pub mod matrix;
pub mod namespaces;
pub mod output_file;
pub mod pidfd;
pub mod process;
pub mod protocol;
pub mod report;
pub mod tcp_state;
pub mod terminal_text;
