//! Experiments: the files that describe them ([`spec`]), the ones built in
//! ([`catalogue`]), running them on a lab ([`runner`], with one module per
//! scenario's steps: `server_restart`, `client_port`, `live_socket`, and `steps` for what
//! they share) and what a run found ([`result`]).

mod bind_choice;
mod case;
mod case_spec;
pub mod catalogue;
mod client_port;
pub mod kernel_range;
mod live_socket;
pub mod result;
pub mod run_event;
pub mod runner;
mod server_restart;
pub mod spec;
mod spec_check;
mod spec_values;
mod steps;
mod whole_result;
