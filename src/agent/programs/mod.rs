//! The programs an agent runs beside itself: the server that gets killed
//! (`tcplab serve` in `serve`, held as a child in `server`, started ahead of
//! time in `spare_server`) and the client on c1 (`client`, with
//! `prompt_close` for the client that closes the moment a FIN arrives).

pub mod client;
pub mod prompt_close;
pub mod server_child;
pub mod server_program;
pub mod spare_server;
