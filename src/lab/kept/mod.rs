//! Labs kept up between commands (`tcplab lab up`, `exec`, `shell`,
//! `down`): c1 and c2 stay, for a person to try things by hand, as the
//! article does.
//!
//! A lab that is up is a keeper process (`tcplab lab hold`, started by
//! `lab up` in a session of its own) that holds the lab's agents, and so its
//! network namespaces: they live exactly as long as the keeper, even after
//! `kill -9` of it (the agents die with their parent). The keeper writes
//! what it holds into the lab's directory ([`record`]); `exec` reads it and
//! enters a host's namespaces ([`enter`]), or, on a microvm lab, runs the
//! command through one of the guest's command ports ([`guest_session`]);
//! `down` stops the keeper by pidfd (its qemu processes die with it);
//! `clean` removes the directories of keepers that died.

pub mod enter;
pub mod guest_session;
pub mod keeper;
pub mod record;
pub mod run;

pub use record::{HostRecord, KeptLab, LabState};
