//! The agent balancer: a target assignment of primaries and failover lists, and the plan of
//! changes that reaches it.

use std::collections::HashMap;
use std::fmt;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};

use crate::HostName;
use crate::apportion::{Item, rebalance};
use crate::error::{Error, Result};
use crate::hash::stable_hash;
use crate::inventory::{Agent, Inventory, Server, ServerRole};
use crate::inventory::{NONE, Resolved};

pub use crate::pool::Pool;

/// How to balance.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Use the RMS as a primary and failover server. Off by default: the RMS is often not
    /// reachable by agents, and should not carry them when it is.
    pub include_rms: bool,
    /// How many failover servers each agent gets, capped at the other eligible servers of its
    /// pool; `Some(2)` by default. `None`: all of them, as the seed's script does.
    ///
    /// Two survive a server failing while another is down (the first failover alone already
    /// spreads a single failure evenly) and keep plans local: adding one of `n` servers
    /// rewrites the lists of about `2m/(n+1)` of `m` agents (those that move to it and those
    /// that take it as first failover, and a few whose first failover is rebalanced),
    /// draining one those of the about `(1 + k)m/n` agents that name it (and, in groups of
    /// fewer than `(n-1)(n-2)` agents, at most one agent per server pair for rounding). With
    /// `None` every list names every server, so either change rewrites all `m`.
    pub failovers: Option<usize>,
    /// The share of a pool's agents (0.0 to 1.0) that may stand above their server's target
    /// before primaries move; 0.05 by default. Agents on ineligible servers always move, and
    /// failover lists are always corrected.
    pub tolerance: f64,
    /// Servers to drain: no agent keeps or gets them as primary or failover.
    pub exclude: Vec<HostName>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            include_rms: false,
            failovers: Some(2),
            tolerance: 0.05,
            exclude: Vec::new(),
        }
    }
}

/// What the balancer wants said loudly.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Warning<'a> {
    /// A server ends up with more agents than it supports.
    OverCapacity {
        /// The server.
        server: &'a HostName,
        /// Its agents after the plan.
        agents: u64,
        /// What it supports.
        capacity: u32,
    },
}

impl fmt::Display for Warning<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::OverCapacity {
                server,
                agents,
                capacity,
            } => write!(
                f,
                "{server} is over capacity: {agents} agents, it supports {capacity}"
            ),
        }
    }
}

/// What happens to one pool's agents when one of its servers fails.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureImpact<'a> {
    /// The server that fails.
    pub failed: &'a HostName,
    /// The survivor that ends up with the most agents (agents fail over to their first
    /// failover server), if any survives.
    pub worst: Option<&'a HostName>,
    /// That survivor's agents after the failure.
    pub worst_load: u64,
    /// The best any plan could do: the largest weighted share of the pool's agents over the
    /// survivors (`m / (n - 1)` for equal capacities).
    pub ideal: f64,
}

/// The balancer's figures for one pool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolReport<'a> {
    /// Which pool.
    pub pool: Pool,
    /// Its eligible servers, by name.
    pub eligible: Vec<&'a HostName>,
    /// Its agents.
    pub agents: usize,
    /// Agents that had to move whatever the tolerance: no primary, or an ineligible one.
    pub must_move: u64,
    /// Agents on eligible servers above their server's target before the plan.
    pub excess: u64,
    /// `excess / agents`: the share of agents out of balance before the plan.
    pub imbalance: f64,
    /// Whether the tolerance kept the excess agents where they were.
    pub held_by_tolerance: bool,
    /// Failover servers per agent.
    pub failovers: usize,
    /// The effect of each single server failure after the plan.
    pub failures: Vec<FailureImpact<'a>>,
}

/// The target of one agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment<'a> {
    /// The agent.
    pub agent: &'a HostName,
    /// Its primary server.
    pub primary: &'a HostName,
    /// Its failover servers in order.
    pub failover: Vec<&'a HostName>,
}

