//! Management groups of an Operations Manager style monitoring system, and the balancer that
//! spreads their agents over management servers.
//!
//! - [`inventory`]: an [`Inventory`](inventory::Inventory) is a management group: its
//!   [`Server`](inventory::Server)s (the root management server, management servers and
//!   gateways) and its [`Agent`](inventory::Agent)s with their primary server and ordered
//!   failover list. Read it from JSON ([`Inventory::load`](inventory::Inventory::load)) or
//!   from a CSV export plus a servers file
//!   ([`Inventory::from_csv`](inventory::Inventory::from_csv)); every reader validates and
//!   names the place of the first error ([`error`]).
//! - [`balance`]: [`plan`](balance::plan) computes a [`Plan`](balance::Plan) under a
//!   [`Policy`](balance::Policy): a balanced, failure-aware target for every agent that moves
//!   as few agents as possible. [`Plan::apply`](balance::Plan::apply) gives the new
//!   inventory, and [`script`] writes a PowerShell script for the running system.
//! - [`promotion`]: moving the RMS role to another management server.
//! - [`HostName`] is the validated, case-insensitive name every server and agent has.
//!
//! ```
//! use opsmgr_model::balance::{plan, Policy};
//! use opsmgr_model::inventory::Inventory;
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
pub mod balance;
pub mod error;
mod hash;
pub mod inventory;
mod pool;
pub mod promotion;
pub mod script;
mod text;

pub use error::{Error, Result};
pub use opsmgr_hostname::{HostName, HostNameError};
