//! Labs kept up (`tcplab lab up`, `--keep-on-failure`), as their tests
//! look at them: what `lab status --json` lists, a command through `lab exec`.

use super::tcplab;

/// The labs `lab status --json` lists, checked against their schema.
pub fn labs_listed(marker: &str) -> Vec<serde_json::Value> {
    let status = tcplab(marker)
        .args(["lab", "status", "--json"])
        .output()
        .unwrap();
    let document: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    super::schema::assert_valid("labs", &document);
    document["labs"].as_array().unwrap().clone()
}

/// `tcplab lab exec --name NAME HOST -- ARGS…`, run to its end.
pub fn exec(marker: &str, name: &str, host: &str, args: &[&str]) -> std::process::Output {
    tcplab(marker)
        .args(["lab", "exec", "--name", name, host, "--"])
        .args(args)
        .output()
        .unwrap()
}
