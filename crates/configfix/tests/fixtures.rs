//! The two rewriters on SCOM-shaped fixtures built from real SSRS files, in every encoding
//! and line-ending style, against golden outputs; and the refusals.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::path::{Path, PathBuf};

use opsmgr_configfix::{
    Document, Edit, Encoding, Error, REPORTING_EXPECTED, reporting, webconsole,
};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// The variable that makes the real files beside the repository required (CI sets it).
const REQUIRE_SHARED: &str = "OPSMGR_REQUIRE_SHARED";

/// A real-world file from `../shared/testdata/real` beside the repository. A clone with
/// nothing beside it has none: the test says so and passes, unless `OPSMGR_REQUIRE_SHARED`
/// is set (CI), which makes the absence a failure.
fn real(name: &str) -> Option<Vec<u8>> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/real");
    if dir.is_dir() {
        return Some(std::fs::read(dir.join(name)).unwrap());
    }
    assert!(
        std::env::var_os(REQUIRE_SHARED).is_none(),
        "{} is missing and {REQUIRE_SHARED} is set: the real-file tests must run",
        dir.display()
    );
    #[allow(
        clippy::print_stderr,
        reason = "the note a skipped check owes its reader"
    )]
    {
        eprintln!(
            "note: {} is missing: the real-file checks are skipped (set {REQUIRE_SHARED} to make this a failure)",
            dir.display()
        );
    }
    None
}

