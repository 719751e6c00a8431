//! The drill of `om-drill`: the seeds' whole story on real files in a folder, with nothing to
//! install or configure. A management group is built, every machine enrolls a certificate
//! through the drop folder, the agents are balanced, the RMS key is backed up, the RMS is lost,
//! MGT01 takes its role, and every claim is verified. Every step a tool does is done by that
//! tool's job ([`opsmgr_tools::jobs`]), the code the tool itself runs; the rest is the world
//! around the tools (a bulk install, a lost machine) and the checks. A library, so that the
//! benchmarks and the tools' parity test run it too, and a crate of its own, so that rustls
//! (for the channel check's TLS handshake) is in no tool but this one.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, bail};
use opsmgr_ca::agent::{AgentSettings, select_channel_certificate};
use opsmgr_ca::authority::{Authority, CaView, InitOptions, RevocationReason};
use opsmgr_ca::cert::CertInfo;
use opsmgr_ca::dropfolder::Outcome;
use opsmgr_ca::request::PolicyOptions;
use opsmgr_ca::store::Stores;
use opsmgr_configfix::{Document, REPORTING_TARGETS, WEBCONSOLE_TARGET};
use opsmgr_model::HostName;
use opsmgr_model::balance::{Policy, plan};
use opsmgr_model::inventory::{Agent, Inventory, Server, ServerRole};
use opsmgr_securestorage::format::ReadPolicy;
use opsmgr_securestorage::keystore::{KeyStore, keystore_path};
use opsmgr_securestorage::random::OsRandom;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde::Serialize;

use opsmgr_tools::group::{Group, INVENTORY_FILE};
use opsmgr_tools::jobs;

/// The seed's Reporting server config (OpsMgr extensions, naming the RMS) and Web Console
/// config: the drill's own data (`crates/drill/data`).
const REPORTING_CONFIG: &[u8] = include_bytes!("../data/rsreportserver.config");
const WEB_CONFIG: &[u8] = include_bytes!("../data/web.config");

const DOMAIN: &str = "prod.local";
/// The RMS of the drill's group, lost in phase 4.
pub const RMS: &str = "RMS.prod.local";
/// The management server promoted to RMS in phase 4.
pub const NEW_RMS: &str = "MGT01.prod.local";
/// The supported number of agents per management server.
const AGENTS_PER_SERVER: usize = 3000;

/// The management servers for `agents` agents: the seed's three, or as many as it takes for
/// the group to keep every agent within capacity after MGT01 becomes the RMS and any one of
/// the others then fails (so `agents / 3000 + 2`, rounded up).
fn management_servers(agents: usize) -> Vec<String> {
    let n = agents.div_ceil(AGENTS_PER_SERVER).saturating_add(2).max(3);
    (1..=n).map(|i| format!("MGT{i:02}.{DOMAIN}")).collect()
}
const RUNAS: [(&str, &str); 3] = [
    ("SQL Action Account", "Pa55-action!"),
    ("Data Warehouse Write Account", "Pa55-dw-write!"),
    ("Notification Account", "Pa55-smtp!"),
];
/// The password of the drill's key backup.
pub const BACKUP_PASSWORD: &str = "drill: correct horse battery staple";

/// One phase of the drill and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// The phase.
    pub name: &'static str,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// One verification and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What is verified.
    pub name: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// The evidence, or what went wrong.
    pub detail: String,
}

/// The drill's report: `{"phases": [{"name", "seconds"}], "checks": [{"name", "passed", "detail"}]}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Every phase, in order.
    pub phases: Vec<Phase>,
    /// Every check, in order.
    pub checks: Vec<Check>,
}

