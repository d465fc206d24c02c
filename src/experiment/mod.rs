//! Experiments: the files that describe them ([`spec`]), the ones built in
//! ([`catalogue`]), running them on a lab ([`runner`]) and what a run found
//! ([`result`]).

pub mod catalogue;
pub mod result;
pub mod runner;
pub mod spec;
