//! One TCP segment, read from the raw IP packet an AF_PACKET socket handed
//! over (the capture in [`crate::agent::kernel::capture`]): addresses, ports, flags,
//! sequence numbers, and the packet itself for `--pcap`.

use std::net::{IpAddr, Ipv4Addr};

use crate::protocol::CapturedPacket;

/// An IPv4 or IPv6 TCP segment to or from `port`, parsed.
pub(super) fn parse(packet: &[u8], outgoing: bool, port: u16, t_us: u64) -> Option<CapturedPacket> {
    let version = packet.first()? >> 4;
    let (src, dst, tcp, ip_payload) = match version {
        4 => {
            let header = usize::from(packet.first()? & 0x0f) * 4;
            if *packet.get(9)? != 6 {
                return None;
            }
            let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
            let src: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = packet.get(16..20)?.try_into().ok()?;
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let tcp = packet.get(header..total.min(packet.len()))?;
            (
                IpAddr::V4(src),
                IpAddr::V4(dst),
                tcp,
                total.saturating_sub(header),
            )
        }
        6 => {
            if *packet.get(6)? != 6 {
                return None; // extension headers: not in our experiments
            }
            let payload = usize::from(u16::from_be_bytes([*packet.get(4)?, *packet.get(5)?]));
            let src: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = packet.get(24..40)?.try_into().ok()?;
            let tcp = packet.get(40..(40 + payload).min(packet.len()))?;
            (IpAddr::V6(src.into()), IpAddr::V6(dst.into()), tcp, payload)
        }
        _ => return None,
    };
    let sport = u16::from_be_bytes([*tcp.first()?, *tcp.get(1)?]);
    let dport = u16::from_be_bytes([*tcp.get(2)?, *tcp.get(3)?]);
    if sport != port && dport != port {
        return None;
    }
    let seq = u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?);
    let ack = u32::from_be_bytes(tcp.get(8..12)?.try_into().ok()?);
    let offset = usize::from(tcp.get(12)? >> 4) * 4;
    let bits = *tcp.get(13)?;
    Some(CapturedPacket {
        t_us,
        outgoing,
        src,
        dst,
        sport,
        dport,
        flags: flag_names(bits),
        seq,
        ack,
        len: ip_payload.saturating_sub(offset) as u32,
        raw: None,
    })
}

/// `SYN|ACK`, `FIN|ACK`, `PSH|ACK`, `RST`…
fn flag_names(bits: u8) -> String {
    const NAMES: [(u8, &str); 6] = [
        (0x02, "SYN"),
        (0x01, "FIN"),
        (0x04, "RST"),
        (0x08, "PSH"),
        (0x10, "ACK"),
        (0x20, "URG"),
    ];
    let names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    names.join("|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_ipv4_syn() {
        let mut packet = vec![0u8; 40];
        packet[0] = 0x45;
        packet[2..4].copy_from_slice(&40u16.to_be_bytes());
        packet[9] = 6;
        packet[12..16].copy_from_slice(&[10, 211, 55, 5]);
        packet[16..20].copy_from_slice(&[10, 211, 55, 10]);
        packet[20..22].copy_from_slice(&39664u16.to_be_bytes());
        packet[22..24].copy_from_slice(&8080u16.to_be_bytes());
        packet[24..28].copy_from_slice(&7u32.to_be_bytes());
        packet[32] = 5 << 4;
        packet[33] = 0x02;
        let parsed = parse(&packet, true, 8080, 5).unwrap();
        assert_eq!(parsed.flags, "SYN");
        assert_eq!(parsed.seq, 7);
        assert_eq!(parsed.len, 0);
        assert_eq!(parsed.dst, "10.211.55.10".parse::<IpAddr>().unwrap());
        assert_eq!(parsed.t_us, 5);
        assert!(parse(&packet, true, 9999, 5).is_none());
    }

    #[test]
    fn flags_read_like_tcpdump() {
        assert_eq!(flag_names(0x12), "SYN|ACK");
        assert_eq!(flag_names(0x11), "FIN|ACK");
        assert_eq!(flag_names(0x18), "PSH|ACK");
    }

    #[test]
    fn a_short_ipv4_packet_is_skipped_not_a_panic() {
        // Version 4, protocol TCP at byte 9, but cut before the addresses.
        let short = [0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
        assert_eq!(parse(&short, false, 8080, 0), None);
        for length in 0..20 {
            let mut packet = [0u8; 20];
            packet[0] = 0x45;
            packet[9] = 6;
            assert_eq!(parse(&packet[..length], true, 8080, 0), None);
        }
    }
}
