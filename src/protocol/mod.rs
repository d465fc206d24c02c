//! The agent protocol: every type that crosses the seam between the
//! orchestrator and a host.
//!
//! The orchestrator writes one JSON [`Request`] per line to an agent's stdin
//! and reads one JSON [`Reply`] per line from its stdout, strictly in turn.
//! Every lab (namespaces, Vagrant, ssh, microvm) only has to deliver that
//! byte stream; experiments only speak these types. Requests are a closed
//! set of typed operations: no request carries a command line, so an agent
//! never runs anything a caller could choose freely. (A guest of a microvm
//! lab kept up by `tcplab lab up` also runs commands for its owner, on
//! channels of their own: [`exec_channel`].)
//!
//! Each request is a type of its own, tied by [`Exchange`] to the one reply
//! type that answers it, so the orchestrator's `call(TryBind { .. })` returns
//! a [`BindResult`] and nothing else can come back without being an error.
//! The files hold one concern each: a request, its reply and the payloads
//! only they carry, side by side.
//!
//! This module does no I/O: the agent (`crate::agent`) implements the
//! requests on a host, and the lab (`crate::lab`) sends them.

mod bind;
mod bounded_list;
mod capture;
mod client;
mod error_kind;
mod exchange;
pub mod exec_channel;
mod firewall_rule;
mod host_settings;
mod links;
mod server;
mod session;
mod socket_entry;
mod socket_options;
mod socket_state;

pub use bind::*;
pub use capture::*;
pub use client::*;
pub use error_kind::*;
pub use exchange::Exchange;
pub use firewall_rule::*;
pub use host_settings::*;
pub use links::*;
pub use server::*;
pub use session::*;
pub use socket_entry::*;
pub use socket_options::*;
pub use socket_state::*;

use serde::{Deserialize, Serialize};

/// Writes [`Request`] and [`Reply`] from one table, so that each request's
/// operation name, its reply and the step that names it in errors are said
/// once. Each request type is its own variant, named as its `op` on the
/// wire (`TryBind` is `{"op":"try_bind",…}`).
macro_rules! protocol {
    (
        requests { $($request:ident => $reply:ident, $step:literal;)* }
        replies { $($variant:ident($payload:ident),)* }
    ) => {
        /// What the orchestrator asks an agent to do.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "op", rename_all = "snake_case")]
        pub enum Request {
            $($request($request),)*
        }

        /// What an agent answers: the reply its request is tied to, or
        /// [`Reply::Error`].
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "reply", rename_all = "snake_case")]
        pub enum Reply {
            $($variant($payload),)*
            Error(AgentFailure),
        }

        $(
            impl From<$request> for Request {
                fn from(request: $request) -> Request {
                    Request::$request(request)
                }
            }

            impl Exchange for $request {
                type Reply = $reply;
                const STEP: &'static str = $step;
            }
        )*

        $(
            impl From<$payload> for Reply {
                fn from(payload: $payload) -> Reply {
                    Reply::$variant(payload)
                }
            }

            impl TryFrom<Reply> for $payload {
                type Error = Reply;
                fn try_from(reply: Reply) -> Result<$payload, Reply> {
                    match reply {
                        Reply::$variant(payload) => Ok(payload),
                        other => Err(other),
                    }
                }
            }
        )*

        impl Request {
            /// The step this request is, as errors and logs name it.
            pub fn step(&self) -> &'static str {
                match self {
                    $(Request::$request(_) => $step,)*
                }
            }
        }
    };
}

protocol! {
    requests {
        Hello => AgentInfo, "hello";
        CreateVeth => Done, "create veth";
        ConfigureLink => Done, "configure link";
        AddFirewallRule => FirewallRuleAdded, "firewall rule";
        Serve => Serving, "serve";
        Connect => Connected, "connect";
        TryConnect => ConnectProbe, "connect probe";
        TryConnectYoungTimeWait => YoungReuseSeen, "connect into a young TIME_WAIT";
        Freshen => Done, "freshen";
        CloseClient => Done, "close client";
        KillServer => Killed, "kill server";
        WaitForState => StateObservation, "wait for state";
        Sockets => SocketList, "list sockets";
        TryBind => BindResult, "bind probe";
        TryBindBeside => BindBeside, "bind beside live sockets";
        StartCapture => Done, "start capture";
        StopCapture => Captured, "stop capture";
        SetSysctl => Done, "sysctl";
        ProbeRebind => Rebound, "rebind probe";
        Interfaces => InterfaceList, "list interfaces";
        Mptcp => MptcpSupport, "check MPTCP";
        FreePorts => PortList, "find free ports";
        EndCase => Done, "end case";
        Reap => Reaped, "clean";
        Shutdown => Done, "shutdown";
    }
    replies {
        Hello(AgentInfo),
        Done(Done),
        FirewallRuleAdded(FirewallRuleAdded),
        Serving(Serving),
        Connected(Connected),
        Killed(Killed),
        State(StateObservation),
        Sockets(SocketList),
        Bind(BindResult),
        BindBeside(BindBeside),
        Interfaces(InterfaceList),
        Mptcp(MptcpSupport),
        FreePorts(PortList),
        Captured(Captured),
        ConnectProbe(ConnectProbe),
        YoungReuse(YoungReuseSeen),
        Rebound(Rebound),
        Reaped(Reaped),
    }
}

/// The answer of a request that only succeeds or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Done {}

#[cfg(test)]
mod tests;
