//! The wire format, as an agent of an earlier build reads and writes it:
//! every line here is what went over the pipe before each request became a
//! type of its own, so agents and orchestrators of both builds agree.

use super::*;

fn wire(request: impl Into<Request>) -> String {
    serde_json::to_string(&request.into()).unwrap()
}

#[test]
fn requests_round_trip_as_one_json_line() {
    let request = Request::from(TryBind {
        address: "0.0.0.0:8080".parse().unwrap(),
        reuse: SocketOptions::reuse(true, false),
    });
    let line = serde_json::to_string(&request).unwrap();
    assert_eq!(
        line,
        r#"{"op":"try_bind","address":"0.0.0.0:8080","reuse":{"reuseaddr":true,"reuseport":false}}"#
    );
    assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), request);
}

#[test]
fn requests_without_arguments_are_their_operation_alone() {
    assert_eq!(wire(Hello {}), r#"{"op":"hello"}"#);
    assert_eq!(wire(EndCase {}), r#"{"op":"end_case"}"#);
    assert_eq!(
        serde_json::from_str::<Request>(r#"{"op":"shutdown"}"#).unwrap(),
        Request::Shutdown(Shutdown {})
    );
}

#[test]
fn unknown_operations_and_fields_are_rejected() {
    for line in [
        r#"{"op":"exec","cmd":"rm -rf /"}"#,
        r#"{"op":"close_client","extra":1}"#,
        r#"{"op":"try_bind","address":"0.0.0.0:1","reuse":{"reuseaddr":true},"shell":"x"}"#,
        r#"{"op":"set_sysctl","setting":"kernel_core_pattern","value":1}"#,
    ] {
        assert!(
            serde_json::from_str::<Request>(line).is_err(),
            "accepted {line}"
        );
    }
}

#[test]
fn replies_keep_their_names_on_the_wire() {
    let done = serde_json::to_string(&Reply::from(Done {})).unwrap();
    assert_eq!(done, r#"{"reply":"done"}"#);
    let bound = Reply::from(BindResult {
        outcome: BindOutcome {
            result: "EADDRINUSE".into(),
            failed_step: Some(BindStep::Bind),
        },
    });
    assert_eq!(
        serde_json::to_string(&bound).unwrap(),
        r#"{"reply":"bind","outcome":{"result":"EADDRINUSE","failed_step":"bind"}}"#
    );
    let failure: Reply =
        serde_json::from_str(r#"{"reply":"error","kind":"missing_tool","message":"no iptables"}"#)
            .unwrap();
    assert_eq!(
        failure,
        Reply::Error(AgentFailure {
            kind: AgentErrorKind::MissingTool,
            message: "no iptables".into()
        })
    );
}

#[test]
fn a_reply_converts_only_to_the_type_its_request_is_tied_to() {
    let reply = Reply::from(Killed { pid: 7 });
    assert_eq!(
        <KillServer as Exchange>::Reply::try_from(reply.clone()),
        Ok(Killed { pid: 7 })
    );
    assert_eq!(
        <TryBind as Exchange>::Reply::try_from(reply.clone()),
        Err(reply)
    );
}

#[test]
fn each_request_names_its_step_and_its_own_wait() {
    let wait = Request::from(WaitForState {
        local_port: 8080,
        peer: "10.0.0.1:40000".parse().unwrap(),
        state: None,
        deadline_ms: 2500,
    });
    assert_eq!(wait.step(), "wait for state");
    assert_eq!(wait.waits_for(), std::time::Duration::from_millis(2500));
    assert_eq!(
        Request::from(Hello {}).waits_for(),
        std::time::Duration::ZERO
    );
    assert_eq!(<TryBind as Exchange>::STEP, "bind probe");
}