/// What the drill reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A phase started (its name).
    Start(&'static str),
    /// A phase finished.
    Phase(&'a Phase),
    /// A check was made.
    Check(&'a Check),
}

/// The drill's world: who is in the management group and where each thing lives below the
/// drill's folder (`machines/<host>/`, `share/`, `ca/`, `group/`, `backup/`, `reporting/`,
/// `webconsole/`), and what happens in it that is not a tool's job (the group set up, a bulk
/// install). Public so that a test can walk the tools through the same story.
#[derive(Debug, Clone)]
pub struct Scenario {
    dir: PathBuf,
    servers: Vec<String>,
    agents: Vec<HostName>,
}

impl Scenario {
    /// The drill's group with `agents` agents (at least one) in `dir`; nothing is written.
    pub fn new(dir: &Path, agents: usize) -> Result<Self> {
        if agents == 0 {
            bail!("the drill needs at least one agent");
        }
        let agents = (1..=agents)
            .map(|i| host(&format!("agent{i:05}.{DOMAIN}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            dir: dir.to_owned(),
            servers: management_servers(agents.len()),
            agents,
        })
    }

    /// The management servers (the RMS not among them), MGT01 first.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }

    /// Every machine that enrolls: the management servers, then the agents.
    pub fn hosts(&self) -> Vec<String> {
        self.servers
            .iter()
            .cloned()
            .chain(self.agents.iter().map(ToString::to_string))
            .collect()
    }

    /// A machine's folder.
    pub fn machine(&self, host: &str) -> PathBuf {
        self.dir.join("machines").join(host)
    }
    /// The management group's folder.
    pub fn group_dir(&self) -> PathBuf {
        self.dir.join("group")
    }
    /// The drop share.
    pub fn share(&self) -> PathBuf {
        self.dir.join("share")
    }
    /// The CA's folder.
    pub fn ca_dir(&self) -> PathBuf {
        self.dir.join("ca")
    }
    /// Where the RMS key's backup goes.
    pub fn backup_file(&self) -> PathBuf {
        self.dir.join("backup").join("BackupKey.bin")
    }
    /// The Reporting server's config.
    pub fn reporting(&self) -> PathBuf {
        self.dir.join("reporting").join("rsreportserver.config")
    }
    /// The Web Console's config.
    pub fn webconsole(&self) -> PathBuf {
        self.dir.join("webconsole").join("Web.config")
    }

    /// The request policy every machine of the drill enrolls with: its name, a P-256 key
    /// that never leaves it, in the machine's store.
    pub fn certreq_inf(host: &str) -> String {
        format!(
            "[NewRequest]\r\nSubject = \"CN={host}\"\r\nKeyAlgorithm = ECDSA_P256\r\nExportable = FALSE\r\nMachineKeySet = TRUE\r\n"
        )
    }

    /// Phase 1, the seed's production before any tool ran: the group's folder with its
    /// servers, the group key on the RMS (SecureStorageBackup's setup) sealing three Run As
    /// secrets, and the two configs naming the RMS.
    pub fn build_group(&self) -> Result<()> {
        let servers = std::iter::once(Server {
            agent_reachable: false,
            ..Server::new(host(RMS)?, ServerRole::Rms)
        })
        .chain(
            self.servers
                .iter()
                .map(|m| Ok(Server::new(host(m)?, ServerRole::Management)))
                .collect::<Result<Vec<_>>>()?,
        )
        .collect();
        let inventory = Inventory {
            management_group: "PROD".into(),
            servers,
            agents: Vec::new(),
        };
        let mut group = Group::create(&self.group_dir(), inventory)?;
        let rms = self.machine(RMS);
        let store = jobs::create_group_key(
            &jobs::GroupMachine {
                group: &self.group_dir(),
                machine: &rms,
                host: None,
            },
            SystemTime::now(),
            &mut OsRandom,
        )?;
        for (name, secret) in RUNAS {
            group.add_secret(&store, name, secret.as_bytes(), &mut OsRandom)?;
        }
        for (path, bytes) in [
            (self.reporting(), REPORTING_CONFIG),
            (self.webconsole(), WEB_CONFIG),
        ] {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            opsmgr_fsutil::write_atomic(&path, bytes)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        Ok(())
    }

    /// `om-balance apply group/inventory.json -o group/inventory.json`.
    fn balance(&self) -> Result<()> {
        let inventory = self.group_dir().join(INVENTORY_FILE);
        jobs::balance(
            &Inventory::load(&inventory)?,
            &Policy::default(),
            &inventory,
            SystemTime::now(),
        )?;
        Ok(())
    }

    /// The group's inventory with its agents named (not yet placed on any server): what the
    /// CA's operator allows in the drop folder.
    pub fn inventory_with_agents(&self) -> Result<Inventory> {
        let mut inventory = Group::load(&self.group_dir())?.inventory;
        inventory.agents = self.agents_on(None);
        Ok(inventory)
    }

    /// Every agent, with `primary` and no failovers.
    fn agents_on(&self, primary: Option<HostName>) -> Vec<Agent> {
        self.agents
            .iter()
            .map(|a| Agent {
                name: a.clone(),
                primary: primary.clone(),
                failover: Vec::new(),
            })
            .collect()
    }

    /// Phase 3's world: a bulk install from the console puts every agent on MGT01, with no
    /// failovers, in the group's inventory.
    pub fn bulk_install(&self) -> Result<()> {
        let mut group = Group::load(&self.group_dir())?;
        group.inventory.agents = self.agents_on(Some(host(NEW_RMS)?));
        group.save_inventory()
    }
}

struct Drill<'e> {
    w: Scenario,
    report: Report,
    events: &'e mut dyn FnMut(Event<'_>),
}

fn host(name: &str) -> Result<HostName> {
    HostName::new(name).with_context(|| format!("host name {name}"))
}

impl Drill<'_> {
    fn phase<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T>,
    ) -> Result<T> {
        (self.events)(Event::Start(name));
        let start = Instant::now();
        let out = f(self).with_context(|| format!("phase '{name}'"))?;
        let phase = Phase {
            name,
            seconds: start.elapsed().as_secs_f64(),
        };
        (self.events)(Event::Phase(&phase));
        self.report.phases.push(phase);
        Ok(out)
    }

    /// Records a check's outcome: a failed check is a finding of the drill, not an error
    /// that stops it (the report says which failed).
    fn check(&mut self, name: &'static str, outcome: Result<String>) {
        let (passed, detail) = match outcome {
            Ok(d) => (true, d),
            Err(e) => (false, format!("{e:#}")),
        };
        let check = Check {
            name,
            passed,
            detail,
        };
        (self.events)(Event::Check(&check));
        self.report.checks.push(check);
    }

    /// Phase 2: every management server and agent enrolls through the drop folder.
    fn enroll(&mut self) -> Result<()> {
        let ca_dir = self.w.ca_dir();
        let mut ca = Authority::init(&ca_dir, &InitOptions::default(), SystemTime::now())?;
        let share = self.w.share();
        std::fs::create_dir_all(&share)?;
        let hosts = self.w.hosts();
        // Every machine at once, as a real group's machines are: each runs its own
        // `om-certreq -new -q -f certreq.inf <share>/<FQDN>.req`.
        on_every_machine(&hosts, |h| {
            let machine = self.w.machine(h);
            std::fs::create_dir_all(&machine)?;
            let policy = machine.join("certreq.inf");
            opsmgr_fsutil::write_atomic(&policy, Scenario::certreq_inf(h).as_bytes())?;
            jobs::enroll(
                &jobs::Enroll {
                    machine: &machine,
                    policy: &policy,
                    request: &share.join(format!("{h}.req")),
                    overwrite: true,
                    renew: false,
                    options: PolicyOptions::default(),
                },
                SystemTime::now(),
            )?;
            Ok(())
        })?;
        // `om-ca process --share share --ca ca --issue --inventory GROUP --settle 0s`, the
        // group's inventory naming its agents: the servers are held for the operator's
        // -resubmit. The drill wrote every request itself and has finished writing them.
        let options = jobs::drop_folder_options(
            Some(&self.w.inventory_with_agents()?),
            true,
            0,
            std::time::Duration::ZERO,
        );
        let (first, _) =
            jobs::process(&mut ca, &share, &options, SystemTime::now(), &|_, _, _| {})?;
        // The operator approves the held servers (om-certutil -config CA -resubmit ID), and the
        // next run writes their files.
        for held in first.files.iter().filter(|f| f.result == Outcome::Pending) {
            let id = held
                .id
                .with_context(|| format!("{} was held without a request id", held.file))?;
            ca.resubmit(id, SystemTime::now())?;
        }
        let (second, _) =
            jobs::process(&mut ca, &share, &options, SystemTime::now(), &|_, _, _| {})?;
        let issued = first.issued + second.issued;
        if issued != hosts.len() || second.pending != 0 {
            bail!("{issued} of {} requests were issued", hosts.len());
        }
        // The root's thumbprint, as the CA's operator hands it to each machine's installer
        // (never taken from the share).
        let root = ca.issuer().root().thumbprint.clone();
        on_every_machine(&hosts, |h| {
            // `om-certreq -install <share>/<FQDN>.bundle --trust-root <thumbprint>`.
            jobs::install(
                &self.w.machine(h),
                &share.join(format!("{h}.bundle")),
                false,
                Some(&root),
                None,
                SystemTime::now(),
            )
            .with_context(|| format!("installing the bundle on {h}"))?;
            Ok(())
        })
    }

    /// Phase 3: a bulk install puts every agent on MGT01; the balancer spreads them.
    fn balance(&mut self) -> Result<()> {
        self.w.bulk_install()?;
        self.w.balance()
    }

    /// Phase 4: back up the key, lose the RMS, restore on MGT01, promote, rewrite both
    /// configs, move the agents the promotion strands.
    fn recover(&mut self) -> Result<()> {
        // `om-securestoragebackup --machine RMS Backup backup/BackupKey.bin` on the RMS.
        let rms = self.w.machine(RMS);
        let backup = self.w.backup_file();
        jobs::backup(
            &KeyStore::load(&keystore_path(&rms))?,
            &backup,
            &jobs::Sealing::Password(BACKUP_PASSWORD),
            false,
            &mut OsRandom,
        )?;
        std::fs::remove_dir_all(&rms).context("losing the RMS")?;

        // `om-securestoragebackup --machine MGT01 Restore backup/BackupKey.bin`.
        let mgt01 = self.w.machine(NEW_RMS);
        let opened = jobs::open_backup(&backup, &[BACKUP_PASSWORD], &ReadPolicy::DEFAULT)?;
        jobs::restore(
            &mgt01,
            &opened,
            Some(&self.w.group_dir()),
            false,
            SystemTime::now(),
        )?;

        // `om-msconfigtool PromoteRMS /DeleteExistingRMS:true --group group --machine MGT01
        // --reporting ... --webconsole ... --yes`.
        let group = self.w.group_dir();
        let (reporting, webconsole) = (self.w.reporting(), self.w.webconsole());
        let plan = jobs::plan_promotion(
            &jobs::Promote {
                group: &group,
                machine: &mgt01,
                host: None,
                delete_existing_rms: true,
                reporting: Some(&reporting),
                webconsole: Some(&webconsole),
            },
            SystemTime::now(),
        )?;
        jobs::promote(plan, SystemTime::now(), &mut OsRandom)?;

        // What the promotion's report tells the operator to run.
        self.w.balance()
    }

    /// Phase 5: every claim, checked.
    fn verify(&mut self) -> Result<()> {
        let outcome = self.check_channels();
        self.check(
            "every agent's channel certificate chains to the root with both EKUs",
            outcome,
        );
        let outcome = self.check_balance();
        self.check(
            "the load is balanced and survives any single failure",
            outcome,
        );
        let outcome = self.check_secrets();
        self.check("the Run As secrets open on the new RMS", outcome);
        let outcome = self.check_configs();
        self.check(
            "both configs name MGT01 and differ only in those values",
            outcome,
        );
        let outcome = self.check_tls();
        self.check(
            "mutual TLS: agent and primary succeed, another root fails, a revoked agent fails",
            outcome,
        );
        Ok(())
    }

    fn check_channels(&self) -> Result<String> {
        let now = SystemTime::now();
        for a in &self.w.agents {
            let machine = self.w.machine(a.as_str());
            let settings = AgentSettings::load(&machine)?;
            let stores = Stores::open(&machine, true)?;
            let chosen = select_channel_certificate(&stores, a.as_str(), now)??.chosen;
            if settings.channel_certificate_hash.as_deref() != Some(chosen.thumbprint.as_str()) {
                bail!("{a}: the recorded channel certificate is not the one that qualifies");
            }
        }
        Ok(format!(
            "{} agents, each verified by rustls-webpki",
            self.w.agents.len()
        ))
    }

    fn check_balance(&self) -> Result<String> {
        let group = Group::load(&self.w.group_dir())?;
        // om-balance check's rule, then what the drill claims beyond it: no single failure
        // overloads a survivor.
        let verdict = jobs::check_balance(&group.inventory, &Policy::default())?;
        if !verdict.balanced {
            bail!("om-balance check says {}", verdict.line);
        }
        let p = plan(&group.inventory, &Policy::default())?;
        let loads: Vec<String> = p
            .load_after()
            .filter(|(_, l)| *l > 0)
            .map(|(s, l)| format!("{} {l}", s.name.short_name()))
            .collect();
        let mut worst = String::new();
        for pool in p.pools() {
            for f in &pool.failures {
                let capacity = group
                    .inventory
                    .servers
                    .iter()
                    .find(|s| Some(&s.name) == f.worst)
                    .map_or(0, Server::capacity);
                if f.worst_load > u64::from(capacity) {
                    bail!(
                        "if {} fails, {} agents exceed a capacity of {capacity}",
                        f.failed,
                        f.worst_load
                    );
                }
                if f.worst_load as f64 > f.ideal.ceil() {
                    bail!(
                        "if {} fails, one survivor carries {} (ideal {:.1})",
                        f.failed,
                        f.worst_load,
                        f.ideal
                    );
                }
                worst = format!(
                    "; worst survivor after a failure {} (ideal {:.1})",
                    f.worst_load, f.ideal
                );
            }
        }
        Ok(format!("{}{worst}", loads.join(", ")))
    }

    fn check_secrets(&self) -> Result<String> {
        let group = Group::load(&self.w.group_dir())?;
        let store = KeyStore::load(&keystore_path(&self.w.machine(NEW_RMS)))?;
        for (name, secret) in RUNAS {
            if *group.open_secret(&store, name)? != *secret.as_bytes() {
                bail!("{name} opened to something else");
            }
        }
        if self.w.machine(RMS).exists() {
            bail!("the lost RMS's folder still exists");
        }
        Ok(format!("{} of {} secrets", RUNAS.len(), RUNAS.len()))
    }

    fn check_configs(&self) -> Result<String> {
        let report_now = std::fs::read(self.w.reporting())?;
        let web_now = std::fs::read(self.w.webconsole())?;
        let doc = Document::parse(report_now.clone())?;
        let mut values = 0;
        for t in REPORTING_TARGETS {
            for found in doc.find(&t.parse()?)? {
                if found.value != NEW_RMS {
                    bail!("a ServerName still says {}", found.value);
                }
                values += 1;
            }
        }
        let web_doc = Document::parse(web_now.clone())?;
        for found in web_doc.find(&WEBCONSOLE_TARGET.parse()?)? {
            if found.value != NEW_RMS {
                bail!("MOMServer still says {}", found.value);
            }
            values += 1;
        }
        let expect_report = String::from_utf8_lossy(REPORTING_CONFIG)
            .replace(&format!(">{RMS}<"), &format!(">{NEW_RMS}<"));
        let expect_web = String::from_utf8_lossy(WEB_CONFIG)
            .replace(&format!("value='{RMS}'"), &format!("value='{NEW_RMS}'"));
        if report_now != expect_report.as_bytes() || web_now != expect_web.as_bytes() {
            bail!("a byte outside the server names changed");
        }
        Ok(format!(
            "{values} values changed, every other byte as it was"
        ))
    }

    fn credentials(&self, h: &str) -> Result<Identity> {
        channel_identity(&self.w.machine(h))
    }

    /// An intruder's machine with the agent's name, enrolled with another root exactly as
    /// that root's operator would do it with the tools (certreq -new, -submit, certutil
    /// -resubmit, certreq -retrieve, certutil -addstore root, certreq -accept, MOMCertImport):
    /// its channel identity, read as the agent's is.
    fn intruder(&self, host: &str) -> Result<Identity> {
        let now = SystemTime::now();
        let dir = self.w.dir.join("intruder");
        let mut other = Authority::init(
            &dir.join("ca"),
            &InitOptions {
                name: "INTRUDER".into(),
                ..InitOptions::default()
            },
            now,
        )?;
        let machine = dir.join("machine");
        let (policy, request, cer) = (
            dir.join("certreq.inf"),
            dir.join(format!("{host}.req")),
            dir.join(format!("{host}.cer")),
        );
        opsmgr_fsutil::write_atomic(&policy, Scenario::certreq_inf(host).as_bytes())?;
        jobs::enroll(
            &jobs::Enroll {
                machine: &machine,
                policy: &policy,
                request: &request,
                overwrite: false,
                renew: false,
                options: PolicyOptions::default(),
            },
            now,
        )?;
        let submitted = jobs::submit(
            &mut other,
            &jobs::Submit {
                request: &request,
                out: None,
                overwrite: false,
                format: jobs::CertFormat::Pem,
            },
            now,
        )?;
        jobs::resubmit(&mut other, submitted.record.id, now)?;
        jobs::retrieve(
            &CaView::open(other.dir())?,
            submitted.record.id,
            &cer,
            jobs::CertFormat::Pem,
            false,
        )?;
        let stores = Stores::open(&machine, true)?;
        stores.add_to_root(&stores.lock()?, &other.issuer().root().der, false)?;
        jobs::accept(&machine, &std::fs::read(&cer)?, false, None, false, now)?;
        let host = HostName::new(host)?;
        let job = jobs::Channel::Select {
            host: Some(host),
            pfx: None,
            crl: None,
        };
        jobs::record_channel(&machine, &job, now)?;
        channel_identity(&machine)
    }

    fn check_tls(&self) -> Result<String> {
        let group = Group::load(&self.w.group_dir())?;
        let agent = group.inventory.agents.first().context("no agents")?;
        let primary = agent
            .primary
            .as_ref()
            .context("the agent has no primary")?
            .to_string();
        let root = CertificateDer::from(
            Authority::open(&self.w.ca_dir(), None)?
                .issuer()
                .root()
                .der
                .clone(),
        );
        let client = self.credentials(agent.name.as_str())?;
        handshake(&root, &[], self.credentials(&primary)?, client, &primary)
            .context("with our certificates")?;
        let intruder = self.intruder(agent.name.as_str())?;
        let intruder_refused =
            match handshake(&root, &[], self.credentials(&primary)?, intruder, &primary) {
                Ok(()) => bail!("a certificate from another root was accepted"),
                Err(e) => format!("{e:#}"),
            };
        if !intruder_refused.contains("UnknownIssuer") {
            bail!("the intruder was refused, but not for its issuer: {intruder_refused}");
        }

        // Revocation reaches relying parties: the operator revokes a second agent's
        // certificate (om-certutil -revoke, which publishes the CRL); a server reading the
        // CRL refuses that agent, the first goes on, and the agent's own MOMCertImport, given
        // the CRL, no longer chooses the certificate.
        let second = group
            .inventory
            .agents
            .get(1)
            .context("the drill needs two agents")?
            .name
            .to_string();
        let credentials = self.credentials(&second)?;
        let serial = CertInfo::parse(&credentials.0[0])?.serial_hex();
        let mut ca = Authority::open(&self.w.ca_dir(), None)?;
        let revoked = jobs::revoke(
            &mut ca,
            &serial,
            RevocationReason::KeyCompromise,
            SystemTime::now(),
        )?;
        let crl_file = std::fs::read(&revoked.crl.files[0])?;
        let crl = opsmgr_ca::store::crl_der(&crl_file).context("the published CRL")?;
        let crls = [crl.clone()];
        let refused = match handshake(
            &root,
            &crls,
            self.credentials(&primary)?,
            credentials,
            &primary,
        ) {
            Ok(()) => bail!("{second}'s revoked certificate was accepted"),
            Err(e) => format!("{e:#}"),
        };
        if !refused.contains("Revoked") {
            bail!("{second} was refused, but not as revoked: {refused}");
        }
        handshake(
            &root,
            &crls,
            self.credentials(&primary)?,
            self.credentials(agent.name.as_str())?,
            &primary,
        )
        .context("with the CRL, for an agent not revoked")?;
        let job = jobs::Channel::Select {
            host: Some(host(&second)?),
            pfx: None,
            crl: Some(&crl_file),
        };
        match jobs::record_channel(&self.w.machine(&second), &job, SystemTime::now())?.outcome {
            jobs::ChannelOutcome::NoneQualifies(candidates)
                if candidates
                    .iter()
                    .any(|c| c.refusals.contains(&opsmgr_ca::agent::Refusal::Revoked)) => {}
            _ => bail!("{second}'s MOMCertImport still chose its revoked certificate"),
        }
        Ok(format!(
            "{} <-> {primary} succeeded; the intruder was refused for its issuer; {second}, revoked (CRL {}), was refused by the server and by its own MOMCertImport",
            agent.name, revoked.crl.number
        ))
    }
}

