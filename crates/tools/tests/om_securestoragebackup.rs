//! om-securestoragebackup driven as an operator would: real machine folders, password files
//! and stdin, exit codes and messages asserted.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(machine: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_om-securestoragebackup"))
        .arg("--machine")
        .arg(machine)
        .args(args)
        .env_remove("OPSMGR_MACHINE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        // A tool that refuses before reading its password (a corrupt file, an Upgrade that
        // would lower the cost) closes stdin first: not the test's failure.
        if let Err(e) = input.write_all(s.as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn current_key(out: &Output) -> String {
    let s = text(&out.stdout);
    let at = s.find("key ").unwrap() + 4;
    s[at..at + 32].to_owned()
}

#[test]
fn the_seed_story_backup_then_restore_on_another_machine() {
    let dir = tempfile::tempdir().unwrap();
    let (rms, mgt01) = (dir.path().join("RMS"), dir.path().join("MGT01"));
    let backup = dir.path().join("key.bin");
    let b = backup.to_str().unwrap();
    let pw = dir.path().join("pw.txt");
    std::fs::write(&pw, "Operations Manager 2007 R2!\n").unwrap();
    let p = pw.to_str().unwrap();

    // Verbs as the Windows tool spells them.
    let created = run(&rms, &["CreateKey"], None);
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let key = current_key(&created);
    assert_eq!(
        run(&rms, &["createkey"], None).status.code(),
        Some(2),
        "refuses a second key store"
    );

    let out = run(&rms, &["Backup", b, "--password-file", p], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with(&format!("Backed up 1 key(s), current {key}, to ")));
    assert_eq!(
        std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        run(&rms, &["BACKUP", b, "--password-file", p], None)
            .status
            .code(),
        Some(2),
        "no overwrite without --force"
    );

    // The RMS is lost; MGT01 gets the key from the backup.
    std::fs::remove_dir_all(&rms).unwrap();
    let out = run(
        &mgt01,
        &["Restore", b, "--password-stdin"],
        Some("Operations Manager 2007 R2!\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("Restored 1 key(s), current {key}")));
    let again = run(&mgt01, &["restore", b, "--password-file", p], None);
    assert_eq!(again.status.code(), Some(0));
    assert!(text(&again.stdout).contains(&format!(
        "already holds these keys (current {key}); nothing changed"
    )));

    let verify = run(&mgt01, &["Verify", b, "--password-file", p, "--json"], None);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(v["holds_machine_key"], true);
    assert_eq!(v["current"], key.as_str());
    assert_eq!(v["version"], 1);
}

#[test]
fn refusals_and_their_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("A"), dir.path().join("B"));
    let file = dir.path().join("a.bak");
    let f = file.to_str().unwrap();
    assert_eq!(run(&a, &["createkey"], None).status.code(), Some(0));
    assert_eq!(run(&b, &["createkey"], None).status.code(), Some(0));

    let short = run(&a, &["backup", f, "--password-stdin"], Some("seven!!\n"));
    assert_eq!(short.status.code(), Some(2));
    assert!(text(&short.stderr).contains("the password has 7 characters; at least 8 are required"));
    assert!(!file.exists(), "nothing written");

    let weak = run(&a, &["backup", f, "--password-stdin"], Some("eightchr\n"));
    assert_eq!(weak.status.code(), Some(0));
    assert!(text(&weak.stderr).contains("warning: this password is weak"));

    let wrong = run(&b, &["verify", f, "--password-stdin"], Some("eightchR\n"));
    assert_eq!(wrong.status.code(), Some(3));
    assert_eq!(
        text(&wrong.stderr),
        format!(
            "om-securestoragebackup: error: {f}: wrong password, or the backup was tampered with (the two cannot be told apart)\n"
        )
    );

    // B holds another key: verify says so (exit 1), restore refuses without --force.
    let verify = run(&b, &["verify", f, "--password-stdin"], Some("eightchr\n"));
    assert_eq!(verify.status.code(), Some(1));
    assert!(text(&verify.stdout).contains("does NOT hold the key this machine uses now"));
    let refused = run(&b, &["restore", f, "--password-stdin"], Some("eightchr\n"));
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("holds a different key store (current key ")
            && text(&refused.stderr).ends_with(
                "; nothing was replaced (--force replaces it, keeping the old store beside it)\n"
            ),
        "{}",
        text(&refused.stderr)
    );
    let forced = run(
        &b,
        &["restore", f, "--force", "--password-stdin"],
        Some("eightchr\n"),
    );
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    let saved: Vec<_> = std::fs::read_dir(b.join("SecureStorage"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("keystore.bin.replaced-"))
        .collect();
    assert_eq!(saved.len(), 1, "the old key store is kept beside");

    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() - 1);
    let cut = dir.path().join("cut.bak");
    std::fs::write(&cut, &bytes).unwrap();
    let corrupt = run(
        &a,
        &["verify", cut.to_str().unwrap(), "--password-stdin"],
        Some("eightchr\n"),
    );
    assert_eq!(corrupt.status.code(), Some(4));

    let no_tty = run(&a, &["verify", f], None);
    assert_eq!(no_tty.status.code(), Some(2));
    assert!(text(&no_tty.stderr).contains("no terminal to ask for the password"));
}

#[test]
fn rekey_and_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("M");
    let file = dir.path().join("k.bak");
    let f = file.to_str().unwrap();
    let new_pw = dir.path().join("new.txt");
    std::fs::write(&new_pw, "a brand new passphrase\n").unwrap();
    assert_eq!(run(&m, &["createkey"], None).status.code(), Some(0));
    assert_eq!(
        run(
            &m,
            &["backup", f, "--password-stdin"],
            Some("the old passphrase\n")
        )
        .status
        .code(),
        Some(0)
    );
    let rekey = run(
        &m,
        &[
            "Rekey",
            f,
            "--password-stdin",
            "--new-password-file",
            new_pw.to_str().unwrap(),
        ],
        Some("the old passphrase\n"),
    );
    assert_eq!(rekey.status.code(), Some(0), "{}", text(&rekey.stderr));
    assert_eq!(
        run(
            &m,
            &["verify", f, "--password-stdin"],
            Some("the old passphrase\n")
        )
        .status
        .code(),
        Some(3)
    );
    assert_eq!(
        run(
            &m,
            &["verify", f, "--password-stdin"],
            Some("a brand new passphrase\n")
        )
        .status
        .code(),
        Some(0)
    );
    let upgrade = run(
        &m,
        &["Upgrade", f, "--password-stdin"],
        Some("a brand new passphrase\n"),
    );
    assert_eq!(upgrade.status.code(), Some(0));
    assert!(
        text(&upgrade.stdout)
            .contains("already format version 1 with the current parameters; unchanged")
    );
}