/// One agent whose primary or failover list changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change<'a> {
    /// The agent as the inventory has it (with its current servers).
    pub agent: &'a Agent,
    /// Its new primary.
    pub primary: &'a HostName,
    /// Its new failover list.
    pub failover: Vec<&'a HostName>,
}

impl Change<'_> {
    /// Whether the primary changes (not just the failover list).
    pub fn primary_changes(&self) -> bool {
        self.agent.primary.as_ref() != Some(self.primary)
    }
}

/// A balancing plan: the complete target for every agent, the changes that reach it, and the
/// figures that show why it is good. Made by [`plan`].
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    inventory: &'a Inventory,
    index: HashMap<&'a HostName, usize, foldhash::fast::RandomState>,
    /// Whether each server (by inventory position) is eligible in its pool.
    eligible: Vec<bool>,
    /// Each agent's current primary, or `NONE`.
    old_primary: Vec<u32>,
    targets: Targets,
    changed: Vec<u32>,
    load_before: Vec<u64>,
    load_after: Vec<u64>,
    pools: Vec<PoolReport<'a>>,
    warnings: Vec<Warning<'a>>,
}

/// Computes the balancing plan for `inventory` under `policy`.
///
/// The plan moves as few agents as possible: agents without a primary or on an ineligible
/// server always move; otherwise only the excess above each server's weighted share moves,
/// and only when that excess is above the tolerance. Each server's agents get first failover
/// servers spread over the other servers by weight, so that any single failure spreads its
/// agents evenly. The result depends only on the inventory's content, not its order, and
/// planning again on the applied result changes nothing.
///
/// ```
/// use opsmgr_model::balance::{plan, Policy};
/// use opsmgr_model::inventory::Inventory;
/// let inventory = Inventory::from_json_str(r#"{
///   "management_group": "PROD",
///   "servers": [
///     {"name": "RMS.prod.local", "role": "rms", "agent_reachable": false},
///     {"name": "MGT01.prod.local", "role": "management"},
///     {"name": "MGT02.prod.local", "role": "management"}
///   ],
///   "agents": [
///     {"name": "a1.local", "primary": "MGT01.prod.local"},
///     {"name": "a2.local", "primary": "MGT01.prod.local"}
///   ]
/// }"#, "example")?;
/// let plan = plan(&inventory, &Policy { tolerance: 0.0, ..Policy::default() })?;
/// assert_eq!(plan.moved(), 1);
/// let after = plan.apply();
/// assert!(opsmgr_model::balance::plan(&after, &Policy::default())?.changes().next().is_none());
/// # Ok::<(), opsmgr_model::Error>(())
/// ```
pub fn plan<'a>(inventory: &'a Inventory, policy: &Policy) -> Result<Plan<'a>> {
    let resolved = inventory.resolve("<input>")?;
    let servers = &inventory.servers;
    let mut index: HashMap<&HostName, usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(servers.len(), Default::default());
    for (i, s) in servers.iter().enumerate() {
        index.insert(&s.name, i);
    }
    let mut excluded = vec![false; servers.len()];
    for name in &policy.exclude {
        let i = *index
            .get(name)
            .ok_or_else(|| Error::UnknownPolicyServer(name.clone()))?;
        excluded[i] = true;
    }
    if let Some(rms) = inventory
        .rms()
        .filter(|s| policy.include_rms && !s.agent_reachable)
    {
        return Err(Error::RmsUnreachable(rms.name.clone()));
    }
    let pool_of_server = |s: &Server| match s.role {
        ServerRole::Gateway => Pool::Gateway,
        ServerRole::Management | ServerRole::Rms => Pool::Management,
    };
    let eligible: Vec<bool> = servers
        .iter()
        .zip(&excluded)
        .map(|(s, &x)| {
            !x && s.agent_reachable
                && s.capacity() > 0
                && (s.role != ServerRole::Rms || policy.include_rms)
        })
        .collect();
    let salts: Vec<u64> = servers.iter().map(|s| stable_hash(&s.name)).collect();
    let mut by_name: Vec<usize> = (0..servers.len()).collect();
    by_name.sort_by(|&a, &b| servers[a].name.cmp(&servers[b].name));

    let agents = &inventory.agents;
    let mut load_before = vec![0u64; servers.len()];
    for &p in resolved.primary.iter().filter(|&&p| p != NONE) {
        load_before[p as usize] += 1;
    }

    let mut out = Targets {
        primary: vec![NONE; agents.len()],
        span: vec![(0, 0); agents.len()],
        failover: Vec::new(),
    };
    let mut pools = Vec::new();
    for pool in [Pool::Management, Pool::Gateway] {
        let members: Vec<usize> = (0..agents.len())
            .filter(|&a| {
                let p = resolved.primary[a];
                let agent_pool = if p == NONE {
                    Pool::Management
                } else {
                    pool_of_server(&servers[p as usize])
                };
                agent_pool == pool
            })
            .collect();
        let pool_servers: Vec<usize> = by_name
            .iter()
            .copied()
            .filter(|&s| eligible[s] && pool_of_server(&servers[s]) == pool)
            .collect();
        if members.is_empty() {
            continue;
        }
        if pool_servers.is_empty() {
            return Err(Error::NoEligibleServer {
                pool,
                agents: members.len(),
            });
        }
        let ctx = PoolContext {
            servers,
            agents,
            resolved: &resolved,
            salts: &salts,
            pool_servers: &pool_servers,
        };
        pools.push(ctx.balance(pool, &members, policy, &mut out));
    }

    let mut load_after = vec![0u64; servers.len()];
    for &p in &out.primary {
        load_after[p as usize] += 1;
    }
    let changed = (0..agents.len())
        .filter(|&a| {
            resolved.primary[a] != out.primary[a] || resolved.failover_of(a) != out.failover_of(a)
        })
        .map(|a| a as u32)
        .collect();
    let warnings = servers
        .iter()
        .enumerate()
        .filter(|&(i, s)| load_after[i] > u64::from(s.capacity()))
        .map(|(i, s)| Warning::OverCapacity {
            server: &s.name,
            agents: load_after[i],
            capacity: s.capacity(),
        })
        .collect();

    let mut plan = Plan {
        inventory,
        index,
        eligible,
        old_primary: resolved.primary,
        targets: out,
        changed,
        load_before,
        load_after,
        pools,
        warnings,
    };
    for pool in 0..plan.pools.len() {
        plan.pools[pool].failures = plan.failure_impacts(&plan.pools[pool]);
    }
    Ok(plan)
}