/// Runs `step` for every host, several machines at a time, as the machines of a real group
/// work side by side: each step is the same job a tool runs on its own machine, and most of
/// its time waits on the disk (every key and store is flushed), which other machines' steps
/// overlap. The first host whose step failed (in the hosts' order) is the error.
fn on_every_machine<T: Sync>(hosts: &[T], step: impl Fn(&T) -> Result<()> + Sync) -> Result<()> {
    /// Machines at work at once: the disk's queue, not the cores, is what they share.
    const AT_ONCE: usize = 8;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None::<(usize, anyhow::Error)>);
    std::thread::scope(|scope| {
        for _ in 0..AT_ONCE.min(hosts.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(host) = hosts.get(i) else { break };
                    // A failure stops the others: the drill has failed already.
                    if failed.lock().map_or(true, |f| f.is_some()) {
                        break;
                    }
                    if let Err(e) = step(host) {
                        let mut first = failed.lock().unwrap_or_else(|p| p.into_inner());
                        if first.as_ref().is_none_or(|(at, _)| i < *at) {
                            *first = Some((i, e));
                        }
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some((_, e)) => Err(e),
        None => Ok(()),
    }
}

/// Removes a drill's folder `dir`: the machines' folders eight at a time (unlinking is what
/// the disk waits on, and tens of thousands of small files take one at a time twice as long
/// on this VM's disk), then the rest. A missing `dir` is already clean.
pub fn clean_up(dir: &Path) -> Result<()> {
    let machines = dir.join("machines");
    let hosts: Vec<PathBuf> = match std::fs::read_dir(&machines) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("listing {}", machines.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("listing {}", machines.display())),
    };
    on_every_machine(&hosts, |h| {
        std::fs::remove_dir_all(h).with_context(|| format!("removing {}", h.display()))
    })?;
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// A certificate chain and its private key, as rustls takes them.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The channel certificate MOMCertImport recorded on `machine`, with its key: what the agent
/// presents.
fn channel_identity(machine: &Path) -> Result<Identity> {
    let (cert, key) = opsmgr_ca::agent::channel_identity(machine)?
        .with_context(|| format!("{} has no channel certificate", machine.display()))?;
    Ok((
        vec![CertificateDer::from(cert.der)],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_pkcs8_der()?.to_vec())),
    ))
}

