//! Fuzzes the agent's request parser with arbitrary bytes: it must answer
//! every line with a request or a bad-request error, never panic, and whatever it
//! accepts must be one of the typed requests (no free-form command exists).

#![no_main]

use libfuzzer_sys::fuzz_target;
use tcplab::agent::parse_request;
use tcplab::protocol::AgentErrorKind;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    match parse_request(line) {
        // Whatever parses must serialize back: it is a well-formed request.
        Ok(request) => {
            let again = serde_json::to_string(&request).expect("a parsed request re-serializes");
            assert!(parse_request(&again).is_ok());
        }
        Err(error) => assert_eq!(error.kind, AgentErrorKind::BadRequest),
    }
});