#[test]
fn password_files_saved_by_notepad_or_powershell_open_the_same_backup() {
    let dir = tempfile::tempdir().unwrap();
    let rms = dir.path().join("RMS");
    let backup = dir.path().join("key.bin");
    let b = backup.to_str().unwrap();
    let password = "Schlüssel des RMS 2007!";
    // Notepad's "Unicode" (UTF-16 LE with a mark), PowerShell's `Set-Content -Encoding UTF8`
    // (UTF-8 with a mark), and plain UTF-8 typed into a prompt's script.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            format!("{password}\r\n")
                .encode_utf16()
                .flat_map(u16::to_le_bytes),
        )
        .collect();
    let files = [
        ("utf16.txt", utf16),
        (
            "utf8bom.txt",
            [b"\xEF\xBB\xBF".as_slice(), password.as_bytes(), b"\r\n"].concat(),
        ),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    assert_eq!(run(&rms, &["CreateKey"], None).status.code(), Some(0));
    let made = run(
        &rms,
        &["Backup", b, "--password-file", &path("utf16.txt")],
        None,
    );
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    for opener in [path("utf8bom.txt"), path("utf16.txt")] {
        let out = run(&rms, &["Verify", b, "--password-file", &opener], None);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{opener}: {}",
            text(&out.stderr)
        );
    }
    // And typed without any mark, on stdin.
    let typed = run(
        &rms,
        &["Verify", b, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
    assert_eq!(typed.status.code(), Some(0), "{}", text(&typed.stderr));
}

#[test]
fn restore_over_a_corrupt_key_store_on_the_worst_day() {
    let dir = tempfile::tempdir().unwrap();
    let (rms, mgt) = (dir.path().join("RMS"), dir.path().join("MGT01"));
    let file = dir.path().join("k.bak");
    let f = file.to_str().unwrap();
    let pw = Some("worst day of the year\n");
    assert_eq!(run(&rms, &["createkey"], None).status.code(), Some(0));
    assert_eq!(run(&mgt, &["createkey"], None).status.code(), Some(0));
    let made = run(&rms, &["backup", f, "--password-stdin"], pw);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    let store = mgt.join("SecureStorage/keystore.bin");
    let mut bytes = std::fs::read(&store).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&store, &bytes).unwrap();

    // Without --force: refused, exit 2, and the message blames the store, not the backup.
    let refused = run(&mgt, &["restore", f, "--password-stdin"], pw);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let err = text(&refused.stderr);
    assert!(err.contains("keystore.bin cannot be read"), "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(
        err.contains(
            "nothing was replaced (--force moves it aside, keeping its bytes, and restores)"
        ),
        "{err}"
    );
    assert_eq!(std::fs::read(&store).unwrap(), bytes);

    let forced = run(&mgt, &["Restore", f, "--force", "--password-stdin"], pw);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert!(text(&forced.stderr).contains("could not be read (not a valid key store"));
    assert!(text(&forced.stdout).contains("Restored 1 key(s)"));
    let saved: Vec<_> = std::fs::read_dir(store.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("keystore.bin.replaced-"))
        .collect();
    assert_eq!(saved.len(), 1);
    assert_eq!(std::fs::read(&saved[0]).unwrap(), bytes, "byte for byte");
    let verify = run(&mgt, &["verify", f, "--password-stdin"], pw);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));

    // A readable store with a key the backup lacks: restored with a warning naming it.
    std::fs::remove_file(&store).unwrap();
    assert_eq!(run(&mgt, &["createkey"], None).status.code(), Some(0));
    let current = std::fs::read(&store).unwrap()[7..23]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let forced = run(&mgt, &["restore", f, "--force", "--password-stdin"], pw);
    assert_eq!(forced.status.code(), Some(0), "{}", text(&forced.stderr));
    assert!(
        text(&forced.stderr).contains(&format!(
            "warning: the replaced key store held 1 key(s) the backup does not: {current}"
        )),
        "{}",
        text(&forced.stderr)
    );
}

