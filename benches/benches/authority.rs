//! The CA at the scale of the seed's drop folder: 10,000 requests (P-256 keys, each its own,
//! a P-256 root) from `*.req` files to certificates (each with a CRL distribution point and
//! the root's address), bundles and database rows, beside the peers an operator would use
//! instead (OpenSSL in one process; one OpenSSL process per request) and the cost of the
//! signature operations alone; and the database's per-request operations at 100,000 rows.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use opsmgr_ca::authority::{Authority, Disposition, InitOptions};
use opsmgr_ca::dropfolder::{ProcessOptions, process_share};
use opsmgr_ca::request::{
    KeyType, PrivateKey, build_request, parse_policy, parse_request, request_to_pem,
};

const BATCH: usize = 10_000;
/// Requests per iteration for the one-process-per-request peers (they take seconds per 100).
const LOOP_SAMPLE: usize = 100;

fn must<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// The batch's 10,000 request files, made once and kept in the temporary folder between runs.
/// Every request has its own P-256 key: the CA holds a request whose key another request
/// already has (a key is one host's), so shared keys would measure holds, and 10,000 RSA keys
/// would take minutes to make.
fn requests() -> PathBuf {
    request_files(&format!("opsmgr-bench-requests-p256-{BATCH}"), 0..BATCH)
}

/// Where the benchmark's CAs say their CRL and root are published.
const CRL_URL: &str = "http://pki.company.local/JAMA00.crl";
const CA_ISSUERS_URL: &str = "http://pki.company.local/JAMA00.cer";

/// Request files like the batch's for the hosts numbered `hosts`, made once and kept in the
/// temporary folder's `name` between runs.
fn request_files(name: &str, hosts: std::ops::Range<usize>) -> PathBuf {
    let dir = std::env::temp_dir().join(name);
    if std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0) == hosts.len() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    must(std::fs::create_dir_all(&dir));
    std::thread::scope(|s| {
        for part in 0..2 {
            let (dir, hosts) = (&dir, hosts.clone());
            s.spawn(move || {
                for i in hosts.skip(part).step_by(2) {
                    let host = format!("agent{i:05}.company.local");
                    let inf = format!(
                        "[NewRequest]\nSubject = \"CN={host}\"\nKeyAlgorithm = ECDSA_P256\n"
                    );
                    let policy = must(parse_policy(inf.as_bytes(), "b.inf", Default::default()));
                    let key = must(PrivateKey::generate(KeyType::EcdsaP256));
                    let pem = must(build_request(&policy, &key).and_then(|r| request_to_pem(&r)));
                    must(std::fs::write(dir.join(format!("{host}.req")), pem));
                }
            });
        }
    });
    dir
}

/// Where iterations work.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// tmpfs (`/dev/shm`) when the machine has one: every contender measured as software.
    Tmpfs,
    /// The machine's own disk (the system's temporary folder), as a user runs it: files,
    /// renames and syncs at the disk's pace.
    Disk,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Tmpfs => "tmpfs",
            Place::Disk => "disk",
        }
    }
}

/// Never cleaned between iterations: this VM's journal-less ext4 slows inode allocation for
/// minutes after many files were deleted, which would measure the clean-up, not the tools.
fn work_root(name: &str, place: Place) -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = match place {
        Place::Tmpfs if shm.is_dir() => shm.to_owned(),
        _ => std::env::temp_dir(),
    };
    base.join(format!(
        "opsmgr-bench-{name}-{}-{}",
        place.name(),
        std::process::id()
    ))
}

/// A fresh folder below `root` for one iteration.
fn iteration(root: &Path) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    root.join(
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string(),
    )
}