/// Every agent's target: primary and failover list, by server position.
#[derive(Debug, Clone)]
struct Targets {
    primary: Vec<u32>,
    /// Where each agent's failover list sits in `failover`: start and length.
    span: Vec<(u32, u32)>,
    failover: Vec<u32>,
}

impl Targets {
    fn failover_of(&self, a: usize) -> &[u32] {
        let (start, len) = self.span[a];
        &self.failover[start as usize..(start + len) as usize]
    }
}

/// What balancing one pool needs to see.
struct PoolContext<'a, 'i> {
    servers: &'a [Server],
    agents: &'a [Agent],
    resolved: &'i Resolved,
    salts: &'i [u64],
    /// The pool's eligible servers, by inventory position, ordered by name.
    pool_servers: &'i [usize],
}

impl<'a> PoolContext<'a, '_> {
    fn balance(
        &self,
        pool: Pool,
        members: &[usize],
        policy: &Policy,
        out: &mut Targets,
    ) -> PoolReport<'a> {
        let n = self.pool_servers.len();
        // Inventory position -> position among the pool's servers.
        let mut local = vec![NONE; self.servers.len()];
        for (l, &s) in self.pool_servers.iter().enumerate() {
            local[s] = l as u32;
        }
        let local_of = |server: u32| {
            if server == NONE {
                None
            } else {
                Some(local[server as usize]).filter(|&l| l != NONE)
            }
        };
        let weights: Vec<u64> = self
            .pool_servers
            .iter()
            .map(|&s| u64::from(self.servers[s].capacity()))
            .collect();
        let salts: Vec<u64> = self.pool_servers.iter().map(|&s| self.salts[s]).collect();

        let items: Vec<Item<'_>> = members
            .iter()
            .map(|&a| Item {
                hash: self.resolved.hashes[a],
                name: &self.agents[a].name,
                current: local_of(self.resolved.primary[a]),
                // Moving a primary is always a change.
                settled: true,
            })
            .collect();
        let must_move = items.iter().filter(|i| i.current.is_none()).count() as u64;
        let outcome = rebalance(&items, &weights, &salts, Some(policy.tolerance));

        let k = policy.failovers.unwrap_or(usize::MAX).min(n - 1);
        // The agents of each primary.
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (pos, &c) in outcome.choice.iter().enumerate() {
            groups[c as usize].push(pos);
        }
        out.failover.reserve(members.len() * k);
        let mut stamp = vec![NONE; n];
        for (s, group) in groups.iter().enumerate() {
            for &pos in group {
                out.primary[members[pos]] = self.pool_servers[s] as u32;
            }
            if k == 0 {
                continue;
            }
            // Candidates for failover: every other server of the pool, by name; their
            // positions skip `s`.
            let candidates: Vec<u32> = (0..n as u32).filter(|&c| c as usize != s).collect();
            let to_candidate = |l: u32| if l as usize > s { l - 1 } else { l };
            let usable = |f: u32| local_of(f).filter(|&l| l as usize != s);
            let cand_items: Vec<Item<'_>> = group
                .iter()
                .map(|&pos| {
                    let old = self.resolved.failover_of(members[pos]);
                    Item {
                        // The first of its failovers that is still usable.
                        current: old.iter().find_map(|&f| usable(f)).map(to_candidate),
                        // An agent that keeps its primary and a full list of usable servers
                        // keeps that list unless its first failover moves; any other agent
                        // changes anyway, so it is the one to move when a first failover
                        // has too many.
                        settled: items[pos].current == Some(s as u32)
                            && old.len() == k
                            && old.iter().all(|&f| usable(f).is_some()),
                        ..items[pos]
                    }
                })
                .collect();
            let cand_weights: Vec<u64> = candidates.iter().map(|&c| weights[c as usize]).collect();
            let cand_salts: Vec<u64> = candidates.iter().map(|&c| salts[c as usize]).collect();
            let first = rebalance(&cand_items, &cand_weights, &cand_salts, None).choice;
            // The same candidates by inventory position, twice over, so that any rotation
            // of them is one slice.
            let doubled: Vec<u32> = candidates
                .iter()
                .chain(&candidates)
                .map(|&l| self.pool_servers[l as usize] as u32)
                .collect();
            for (g, &pos) in group.iter().enumerate() {
                let agent = members[pos];
                let first = first[g] as usize;
                let start = out.failover.len();
                out.failover.push(doubled[first]);
                // Fill up from the other servers in a rotation that starts at a place of the
                // agent's own, so second failovers spread too; usable old entries go first.
                let rotate = (items[pos].hash % candidates.len() as u64) as usize;
                let rotation = &doubled[rotate..rotate + candidates.len()];
                let kept = self
                    .resolved
                    .failover_of(agent)
                    .iter()
                    .filter_map(|&f| local_of(f))
                    .filter(|&l| l as usize != s && to_candidate(l) as usize != first);
                let mut kept = kept.peekable();
                if kept.peek().is_none() {
                    // The common case, a new or reset agent: the rotation without `first`.
                    let skip = (first + candidates.len() - rotate) % candidates.len();
                    let take = k - 1;
                    out.failover.extend(rotation[..skip].iter().take(take));
                    let left = take.saturating_sub(skip);
                    out.failover.extend(rotation[skip + 1..].iter().take(left));
                } else {
                    let mark = pos as u32;
                    stamp[s] = mark;
                    stamp[candidates[first] as usize] = mark;
                    let mut push = |l: u32, list: &mut Vec<u32>| {
                        if list.len() - start < k && stamp[l as usize] != mark {
                            stamp[l as usize] = mark;
                            list.push(self.pool_servers[l as usize] as u32);
                        }
                    };
                    for l in kept {
                        push(l, &mut out.failover);
                    }
                    for &c in &candidates[rotate..] {
                        push(c, &mut out.failover);
                    }
                    for &c in &candidates[..rotate] {
                        push(c, &mut out.failover);
                    }
                }
                out.span[agent] = (start as u32, (out.failover.len() - start) as u32);
            }
        }
        let agents = members.len();
        PoolReport {
            pool,
            eligible: self
                .pool_servers
                .iter()
                .map(|&s| &self.servers[s].name)
                .collect(),
            agents,
            must_move,
            excess: outcome.excess,
            imbalance: outcome.excess as f64 / agents as f64,
            held_by_tolerance: outcome.held,
            failovers: k,
            failures: Vec::new(),
        }
    }
}