#[test]
fn two_restores_at_once_leave_one_consistent_store() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        dir.path().join("A"),
        dir.path().join("B"),
        dir.path().join("M"),
    );
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "two at once, please\n").unwrap();
    let p = pw.to_str().unwrap();
    let mut files = Vec::new();
    for (machine, name) in [(&a, "a.bak"), (&b, "b.bak")] {
        assert_eq!(run(machine, &["createkey"], None).status.code(), Some(0));
        let file = dir.path().join(name).to_str().unwrap().to_owned();
        let made = run(machine, &["backup", &file, "--password-file", p], None);
        assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
        files.push(file);
    }
    assert_eq!(run(&m, &["createkey"], None).status.code(), Some(0));
    let spawn = |file: &str| {
        Command::new(env!("CARGO_BIN_EXE_om-securestoragebackup"))
            .arg("--machine")
            .arg(&m)
            .args(["restore", file, "--force", "--password-file", p])
            .env_remove("OPSMGR_MACHINE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(&files[0]), spawn(&files[1]));
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    // The store in place opens and is one of the two backups; both replaced stores are kept.
    let holds = files
        .iter()
        .filter(|f| {
            run(&m, &["verify", f, "--password-file", p], None)
                .status
                .code()
                == Some(0)
        })
        .count();
    assert_eq!(holds, 1);
    let saved = std::fs::read_dir(m.join("SecureStorage"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("keystore.bin.replaced-")
        })
        .count();
    assert_eq!(saved, 2);
}

#[test]
fn a_hostile_work_factor_is_refused_unless_raised() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("M");
    let file = dir.path().join("k.bak");
    let f = file.to_str().unwrap();
    let pw = Some("hostile header test\n");
    assert_eq!(run(&m, &["createkey"], None).status.code(), Some(0));
    assert_eq!(
        run(&m, &["backup", f, "--password-stdin"], pw)
            .status
            .code(),
        Some(0)
    );
    // 2 GiB of memory: within the format's hard limit, over the reader's default budget.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[11..15].copy_from_slice(&(2u32 << 20).to_be_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let started = std::time::Instant::now();
    let out = run(&m, &["verify", f, "--password-stdin"], pw);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("2048 MiB × 3 passes of key derivation, out of policy"),
        "{err}"
    );
    assert!(err.contains("--max-kdf-memory 2048 accepts it"), "{err}");
    assert!(started.elapsed().as_secs() < 5, "refused before deriving");
    // The flag sets the budget: 1 MiB refuses even a default backup, 64 MiB accepts it.
    bytes[11..15].copy_from_slice(&(64u32 << 10).to_be_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let out = run(
        &m,
        &["verify", f, "--password-stdin", "--max-kdf-memory", "1"],
        pw,
    );
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("64 MiB × 3 passes"));
    let out = run(
        &m,
        &["verify", f, "--password-stdin", "--max-kdf-memory", "64"],
        pw,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn rewrites_are_checked_keep_a_copy_and_never_lower_the_cost() {
    use opsmgr_securestorage::backup::seal_backup_with;
    use opsmgr_securestorage::format::KdfParams;
    use opsmgr_securestorage::keystore::{KeyStore, keystore_path};
    use opsmgr_securestorage::random::OsRandom;
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("M");
    let file = dir.path().join("k.bak");
    let f = file.to_str().unwrap();
    let bak = dir.path().join("k.bak.bak");
    let pw = Some("never weaker, never alone\n");
    assert_eq!(run(&m, &["createkey"], None).status.code(), Some(0));
    let store = KeyStore::load(&keystore_path(&m)).unwrap();

    // An old, cheap backup (as an earlier writer might have made): Verify warns, Upgrade
    // rewrites it at the current parameters, keeping the old file.
    let cheap = KdfParams {
        memory_kib: 8 * 1024,
        passes: 2,
        lanes: 1,
    };
    let old = seal_backup_with(&store, "never weaker, never alone", cheap, &mut OsRandom).unwrap();
    std::fs::write(&file, &old).unwrap();
    let verify = run(&m, &["verify", f, "--password-stdin", "--json"], pw);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));
    assert!(
        text(&verify.stderr).contains(
            "uses argon2id, 8 MiB, 2 passes, 1 lanes, below the current writer's argon2id, 64 MiB, 3 passes, 4 lanes in memory and passes; `Upgrade` rewrites it"
        ),
        "{}",
        text(&verify.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(v["below_current_parameters"], true);
    let up = run(&m, &["upgrade", f, "--password-stdin"], pw);
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    assert!(text(&up.stdout).contains("The previous file is kept as"));
    assert_eq!(std::fs::read(&bak).unwrap(), old, "the old file, unchanged");
    assert!(!dir.path().join("k.bak.new").exists());
    let verify = run(&m, &["verify", f, "--password-stdin", "--json"], pw);
    assert_eq!(verify.status.code(), Some(0));
    assert!(!text(&verify.stderr).contains("below the current writer's"));
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(v["below_current_parameters"], false);
    assert_eq!(v["kdf"], "argon2id, 64 MiB, 3 passes, 4 lanes");

    // A stronger file than the writer's: Upgrade refuses, says why, changes nothing.
    let strong = KdfParams {
        memory_kib: 64 * 1024,
        passes: 4,
        lanes: 4,
    };
    let strong_bytes =
        seal_backup_with(&store, "never weaker, never alone", strong, &mut OsRandom).unwrap();
    std::fs::write(&file, &strong_bytes).unwrap();
    let refused = run(&m, &["upgrade", f, "--password-stdin"], pw);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains(
            "uses argon2id, 64 MiB, 4 passes, 4 lanes, above the current writer's argon2id, 64 MiB, 3 passes, 4 lanes in passes: rewriting would lower its cost; unchanged"
        ),
        "{}",
        text(&refused.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), strong_bytes);

    // Rekey and Backup --force keep the file they replace.
    let new_pw = dir.path().join("new.txt");
    std::fs::write(&new_pw, "the next custodian's phrase\n").unwrap();
    let before = std::fs::read(&file).unwrap();
    let rekey = run(
        &m,
        &[
            "rekey",
            f,
            "--password-stdin",
            "--new-password-file",
            new_pw.to_str().unwrap(),
        ],
        pw,
    );
    assert_eq!(rekey.status.code(), Some(0), "{}", text(&rekey.stderr));
    assert_eq!(std::fs::read(&bak).unwrap(), before);
    let before = std::fs::read(&file).unwrap();
    let again = run(&m, &["backup", f, "--force", "--password-stdin"], pw);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(std::fs::read(&bak).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&bak).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!dir.path().join("k.bak.new").exists());
}

