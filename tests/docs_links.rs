//! The README and the pages under docs/ point at each other and at files of
//! the repository: every relative link must lead to a file that exists, so
//! a page moved or renamed cannot leave a reader at a dead end.

use std::path::{Path, PathBuf};

/// The targets of `[text](target)` links in `markdown`.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    targets
}

fn pages() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pages = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            pages.push(path);
        }
    }
    pages
}

#[test]
fn every_relative_link_of_the_readme_and_docs_resolves() {
    let mut dead = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for target in link_targets(&text) {
            let path = target.split('#').next().unwrap_or_default();
            let external = target.contains("://") || target.starts_with("mailto:");
            if external || path.is_empty() || path.contains(' ') {
                continue;
            }
            checked += 1;
            if !dir.join(path).exists() {
                dead.push(format!("{}: {target}", page.display()));
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} links found: is the parser right?"
    );
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

/// A newcomer's page: short, and opening with the two commands that work
/// on a fresh machine (the main job, then the tests).
#[test]
fn the_readme_is_short_and_starts_with_the_two_commands() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.len() <= 12 * 1024,
        "README.md is {} bytes; keep it under 12 KB and move details into docs/",
        readme.len()
    );
    let code: Vec<&str> = readme
        .lines()
        .skip_while(|l| !l.starts_with("```"))
        .skip(1)
        .take(2)
        .collect();
    assert!(code[0].starts_with("cargo run -- fin-wait2"), "{code:?}");
    assert!(code[1].starts_with("cargo test"), "{code:?}");
}
