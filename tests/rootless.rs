//! The rootless path: an unprivileged user runs an experiment without sudo,
//! and tcplab enters a user namespace by itself. The test runs as root (as
//! CI does) and drops to `nobody` with setpriv; as a normal user every other
//! test already takes this path.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{
    HostSnapshot, MARKER_VAR, assert_nothing_left, is_root, json_of, new_marker, tcplab_path,
};

#[test]
fn an_unprivileged_user_runs_fin_wait2_without_sudo() {
    if !is_root() {
        common::skip_unless_ci("not root: this test makes an unprivileged user and runs as it");
        return;
    }
    // The build directory may not be reachable for `nobody`; a copy of the
    // binary in a world-readable directory is.
    let dir =
        std::env::temp_dir().join(format!("rootless-{}", new_marker().replace("tcplab-", "")));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let binary = dir.join("tcplab");
    std::fs::copy(tcplab_path(), &binary).unwrap();

    let before = HostSnapshot::take();
    let marker = new_marker();
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&binary)
        .args(["fin-wait2", "--json", "-q"])
        .env(MARKER_VAR, &marker)
        .current_dir(&dir)
        .output()
        .expect("setpriv (util-linux) is needed for this test");
    assert_nothing_left(&marker, &before);
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let document = json_of(&output);
    assert_eq!(document["lab"]["rootless"], true);
    assert_eq!(document["passed"], true);
    assert_eq!(document["cases"][0]["state_after_kill"], "FIN_WAIT2");
}
