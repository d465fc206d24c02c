//! The frame of every JSON document tcplab prints: which tool wrote it
//! (`tool`: name, version, commit) and which version of its schema it follows
//! (`schema_version`), beside the document's own fields. A reader that keeps
//! documents (a CI archive, `matrix merge`) can tell what it holds without
//! guessing from the fields.

use serde::Serialize;

/// The version of the JSON contract (docs/json.md). 1 was the contract
/// before documents named themselves, when `list`, `sockets` and `lab
/// status` printed bare arrays; 2 frames every document as an object.
pub const SCHEMA_VERSION: u32 = 2;

/// The tool that wrote a document.
#[derive(Debug, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
    /// The commit it was built from (`build.rs`), `+changes` when the tree
    /// had changes, or `unknown` outside a git checkout.
    pub commit: &'static str,
}

/// This tcplab.
pub const THIS_TOOL: Tool = Tool {
    name: "tcplab",
    version: env!("CARGO_PKG_VERSION"),
    commit: env!("TCPLAB_COMMIT"),
};

/// `body`'s fields, after the tool and the schema version.
#[derive(Serialize)]
struct Framed<'a, T: Serialize> {
    tool: &'a Tool,
    schema_version: u32,
    #[serde(flatten)]
    body: &'a T,
}

/// `body` (a struct or map: its fields join the frame's) as one pretty
/// JSON document, ending in a newline.
pub fn to_json<T: Serialize>(body: &T) -> Result<String, serde_json::Error> {
    let framed = Framed {
        tool: &THIS_TOOL,
        schema_version: SCHEMA_VERSION,
        body,
    };
    let mut text = serde_json::to_string_pretty(&framed)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Example {
        passed: bool,
    }

    #[test]
    fn the_frame_comes_first_and_the_fields_follow() {
        let text = to_json(&Example { passed: true }).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["tool"]["name"], "tcplab");
        assert_eq!(value["tool"]["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(value["schema_version"], SCHEMA_VERSION);
        assert_eq!(value["passed"], true);
        assert!(text.find("\"tool\"") < text.find("\"passed\""), "{text}");
        assert!(text.ends_with("}\n"));
    }
}
