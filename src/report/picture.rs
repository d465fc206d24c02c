//! `--report FILE.html|.svg`: the first case as a picture a reader
//! understands without the article.
//!
//! A ladder (sequence) diagram of the packets between c1 and c2, drawn from
//! the real captures on both hosts: a packet seen leaving one host and
//! arriving at the other is an arrow between their lifelines. The FIN that
//! c1's firewall drops is never captured on either host, and the picture says
//! so with a red stub where c1 closed. Beside c2's lifeline, and as a band at
//! the bottom, the TCP states sampled on c2 over the run.

use std::fmt::Write;

use super::ReportError;
use super::markup::escape;
use crate::experiment::result::{CaseResult, ExperimentResult, Mark};
use crate::protocol::{CaptureRecord, CapturedPacket, StateSample};

const WIDTH: i64 = 900;
const C1_X: i64 = 230;
const C2_X: i64 = 600;
const ROW: i64 = 34;
const TOP: i64 = 90;

/// One thing the diagram draws, in time order.
enum Row<'a> {
    /// A packet from `from_c1` (else from c2), sent at `sent` (when captured
    /// on the sender), received at `received` (when captured on the receiver).
    Packet {
        packet: &'a CapturedPacket,
        from_c1: bool,
        received: bool,
    },
    /// A marked moment on a host, at `t_us` (the orchestrator's clock).
    Mark {
        on_c1: bool,
        mark: Mark,
        text: &'a str,
        t_us: u64,
    },
}

/// `--report FILE.html` (a page) or `FILE.svg` (the diagram alone).
pub struct PictureExporter {
    pub html: bool,
}

impl super::Exporter for PictureExporter {
    fn render(&self, result: &ExperimentResult) -> Result<String, ReportError> {
        if self.html { html(result) } else { svg(result) }
    }
}

/// The standalone HTML page: the SVG, a caption, and a check a browser runs.
pub fn html(result: &ExperimentResult) -> Result<String, ReportError> {
    let svg = svg(result)?;
    let case = first_case(result)?;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>tcplab {name}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
svg text {{ font-family: monospace; font-size: 12px; }}
.caption {{ max-width: 760px; }}
</style></head><body>
<h1>tcplab {name}</h1>
<p class="caption">{title}. Case 1 ({label}): the packets captured on both hosts,
and the TCP states sampled on c2. Verdict: {verdict}.</p>
{svg}
<p>Arrows drawn by the browser: <output id="rendered-arrows">not checked</output></p>
<script>
// Counts the packet arrows the browser actually laid out (non-empty boxes).
const drawn = [...document.querySelectorAll("svg .packet line")]
  .filter((line) => {{ const box = line.getBBox(); return box.width > 0 || box.height > 0; }});
document.getElementById("rendered-arrows").textContent = String(drawn.length);
</script>
</body></html>
"#,
        name = escape(&result.experiment),
        title = escape(&result.title),
        label = escape(&case.label()),
        verdict = if case.passed {
            "as expected"
        } else {
            "NOT as expected"
        },
    );
    Ok(out)
}

/// The diagram alone.
pub fn svg(result: &ExperimentResult) -> Result<String, ReportError> {
    let case = first_case(result)?;
    let capture = case.capture.as_ref().ok_or(ReportError::NoCapture)?;
    let rows = rows(case, &capture.c1, &capture.c2);
    // Time 0 is the first packet on the wire.
    let origin = rows
        .iter()
        .filter(|row| matches!(row, Row::Packet { .. }))
        .filter_map(row_time)
        .min()
        .unwrap_or(0);
    let end = rows.iter().filter_map(row_time).max().unwrap_or(origin);
    let ladder_end = TOP + ROW * (rows.len() as i64 + 1) + 120;
    let height = ladder_end + super::rebind_table::height(result);
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">"#
    );
    out.push_str(
        r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>
"##,
    );
    let bottom = TOP + ROW * rows.len() as i64;
    draw_lifelines(&mut out, result, bottom);
    draw_ladder(&mut out, &rows, &capture.c2.states, origin);
    // The band starts with the connection, not with the idle time before it.
    let from = capture
        .c2
        .states
        .iter()
        .position(|s| !s.states.is_empty())
        .unwrap_or(0);
    timeline(&mut out, &capture.c2.states[from..], end, bottom + 40);
    super::rebind_table::draw(&mut out, result, ladder_end);
    out.push_str("</svg>\n");
    Ok(out)
}

