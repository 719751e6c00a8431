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
    assert!(text(&refused.stderr).contains("holds a different key store"));
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
    assert!(err.contains("use --force to move it aside"), "{err}");
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
    use opsmgr_securestorage::{KdfParams, KeyStore, OsRandom, keystore_path, seal_backup_with};
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

    // Rekey and Upgrade do not turn it into a single-password backup.
    for verb in ["rekey", "upgrade"] {
        let out = run(&mgt, &[verb, f, "--password-file", &pw[0]], None);
        assert_eq!(out.status.code(), Some(2), "{verb}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("is a custody backup (any 3 of 5 custodians)"));
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
