//! What lets a host be put back after an agent that could not: the journal
//! every change on a real host is written to before it is made, and the
//! reaping of dead sessions' journals (`tcplab lab clean`).

pub mod journal;
pub mod reap;