/// The two hosts' names and addresses over their vertical lifelines.
fn draw_lifelines(out: &mut String, result: &ExperimentResult, bottom: i64) {
    let lab = &result.lab;
    let c1_label = lab.c1.map_or("c1".to_string(), |a| format!("c1 {a}"));
    let _ = writeln!(
        out,
        r#"<text x="{C1_X}" y="30" text-anchor="middle" font-weight="bold">{}</text><text x="{C2_X}" y="30" text-anchor="middle" font-weight="bold">c2 {}</text>"#,
        escape(&c1_label),
        lab.c2
    );
    for x in [C1_X, C2_X] {
        let _ = writeln!(
            out,
            r##"<line x1="{x}" y1="45" x2="{x}" y2="{bottom}" stroke="#999" stroke-width="2"/>"##
        );
    }
}

/// One row per packet or step, each with its time since `origin`, and
/// c2's socket states beside the rows where they changed.
fn draw_ladder(out: &mut String, rows: &[Row], c2_states: &[StateSample], origin: u64) {
    let mut state_rows: std::collections::VecDeque<_> = state_labels(c2_states, rows).into();
    for (index, row) in rows.iter().enumerate() {
        let y = TOP + ROW * index as i64;
        let t = row_time(row).map_or(String::new(), |t| {
            format!("+{:.1} ms", t.saturating_sub(origin) as f64 / 1000.0)
        });
        let _ = writeln!(out, r##"<text x="8" y="{}" fill="#666">{t}</text>"##, y + 4);
        match row {
            Row::Packet {
                packet,
                from_c1,
                received,
            } => draw_packet(out, packet, *from_c1, *received, y),
            Row::Mark {
                on_c1, mark, text, ..
            } => draw_mark(out, *on_c1, *mark, text, y),
        }
        while let Some((at, label)) = state_rows.front() {
            if *at != index {
                break;
            }
            let _ = writeln!(
                out,
                r##"<text x="{}" y="{}" fill="#05a">{}</text>"##,
                C2_X + 10,
                y + 16,
                escape(label)
            );
            state_rows.pop_front();
        }
    }
}

fn first_case(result: &ExperimentResult) -> Result<&CaseResult, ReportError> {
    result.cases.first().ok_or(ReportError::NoCapture)
}

/// Packets (matched across the two captures) and marked moments, by time.
fn rows<'a>(case: &'a CaseResult, c1: &'a CaptureRecord, c2: &'a CaptureRecord) -> Vec<Row<'a>> {
    let mut rows: Vec<(u64, Row<'a>)> = Vec::new();
    for (sender, receiver, from_c1) in [(c1, c2, true), (c2, c1, false)] {
        // One pass over what the receiver got, then one look-up a packet.
        let arrived: std::collections::HashSet<_> = receiver
            .packets
            .iter()
            .filter(|p| !p.outgoing)
            .map(segment_key)
            .collect();
        for packet in sender.packets.iter().filter(|p| p.outgoing) {
            let received = arrived.contains(&segment_key(packet));
            rows.push((
                packet.t_us,
                Row::Packet {
                    packet,
                    from_c1,
                    received,
                },
            ));
        }
    }
    for line in &case.transcript {
        if let Some(mark) = line.mark {
            rows.push((
                line.t_us,
                Row::Mark {
                    on_c1: line.host == "c1",
                    mark,
                    text: &line.text,
                    t_us: line.t_us,
                },
            ));
        }
    }
    rows.sort_by_key(|(t, _)| *t);
    rows.into_iter().map(|(_, row)| row).collect()
}

/// What makes a segment seen on one host the same one seen on the other.
fn segment_key(p: &CapturedPacket) -> (u32, u32, &str, u32, u16, u16) {
    (p.seq, p.ack, p.flags.as_str(), p.len, p.sport, p.dport)
}

fn row_time(row: &Row<'_>) -> Option<u64> {
    match row {
        Row::Packet { packet, .. } => Some(packet.t_us),
        Row::Mark { t_us, .. } => Some(*t_us),
    }
}

fn draw_packet(out: &mut String, packet: &CapturedPacket, from_c1: bool, received: bool, y: i64) {
    let (x1, x2) = if from_c1 { (C1_X, C2_X) } else { (C2_X, C1_X) };
    let end = if received { x2 } else { (x1 + x2) / 2 };
    let payload = if packet.len > 0 {
        format!(" len={}", packet.len)
    } else {
        String::new()
    };
    let label = format!(
        "{}{payload} seq={} ack={}",
        packet.flags, packet.seq, packet.ack
    );
    let colour = if packet.flags.contains("FIN") {
        "#b50"
    } else if packet.flags.contains("RST") {
        "#a00"
    } else {
        "#333"
    };
    let _ = writeln!(
        out,
        r#"<g class="packet"><line x1="{x1}" y1="{y}" x2="{end}" y2="{}" stroke="{colour}" stroke-width="1.6" marker-end="url(#arrow)"/><text x="{}" y="{}" text-anchor="middle" fill="{colour}">{}</text></g>"#,
        y + 10,
        (C1_X + C2_X) / 2,
        y - 3,
        escape(&label)
    );
}

