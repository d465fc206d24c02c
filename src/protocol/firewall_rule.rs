//! A firewall rule as typed data, e.g. the article's FIN drop on c1, and
//! how it reads as the article writes it. The agent turns it into an
//! `iptables` argument vector (`agent::kernel::firewall`); no shell ever sees it.

use std::fmt;
use std::num::NonZeroU16;

use serde::{Deserialize, Serialize};

/// One rule of the filter table, e.g. the article's FIN drop on c1:
/// `iptables --append OUTPUT --match tcp --protocol tcp --dport 8080 --tcp-flags FIN FIN --jump DROP`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirewallRule {
    pub chain: Chain,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub sport: Option<NonZeroU16>,
    #[serde(default)]
    pub dport: Option<NonZeroU16>,
    #[serde(default)]
    pub tcp_flags: Option<TcpFlagsMatch>,
    pub target: Target,
}

/// The chains of the filter table a rule may go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Chain {
    #[serde(rename = "OUTPUT")]
    Output,
    #[serde(rename = "INPUT")]
    Input,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    #[serde(rename = "DROP")]
    Drop,
    #[serde(rename = "REJECT")]
    Reject,
}

/// `--tcp-flags MASK SET`: of the flags in `mask`, exactly those in `set` are on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpFlagsMatch {
    pub mask: Vec<TcpFlag>,
    pub set: Vec<TcpFlag>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TcpFlag {
    Syn,
    Ack,
    Fin,
    Rst,
    Urg,
    Psh,
}

impl Chain {
    fn name(self) -> &'static str {
        match self {
            Chain::Output => "OUTPUT",
            Chain::Input => "INPUT",
        }
    }
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Drop => "DROP",
            Target::Reject => "REJECT",
        }
    }
}

impl TcpFlag {
    fn name(self) -> &'static str {
        match self {
            TcpFlag::Syn => "SYN",
            TcpFlag::Ack => "ACK",
            TcpFlag::Fin => "FIN",
            TcpFlag::Rst => "RST",
            TcpFlag::Urg => "URG",
            TcpFlag::Psh => "PSH",
        }
    }
}

fn flag_list(flags: &[TcpFlag]) -> String {
    if flags.is_empty() {
        return "NONE".to_string();
    }
    flags.iter().map(|f| f.name()).collect::<Vec<_>>().join(",")
}

impl FirewallRule {
    /// The rule's match and target, in the article's word order, without the
    /// `--append`/`--delete` verb.
    fn rule_arguments(&self) -> Vec<String> {
        let mut args = vec![
            self.chain.name().to_string(),
            "--match".into(),
            "tcp".into(),
            "--protocol".into(),
            "tcp".into(),
        ];
        if let Some(port) = self.sport {
            args.extend(["--sport".into(), port.to_string()]);
        }
        if let Some(port) = self.dport {
            args.extend(["--dport".into(), port.to_string()]);
        }
        if let Some(flags) = &self.tcp_flags {
            args.extend([
                "--tcp-flags".into(),
                flag_list(&flags.mask),
                flag_list(&flags.set),
            ]);
        }
        args.extend(["--jump".into(), self.target.name().to_string()]);
        args
    }

    /// The rule with ports equal to `from` changed to `to`: on real hosts a
    /// case may run on another port than the experiment names.
    pub fn moved_to(&self, from: NonZeroU16, to: u16) -> FirewallRule {
        let follow = |port: Option<NonZeroU16>| match port {
            Some(p) if p == from => NonZeroU16::new(to).or(Some(p)),
            other => other,
        };
        FirewallRule {
            sport: follow(self.sport),
            dport: follow(self.dport),
            ..self.clone()
        }
    }

    /// The arguments that add (`--append`) or remove (`--delete`) the rule,
    /// tagged with `tag`.
    pub fn command_arguments(&self, verb: &str, tag: &str) -> Vec<String> {
        let mut args = vec![verb.to_string()];
        args.extend(self.rule_arguments());
        args.extend([
            "--match".into(),
            "comment".into(),
            "--comment".into(),
            tag.to_string(),
        ]);
        args
    }
}

impl FirewallRule {
    /// The command that adds the rule with `program` (`iptables` or
    /// `ip6tables`), as the article writes it:
    /// `iptables --append OUTPUT --match tcp --protocol tcp --dport 8080 --tcp-flags FIN FIN --jump DROP`.
    pub fn command_line(&self, program: &str) -> String {
        format!("{program} --append {}", self.rule_arguments().join(" "))
    }
}

impl fmt::Display for FirewallRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.command_line("iptables"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn article_rule() -> FirewallRule {
        FirewallRule {
            chain: Chain::Output,
            protocol: Protocol::Tcp,
            sport: None,
            dport: NonZeroU16::new(8080),
            tcp_flags: Some(TcpFlagsMatch {
                mask: vec![TcpFlag::Fin],
                set: vec![TcpFlag::Fin],
            }),
            target: Target::Drop,
        }
    }

    #[test]
    fn displays_exactly_as_the_article_writes_it() {
        assert_eq!(
            article_rule().to_string(),
            "iptables --append OUTPUT --match tcp --protocol tcp --dport 8080 \
             --tcp-flags FIN FIN --jump DROP"
        );
    }

    #[test]
    fn delete_mirrors_append_with_the_tag() {
        let rule = article_rule();
        let add = rule.command_arguments("--append", "tcplab agent 7");
        let del = rule.command_arguments("--delete", "tcplab agent 7");
        assert_eq!(add[1..], del[1..]);
        assert_eq!(add.last().map(String::as_str), Some("tcplab agent 7"));
    }

    #[test]
    fn other_tables_and_chains_are_not_expressible() {
        let bad = r#"{"chain":"PREROUTING","target":"DROP"}"#;
        assert!(serde_json::from_str::<FirewallRule>(bad).is_err());
        let bad = r#"{"chain":"OUTPUT","target":"DROP","table":"nat"}"#;
        assert!(serde_json::from_str::<FirewallRule>(bad).is_err());
    }
}
