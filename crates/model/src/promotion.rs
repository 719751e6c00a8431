//! Moving the RMS role (ManagementServerConfigTool PromoteRMS) as a change of the management
//! group's state.

use serde::Serialize;

use crate::HostName;
use crate::inventory::{Inventory, ServerRole};

/// Why a management server cannot be promoted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromotionError {
    /// The machine is not a server of this management group.
    #[error("{host} is not a server of management group {group}")]
    NotInGroup {
        /// The host asked for.
        host: String,
        /// The management group.
        group: String,
    },
    /// The machine is a gateway, not a management server.
    #[error("{0} is a gateway server; only a management server can become the RMS")]
    Gateway(String),
    /// The machine is the RMS already.
    #[error("{0} is the RMS already")]
    AlreadyRms(String),
    /// The group has an RMS and the switch that replaces it was not given.
    #[error(
        "the management group's RMS is {0}; promoting another server replaces it: give /DeleteExistingRMS:true"
    )]
    RmsExists(String),
}

/// An agent that names, after the promotion, a server agents cannot use (the RMS, or a server
/// agents cannot reach).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stranded {
    /// The agent.
    pub agent: HostName,
    /// The server it names.
    pub server: HostName,
    /// Whether that server is its primary (else one of its failovers).
    pub primary: bool,
}

/// The management group after PromoteRMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The new RMS.
    pub new_rms: HostName,
    /// The server that was the RMS, now a management server.
    pub old_rms: Option<HostName>,
    /// The management group after the change.
    pub inventory: Inventory,
    /// Agents to move: they name the new RMS or a server agents cannot reach.
    pub stranded: Vec<Stranded>,
}

/// Promotes management server `new_rms` to RMS. The old RMS, if any, becomes a management
/// server (what the seed's walkthrough shows for `/DeleteExistingRMS:true`; Microsoft documents
/// `true` as deleting the old RMS from the database, which for this inventory would lose the
/// record of a machine that still exists). `delete_existing_rms` must be true when the group
/// has an RMS. Pure: the inventory given is not changed.
pub fn promote_rms(
    inventory: &Inventory,
    new_rms: &HostName,
    delete_existing_rms: bool,
) -> Result<Promotion, PromotionError> {
    let target = inventory
        .servers
        .iter()
        .find(|s| &s.name == new_rms)
        .ok_or_else(|| PromotionError::NotInGroup {
            host: new_rms.to_string(),
            group: inventory.management_group.clone(),
        })?;
    match target.role {
        ServerRole::Gateway => return Err(PromotionError::Gateway(new_rms.to_string())),
        ServerRole::Rms => return Err(PromotionError::AlreadyRms(new_rms.to_string())),
        ServerRole::Management => {}
    }
    let old_rms = inventory
        .servers
        .iter()
        .find(|s| s.role == ServerRole::Rms)
        .map(|s| s.name.clone());
    if let (Some(old), false) = (&old_rms, delete_existing_rms) {
        return Err(PromotionError::RmsExists(old.to_string()));
    }
    let mut after = inventory.clone();
    for server in &mut after.servers {
        if &server.name == new_rms {
            server.role = ServerRole::Rms;
        } else if server.role == ServerRole::Rms {
            server.role = ServerRole::Management;
        }
    }
    let stranded = stranded_agents(&after);
    Ok(Promotion {
        new_rms: new_rms.clone(),
        old_rms,
        inventory: after,
        stranded,
    })
}

/// Agents whose primary or failover is the RMS or a server agents cannot reach.
pub fn stranded_agents(inventory: &Inventory) -> Vec<Stranded> {
    let unusable = |name: &HostName| {
        inventory
            .servers
            .iter()
            .find(|s| &s.name == name)
            .is_none_or(|s| s.role == ServerRole::Rms || !s.agent_reachable)
    };
    let mut out = Vec::new();
    for agent in &inventory.agents {
        if let Some(p) = agent.primary.as_ref().filter(|p| unusable(p)) {
            out.push(Stranded {
                agent: agent.name.clone(),
                server: p.clone(),
                primary: true,
            });
        }
        for f in agent.failover.iter().filter(|f| unusable(f)) {
            out.push(Stranded {
                agent: agent.name.clone(),
                server: f.clone(),
                primary: false,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::inventory::{Agent, Server};

    fn h(s: &str) -> HostName {
        HostName::new(s).unwrap()
    }

    fn group() -> Inventory {
        Inventory {
            management_group: "PROD".into(),
            servers: vec![
                Server {
                    agent_reachable: false,
                    ..Server::new(h("RMS.prod.local"), ServerRole::Rms)
                },
                Server::new(h("MGT01.prod.local"), ServerRole::Management),
                Server::new(h("MGT02.prod.local"), ServerRole::Management),
                Server::new(h("GW01.prod.local"), ServerRole::Gateway),
            ],
            agents: vec![
                Agent {
                    name: h("a1.prod.local"),
                    primary: Some(h("MGT01.prod.local")),
                    failover: vec![h("MGT02.prod.local")],
                },
                Agent {
                    name: h("a2.prod.local"),
                    primary: Some(h("MGT02.prod.local")),
                    failover: vec![h("MGT01.prod.local")],
                },
            ],
        }
    }

    #[test]
    fn promotion_swaps_the_roles_and_names_the_agents_to_move() {
        let before = group();
        let p = promote_rms(&before, &h("mgt01.PROD.local"), true).unwrap();
        assert_eq!(p.old_rms, Some(h("RMS.prod.local")));
        let role = |n: &str| {
            p.inventory
                .servers
                .iter()
                .find(|s| s.name == h(n))
                .unwrap()
                .role
        };
        assert_eq!(role("MGT01.prod.local"), ServerRole::Rms);
        assert_eq!(role("RMS.prod.local"), ServerRole::Management);
        assert!(p.inventory.validate().is_ok());
        assert_eq!(
            p.stranded,
            [
                Stranded {
                    agent: h("a1.prod.local"),
                    server: h("MGT01.prod.local"),
                    primary: true
                },
                Stranded {
                    agent: h("a2.prod.local"),
                    server: h("MGT01.prod.local"),
                    primary: false
                },
            ]
        );
        assert_eq!(before, group(), "the input is not changed");
    }

    #[test]
    fn every_refusal_says_why() {
        let g = group();
        let text = |e: PromotionError| e.to_string();
        assert_eq!(
            text(promote_rms(&g, &h("MGT01.prod.local"), false).unwrap_err()),
            "the management group's RMS is RMS.prod.local; promoting another server replaces it: give /DeleteExistingRMS:true"
        );
        assert_eq!(
            text(promote_rms(&g, &h("GW01.prod.local"), true).unwrap_err()),
            "GW01.prod.local is a gateway server; only a management server can become the RMS"
        );
        assert_eq!(
            text(promote_rms(&g, &h("RMS.prod.local"), true).unwrap_err()),
            "RMS.prod.local is the RMS already"
        );
        assert_eq!(
            text(promote_rms(&g, &h("x.prod.local"), true).unwrap_err()),
            "x.prod.local is not a server of management group PROD"
        );
        // Without an RMS the switch is not needed.
        let mut no_rms = g.clone();
        no_rms.servers.remove(0);
        assert!(promote_rms(&no_rms, &h("MGT02.prod.local"), false).is_ok());
    }
}