/// A fresh CA (P-256 root) and a share holding `count` of the requests (copies).
fn fresh(work: &Path, requests: &Path, count: usize) -> (Authority, PathBuf) {
    let share = work.join("share");
    must(std::fs::create_dir_all(&share));
    let mut ca = must(Authority::init(
        &work.join("ca"),
        &InitOptions::default(),
        SystemTime::now(),
    ));
    let mut config = ca.issuer().config().clone();
    config.crl_urls = vec![CRL_URL.into()];
    config.ca_issuers_url = Some(CA_ISSUERS_URL.into());
    must(ca.set_config(config));
    let mut names: Vec<_> = must(std::fs::read_dir(requests))
        .map(|e| must(e).file_name())
        .collect();
    names.sort();
    for name in names.into_iter().take(count) {
        must(std::fs::copy(requests.join(&name), share.join(&name)));
    }
    (ca, share)
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = must(Command::new("openssl").current_dir(dir).args(args).output());
    assert!(
        out.status.success(),
        "openssl {:?}: {}",
        &args[..2],
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OpenSSL CA (P-256 root) in `dir`, the same policy: copy the request's extensions, add
/// the CRL distribution point and the root's address.
fn openssl_ca(dir: &Path) {
    must(std::fs::create_dir_all(dir.join("newcerts")));
    must(std::fs::write(dir.join("index.txt"), ""));
    must(std::fs::write(dir.join("serial"), "1000\n"));
    must(std::fs::write(
        dir.join("ca.cnf"),
        "[ca]\ndefault_ca = b\n[b]\ndir = .\ndatabase = index.txt\nnew_certs_dir = newcerts\n\
         certificate = ca.pem\nprivate_key = ca.key\nserial = serial\ndefault_md = sha256\n\
         default_days = 365\npolicy = any\ncopy_extensions = copy\nunique_subject = no\n\
         x509_extensions = leaf\n[any]\ncommonName = supplied\n\
         [leaf]\nbasicConstraints = CA:FALSE\ncrlDistributionPoints = URI:http://pki.company.local/JAMA00.crl\n\
         authorityInfoAccess = caIssuers;URI:http://pki.company.local/JAMA00.cer\n",
    ));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=JAMA00",
            "-days",
            "3650",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
}

fn drop_folder(c: &mut Criterion) {
    let requests = requests();
    for place in [Place::Tmpfs, Place::Disk] {
        batch(c, &requests, place);
    }
    per_request(c, &requests);
}

/// The 10,000-request batch, ours (two threads, and one on tmpfs) against `openssl ca
/// -infiles`, at `place`.
fn batch(c: &mut Criterion, requests: &Path, place: Place) {
    let work = work_root("dropfolder", place);
    let mut group = c.benchmark_group(format!("dropfolder-10k-{}", place.name()));
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(60));
    let jobs: &[usize] = match place {
        Place::Tmpfs => &[2, 1],
        Place::Disk => &[2],
    };
    for &jobs in jobs {
        group.bench_function(
            BenchmarkId::new("om-ca-process", format!("jobs-{jobs}")),
            |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let (mut ca, share) = fresh(&iteration(&work), requests, BATCH);
                        let options = ProcessOptions {
                            issue: true,
                            jobs,
                            ..ProcessOptions::default()
                        };
                        let start = Instant::now();
                        let summary = must(process_share(
                            &mut ca,
                            &share,
                            &options,
                            SystemTime::now(),
                            &|_, _, _| {},
                        ));
                        total += start.elapsed();
                        assert_eq!(summary.issued, BATCH);
                    }
                    total
                })
            },
        );
    }
    // (a) OpenSSL, the whole batch in one process.
    group.bench_function("openssl-ca-infiles", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = iteration(&work);
                openssl_ca(&dir);
                let mut names: Vec<String> = must(std::fs::read_dir(requests))
                    .map(|e| requests.join(must(e).file_name()).display().to_string())
                    .collect();
                names.sort();
                let mut args = vec![
                    "ca", "-batch", "-notext", "-config", "ca.cnf", "-out", "all.pem", "-infiles",
                ];
                args.extend(names.iter().map(String::as_str));
                let start = Instant::now();
                openssl(&dir, &args);
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&work);
}

