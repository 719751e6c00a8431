//! The management group's jobs: agents balanced over the servers (`om-balance apply`), the RMS
//! role moved (`om-msconfigtool PromoteRMS`) and the servers that name the RMS pointed at the
//! new one (`om-configfix`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use opsmgr_ca::dropfolder::ProcessOptions;
use opsmgr_configfix::{
    Document, Edit, EditOptions, Expect, FileEdit, Target, WriteOptions, edit_file,
};
use opsmgr_model::balance::{Policy, plan};
use opsmgr_model::inventory::Inventory;
use opsmgr_model::promotion::{Promotion, Stranded, promote_rms};
use opsmgr_securestorage::keystore::{KeyStore, keystore_path};
use opsmgr_securestorage::random::RandomSource;
use serde::Serialize;

use crate::group::{Group, INVENTORY_FILE, machine_host};

/// Who may get a certificate from the drop folder (`om-ca process --inventory`): with the
/// group's inventory, only its agents and servers, and its servers (RMS, management servers,
/// gateways) only by an operator's `-resubmit`, never from the share alone; without one,
/// every host the CA's own policy allows.
pub fn drop_folder_options(
    inventory: Option<&Inventory>,
    issue: bool,
    jobs: usize,
    settle: std::time::Duration,
) -> ProcessOptions {
    let (allowed_hosts, operator_only) = match inventory {
        Some(inventory) => {
            let servers: HashSet<String> = inventory
                .servers
                .iter()
                .map(|s| s.name.to_lowercase())
                .collect();
            let all = inventory
                .agents
                .iter()
                .map(|a| a.name.to_lowercase())
                .chain(servers.iter().cloned())
                .collect();
            (Some(all), servers)
        }
        None => (None, HashSet::new()),
    };
    ProcessOptions {
        issue,
        jobs,
        allowed_hosts,
        operator_only,
        settle,
    }
}

/// What [`balance`] did.
#[derive(Debug, Clone)]
pub struct Balanced {
    /// The inventory written.
    pub output: PathBuf,
    /// Agents whose primary or failovers changed.
    pub changed: usize,
    /// Agents moved to another primary.
    pub moved: usize,
    /// What the balancer wants said loudly (over capacity, nowhere to go ...).
    pub warnings: Vec<String>,
    /// Where the file `output` replaced was kept (beside it, dated).
    pub kept: Option<PathBuf>,
}

/// `dir/stem.<UTC stamp>.ext` (then `-1`, `-2` ...): a name for the copy of `path` taken at
/// `now`, free in its folder.
fn dated_copy_name(path: &Path, now: SystemTime) -> PathBuf {
    // To the microsecond: two copies of one second (a script balancing twice) keep apart.
    let stamp = humantime::format_rfc3339_micros(now)
        .to_string()
        .replace([':', '-'], "");
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    (0..)
        .map(|n| {
            let suffix = if n == 0 {
                String::new()
            } else {
                format!("-{n}")
            };
            path.with_file_name(format!("{stem}.{stamp}{suffix}{ext}"))
        })
        .find(|p| !p.exists())
        .unwrap_or_else(|| path.to_owned())
}

/// om-balance apply: plans the balance of `inventory` under `policy` and writes the balanced
/// inventory to `output` atomically; a file already at `output` (the input itself, often) is
/// kept first beside it, dated.
pub fn balance(
    inventory: &Inventory,
    policy: &Policy,
    output: &Path,
    now: SystemTime,
) -> Result<Balanced> {
    crate::json_output_path(&output.to_string_lossy())?;
    let plan = plan(inventory, policy)?;
    let kept = match std::fs::read(output) {
        Ok(old) => {
            let copy = dated_copy_name(output, now);
            opsmgr_fsutil::write_atomic(&copy, &old)
                .with_context(|| format!("keeping {} as {}", output.display(), copy.display()))?;
            Some(copy)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", output.display())),
    };
    plan.apply()
        .save(output)
        .with_context(|| format!("writing {}", output.display()))?;
    Ok(Balanced {
        output: output.to_owned(),
        changed: plan.changed(),
        moved: plan.moved(),
        warnings: plan.warnings().iter().map(ToString::to_string).collect(),
        kept,
    })
}

/// What `om-balance check` says: whether the group is balanced within the policy (planning
/// again would change nothing), and the one line that says so or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceVerdict {
    /// Balanced within the policy.
    pub balanced: bool,
    /// The line that says so, or why not.
    pub line: String,
}

