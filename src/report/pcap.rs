//! `--pcap DIR`: every case's packets as pcapng files that Wireshark and
//! tshark open, one per host: `DIR/<experiment>-case<N>-c1.pcapng` and
//! `…-c2.pcapng`.
//!
//! The packets are the ones the report's capture already takes (an AF_PACKET
//! socket on each host's end of the link, TCP on the experiment's port), with
//! the kernel's own timestamps. The socket is SOCK_DGRAM, so each packet
//! starts at its IP header: the files use link type RAW (101, "raw IPv4 or
//! IPv6"), and each packet's direction (sent or received by that host) is in
//! its `epb_flags`. A FIN that the host's own firewall dropped never reached
//! the socket, so it is in neither file: the article's point, in Wireshark.
//!
//! The format is the `pcap-file` crate's. It writes timestamps in
//! nanoseconds, which is why every interface block says `if_tsresol = 9`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};

use crate::experiment::result::ExperimentResult;
use crate::protocol::CaptureRecord;
use crate::protocol::SNAPLEN;

/// A file that could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {message}", .path.display())]
pub struct PcapWriteError {
    pub path: PathBuf,
    pub message: String,
}

/// `epb_flags` direction bits: inbound and outbound.
const INBOUND: u32 = 0b01;
const OUTBOUND: u32 = 0b10;

/// Writes the files of every recorded case of `result` into `dir`; returns
/// their paths. c1's file is left out where the lab could not capture on
/// c1 (hosts routed to each other, whose c1 address is unknown).
pub fn write_result(dir: &Path, result: &ExperimentResult) -> Result<Vec<PathBuf>, PcapWriteError> {
    let mut written = Vec::new();
    for (index, case) in result.cases.iter().enumerate() {
        let Some(capture) = &case.capture else {
            continue;
        };
        let hosts = [
            ("c1", &capture.c1, result.lab.c1.map(|a| a.to_string())),
            ("c2", &capture.c2, Some(result.lab.c2.to_string())),
        ];
        for (host, record, address) in hosts {
            let Some(address) = address else { continue };
            let path = dir.join(format!(
                "{}-case{}-{host}.pcapng",
                result.experiment,
                index + 1
            ));
            let description = format!("tcplab {host} {address}, {}", case.label());
            write_file(&path, &description, record).map_err(|message| PcapWriteError {
                path: path.clone(),
                message,
            })?;
            written.push(path);
        }
    }
    Ok(written)
}

/// Drops the packets' bytes from `results` once written: `--json` documents
/// the packets, not their bytes.
pub fn strip_bytes(results: &mut [ExperimentResult]) {
    for case in results.iter_mut().flat_map(|r| r.cases.iter_mut()) {
        if let Some(capture) = &mut case.capture {
            for packet in capture.c1.packets.iter_mut().chain(&mut capture.c2.packets) {
                packet.raw = None;
            }
        }
    }
}

fn write_file(path: &Path, description: &str, record: &CaptureRecord) -> Result<(), String> {
    let mut output = crate::output_file::OutputFile::create(path, crate::output_file::PRIVATE)
        .map_err(|e| e.to_string())?;
    let mut writer =
        PcapNgWriter::new(std::io::BufWriter::new(output.writer())).map_err(|e| e.to_string())?;
    let interface = InterfaceDescriptionBlock {
        linktype: DataLink::RAW,
        snaplen: SNAPLEN as u32,
        options: vec![
            InterfaceDescriptionOption::IfDescription(Cow::Borrowed(description)),
            InterfaceDescriptionOption::IfTsResol(9),
        ],
    };
    writer
        .write_pcapng_block(interface)
        .map_err(|e| e.to_string())?;
    for packet in &record.packets {
        let Some(raw) = &packet.raw else { continue };
        let direction = if packet.outgoing { OUTBOUND } else { INBOUND };
        let block = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(raw.unix_ns),
            original_len: raw.length,
            data: Cow::Borrowed(&raw.bytes),
            options: vec![EnhancedPacketOption::Flags(direction)],
        };
        writer
            .write_pcapng_block(block)
            .map_err(|e| e.to_string())?;
    }
    let mut buffered = writer.into_inner();
    std::io::Write::flush(&mut buffered).map_err(|e| e.to_string())?;
    drop(buffered);
    output.commit().map_err(|e| e.to_string())
}