fn draw_mark(out: &mut String, on_c1: bool, mark: Mark, text: &str, y: i64) {
    let x = if on_c1 { C1_X } else { C2_X };
    match mark {
        Mark::FinDropped => {
            // Never on the wire: the stub stops at the host's own firewall.
            let _ = writeln!(
                out,
                r##"<g class="dropped"><line x1="{x}" y1="{y}" x2="{}" y2="{}" stroke="#c00" stroke-width="2" stroke-dasharray="5 3"/><text x="{}" y="{}" fill="#c00" font-weight="bold">✕</text><text x="{}" y="{}" fill="#c00">FIN dropped by c1's own OUTPUT rule: never on the wire</text></g>"##,
                x + 60,
                y + 4,
                x + 62,
                y + 9,
                x + 80,
                y + 9
            );
        }
        Mark::Probe => {
            // The answer is the point of the picture: the result gets a line
            // of its own, never cut (`bind 0.0.0.0:8080 with …` / `→ EADDRINUSE`).
            let (attempt, result) = text.rsplit_once(": ").unwrap_or((text, ""));
            let anchor = if on_c1 { "end" } else { "start" };
            let tx = if on_c1 { x - 8 } else { x + 8 };
            let _ = writeln!(
                out,
                r##"<g class="probe"><circle cx="{x}" cy="{y}" r="4" fill="#555"/><text x="{tx}" y="{}" text-anchor="{anchor}" fill="#555">{}</text><text x="{tx}" y="{}" text-anchor="{anchor}" font-weight="bold" fill="#000">→ {}</text></g>"##,
                y + 4,
                escape(&shorten(attempt, 40)),
                y + 20,
                escape(result)
            );
        }
        Mark::Close | Mark::Kill => {
            let anchor = if on_c1 { "end" } else { "start" };
            let tx = if on_c1 { x - 8 } else { x + 8 };
            let colour = if mark == Mark::Kill { "#a00" } else { "#555" };
            let _ = writeln!(
                out,
                r#"<circle cx="{x}" cy="{y}" r="4" fill="{colour}"/><text x="{tx}" y="{}" text-anchor="{anchor}" fill="{colour}">{}</text>"#,
                y + 4,
                escape(&shorten(text, 34))
            );
        }
    }
}

/// c2's state changes placed at the first row at or after them.
fn state_labels(samples: &[StateSample], rows: &[Row<'_>]) -> Vec<(usize, String)> {
    let mut labels = Vec::new();
    for sample in samples {
        let at = rows
            .iter()
            .position(|row| row_time(row).is_some_and(|t| t >= sample.t_us))
            .unwrap_or(rows.len().saturating_sub(1));
        labels.push((at, state_text(sample)));
    }
    labels.sort_by_key(|(at, _)| *at);
    labels
}

fn state_text(sample: &StateSample) -> String {
    if sample.states.is_empty() {
        "(no socket)".to_string()
    } else {
        sample
            .states
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A band of c2's states over time, one coloured segment per state.
fn timeline(out: &mut String, samples: &[StateSample], end_us: u64, y: i64) {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return;
    };
    let end_us = end_us.max(last.t_us);
    let span = end_us.saturating_sub(first.t_us).max(1) as f64;
    let left = 40.0;
    let width = (WIDTH - 80) as f64;
    let _ = writeln!(
        out,
        r##"<text x="{left}" y="{}" font-weight="bold">c2's connection over time ({:.1} ms)</text>"##,
        y - 8,
        span / 1000.0
    );
    for (index, sample) in samples.iter().enumerate() {
        let end = samples.get(index + 1).map_or(end_us, |next| next.t_us);
        // Saturating: an agent's samples may come out of order.
        let x = left + sample.t_us.saturating_sub(first.t_us) as f64 / span * width;
        let w = (end.saturating_sub(sample.t_us) as f64 / span * width).max(2.0);
        let label = state_text(sample);
        let colour = match label.as_str() {
            "ESTABLISHED" => "#8c8",
            "FIN_WAIT1" => "#fc6",
            "FIN_WAIT2" => "#f96",
            "TIME_WAIT" => "#c9f",
            "(no socket)" => "#eee",
            _ => "#9cf",
        };
        let _ = writeln!(
            out,
            r##"<rect class="state" x="{x:.1}" y="{y}" width="{w:.1}" height="22" fill="{colour}" stroke="#fff"><title>{}</title></rect>"##,
            escape(&label)
        );
        if w > 60.0 {
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{}">{}</text>"#,
                x + 4.0,
                y + 15,
                escape(&label)
            );
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}