impl<'a> Plan<'a> {
    fn server_index(&self, name: &HostName) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn name(&self, server: u32) -> &'a HostName {
        &self.inventory.servers[server as usize].name
    }

    fn failover_of(&self, agent: usize) -> Vec<&'a HostName> {
        self.targets
            .failover_of(agent)
            .iter()
            .map(|&s| self.name(s))
            .collect()
    }

    fn assignment(&self, agent: usize) -> Assignment<'a> {
        Assignment {
            agent: &self.inventory.agents[agent].name,
            primary: self.name(self.targets.primary[agent]),
            failover: self.failover_of(agent),
        }
    }

    /// The target of every agent, in the inventory's order.
    pub fn assignments(&self) -> impl ExactSizeIterator<Item = Assignment<'a>> + '_ {
        (0..self.targets.primary.len()).map(|a| self.assignment(a))
    }

    /// The agents whose primary or failover list changes: first those whose current primary
    /// is not usable (most urgent), then the others, each group in the inventory's order.
    pub fn changes(&self) -> impl Iterator<Item = Change<'a>> + '_ {
        let change = |&a: &u32| {
            let a = a as usize;
            Change {
                agent: &self.inventory.agents[a],
                primary: self.name(self.targets.primary[a]),
                failover: self.failover_of(a),
            }
        };
        // Urgent: the current primary is none, or a server agents should not use now
        // (unreachable, drained or removed). Decided from positions, before building a change.
        let urgent = |&&a: &&u32| {
            let p = self.old_primary[a as usize];
            p == NONE || !self.eligible[p as usize]
        };
        let first = self.changed.iter().filter(urgent);
        let rest = self.changed.iter().filter(move |a| !urgent(a));
        first.chain(rest).map(change)
    }

    /// How many agents change their primary server.
    pub fn moved(&self) -> usize {
        self.changed
            .iter()
            .filter(|&&a| self.old_primary[a as usize] != self.targets.primary[a as usize])
            .count()
    }

    /// How many agents change (primary, failover list, or both).
    pub fn changed(&self) -> usize {
        self.changed.len()
    }

    /// Each server with its agents before the plan, in the inventory's order.
    pub fn load_before(&self) -> impl ExactSizeIterator<Item = (&'a Server, u64)> + '_ {
        self.inventory
            .servers
            .iter()
            .zip(self.load_before.iter().copied())
    }

    /// Each server with its agents after the plan, in the inventory's order.
    pub fn load_after(&self) -> impl ExactSizeIterator<Item = (&'a Server, u64)> + '_ {
        self.inventory
            .servers
            .iter()
            .zip(self.load_after.iter().copied())
    }

    /// The figures of each pool that has agents.
    pub fn pools(&self) -> &[PoolReport<'a>] {
        &self.pools
    }

    /// What should be said loudly: servers over capacity.
    pub fn warnings(&self) -> &[Warning<'a>] {
        &self.warnings
    }

    /// The inventory the plan was made for.
    pub fn inventory(&self) -> &'a Inventory {
        self.inventory
    }

    /// The inventory after the plan: agents in the same order, changed agents with their
    /// target, unchanged agents exactly as they were (spelling included).
    pub fn apply(&self) -> Inventory {
        let mut out = self.inventory.clone();
        for &a in &self.changed {
            let a = a as usize;
            let target = self.assignment(a);
            out.agents[a].primary = Some(target.primary.clone());
            out.agents[a].failover = target.failover.into_iter().cloned().collect();
        }
        out
    }

    fn failure_impacts(&self, report: &PoolReport<'a>) -> Vec<FailureImpact<'a>> {
        let pool_servers: Vec<usize> = report
            .eligible
            .iter()
            .filter_map(|n| self.server_index(n))
            .collect();
        let weight = |s: usize| self.inventory.servers[s].capacity() as f64;
        let total_weight: f64 = pool_servers.iter().map(|&s| weight(s)).sum();
        let pool_agents: u64 = pool_servers.iter().map(|&s| self.load_after[s]).sum();
        let mut first_failover =
            vec![vec![0u64; self.inventory.servers.len()]; self.inventory.servers.len()];
        for (a, &primary) in self.targets.primary.iter().enumerate() {
            if let Some(&first) = self.targets.failover_of(a).first() {
                first_failover[primary as usize][first as usize] += 1;
            }
        }
        pool_servers
            .iter()
            .map(|&failed| {
                let survivors = pool_servers.iter().filter(|&&s| s != failed);
                let worst = survivors
                    .clone()
                    .map(|&s| (self.load_after[s] + first_failover[failed][s], s))
                    .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
                let rest = total_weight - weight(failed);
                let ideal = survivors
                    .map(|&s| pool_agents as f64 * weight(s) / rest)
                    .fold(0.0, f64::max);
                FailureImpact {
                    failed: &self.inventory.servers[failed].name,
                    worst: worst.map(|(_, s)| &self.inventory.servers[s].name),
                    worst_load: worst.map_or(0, |(l, _)| l),
                    ideal,
                }
            })
            .collect()
    }
}

/// Serialises as `{"assignments": [...], "changes": [{"agent", "primary": {"from", "to"},
/// "failover": {"from", "to"}}...], "load_before": {server: n}, "load_after": {server: n},
/// "moved", "pools", "warnings"}`.
impl Serialize for Plan<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Seq<F>(F);
        impl<I: Iterator<Item = T>, T: Serialize, F: Fn() -> I> Serialize for Seq<F> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq((self.0)())
            }
        }
        struct Loads<'p, I>(&'p dyn Fn() -> I);
        impl<'s, I: Iterator<Item = (&'s Server, u64)>> Serialize for Loads<'_, I> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut map = s.serialize_map(None)?;
                for (server, n) in (self.0)() {
                    map.serialize_entry(&server.name, &n)?;
                }
                map.end()
            }
        }
        #[derive(Serialize)]
        struct FromTo<T> {
            from: T,
            to: T,
        }
        #[derive(Serialize)]
        struct ChangeOut<'c> {
            agent: &'c HostName,
            primary: FromTo<Option<&'c HostName>>,
            failover: FromTo<Vec<&'c HostName>>,
        }
        let mut st = serializer.serialize_struct("Plan", 8)?;
        st.serialize_field("management_group", &self.inventory.management_group)?;
        st.serialize_field("assignments", &Seq(|| self.assignments()))?;
        st.serialize_field(
            "changes",
            &Seq(|| {
                self.changes().map(|c| ChangeOut {
                    agent: &c.agent.name,
                    primary: FromTo {
                        from: c.agent.primary.as_ref(),
                        to: Some(c.primary),
                    },
                    failover: FromTo {
                        from: c.agent.failover.iter().collect(),
                        to: c.failover,
                    },
                })
            }),
        )?;
        st.serialize_field("load_before", &Loads(&|| self.load_before()))?;
        st.serialize_field("load_after", &Loads(&|| self.load_after()))?;
        st.serialize_field("moved", &self.moved())?;
        st.serialize_field("pools", &self.pools)?;
        st.serialize_field("warnings", &self.warnings)?;
        st.end()
    }
}
