//! The agent's adapters to the kernel of its host: each one system
//! interface, used the way an experiment needs it. sock_diag (`diag`), the
//! packet capture and the segments it parses, `iptables`, sysctls, links
//! over rtnetlink, the options a socket sets, the bind and connect probes,
//! and what a restored guest needs to be fresh.

pub mod bind_probe;
pub mod capture;
pub mod diag;
pub mod firewall;
pub mod freshen;
pub mod link;
pub mod segment;
pub mod socket_options;
pub mod sysctl;
pub mod young_time_wait;
