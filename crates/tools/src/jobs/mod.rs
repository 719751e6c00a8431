//! The jobs the tools do, one library function each, for the tools and the drill alike.
//!
//! Each job takes typed inputs (paths, parsed values, passwords already read, the time) and
//! returns a typed report; none prints or asks. A tool parses its command line, reads what a
//! person must type, calls its job and renders the report; the Y/N question and the progress
//! bars stay in the tools. For every step the drill shares with a tool (enroll, install,
//! balance, backup, restore, promote and the config rewrites with it) it calls that tool's
//! job, so it cannot pass while that code is broken; `tests/drill_and_tools.rs` checks that
//! the two leave the same files.
//!
//! | job | tool |
//! |---|---|
//! | [`enroll`] | `om-certreq -new` |
//! | [`accept`] | `om-certreq -accept` |
//! | [`install`] | `om-certreq -install` |
//! | [`record_channel`] | `om-momcertimport` |
//! | [`create_key`], [`create_group_key`], [`backup`], [`restore`], [`verify`], [`upgrade_plan`] | `om-securestoragebackup` |
//! | [`new_key`], [`plan_promotion`] + [`promote`], [`key_check`] | `om-msconfigtool` |
//! | [`runas_add`], [`runas_list`], [`runas_remove`], [`runas_rotate`] | `om-msconfigtool RunAs` |
//! | [`rewrite_configs`] | `om-configfix` |
//! | [`balance`] | `om-balance apply` |
//! | [`drop_folder_options`] | `om-ca process --inventory` |
//! | [`process`], [`serve`], [`status`], [`expiring`] | `om-ca` |
//! | [`submit`], [`retrieve`] | `om-certreq -submit`, `-retrieve` |
//! | [`resubmit`], [`deny`], [`revoke`], [`crl`], [`view`] | `om-certutil` against a CA |
//!
//! The CA's decisions are the `opsmgr-ca` library's: these jobs add what a tool does around
//! them (reading the request file, writing the certificate, publishing the CRL a revocation
//! needs, keeping the batch's record).

mod agent;
mod ca;
mod keys;
mod management;
mod requests;
mod runas;
mod serve;

pub use agent::{
    Channel, ChannelOutcome, ChannelRecord, Enroll, Enrolled, Install, PfxFile, accept, enroll,
    install, record_channel, user_store_holds,
};
pub use ca::{
    Bucket, Counts, CrlStatus, Ending, Held, LAST_BATCH_FILE, LastBatch, RootStatus, Status,
    expiring, process, status,
};
pub use keys::{
    BackedUp, MAX_BACKUP_BYTES, NewKey, Restored, Sealing, UpgradePlan, Verified, backup,
    create_key, new_key, open_backup, read_backup, restore, upgrade_plan, verify,
};
pub use management::{
    BalanceVerdict, Balanced, Config, ConfigReport, Promote, PromoteReport, PromotionPlan, Rewrite,
    balance, check_balance, drop_folder_options, plan_promotion, promote, rewrite_configs,
};
pub use requests::{
    Answer, CertFormat, DEFAULT_DENIAL, Revoked, Submit, crl, deny, resubmit, retrieve, revoke,
    submit, view,
};
pub use runas::{
    GroupMachine, KeyChecked, Rotated, RunAsAdded, RunAsEntry, create_group_key, key_check,
    runas_add, runas_list, runas_remove, runas_rotate,
};
pub use serve::{Event, ServeOptions, serve};
