//! `tcplab sockets`: the TCP sockets of this namespace, read over sock_diag,
//! checked against sockets this test makes on loopback.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};

use common::{new_marker, tcplab};

fn sockets(args: &[&str]) -> (Option<i32>, String) {
    let output = tcplab(&new_marker())
        .arg("sockets")
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn a_listening_socket_is_listed_with_its_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let (code, stdout) = sockets(&["--port", &port, "--json"]);
    assert_eq!(code, Some(0));
    let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let list = list["sockets"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{stdout}");
    assert_eq!(list[0]["state"], "LISTEN");
    assert_eq!(list[0]["local"], format!("127.0.0.1:{port}"));
    assert_eq!(list[0]["remote"], "0.0.0.0:0");
    assert!(list[0]["timer_ms"].is_null());
}

#[test]
fn time_wait_is_listed_with_its_timer() {
    // The server side closes first, the client answers: the server side of
    // this loopback connection goes to TIME_WAIT.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(address).unwrap();
    let (served, _) = listener.accept().unwrap();
    drop(served);
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).unwrap();
    drop(client);
    drop(listener);

    let port = address.port().to_string();
    let mut entry = None;
    for _ in 0..100 {
        let (code, stdout) = sockets(&["--port", &port, "--state", "time-wait", "--json"]);
        assert_eq!(code, Some(0));
        let list: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        if let Some(first) = list["sockets"].as_array().unwrap().first() {
            entry = Some(first.clone());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let entry = entry.expect("no TIME_WAIT socket appeared");
    assert_eq!(entry["state"], "TIME_WAIT");
    assert_eq!(entry["local"], address.to_string());
    let timer = entry["timer_ms"].as_u64().unwrap();
    assert!(timer > 0 && timer <= 60_000, "{timer}");

    let (code, table) = sockets(&["--port", &port, "--state", "TIME_WAIT"]);
    assert_eq!(code, Some(0));
    assert!(table.starts_with("Proto"), "{table}");
    assert!(
        table.contains("TIME_WAIT") && table.contains("timer:(timewait,"),
        "{table}"
    );
}

#[test]
fn a_bad_state_or_port_is_a_usage_error() {
    let (code, _) = sockets(&["--state", "FIN_WAIT3"]);
    assert_eq!(code, Some(2));
    let (code, _) = sockets(&["--port", "0"]);
    assert_eq!(code, Some(2));
    let (code, _) = sockets(&["--port", "65536"]);
    assert_eq!(code, Some(2));
}