/// One mutual-TLS exchange on loopback, the server verifying the client against `root` and
/// `crls` (DER), the client verifying the server's name.
fn handshake(
    root: &CertificateDer<'static>,
    crls: &[Vec<u8>],
    server_cert: Identity,
    client_cert: Identity,
    server_name: &str,
) -> Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone())?;
    let roots = Arc::new(roots);
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .with_crls(
        crls.iter()
            .map(|c| rustls::pki_types::CertificateRevocationListDer::from(c.clone())),
    )
    .build()?;
    let server = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(server_cert.0, server_cert.1)?,
    );
    let client = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(client_cert.0, client_cert.1)?,
    );
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server_side = std::thread::spawn(move || -> Result<()> {
        let (sock, _) = listener.accept()?;
        let mut tls = rustls::StreamOwned::new(rustls::ServerConnection::new(server)?, sock);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf)?;
        tls.write_all(b"pong")?;
        tls.flush()?;
        Ok(())
    });
    let name = ServerName::try_from(server_name.to_owned())?;
    let client_side = (|| -> Result<()> {
        let sock = TcpStream::connect(addr)?;
        let mut tls = rustls::StreamOwned::new(rustls::ClientConnection::new(client, name)?, sock);
        tls.write_all(b"ping")?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf)?;
        if &buf != b"pong" {
            bail!("unexpected reply");
        }
        Ok(())
    })();
    let server_result = server_side
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))?;
    server_result.context("server side")?;
    client_side.context("client side")
}

