use super::*;

/// Lines as `apt-cache madison` printed them on 2026-12-01 (mirror renamed).
const MADISON: &str = "\
linux-image-5.10.0-30-cloud-amd64 | 5.10.218-1 | http://m.example/debian bullseye/main amd64 Packages
linux-image-6.1.0-44-cloud-amd64 | 6.1.192-1 | http://m.example/debian-security bookworm-security/main amd64 Packages
linux-image-6.1.0-0.deb11.50-cloud-amd64 | 6.1.176-1~deb11u1 | http://m.example/debian-security bullseye-security/main amd64 Packages
linux-image-6.1.0-40-cloud-amd64 | 6.1.176-1 | http://m.example/debian bookworm/main amd64 Packages
linux-image-6.12.43+deb12-cloud-amd64 | 6.12.43-1~bpo12+1 | http://m.example/debian bookworm-backports/main amd64 Packages
linux-image-6.12.43+deb13-cloud-amd64 | 6.12.43-1 | http://m.example/debian trixie/main amd64 Packages
linux-image-6.12.118+deb13-cloud-amd64 | 6.12.118-1 | http://m.example/debian-security trixie-security/main amd64 Packages
linux-image-7.3-cloud-amd64 | 7.3~rc7-1~exp1 | http://m.example/debian experimental/main amd64 Packages
linux-image-7.3.4+deb13-cloud-amd64 | 7.3.4-1~bpo13+1 | http://m.example/debian trixie-backports/main amd64 Packages
";

fn index() -> ArchiveIndex {
    ArchiveIndex {
        builds: builds_from_madison(MADISON),
        read_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
    }
}

#[test]
fn builds_come_in_version_order_one_per_version_the_releases_own_first() {
    let builds = builds_from_madison(MADISON);
    let versions: Vec<&str> = builds.iter().map(|b| b.version.as_str()).collect();
    assert_eq!(
        versions,
        [
            "5.10.218", "6.1.176", "6.1.192", "6.12.43", "6.12.118", "7.3~rc7", "7.3.4"
        ]
    );
    let b = &builds[3];
    assert_eq!(b.package, "linux-image-6.12.43+deb13-cloud-amd64");
    assert_eq!((b.suite.as_str(), b.line.as_str()), ("trixie", "6.12"));
    assert_eq!(
        b.apt_spec(),
        "linux-image-6.12.43+deb13-cloud-amd64=6.12.43-1"
    );
    assert_eq!(builds[2].suite, "bookworm-security");
    assert_eq!(
        builds[1].suite, "bookworm",
        "the release's own build of 6.1.176"
    );
}

#[test]
fn a_line_is_the_first_two_numbers() {
    assert_eq!(line_of("6.12.43"), "6.12");
    assert_eq!(line_of("7.3~rc7"), "7.3");
    assert_eq!(line_of("5.10.218"), "5.10");
    assert_eq!(line_of("7.0"), "7.0");
}

#[test]
fn all_a_line_or_one_build_and_the_nearest_when_neither() {
    let index = index();
    assert_eq!(index.lines(), ["5.10", "6.1", "6.12", "7.3"]);
    let names = |wanted: &str| -> Vec<String> {
        index
            .resolve(wanted)
            .unwrap()
            .into_iter()
            .map(|b| b.version)
            .collect()
    };
    assert_eq!(names("all"), ["5.10.218", "6.1.192", "6.12.118", "7.3.4"]);
    assert_eq!(names("6.1"), ["6.1.192"]);
    assert_eq!(names("6.12.43"), ["6.12.43"]);
    assert_eq!(names("7.3~rc7"), ["7.3~rc7"]);
    let error = index.resolve("6.12.44").unwrap_err();
    assert!(matches!(error, LabError::Usage(_)), "{error:?}");
    let text = error.to_string();
    assert!(text.contains("--kernel 6.12.44"), "{text}");
    assert!(
        text.contains("6.12.43") && text.contains("6.12.118"),
        "{text}"
    );
    assert!(!text.contains("5.10.218"), "{text}");
}

#[test]
fn the_index_survives_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(INDEX_FILE);
    let index = index();
    index.write(&path).unwrap();
    let back = ArchiveIndex::read(&path).unwrap();
    assert_eq!(back.builds, index.builds);
    assert_eq!(back.read_at, index.read_at);
}

#[test]
fn a_build_whose_modules_no_suite_holds_is_named_and_never_chosen() {
    let mut index = index();
    let shown = "Package: linux-image-7.3.4+deb13-cloud-amd64\n\
Version: 7.3.4-1~bpo13+1\n\
Depends: kmod, linux-binary-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1), \
linux-modules-7.3.4+deb13-cloud-amd64 (= 7.3.4-1~bpo13+1)\n\n\
Package: linux-image-6.12.118+deb13-cloud-amd64\nVersion: 6.12.118-1\nDepends: kmod\n";
    let known: std::collections::HashSet<&str> = ["linux-binary-7.3.4+deb13-cloud-amd64"]
        .into_iter()
        .collect();
    for build in &mut index.builds {
        build.missing = missing_parts(shown, build, &known);
    }
    let newest = index.builds.last().unwrap();
    assert_eq!(newest.version, "7.3.4");
    let missing = newest.missing.as_deref().unwrap();
    assert!(
        missing.contains("linux-modules-7.3.4+deb13-cloud-amd64"),
        "{missing}"
    );
    assert!(!missing.contains("linux-binary-"), "{missing}");
    // 7.3 falls back to its release candidate, which needs no split packages.
    assert_eq!(index.resolve("7.3").unwrap()[0].version, "7.3~rc7");
    let error = index.resolve("7.3.4").unwrap_err();
    assert!(matches!(error, LabError::Environment { .. }), "{error:?}");
    let written = tempfile::tempdir().unwrap();
    index.write(&written.path().join(INDEX_FILE)).unwrap();
    let back = ArchiveIndex::read(&written.path().join(INDEX_FILE)).unwrap();
    assert_eq!(back.builds, index.builds);
}