/// (b) One OpenSSL process per request, on 100 requests per iteration, and (c) the signature
/// operations alone (tmpfs).
fn per_request(c: &mut Criterion, requests: &Path) {
    let work = work_root("per-request", Place::Tmpfs);
    let mut group = c.benchmark_group("per-request-process-100");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    let mut names: Vec<PathBuf> = must(std::fs::read_dir(requests))
        .map(|e| must(e).path())
        .collect();
    names.sort();
    names.truncate(LOOP_SAMPLE);
    for tool in ["openssl-x509-req", "openssl-ca"] {
        group.bench_function(tool, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = iteration(&work);
                    openssl_ca(&dir);
                    let start = Instant::now();
                    for (i, req) in names.iter().enumerate() {
                        let (req, out) = (req.display().to_string(), format!("{i}.cer"));
                        if tool == "openssl-ca" {
                            openssl(
                                &dir,
                                &[
                                    "ca", "-batch", "-notext", "-config", "ca.cnf", "-in", &req,
                                    "-out", &out,
                                ],
                            );
                        } else {
                            openssl(
                                &dir,
                                &[
                                    "x509",
                                    "-req",
                                    "-in",
                                    &req,
                                    "-CA",
                                    "ca.pem",
                                    "-CAkey",
                                    "ca.key",
                                    "-CAcreateserial",
                                    "-days",
                                    "365",
                                    "-copy_extensions",
                                    "copy",
                                    "-out",
                                    &out,
                                ],
                            );
                        }
                    }
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();

    // (c) The signature operations alone, one request: verify it, sign its certificate.
    let (ca, _) = fresh(&iteration(&work), requests, 0);
    let request = must(parse_request(&must(std::fs::read(&names[0]))));
    let mut group = c.benchmark_group("signature-ops");
    group.bench_function("verify+sign", |b| {
        b.iter(|| {
            let approved = must(ca.issuer().review(&request, SystemTime::now()));
            ca.issuer().sign(&approved)
        })
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&work);
}

/// A CA in `work` whose database holds `rows` requests, recorded as the CA records any: by
/// `submit`. First up to 20,000 distinct requests like the batch's, pending (the ones
/// `resubmit` issues); then copies of the first with the end of their signature overwritten by
/// a counter: distinct requests of the same size, which the review records as denied.
/// Submitted on tmpfs, where a commit waits for no disk; the closed CA's files are then copied
/// to `work`.
fn big_database(work: &Path, rows: usize) -> Authority {
    let requests = requests();
    let more = request_files("opsmgr-bench-requests-database", BATCH..2 * BATCH);
    let mut names: Vec<PathBuf> = [&requests, &more]
        .into_iter()
        .flat_map(|dir| must(std::fs::read_dir(dir)).map(|e| must(e).path()))
        .collect();
    names.sort();
    let build = work_root(&format!("database-{rows}"), Place::Tmpfs);
    let (mut ca, _) = fresh(&build, &requests, 0);
    let now = SystemTime::now();
    for path in names.iter().take(rows) {
        let requester = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let bytes = must(std::fs::read(path));
        let submitted = must(ca.submit(&bytes, requester.as_deref().unwrap_or("?"), now));
        assert_eq!(submitted.record.disposition, Disposition::Pending);
    }
    let mut copy = must(parse_request(&must(std::fs::read(&names[0]))))
        .der()
        .to_vec();
    let tail = copy.len() - 8;
    for i in names.len()..rows {
        copy[tail..].copy_from_slice(&(i as u64).to_be_bytes());
        let submitted = must(ca.submit(&copy, "copy.req", now));
        assert_eq!(submitted.record.disposition, Disposition::Denied);
    }
    drop(ca);
    must(std::fs::create_dir_all(work));
    for entry in must(std::fs::read_dir(build.join("ca"))) {
        let entry = must(entry);
        must(std::fs::copy(entry.path(), work.join(entry.file_name())));
    }
    let _ = std::fs::remove_dir_all(&build);
    must(Authority::open(work, None))
}

fn database(c: &mut Criterion) {
    let mut group = c.benchmark_group("database");
    // Every iteration issues one of the 20,000 pending rows: the time is short enough that they
    // never run out (when they do, the assertion fails: it never misleads).
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for rows in [20_000usize, 100_000] {
        let work =
            std::env::temp_dir().join(format!("opsmgr-bench-db-{rows}-{}", std::process::id()));
        let mut ca = big_database(&work, rows);
        let mut next = 0i64;
        group.bench_function(BenchmarkId::new("resubmit", rows), |b| {
            b.iter(|| {
                next += 1;
                let record = must(ca.resubmit(next, SystemTime::now()));
                assert_eq!(
                    record.disposition,
                    Disposition::Issued,
                    "out of pending rows"
                );
                record
            })
        });
        let mut id = 0i64;
        group.bench_function(BenchmarkId::new("retrieve", rows), |b| {
            b.iter(|| {
                id = (id * 7919 + 13) % rows as i64 + 1;
                must(ca.record(id))
            })
        });
        drop(ca);
        let _ = std::fs::remove_dir_all(&work);
    }
    group.finish();
}

criterion_group!(benches, drop_folder, database);
criterion_main!(benches);
