//! `--pcap DIR`: the packets of every case as pcapng files, read back by
//! Debian's tshark as a user would in Wireshark. The article's point must be
//! visible there: c2 sent its FIN and c1 ACKed it, but c1's own FIN to port
//! 8080 is in neither capture, because c1's firewall dropped it before the
//! wire.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{HostSnapshot, TempExperiment, assert_nothing_left, new_marker, tcplab};

fn tshark_available() -> bool {
    let found = Command::new("tshark").arg("--version").output().is_ok();
    if !found {
        common::skip_unless_ci("tshark is not installed (apt-get install tshark)");
    }
    found
}

/// `tshark -r FILE -Y FILTER -T fields -e …`: one Vec of fields per packet.
fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut command = Command::new("tshark");
    command
        .arg("-r")
        .arg(file)
        .args(["-Y", filter, "-T", "fields"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "tshark on {}: {output:?}",
        file.display()
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

#[test]
fn every_case_writes_a_pcapng_per_host_and_c1s_fin_is_in_neither() {
    if !tshark_available() {
        return;
    }
    let before = HostSnapshot::take();
    let marker = new_marker();
    // A directory of its own; tcplab creates it.
    let scratch = TempExperiment::new("placeholder", "");
    let dir = scratch.path.with_file_name("captures");
    let started = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let output = tcplab(&marker)
        .args(["fin-wait2", "-q", "--json", "--pcap"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_nothing_left(&marker, &before);
    // The bytes went to the files, not into the JSON document.
    assert!(!String::from_utf8_lossy(&output.stdout).contains("\"raw\""));

    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let expected: Vec<String> = (1..=4)
        .flat_map(|n| ["c1", "c2"].map(|h| format!("fin-wait2-case{n}-{h}.pcapng")))
        .collect();
    assert_eq!(files, expected);

    for case in 1..=4 {
        let c1 = dir.join(format!("fin-wait2-case{case}-c1.pcapng"));
        let c2 = dir.join(format!("fin-wait2-case{case}-c2.pcapng"));
        // c2's capture: its FIN to c1, and c1's ACK of exactly that FIN.
        let fins = tshark(
            &c2,
            "tcp.flags.fin == 1",
            &["ip.src", "tcp.srcport", "tcp.seq"],
        );
        assert_eq!(fins.len(), 1, "case {case}: one FIN, c2's: {fins:?}");
        assert_eq!(fins[0][..2], ["10.211.55.10", "8080"]);
        let acked: u64 = fins[0][2].parse::<u64>().unwrap() + 1;
        let ack_filter =
            format!("ip.src == 10.211.55.5 && tcp.ack == {acked} && tcp.flags.fin == 0");
        assert!(
            !tshark(&c2, &ack_filter, &["frame.number"]).is_empty(),
            "case {case}: c1's ACK of c2's FIN"
        );
        // c1's capture has the whole conversation but no FIN from c1 to 8080.
        let all = tshark(&c1, "tcp", &["frame.number"]);
        assert!(all.len() >= 6, "case {case}: {all:?}");
        let c1_fin = tshark(
            &c1,
            "tcp.flags.fin == 1 && tcp.dstport == 8080",
            &["frame.number"],
        );
        assert!(
            c1_fin.is_empty(),
            "case {case}: c1's FIN reached the wire: {c1_fin:?}"
        );
    }

    // Directions and real (wall-clock) kernel timestamps.
    let c2 = dir.join("fin-wait2-case1-c2.pcapng");
    for packet in tshark(
        &c2,
        "tcp",
        &["ip.src", "frame.packet_flags_direction", "frame.time_epoch"],
    ) {
        let direction = if packet[0] == "10.211.55.10" {
            "0x00000002"
        } else {
            "0x00000001"
        };
        assert_eq!(packet[1], direction, "{packet:?}");
        let when: f64 = packet[2].parse().unwrap();
        assert!((when - started.as_secs_f64()).abs() < 120.0, "{packet:?}");
    }
}

#[test]
fn a_pcap_directory_that_cannot_be_made_is_a_usage_error_before_the_run() {
    let output = tcplab(&new_marker())
        .args(["fin-wait2", "-q", "--pcap", "/proc/no-such-dir/captures"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--pcap /proc/no-such-dir/captures"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}
