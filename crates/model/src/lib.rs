//! Management groups of an Operations Manager style monitoring system, and the balancer that
//! spreads their agents over management servers.
//!
//! - [`Inventory`] is a management group: its [`Server`]s (the root management server,
//!   management servers and gateways) and its [`Agent`]s with their primary server and
//!   ordered failover list. Read it from JSON ([`Inventory::load`]) or from a CSV export plus
//!   a servers file ([`Inventory::from_csv`]); every reader validates and names the place of
//!   the first error.
//! - [`plan`] computes a [`Plan`] under a [`Policy`]: a balanced, failure-aware target for
//!   every agent that moves as few agents as possible. [`Plan::apply`] gives the new
//!   inventory, [`write_powershell`] a script for the running system.
//! - [`HostName`] is the validated, case-insensitive name every server and agent has.
//!
//! ```
//! use opsmgr_model::{plan, Inventory, Policy};
//!
//! let inventory = Inventory::from_json_str(r#"{
//!   "management_group": "PROD",
//!   "servers": [
//!     {"name": "RMS.prod.local", "role": "rms", "agent_reachable": false},
//!     {"name": "MGT01.prod.local", "role": "management"},
//!     {"name": "MGT02.prod.local", "role": "management"},
//!     {"name": "MGT03.prod.local", "role": "management"}
//!   ],
//!   "agents": [
//!     {"name": "server01.company.local", "primary": "MGT01.prod.local"},
//!     {"name": "server02.company.local", "primary": "MGT01.prod.local"},
//!     {"name": "server03.company.local", "primary": "MGT01.prod.local"}
//!   ]
//! }"#, "inventory.json")?;
//!
//! let plan = plan(&inventory, &Policy::default())?;
//! // One agent per management server; the RMS carries none.
//! for (server, agents) in plan.load_after() {
//!     assert_eq!(agents, if server.name == "RMS.prod.local" { 0 } else { 1 });
//! }
//! // Every agent fails over to the two other management servers.
//! assert!(plan.assignments().all(|a| a.failover.len() == 2));
//! # Ok::<(), opsmgr_model::Error>(())
//! ```

mod apportion;
mod balance;
mod error;
mod hash;
mod inventory;
mod promotion;
mod script;
mod text;

pub use balance::{
    Assignment, Change, FailureImpact, Plan, Policy, Pool, PoolReport, Warning, plan,
};
pub use error::{
    Error, GroupNameFault, HeaderHint, InvalidInput, Location, MANAGEMENT_GROUP_FORBIDDEN,
    MANAGEMENT_GROUP_NAME_MAX, Problem, Result,
};
pub use inventory::{
    Agent, CSV_COLUMNS, GATEWAY_CAPACITY, Inventory, MANAGEMENT_SERVER_CAPACITY, Server,
    ServerRole, check_management_group_name,
};
pub use opsmgr_hostname::{HostName, HostNameError};
pub use promotion::{Promotion, PromotionError, Stranded, promote_rms, stranded_agents};
pub use script::{
    EXPORT_CSV_HEADER, Shell, ps_comment, ps_quote, write_export_script, write_powershell,
};