/// The ways Windows tools save the same text.
fn variants(utf8_crlf: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let text = std::str::from_utf8(utf8_crlf).unwrap();
    let lf = text.replace("\r\n", "\n");
    let utf16 = |s: &str, le: bool| -> Vec<u8> {
        let bom: [u8; 2] = if le { [0xFF, 0xFE] } else { [0xFE, 0xFF] };
        bom.into_iter()
            .chain(
                s.encode_utf16()
                    .flat_map(move |u| if le { u.to_le_bytes() } else { u.to_be_bytes() }),
            )
            .collect()
    };
    let no_final_newline = text.trim_end_matches("\r\n").to_owned();
    vec![
        ("utf-8 crlf", text.as_bytes().to_vec()),
        ("utf-8 lf", lf.as_bytes().to_vec()),
        (
            "utf-8 bom",
            [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
        ),
        ("utf-8 no final newline", no_final_newline.into_bytes()),
        ("utf-16 le", utf16(text, true)),
        ("utf-16 be", utf16(text, false)),
        ("utf-16 le lf", utf16(&lf, true)),
    ]
}

/// Every byte outside the edit's spans is the same in the new file.
fn assert_identical_outside_spans(before: &[u8], edit: &Edit) {
    let after = edit.output.as_deref().unwrap();
    assert_eq!(edit.spans.len(), edit.new_spans.len());
    let (mut b, mut a) = (0, 0);
    for (old, new) in edit.spans.iter().zip(&edit.new_spans) {
        assert_eq!(
            before[b..old.start],
            after[a..new.start],
            "bytes between values differ"
        );
        (b, a) = (old.end, new.end);
    }
    assert_eq!(before[b..], after[a..], "bytes after the last value differ");
}

fn check(
    name: &str,
    fixture: &[u8],
    golden: &[u8],
    edit: impl Fn(&Document) -> Result<Edit, Error>,
    changes: usize,
) {
    for ((label, input), (_, expected)) in variants(fixture).into_iter().zip(variants(golden)) {
        let doc = Document::parse(input.clone()).unwrap();
        let result = edit(&doc).unwrap_or_else(|e| panic!("{name} {label}: {e}"));
        assert_eq!(result.changed(), changes, "{name} {label}");
        assert_eq!(
            result.output.as_deref(),
            Some(expected.as_slice()),
            "{name} {label}: golden differs"
        );
        assert_identical_outside_spans(&input, &result);
        // Run again on the output: already set, nothing to write.
        let again = edit(&Document::parse(expected.clone()).unwrap()).unwrap();
        assert_eq!(again.changed(), 0, "{name} {label}: second run");
        assert!(again.output.is_none());
        assert!(
            again
                .matches
                .iter()
                .all(|m| m.old.eq_ignore_ascii_case("MGT01.prod.local"))
        );
    }
}

#[test]
fn reporting_rewrites_both_server_names_in_every_encoding() {
    check(
        "rsreportserver.config",
        &data("rsreportserver.config"),
        &data("rsreportserver.expected.config"),
        |doc| {
            reporting(
                doc,
                "MGT01.prod.local",
                Some("RMS.prod.local"),
                REPORTING_EXPECTED,
            )
        },
        2,
    );
}

#[test]
fn webconsole_rewrites_mom_server_in_every_encoding() {
    check(
        "web.config",
        &data("web.config"),
        &data("web.expected.config"),
        |doc| webconsole(doc, "MGT01.prod.local", Some("rms.PROD.local")),
        1,
    );
}

#[test]
fn encodings_are_detected() {
    let kinds: Vec<Encoding> = variants(&data("web.config"))
        .into_iter()
        .map(|(_, bytes)| Document::parse(bytes).unwrap().encoding())
        .collect();
    assert_eq!(
        kinds,
        [
            Encoding::Utf8,
            Encoding::Utf8,
            Encoding::Utf8Bom,
            Encoding::Utf8,
            Encoding::Utf16Le,
            Encoding::Utf16Be,
            Encoding::Utf16Le
        ]
    );
}

#[test]
fn compare_and_swap_refuses_a_wrong_file() {
    let doc = Document::parse(data("web.config")).unwrap();
    match webconsole(&doc, "MGT01.prod.local", Some("OTHER.prod.local")) {
        Err(Error::Mismatch {
            line,
            found,
            expected,
            ..
        }) => {
            assert_eq!(
                (line, found.as_str(), expected.as_str()),
                (4, "RMS.prod.local", "OTHER.prod.local")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_vanilla_real_files_have_no_opsmgr_extension_and_are_refused() {
    for name in [
        "ssrs-vanilla-rsreportserver.config",
        "ssrs-dynamics-rsreportserver.config",
    ] {
        let Some(bytes) = real(name) else { return };
        let doc = Document::parse(bytes).unwrap();
        let e = reporting(&doc, "MGT01.prod.local", None, REPORTING_EXPECTED).unwrap_err();
        assert_eq!(
            e.to_string(),
            "expected 2 match(es) of Configuration/Extensions/Security/Extension/Configuration/ServerName + Configuration/Extensions/Authentication/Extension/Configuration/ServerName, found 0; nothing changed",
            "{name}"
        );
    }
    let Some(bytes) = real("ssrs-web.config") else {
        return;
    };
    let doc = Document::parse(bytes).unwrap();
    assert!(matches!(
        webconsole(&doc, "MGT01.prod.local", None),
        Err(Error::Count { found: 0, .. })
    ));
}

#[test]
fn a_wrong_count_changes_nothing() {
    let one = String::from_utf8(data("rsreportserver.config"))
        .unwrap()
        .replacen("<ServerName>RMS.prod.local</ServerName>", "", 1);
    let doc = Document::parse(one.into_bytes()).unwrap();
    assert!(matches!(
        reporting(&doc, "MGT01.prod.local", None, 2),
        Err(Error::Count { found: 1, .. })
    ));
    assert_eq!(
        reporting(&doc, "MGT01.prod.local", None, 1)
            .unwrap()
            .changed(),
        1
    );
}

#[test]
fn invalid_host_names_are_never_written() {
    let doc = Document::parse(data("web.config")).unwrap();
    for bad in ["MGT01.prod.local\"/><x", "a b", "../etc", ""] {
        assert!(
            matches!(webconsole(&doc, bad, None), Err(Error::InvalidValue { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn malformed_xml_is_refused_with_its_position() {
    let text = String::from_utf8(data("web.config")).unwrap();
    let broken = text.replacen(
        "  </appSettings>\r\n  <system.web>",
        "  </appSetings>\r\n  <system.web>",
        1,
    );
    let doc = Document::parse(broken.into_bytes()).unwrap();
    match webconsole(&doc, "MGT01.prod.local", None) {
        Err(Error::Malformed { line, message, .. }) => {
            assert_eq!(line, 8, "{message}");
            assert!(message.contains("appSetings"), "{message}");
        }
        other => panic!("{:?}", other.map(|e| e.matches)),
    }
    let unclosed = text.replacen("\r\n</configuration>", "", 1);
    let e = webconsole(
        &Document::parse(unclosed.into_bytes()).unwrap(),
        "MGT01.prod.local",
        None,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("<configuration> is not closed"),
        "{e}"
    );
}

#[test]
fn a_second_byte_order_mark_is_refused_not_skipped() {
    // UTF-8 BOM twice: the second is text before the root element.
    let doc = Document::parse(b"\xEF\xBB\xBF\xEF\xBB\xBF<b>x</b>".to_vec()).unwrap();
    let e = doc.find(&"//b".parse().unwrap()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 1, column 1: malformed XML: a second byte-order mark"
    );
}