/// om-balance check (and the drill's balance check): the group's balance under `policy`.
pub fn check_balance(inventory: &Inventory, policy: &Policy) -> Result<BalanceVerdict> {
    let plan = plan(inventory, policy)?;
    let (balanced, line) = verdict(&plan, policy);
    Ok(BalanceVerdict { balanced, line })
}

/// Whether the group is balanced within the policy, and the one line that says so or why not.
fn verdict(plan: &opsmgr_model::balance::Plan<'_>, policy: &Policy) -> (bool, String) {
    let agents: usize = plan.pools().iter().map(|p| p.agents).sum();
    if plan.changed() == 0 {
        return (
            true,
            format!(
                "balanced: {agents} agent(s), within {:.1}% tolerance, failover lists spread",
                policy.tolerance * 100.0
            ),
        );
    }
    let mut reasons = Vec::new();
    for pool in plan.pools() {
        if pool.must_move > 0 {
            reasons.push(format!(
                "{} {} agent(s) without a usable primary",
                pool.must_move, pool.pool
            ));
        }
        if !pool.held_by_tolerance && pool.excess > 0 {
            reasons.push(format!(
                "{} of {} {} agent(s) ({:.1}%) above their server's share (tolerance {:.1}%)",
                pool.excess,
                pool.agents,
                pool.pool,
                pool.imbalance * 100.0,
                policy.tolerance * 100.0
            ));
        }
    }
    let lists = plan.changes().filter(|c| !c.primary_changes()).count();
    if lists > 0 {
        reasons.push(format!("{lists} failover list(s) to correct"));
    }
    (false, format!("not balanced: {}", reasons.join("; ")))
}

/// Which file a [`Rewrite`] edits, and how.
#[derive(Debug, Clone, Copy)]
pub enum Config<'a> {
    /// The Reporting server's rsreportserver.config: every `ServerName` of the OpsMgr
    /// extensions, exactly `expect` of them (normally
    /// [`opsmgr_configfix::REPORTING_EXPECTED`]).
    Reporting {
        /// How many values must be found.
        expect: usize,
    },
    /// The Web Console's Web.config: its one `MOMServer` setting.
    WebConsole,
    /// Any value a target names (configfix's target syntax).
    Set {
        /// The target, as `configfix` parses it.
        target: &'a str,
        /// How many values must be found (none: all, at least one).
        expect: Option<usize>,
    },
}

/// One config file to point at a value (the new RMS's name, for the two named configs).
#[derive(Debug, Clone, Copy)]
pub struct Rewrite<'a> {
    /// The kind of file.
    pub config: Config<'a>,
    /// The file.
    pub path: &'a Path,
    /// The new value.
    pub value: &'a str,
    /// Change only values that name this (compare-and-swap); values already `value` stay.
    pub from: Option<&'a str>,
}

impl Rewrite<'_> {
    fn edit(&self, doc: &Document) -> opsmgr_configfix::Result<Edit> {
        match self.config {
            Config::Reporting { expect } => {
                opsmgr_configfix::reporting(doc, self.value, self.from, expect)
            }
            Config::WebConsole => opsmgr_configfix::webconsole(doc, self.value, self.from),
            Config::Set { target, expect } => {
                let target: Target = target.parse()?;
                let options = EditOptions {
                    expect: expect.map_or(Expect::All, Expect::Exactly),
                    from: self.from.map(str::to_owned),
                    ..EditOptions::default()
                };
                doc.edit(&[target], self.value, &options)
            }
        }
    }
}