#[test]
fn three_of_five_custodians_back_up_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (rms, mgt) = (dir.path().join("RMS"), dir.path().join("MGT01"));
    let file = dir.path().join("custody.omkb");
    let f = file.to_str().unwrap();
    let labels = ["Alice", "Bob", "Carol", "Dan", "Eve"];
    let pw: Vec<String> = labels
        .iter()
        .map(|l| {
            let p = dir.path().join(format!("{l}.txt"));
            std::fs::write(&p, format!("{l}'s own passphrase\n")).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(run(&rms, &["createkey"], None).status.code(), Some(0));
    let mut args = vec!["Backup", f, "--custodians", "5", "--threshold", "3"];
    for (l, p) in labels.iter().zip(&pw) {
        args.extend(["--label", l, "--password-file", p]);
    }
    let made = run(&rms, &args, None);
    assert_eq!(made.status.code(), Some(0), "{}", text(&made.stderr));
    let said = text(&made.stdout);
    assert!(
        said.contains("for any 3 of 5 custodians (Alice, Bob, Carol, Dan, Eve)"),
        "{said}"
    );
    let fingerprint = said
        .split("Recovery fingerprint: ")
        .nth(1)
        .unwrap()
        .get(..19)
        .unwrap()
        .to_owned();

    // Two are refused, naming who opened; exit 3.
    let two = run(
        &mgt,
        &[
            "Restore",
            f,
            "--password-file",
            &pw[4],
            "--password-file",
            &pw[1],
        ],
        None,
    );
    assert_eq!(two.status.code(), Some(3), "{}", text(&two.stderr));
    assert!(
        text(&two.stderr).contains("the backup needs 3 custodians' passwords; 2 opened (Bob, Eve)"),
        "{}",
        text(&two.stderr)
    );
    assert!(!mgt.join("SecureStorage/keystore.bin").exists());

    // Any three, in any order, restore on another machine; the fingerprint matches.
    let three = run(
        &mgt,
        &[
            "Restore",
            f,
            "--password-file",
            &pw[4],
            "--password-file",
            &pw[0],
            "--password-file",
            &pw[2],
        ],
        None,
    );
    assert_eq!(three.status.code(), Some(0), "{}", text(&three.stderr));
    let said = text(&three.stdout);
    assert!(
        said.contains("Opened by 3 of the 3 custodians needed: Alice, Carol, Eve"),
        "{said}"
    );
    assert!(said.contains(&format!("Recovery fingerprint: {fingerprint}")));
    let verify = run(
        &mgt,
        &[
            "verify",
            f,
            "--json",
            "--password-file",
            &pw[3],
            "--password-file",
            &pw[1],
            "--password-file",
            &pw[2],
        ],
        None,
    );
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(v["version"], 3);
    assert_eq!(v["threshold"], 3);
    assert_eq!(
        v["custodians_opened"],
        serde_json::json!(["Bob", "Carol", "Dan"])
    );
    assert_eq!(v["recovery_fingerprint"], fingerprint.as_str());
    assert_eq!(v["holds_machine_key"], true);

    // Rekey does not turn it into a single-password backup; Upgrade finds nothing to do.
    let out = run(&mgt, &["rekey", f, "--password-file", &pw[0]], None);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("is a custody backup (any 3 of 5 custodians)"));
    let out = run(&mgt, &["upgrade", f], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .contains("is already format version 3 with the current parameters; unchanged"),
        "{}",
        text(&out.stdout)
    );

    // Each password named by its custodian: one derivation each; one that is not theirs is
    // named, and the count says who opened.
    let named = run(
        &mgt,
        &[
            "verify",
            f,
            "--json",
            "--password-file",
            &pw[3],
            "--custodian",
            "Dan",
            "--password-file",
            &pw[0],
            "--custodian",
            "Bob",
            "--password-file",
            &pw[2],
            "--custodian",
            "Carol",
        ],
        None,
    );
    assert_eq!(named.status.code(), Some(3), "{}", text(&named.stderr));
    let err = text(&named.stderr);
    assert!(
        err.contains(&format!(
            "--password-file {} (password 2) is not Bob's (3 key derivations in all)",
            pw[0]
        )),
        "{err}"
    );
    assert!(
        err.contains("the backup needs 3 custodians' passwords; 2 opened (Carol, Dan)"),
        "{err}"
    );
    let named = run(
        &mgt,
        &[
            "verify",
            f,
            "--json",
            "--password-file",
            &pw[3],
            "--custodian",
            "Dan",
            "--password-file",
            &pw[1],
            "--custodian",
            "Bob",
            "--password-file",
            &pw[2],
            "--custodian",
            "Carol",
        ],
        None,
    );
    assert_eq!(named.status.code(), Some(0), "{}", text(&named.stderr));
    let v: serde_json::Value = serde_json::from_slice(&named.stdout).unwrap();
    assert_eq!(v["derivations"], 3);
    for (bad, why) in [
        (
            vec![
                "verify",
                f,
                "--password-file",
                &pw[3],
                "--custodian",
                "Mallory",
            ],
            "no custodian is labelled 'Mallory' in this backup (its custodians: Alice, Bob, Carol, Dan, Eve)",
        ),
        (
            vec![
                "verify",
                f,
                "--password-file",
                &pw[3],
                "--custodian",
                "Dan",
                "--custodian",
                "Eve",
            ],
            "2 --custodian for 1 passwords",
        ),
    ] {
        let out = run(&mgt, &bad, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
    }
    // Shapes and password counts refused before anything is written.
    let other = dir.path().join("other.omkb");
    let o = other.to_str().unwrap();
    for bad in [
        vec!["backup", o, "--custodians", "3", "--threshold", "4"],
        vec!["backup", o, "--custodians", "17", "--threshold", "2"],
        vec!["backup", o, "--custodians", "3", "--threshold", "1"],
        vec![
            "backup",
            o,
            "--custodians",
            "3",
            "--threshold",
            "2",
            "--password-file",
            &pw[0],
        ],
        vec![
            "backup",
            o,
            "--password-file",
            &pw[0],
            "--password-file",
            &pw[1],
        ],
    ] {
        let out = run(&rms, &bad, None);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
        assert!(!other.exists());
    }
    let same = run(
        &rms,
        &[
            "backup",
            o,
            "--custodians",
            "2",
            "--threshold",
            "2",
            "--password-file",
            &pw[0],
            "--password-file",
            &pw[0],
        ],
        None,
    );
    assert_eq!(same.status.code(), Some(2));
    assert!(text(&same.stderr).contains("has the same password as an earlier custodian"));
}

/// The golden version 2 custody file (one salt for all custodians) upgraded to version 3 with
/// every custodian's password, named in another order: each share sealed again under its own
/// salt, the same keys inside; too few passwords, or one that is not its custodian's, leave
/// the file as it was.
#[test]
fn upgrade_moves_a_version_2_custody_backup_to_version_3() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("MGT01");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../securestorage/tests/data");
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("backup-v2.json")).unwrap()).unwrap();
    let file = dir.path().join("custody.omkb");
    std::fs::copy(data.join("backup-v2.omkb"), &file).unwrap();
    let original = std::fs::read(&file).unwrap();
    let f = file.to_str().unwrap();
    let labels: Vec<String> = golden["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_owned())
        .collect();
    let pw: Vec<String> = golden["passwords"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let path = dir.path().join(format!("pw{i}.txt"));
            std::fs::write(&path, format!("{}\n", p.as_str().unwrap())).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();

    // Two of three: refused, unchanged.
    let few = run(
        &m,
        &[
            "upgrade",
            f,
            "--password-file",
            &pw[0],
            "--password-file",
            &pw[1],
        ],
        None,
    );
    assert_eq!(few.status.code(), Some(2), "{}", text(&few.stderr));
    assert!(
        text(&few.stderr).contains("give all 3 custodians' passwords"),
        "{}",
        text(&few.stderr)
    );
    // The second custodian's password named as the first's: refused, naming it, unchanged.
    let swapped = run(
        &m,
        &[
            "upgrade",
            f,
            "--password-file",
            &pw[1],
            "--custodian",
            &labels[0],
            "--password-file",
            &pw[0],
            "--custodian",
            &labels[1],
            "--password-file",
            &pw[2],
            "--custodian",
            &labels[2],
        ],
        None,
    );
    assert_eq!(swapped.status.code(), Some(3), "{}", text(&swapped.stderr));
    assert!(
        text(&swapped.stderr).contains(&format!(
            "--password-file {} (password 1) did not open {}'s share; unchanged",
            pw[1], labels[0]
        )),
        "{}",
        text(&swapped.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), original);

    // All three, named out of order.
    let up = run(
        &m,
        &[
            "upgrade",
            f,
            "--password-file",
            &pw[2],
            "--custodian",
            &labels[2],
            "--password-file",
            &pw[0],
            "--custodian",
            &labels[0],
            "--password-file",
            &pw[1],
            "--custodian",
            &labels[1],
        ],
        None,
    );
    assert_eq!(up.status.code(), Some(0), "{}", text(&up.stderr));
    assert!(
        text(&up.stdout).contains("from format version 2"),
        "{}",
        text(&up.stdout)
    );
    assert_eq!(
        std::fs::read(dir.path().join("custody.omkb.bak")).unwrap(),
        original
    );
    let restore = run(
        &m,
        &[
            "restore",
            f,
            "--password-file",
            &pw[0],
            "--password-file",
            &pw[2],
        ],
        None,
    );
    assert_eq!(restore.status.code(), Some(0), "{}", text(&restore.stderr));
    let verify = run(
        &m,
        &[
            "verify",
            f,
            "--json",
            "--password-file",
            &pw[2],
            "--password-file",
            &pw[1],
        ],
        None,
    );
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stderr));
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(v["version"], 3);
    assert_eq!(v["threshold"], golden["threshold"]);
    assert_eq!(v["custodians"], golden["labels"]);
    assert_eq!(v["keys"], golden["keys"]);
    assert_eq!(v["recovery_fingerprint"], golden["fingerprint"]);
    assert_eq!(v["holds_machine_key"], true);
}

