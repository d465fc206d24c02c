//! The apt sources as machines really have them: Debian's deb822 default,
//! one-line entries with options, Ubuntu's archive, disabled files.

use super::*;

fn etc_apt(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const DEBIAN_DEB822: &str = "Types: deb\n\
# http://snapshot.example/archive/debian/20250520T000000Z\n\
URIs: http://mirror.example/debian\n\
Suites: bookworm bookworm-updates\n\
Components: main\n\
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\
\n\
Types: deb\n\
URIs: http://mirror.example/debian-security\n\
Suites: bookworm-security\n\
Components: main\n";

#[test]
fn debian_default_deb822() {
    let dir = etc_apt(&[("sources.list.d/debian.sources", DEBIAN_DEB822)]);
    assert_eq!(
        debian_mirror_in(dir.path(), None).unwrap(),
        "http://mirror.example/debian"
    );
}

#[test]
fn one_line_with_options_takes_the_uri_not_an_option() {
    let text = "# comment\n\
deb-src http://src.example/debian bookworm main\n\
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg arch=amd64] https://m.example/debian/ trixie main\n";
    let dir = etc_apt(&[("sources.list", text)]);
    assert_eq!(
        debian_mirror_in(dir.path(), None).unwrap(),
        "https://m.example/debian"
    );
    let spaced = parse_one_line(
        "deb [ arch=amd64 ] http://m.example/debian sid main",
        Path::new("x"),
    );
    assert_eq!(spaced[0].uri, "http://m.example/debian");
    assert_eq!(spaced[0].suites, ["sid"]);
}

#[test]
fn ubuntu_security_and_disabled_files_are_not_debian_mirrors() {
    let ubuntu = "Types: deb\nURIs: http://archive.example/ubuntu/\nSuites: noble noble-updates\n\
Components: main\n";
    let security = "deb http://mirror.example/debian-security bookworm-security main\n";
    let disabled =
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nEnabled: no\n";
    let dir = etc_apt(&[
        ("sources.list.d/ubuntu.sources", ubuntu),
        ("sources.list.d/security.list", security),
        (
            "sources.list.d/old.list.disabled",
            "deb http://off.example/debian bookworm main\n",
        ),
        ("sources.list.d/off.sources", disabled),
    ]);
    let error = debian_mirror_in(dir.path(), None).unwrap_err().to_string();
    assert!(error.contains(MIRROR_VARIABLE), "{error}");
    assert!(
        error.contains("http://archive.example/ubuntu/ noble"),
        "{error}"
    );
    assert!(!error.contains("off.example"), "{error}");
    assert!(!error.contains("disabled.example"), "{error}");
}

#[test]
fn the_variable_wins_and_must_be_a_web_uri() {
    let dir = etc_apt(&[("sources.list.d/debian.sources", DEBIAN_DEB822)]);
    assert_eq!(
        debian_mirror_in(dir.path(), Some("https://own.example/debian".into())).unwrap(),
        "https://own.example/debian"
    );
    let error = debian_mirror_in(dir.path(), Some("own.example".into())).unwrap_err();
    assert_eq!(error, MirrorError::BadVariable("own.example".into()));
}

#[test]
fn continuation_lines_and_inline_keys_do_not_confuse_the_stanza() {
    let text = "Types: deb\nURIs: http://m.example/debian\nSuites: forky\nSigned-By:\n \
-----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mQINBF\n -----END PGP PUBLIC KEY BLOCK-----\n";
    let sources = parse_deb822(text, Path::new("x.sources"));
    assert_eq!(sources.len(), 1);
    assert!(sources[0].is_debian_archive());
}

#[test]
fn the_security_archive_is_the_entry_of_a_security_suite() {
    let dir = etc_apt(&[("sources.list.d/debian.sources", DEBIAN_DEB822)]);
    assert_eq!(
        security_mirror_in(dir.path(), None).as_deref(),
        Some("http://mirror.example/debian-security")
    );
    let only_main = etc_apt(&[(
        "sources.list",
        "deb http://mirror.example/debian bookworm main\n",
    )]);
    assert_eq!(security_mirror_in(only_main.path(), None), None);
    assert_eq!(
        security_mirror_in(only_main.path(), Some("https://sec.example/".into())).as_deref(),
        Some("https://sec.example")
    );
}