/// om-configfix: rewrites each file losslessly (every byte but the changed values as it was,
/// the original kept as `PATH.bak` unless `options` say not). With several files, every edit
/// is computed before any file is written, so a file that cannot be edited leaves all of them
/// as they were (a disk failing between two writes can still leave the first one written).
pub fn rewrite_configs(
    rewrites: &[Rewrite<'_>],
    options: WriteOptions,
    now: SystemTime,
) -> Result<Vec<FileEdit>> {
    if rewrites.len() > 1 && !options.dry_run {
        check_rewrites(rewrites, now)?;
    }
    write_rewrites(rewrites, options, now)
}

/// Computes every edit without writing anything: the first that cannot be made is the error.
fn check_rewrites(rewrites: &[Rewrite<'_>], now: SystemTime) -> Result<()> {
    let dry_run = WriteOptions {
        dry_run: true,
        ..WriteOptions::default()
    };
    for r in rewrites {
        edit_file(r.path, |doc| r.edit(doc), dry_run, now)?;
    }
    Ok(())
}

fn write_rewrites(
    rewrites: &[Rewrite<'_>],
    options: WriteOptions,
    now: SystemTime,
) -> Result<Vec<FileEdit>> {
    rewrites
        .iter()
        .map(|r| Ok(edit_file(r.path, |doc| r.edit(doc), options, now)?))
        .collect()
}

/// What PromoteRMS is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Promote<'a> {
    /// The management group's folder.
    pub group: &'a Path,
    /// The machine to promote (its folder).
    pub machine: &'a Path,
    /// The machine's host name (default: its folder's name).
    pub host: Option<&'a str>,
    /// `/DeleteExistingRMS:true`: replace the group's RMS (it stays as a management server).
    pub delete_existing_rms: bool,
    /// The Reporting server's rsreportserver.config to point at the new RMS.
    pub reporting: Option<&'a Path>,
    /// The Web Console's Web.config to point at the new RMS.
    pub webconsole: Option<&'a Path>,
}

/// One config file rewritten by a promotion.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigReport {
    /// The file.
    pub path: String,
    /// How many values changed.
    pub changed: usize,
    /// Where the original is kept.
    pub backup: Option<String>,
}

/// PromoteRMS's report: what changed, what is left to a person.
#[derive(Debug, Clone, Serialize)]
pub struct PromoteReport {
    /// The new RMS.
    pub new_rms: String,
    /// The old RMS, now a management server.
    pub old_rms: Option<String>,
    /// True when nothing was changed (the report of a plan).
    pub dry_run: bool,
    /// Where the group's previous state is kept.
    pub history: Option<String>,
    /// Whether the promotion wrote the group's key check record (the group had none: the new
    /// RMS's key, proved by the Run As secrets it opens, is recorded as the group's).
    pub key_record_written: bool,
    /// The configs rewritten.
    pub configs: Vec<ConfigReport>,
    /// How many agent assignments name a server agents cannot use now.
    pub stranded_agents: usize,
    /// The command that writes the move as a script for the live group.
    pub script: Option<String>,
    /// The command that records the move in the inventory.
    pub fix: Option<String>,
    /// Steps left to a person.
    pub steps_left: Vec<String>,
}

/// A promotion checked and ready: nothing has been written yet. [`promote`] carries it out.
#[derive(Debug, Clone)]
pub struct PromotionPlan {
    group: Group,
    machine: PathBuf,
    promotion: Promotion,
    reporting: Option<PathBuf>,
    webconsole: Option<PathBuf>,
    report: PromoteReport,
}

impl PromotionPlan {
    /// The report of the plan (`dry_run` true, nothing written).
    pub fn report(&self) -> &PromoteReport {
        &self.report
    }

    /// Agent assignments the promotion strands.
    pub fn stranded(&self) -> &[Stranded] {
        &self.promotion.stranded
    }

    /// The configs the promotion will point at the new RMS.
    pub fn configs(&self) -> impl Iterator<Item = &Path> {
        [&self.reporting, &self.webconsole]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }
}

/// PromoteRMS's checks, with nothing changed: the machine is a management server of the group,
/// and it holds the group's encryption key as its current key (the group's key check record
/// opens with it, and every sealed Run As secret does; without a record, there are secrets and
/// every one opens; with neither, nothing proves it and the promotion is refused), which would
/// have saved the seed's operator. Returns the plan, whose report lists the steps left.
pub fn plan_promotion(job: &Promote<'_>, now: SystemTime) -> Result<PromotionPlan> {
    let group = Group::load(job.group)?;
    let host = machine_host(job.machine, job.host)?;
    let promotion = promote_rms(&group.inventory, &host, job.delete_existing_rms)?;
    let store_path = keystore_path(job.machine);
    if !store_path.exists() {
        bail!(
            "{host} has no key store ({}): restore the RMS key first (om-securestoragebackup --machine {} Restore FILE), or with no backup run NewKey; nothing was changed",
            store_path.display(),
            job.machine.display()
        );
    }
    let store = KeyStore::load(&store_path)?;
    let verdict = group.key_verdict(&store)?;
    match verdict.holds() {
        Some(true) => {}
        Some(false) => bail!(
            "{host} does not hold the management group's encryption key ({}); restore the RMS key backup on it (om-securestoragebackup Restore FILE), or with no backup run NewKey; nothing was changed",
            verdict.reason()
        ),
        None => bail!(
            "nothing proves {host} holds the management group's encryption key: the group has no key check record and no Run As secrets. Record the group's key with om-msconfigtool KeyCheck on the RMS; if the RMS is lost, restore its key backup on {host} and run KeyCheck --force there; nothing was changed"
        ),
    }
    let old = promotion.old_rms.as_ref().map(ToString::to_string);
    let mut steps_left = vec![];
    if let Some(old) = &old {
        steps_left.push(format!(
            "Restart the Health Service on {old}: net stop HealthService && net start HealthService"
        ));
    }
    steps_left.push(format!(
        "Reconnect every Operations console to the new RMS, {host}."
    ));
    steps_left.push("On OpsMgr 2007 before SP1, data warehouse processing stays on the old RMS: om-msconfigtool Runbook promote-pre-sp1".into());
    if job.reporting.is_none() {
        steps_left.push(format!(
            "Point the Reporting server at {host}: om-configfix reporting PATH --rms {host}"
        ));
    }
    if job.webconsole.is_none() {
        steps_left.push(format!(
            "Point the Web Console at {host}: om-configfix webconsole PATH --rms {host}"
        ));
    }
    // A config that cannot be edited refuses the promotion before anything is written.
    let from = old.as_deref();
    check_rewrites(
        &promotion_rewrites(job.reporting, job.webconsole, host.as_str(), from),
        now,
    )
    .context("nothing was changed")?;
    let inventory_path = job.group.join(INVENTORY_FILE).display().to_string();
    let stranded = !promotion.stranded.is_empty();
    let report = PromoteReport {
        new_rms: host.to_string(),
        old_rms: old,
        dry_run: true,
        history: None,
        key_record_written: false,
        configs: Vec::new(),
        stranded_agents: promotion.stranded.len(),
        // The same plan as a script for the live management group; PromoteRMS is 2007 R2's.
        script: stranded
            .then(|| format!("om-balance plan {inventory_path} --format ps2007 > balance.ps1")),
        fix: stranded.then(|| format!("om-balance apply {inventory_path} -o {inventory_path}")),
        steps_left,
    };
    Ok(PromotionPlan {
        group,
        machine: job.machine.to_owned(),
        promotion,
        reporting: job.reporting.map(Path::to_owned),
        webconsole: job.webconsole.map(Path::to_owned),
        report,
    })
}

/// PromoteRMS carried out: the group's state is kept in its history, the promoted inventory
/// written, the group's key check record written when it had none (the plan proved the new
/// RMS's key by its secrets), and the configs pointed at the new RMS (compare-and-swap from
/// the old RMS).
pub fn promote(
    plan: PromotionPlan,
    now: SystemTime,
    rng: &mut dyn RandomSource,
) -> Result<PromoteReport> {
    let PromotionPlan {
        group,
        machine,
        promotion,
        reporting,
        webconsole,
        mut report,
    } = plan;
    report.dry_run = false;
    let rewrites = promotion_rewrites(
        reporting.as_deref(),
        webconsole.as_deref(),
        promotion.new_rms.as_str(),
        report.old_rms.as_deref(),
    );
    // Again, now that the operator said yes: a config changed meanwhile refuses the promotion
    // before the group is changed.
    check_rewrites(&rewrites, now).context("nothing was changed")?;
    // And the key, under the group's lock, from the group as it is now: a NewKey or a rotate
    // while the operator read the warning refuses the promotion before anything is written.
    let (_lock, mut group) = Group::load_locked(&group.dir)?;
    let store = KeyStore::load(&keystore_path(&machine))?;
    let verdict = group.key_verdict(&store)?;
    if verdict.holds() != Some(true) {
        bail!(
            "{} no longer holds the management group's encryption key as its current one ({}); nothing was changed",
            promotion.new_rms,
            verdict.reason()
        );
    }
    report.history = Some(group.keep_history(now)?.display().to_string());
    group.inventory = promotion.inventory;
    group.save_inventory()?;
    // A group without a record gets one from the new RMS, whose key the secrets proved.
    if verdict.record.is_none() {
        group.write_key_record(&store, rng)?;
        report.key_record_written = true;
    }
    let configs = write_rewrites(&rewrites, WriteOptions::default(), now)?
        .into_iter()
        .map(|done| ConfigReport {
            path: done.path.display().to_string(),
            changed: done.edit.spans.len(),
            backup: done.backup.map(|b| b.display().to_string()),
        })
        .collect();
    report.configs = configs;
    Ok(report)
}

/// The two configs a promotion points at the new RMS, those given.
fn promotion_rewrites<'a>(
    reporting: Option<&'a Path>,
    webconsole: Option<&'a Path>,
    new_rms: &'a str,
    from: Option<&'a str>,
) -> Vec<Rewrite<'a>> {
    let expect = opsmgr_configfix::REPORTING_EXPECTED;
    [
        (reporting, Config::Reporting { expect }),
        (webconsole, Config::WebConsole),
    ]
    .into_iter()
    .filter_map(|(path, config)| {
        path.map(|path| Rewrite {
            config,
            path,
            value: new_rms,
            from,
        })
    })
    .collect()
}
