//! `--junit FILE`: the runs as JUnit XML, one `<testsuite>` per experiment and
//! one `<testcase>` per case, for CI systems that draw test results.
//!
//! A failed expectation is a `<failure>` whose message says what was expected
//! and what the kernel showed; the transcript of the case goes in its body.

use std::fmt::Write;

use crate::experiment::result::{CaseResult, ExperimentResult};

/// The JUnit document for `results`: several experiments (`tcplab all`) in
/// one file, which is why JUnit is not an [`super::Exporter`] of one result.
pub fn render(results: &[ExperimentResult]) -> String {
    let tests: usize = results.iter().map(|r| r.cases.len()).sum();
    let failures: usize = results
        .iter()
        .map(|r| r.cases.iter().filter(|c| !c.passed).count())
        .sum();
    let time: u64 = results.iter().map(|r| r.duration_ms).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"tcplab\" tests=\"{tests}\" failures=\"{failures}\" time=\"{}\">",
        seconds(time)
    );
    for result in results {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" time=\"{}\">",
            escape(&result.experiment),
            result.cases.len(),
            result.cases.iter().filter(|c| !c.passed).count(),
            seconds(result.duration_ms)
        );
        let _ = writeln!(
            out,
            "    <properties><property name=\"lab\" value=\"{} {}\"/></properties>",
            result.lab.kind,
            result.lab.family.name()
        );
        for case in &result.cases {
            render_case(&mut out, &result.experiment, case);
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

fn render_case(out: &mut String, experiment: &str, case: &CaseResult) {
    let _ = write!(
        out,
        "    <testcase classname=\"tcplab.{}\" name=\"{}\" time=\"{}\"",
        escape(experiment),
        escape(&case.label()),
        seconds(case.duration_ms)
    );
    if case.passed {
        out.push_str("/>\n");
        return;
    }
    out.push_str(">\n");
    let transcript: Vec<String> = case
        .transcript
        .iter()
        .map(|line| format!("{}  {}", line.host, line.text))
        .collect();
    let _ = writeln!(
        out,
        "      <failure message=\"{}\">{}</failure>",
        escape(&case.failures.join("; ")),
        escape(&transcript.join("\n"))
    );
    out.push_str("    </testcase>\n");
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Escapes text for XML attributes and content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape(r#"a<b>&"c"'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;");
        assert_eq!(escape("x\u{1}y"), "xy");
    }
}