/// Runs the drill with `agents` agents in `dir` (an empty or missing folder), telling
/// `events` about each phase and check as it happens.
pub fn run_drill(dir: &Path, agents: usize, events: &mut dyn FnMut(Event<'_>)) -> Result<Report> {
    let scenario = Scenario::new(dir, agents)?;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty; the drill needs a fresh folder",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)?;
    let mut drill = Drill {
        w: scenario,
        report: Report::default(),
        events,
    };
    drill.phase("1. management group", |d| d.w.build_group())?;
    drill.phase("2. certificates (drop folder, install)", Drill::enroll)?;
    drill.phase("3. bulk install balanced", Drill::balance)?;
    drill.phase("4. RMS lost, key restored, MGT01 promoted", Drill::recover)?;
    drill.phase("5. verification", Drill::verify)?;
    Ok(drill.report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::{clean_up, management_servers};

    #[test]
    fn clean_up_removes_every_machine_and_the_rest_and_a_missing_folder_is_clean() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("drill");
        for host in ["a.prod.local", "b.prod.local", "c.prod.local"] {
            let store = dir.join("machines").join(host).join("Certificates/My");
            std::fs::create_dir_all(&store).unwrap();
            std::fs::write(store.join("x.cer"), b"x").unwrap();
        }
        std::fs::create_dir_all(dir.join("group")).unwrap();
        std::fs::write(dir.join("group/inventory.json"), b"{}").unwrap();
        clean_up(&dir).unwrap();
        assert!(!dir.exists());
        clean_up(&dir).unwrap();
        // A folder that cannot be listed is an error, not a silent success.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("machines"), b"not a folder").unwrap();
        assert!(clean_up(&dir).is_err());
    }

    #[test]
    fn the_group_grows_so_that_one_failure_after_the_promotion_stays_within_capacity() {
        for (agents, servers) in [(1, 3), (200, 3), (3000, 3), (3001, 4), (10_000, 6)] {
            let list = management_servers(agents);
            assert_eq!(list.len(), servers, "{agents}");
            // MGT01 becomes the RMS; one more failure leaves len - 2 servers of 3000.
            assert!((list.len() - 2) * 3000 >= agents, "{agents}");
        }
        assert_eq!(management_servers(1)[0], "MGT01.prod.local");
    }
}