/// A terminal session driven as a person would: each answer is typed only once its prompt is
/// on the screen (`script` gives the tool a pseudo-terminal, as rpassword needs).
struct Terminal {
    child: std::process::Child,
    input: std::process::ChildStdin,
    screen: std::sync::mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Terminal {
    fn start(command: &str) -> Option<Self> {
        let mut child = Command::new("script")
            .args(["-qec", command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let input = child.stdin.take()?;
        let mut output = child.stdout.take()?;
        let (tx, screen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = output.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Some(Self {
            child,
            input,
            screen,
            seen: String::new(),
        })
    }

    /// Waits until `text` is on the screen after what was already read, returns what came up
    /// to and including it.
    fn expect(&mut self, text: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Some(at) = self.seen.find(text) {
                let upto: String = self.seen.drain(..at + text.len()).collect();
                return upto;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.screen.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("'{text}' never appeared; the screen: {}", self.seen),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        self.input
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        self.input.flush().unwrap();
    }
}

/// The custodians' prompt: who is typing is asked (the closed shares offered), a wrong
/// password is named with whose it was not, the count is of those needed, and an unnamed
/// password says what finding its custodian cost.
#[test]
fn custodians_at_the_prompt_say_who_they_are() {
    if Command::new("script").arg("--version").output().is_err() {
        panic!("util-linux's script is needed to give the tool a terminal");
    }
    let dir = tempfile::tempdir().unwrap();
    let (rms, mgt) = (dir.path().join("RMS"), dir.path().join("MGT01"));
    let file = dir.path().join("c.omkb");
    let f = file.to_str().unwrap();
    let mut args = vec!["Backup", f, "--custodians", "3", "--threshold", "2"];
    let pw: Vec<String> = ["Alice", "Bob", "Carol"]
        .iter()
        .map(|l| {
            let p = dir.path().join(format!("{l}.txt"));
            std::fs::write(&p, format!("{l}'s own passphrase\n")).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(run(&rms, &["createkey"], None).status.code(), Some(0));
    for (l, p) in ["Alice", "Bob", "Carol"].iter().zip(&pw) {
        args.extend(["--label", l, "--password-file", p]);
    }
    assert_eq!(run(&rms, &args, None).status.code(), Some(0));

    let command = format!(
        "{} --machine {} Restore {f}",
        env!("CARGO_BIN_EXE_om-securestoragebackup"),
        mgt.display()
    );
    let mut t = Terminal::start(&command).unwrap();
    t.expect("Custodian typing now (Alice, Bob, Carol; 0 of the 2 needed have opened) [Enter: try every closed share]: ");
    t.type_line("Mallory");
    t.expect("no custodian is labelled 'Mallory'; the custodians: Alice, Bob, Carol");
    t.expect("Custodian typing now (Alice, Bob, Carol; 0 of the 2 needed have opened)");
    t.type_line("bob");
    t.expect("Password of Bob: ");
    t.type_line("Alice's own passphrase");
    t.expect("that is not Bob's password; Bob may try again");
    t.expect("Custodian typing now (Alice, Bob, Carol; 0 of the 2 needed have opened)");
    t.type_line("Bob");
    t.expect("Password of Bob: ");
    t.type_line("Bob's own passphrase");
    t.expect("Opened Bob's share (1 of the 2 needed).");
    t.expect("Custodian typing now (Alice, Carol; 1 of the 2 needed have opened)");
    t.type_line("");
    t.expect("Password: ");
    t.type_line("Carol's own passphrase");
    t.expect("That was Carol's password (2 key derivations to find whose).");
    t.expect("Opened Carol's share (2 of the 2 needed).");
    let rest = t.expect("Recovery fingerprint: ");
    assert!(
        rest.contains("Opened by 2 of the 2 custodians needed: Bob, Carol"),
        "{rest}"
    );
    assert!(t.child.wait().unwrap().success());
    assert!(mgt.join("SecureStorage/keystore.bin").exists());
}

/// A password too short for a backup is refused when first typed, never asked a second time.
#[test]
fn a_short_password_is_refused_before_it_is_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let rms = dir.path().join("RMS");
    assert_eq!(run(&rms, &["createkey"], None).status.code(), Some(0));
    let file = dir.path().join("k.omkb");
    let command = format!(
        "{} --machine {} Backup {}",
        env!("CARGO_BIN_EXE_om-securestoragebackup"),
        rms.display(),
        file.display()
    );
    let mut t = Terminal::start(&command).unwrap();
    t.expect("Password for the backup: ");
    t.type_line("short");
    let said = t.expect("at least 8 are required");
    assert!(!said.contains("Confirm"), "{said}");
    assert_eq!(t.child.wait().unwrap().code(), Some(2));
    assert!(!file.exists());
}
