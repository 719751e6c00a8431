//! The balancer on concrete management groups: the seed's setup beside the seed's script,
//! tolerance, gateways, policy refusals and the PowerShell output.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is the failure report"
)]

use std::collections::HashMap;
use std::path::Path;

use opsmgr_model::balance::{Policy, Pool, plan};
use opsmgr_model::inventory::{Agent, Inventory, Server, ServerRole};
use opsmgr_model::script::{Shell, write_powershell};
use opsmgr_model::{Error, HostName};

fn host(s: &str) -> HostName {
    HostName::new(s).unwrap()
}

/// The seed's production network: an RMS agents cannot reach and three management servers,
/// with `agents` agents all on MGT01 after a bulk install.
fn seed_group(agents: usize) -> Inventory {
    let mut servers = vec![Server {
        agent_reachable: false,
        ..Server::new(host("RMS.prod.local"), ServerRole::Rms)
    }];
    for i in 1..=3 {
        servers.push(Server::new(
            host(&format!("MGT0{i}.prod.local")),
            ServerRole::Management,
        ));
    }
    Inventory {
        management_group: "PROD".into(),
        servers,
        agents: (0..agents)
            .map(|i| Agent {
                name: host(&format!("server{i:04}.company.local")),
                primary: Some(host("MGT01.prod.local")),
                failover: vec![],
            })
            .collect(),
    }
}

/// A larger group after a bulk install: an RMS agents cannot reach and `servers` equal
/// management servers, with `agents` agents all on MGT01 without failovers.
fn bulk_group(agents: usize, servers: usize) -> Inventory {
    let mut inv = seed_group(agents);
    inv.servers.truncate(1);
    inv.servers.extend((1..=servers).map(|i| {
        Server::new(
            host(&format!("MGT{i:02}.prod.local")),
            ServerRole::Management,
        )
    }));
    inv
}

/// The seed's jamaLoadBalanceManagementServers.ps1: agents in turn get MGT01, MGT02, MGT03
/// as primary, each with the other two in a fixed rotation as failovers.
fn seed_round_robin(inv: &Inventory) -> Inventory {
    let ms: Vec<HostName> = (1..=3)
        .map(|i| host(&format!("MGT0{i}.prod.local")))
        .collect();
    let mut out = inv.clone();
    for (i, agent) in out.agents.iter_mut().enumerate() {
        let p = i % 3;
        agent.primary = Some(ms[p].clone());
        agent.failover = vec![ms[(p + 1) % 3].clone(), ms[(p + 2) % 3].clone()];
    }
    out
}

/// The most agents any survivor carries when `failed` goes down and its agents go to their
/// first failover.
fn worst_survivor(inv: &Inventory, failed: &HostName) -> u64 {
    let mut load: HashMap<HostName, u64> = HashMap::new();
    for a in &inv.agents {
        let p = a.primary.as_ref().unwrap();
        let to = if p == failed { &a.failover[0] } else { p };
        *load.entry(to.clone()).or_default() += 1;
    }
    load.into_values().max().unwrap()
}

fn changed(before: &Inventory, after: &Inventory) -> usize {
    before
        .agents
        .iter()
        .zip(&after.agents)
        .filter(|(b, a)| b != a)
        .count()
}

#[test]
fn ours_beats_the_seeds_round_robin_on_the_seeds_setup() {
    let bulk = seed_group(300);
    let seed = seed_round_robin(&bulk);
    let ours = plan(&bulk, &Policy::default()).unwrap().apply();

    // Both balance the primaries: 100 agents each, none on the RMS.
    for inv in [&seed, &ours] {
        let mut load: HashMap<&HostName, usize> = HashMap::new();
        for a in &inv.agents {
            *load.entry(a.primary.as_ref().unwrap()).or_default() += 1;
        }
        assert_eq!(load.len(), 3);
        assert!(load.values().all(|&n| n == 100), "{load:?}");
        assert!(!load.contains_key(&host("RMS.prod.local")));
    }

    // When MGT01 fails, the seed sends all its agents to MGT02 (200 agents); ours spreads
    // them (150, the ideal 300 / 2). The same for every server.
    for i in 1..=3 {
        let failed = host(&format!("MGT0{i}.prod.local"));
        assert_eq!(worst_survivor(&seed, &failed), 200);
        assert_eq!(worst_survivor(&ours, &failed), 150);
    }

    // Run again on a balanced group: the seed's script reassigns every agent again, the
    // second run of ours changes nothing.
    assert_eq!(
        changed(&seed, &seed_round_robin(&seed)),
        0,
        "seed is stable on its own output"
    );
    let shuffled = {
        let mut s = seed.clone();
        s.agents.rotate_left(1);
        s
    };
    assert_eq!(
        changed(&shuffled, &seed_round_robin(&shuffled)),
        300,
        "seed reassigns all after any reorder"
    );
    let again = plan(&ours, &Policy::default()).unwrap();
    assert_eq!(again.changed(), 0);
    let mut ours_shuffled = ours.clone();
    ours_shuffled.agents.rotate_left(1);
    assert_eq!(
        plan(&ours_shuffled, &Policy::default()).unwrap().changed(),
        0
    );

    // Ours moves exactly the 200 agents that must leave MGT01; the seed also moves 200 here,
    // but rewrites the failovers of all 300 and would move agents again on every new install.
    let p = plan(&bulk, &Policy::default()).unwrap();
    assert_eq!(p.moved(), 200);
    let report = &p.pools()[0];
    assert_eq!(report.pool, Pool::Management);
    assert!(
        report
            .failures
            .iter()
            .all(|f| f.worst_load == 150 && f.ideal == 150.0)
    );
}

#[test]
fn the_shipped_example_balances_onto_three_servers() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/inventory.json");
    let inv = Inventory::load(&path).unwrap();
    let p = plan(&inv, &Policy::default()).unwrap();
    let after: Vec<(String, u64)> = p
        .load_after()
        .map(|(s, n)| (s.name.to_string(), n))
        .collect();
    assert_eq!(
        after,
        [
            ("RMS.prod.local".to_owned(), 0),
            ("MGT01.prod.local".to_owned(), 12),
            ("MGT02.prod.local".to_owned(), 12),
            ("MGT03.prod.local".to_owned(), 12)
        ]
    );
    assert_eq!(p.moved(), 24);
    assert_eq!(p.changed(), 36);
}

#[test]
fn two_failovers_by_default_and_all_when_asked() {
    let bulk = bulk_group(1000, 20);
    let two = plan(&bulk, &Policy::default()).unwrap();
    assert_eq!(two.pools()[0].failovers, 2);
    assert!(two.assignments().all(|a| a.failover.len() == 2));

    // `None` is the seed's "every other server", as before.
    let all = Policy {
        failovers: None,
        ..Policy::default()
    };
    let p = plan(&bulk, &all).unwrap();
    assert_eq!(p.pools()[0].failovers, 19);
    for a in p.assignments() {
        let mut servers: Vec<&HostName> = a.failover.clone();
        servers.push(a.primary);
        servers.sort();
        servers.dedup();
        assert_eq!(servers.len(), 20, "{a:?}");
        assert!(servers.iter().all(|s| s.as_str().starts_with("MGT")));
    }
    // A group balanced with all keeps all; with the default, the lists shrink to two.
    let applied = p.apply();
    assert_eq!(plan(&applied, &all).unwrap().changed(), 0);
    let shrunk = plan(&applied, &Policy::default()).unwrap();
    assert_eq!((shrunk.moved(), shrunk.changed()), (0, 1000));
    assert!(shrunk.assignments().all(|a| a.failover.len() == 2));
}

/// Whether `server` is the agent's primary or in its failover list.
fn names(agent: &Agent, server: &HostName) -> bool {
    agent.primary.as_ref() == Some(server) || agent.failover.contains(server)
}

/// Adding or draining one of `n` equal servers rewrites a bounded share of the `m` agents'
/// failover lists, about `2/(n+1)` and `(1 + k)/n`, where all failovers rewrite every list.
#[test]
fn one_server_more_or_less_rewrites_only_the_lists_it_concerns() {
    let (m, n) = (10_000usize, 20usize);
    let exact = Policy {
        tolerance: 0.0,
        ..Policy::default()
    };
    let default_k = Policy::default()
        .failovers
        .expect("the default is a number of failovers");
    for k in [default_k, 1, 3] {
        let policy = Policy {
            failovers: Some(k),
            ..exact.clone()
        };
        let balanced = plan(&bulk_group(m, n), &policy).unwrap().apply();

        // Adding MGT21. `moved` agents move to it (its share). In each old server's group of
        // g agents, every list had k usable entries and keeps them (kept entries come first),
        // so a list changes only when its first failover does. Those are rebalanced with
        // as few moves as the new targets allow: the new server's share, at most
        // ceil(g/n), plus each old candidate's shortfall. A candidate held at least
        // floor(g/(n-1)) agents and its target is at most ceil(g'/n) <= floor(g/(n-1)) + 1
        // (the group shrank to g', the candidates grew), so its shortfall is at most the
        // agents that left it (moved to the new server) plus 1. Over the n groups:
        // changed <= moved + (m - moved)/n + n + moved + n(n - 1).
        let mut grown = balanced.clone();
        grown.servers.push(Server::new(
            host("MGT21.prod.local"),
            ServerRole::Management,
        ));
        let p = plan(&grown, &policy).unwrap();
        let moved = p.moved();
        assert!(
            moved == m / (n + 1) || moved == m.div_ceil(n + 1),
            "{moved}"
        );
        let bound = 2 * moved + (m - moved).div_ceil(n) + n + n * (n - 1);
        assert!(p.changed() <= bound, "k {k}: {} > {bound}", p.changed());

        // Draining MGT10: exactly the agents that name it change. They must; and no other
        // does: the survivors keep their agents (equal capacities), and in each survivor's
        // group of g agents the target of every remaining first failover grows from
        // g/(n-1) to at least g/(n-2), by g/((n-1)(n-2)) >= 1 here, so no candidate holds
        // more agents with an intact list than its target, and the agents that change
        // anyway are the ones moved off a full candidate.
        assert!(m / n >= (n - 1) * (n - 2));
        let gone = host("MGT10.prod.local");
        let drained = Policy {
            exclude: vec![gone.clone()],
            ..policy.clone()
        };
        let after = plan(&balanced, &drained).unwrap().apply();
        let mut named = 0;
        for (b, a) in balanced.agents.iter().zip(&after.agents) {
            assert_eq!(b != a, names(b, &gone), "k {k}: {b:?} -> {a:?}");
            named += usize::from(names(b, &gone));
        }
        // And they are about (1 + k)/n of the agents: its own m/n agents; its share of
        // first failovers in each of the n - 1 other groups, at most (m - m/n)/(n-1) + n - 1;
        // and in each of the k - 1 later places, which the agent's hash fills from a
        // rotation of the other servers, about m/n more (allowing twice that).
        let bound = m.div_ceil(n) + (m - m / n).div_ceil(n - 1) + (n - 1) + 2 * (k - 1) * m / n;
        assert!(
            named <= bound,
            "k {k}: {named} agents name {gone}, > {bound}"
        );
    }

    // With all failovers every list names every server: both changes rewrite every agent.
    let all = Policy {
        failovers: None,
        ..exact
    };
    let balanced = plan(&bulk_group(m, n), &all).unwrap().apply();
    let mut grown = balanced.clone();
    grown.servers.push(Server::new(
        host("MGT21.prod.local"),
        ServerRole::Management,
    ));
    assert_eq!(plan(&grown, &all).unwrap().changed(), m);
    let drained = Policy {
        exclude: vec![host("MGT10.prod.local")],
        ..all
    };
    assert_eq!(plan(&balanced, &drained).unwrap().changed(), m);
}

#[test]
fn tolerance_holds_small_imbalances_but_not_broken_agents() {
    let mut inv = seed_round_robin(&seed_group(300));
    // Three agents more on MGT01 (1% of agents out of balance), one agent on the RMS.
    for a in inv.agents.iter_mut().skip(1).step_by(3).take(3) {
        a.primary = Some(host("MGT01.prod.local"));
        a.failover.retain(|f| f != "MGT01.prod.local");
    }
    inv.agents[2].primary = Some(host("RMS.prod.local"));
    let p = plan(&inv, &Policy::default()).unwrap();
    let report = &p.pools()[0];
    assert!(report.held_by_tolerance);
    assert_eq!(report.must_move, 1);
    assert_eq!(report.excess, 3);
    assert_eq!(p.moved(), 1, "only the agent on the RMS moves");

    let exact = Policy {
        tolerance: 0.0,
        ..Policy::default()
    };
    let p = plan(&inv, &exact).unwrap();
    assert!(!p.pools()[0].held_by_tolerance);
    assert_eq!(p.moved(), 4);
}

#[test]
fn gateways_balance_their_own_agents() {
    let mut inv = seed_group(4);
    for g in ["GW01.dmz.local", "GW02.dmz.local"] {
        inv.servers.push(Server::new(host(g), ServerRole::Gateway));
    }
    for i in 0..6 {
        inv.agents.push(Agent {
            name: host(&format!("dmz{i}.customer.local")),
            primary: Some(host("GW01.dmz.local")),
            failover: vec![],
        });
    }
    let p = plan(&inv, &Policy::default()).unwrap();
    for a in p.assignments() {
        let behind_gateway = a.agent.as_str().starts_with("dmz");
        let all: Vec<&HostName> = std::iter::once(a.primary)
            .chain(a.failover.iter().copied())
            .collect();
        for s in all {
            assert_eq!(s.as_str().starts_with("GW"), behind_gateway, "{a:?}");
        }
    }
    let loads: HashMap<String, u64> = p
        .load_after()
        .map(|(s, n)| (s.name.to_string(), n))
        .collect();
    assert_eq!(loads["GW01.dmz.local"], 3);
    assert_eq!(loads["GW02.dmz.local"], 3);
}

#[test]
fn over_capacity_is_said_loudly_and_still_balanced() {
    let mut inv = seed_group(10);
    for s in &mut inv.servers[1..] {
        s.capacity = Some(2);
    }
    inv.servers[3].capacity = Some(4);
    let p = plan(&inv, &Policy::default()).unwrap();
    let warnings: Vec<String> = p.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "MGT01.prod.local is over capacity: 3 agents, it supports 2",
            "MGT03.prod.local is over capacity: 5 agents, it supports 4",
        ]
    );
    let loads: Vec<u64> = p.load_after().map(|(_, n)| n).collect();
    // Shares 2.5 : 2.5 : 5 of 10 agents; MGT01 keeps the odd one, which saves a move.
    assert_eq!(loads, [0, 3, 2, 5]);
}

#[test]
fn policy_refusals() {
    let inv = seed_group(3);
    let e = plan(
        &inv,
        &Policy {
            include_rms: true,
            ..Policy::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::RmsUnreachable(n) if n == "RMS.prod.local"),
        "{e}"
    );
    let e = plan(
        &inv,
        &Policy {
            exclude: vec![host("MGT09.prod.local")],
            ..Policy::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "policy names server 'MGT09.prod.local', which is not in the inventory"
    );
    let all = (1..=3)
        .map(|i| host(&format!("MGT0{i}.prod.local")))
        .collect();
    let e = plan(
        &inv,
        &Policy {
            exclude: all,
            ..Policy::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "3 agent(s) need a management server, but no management server is eligible (reachable, capacity above 0, not excluded)"
    );
    // A reachable RMS may carry agents when asked.
    let mut reachable = inv.clone();
    reachable.servers[0].agent_reachable = true;
    let p = plan(
        &reachable,
        &Policy {
            include_rms: true,
            tolerance: 0.0,
            ..Policy::default()
        },
    )
    .unwrap();
    assert_eq!(p.pools()[0].eligible.len(), 4);
}

#[test]
fn ps2007_script_sets_primary_and_failovers_in_one_call_for_changes_only() {
    let mut inv = seed_round_robin(&seed_group(6));
    inv.agents[0].primary = Some(host("RMS.prod.local"));
    inv.agents[0].failover = vec![host("MGT02.prod.local")];
    let p = plan(
        &inv,
        &Policy {
            tolerance: 0.0,
            ..Policy::default()
        },
    )
    .unwrap();
    let mut out = Vec::new();
    write_powershell(&p, Shell::OpsMgr2007, &mut out).unwrap();
    let script = String::from_utf8(out).unwrap();
    let calls: Vec<&str> = script
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("Set-ManagementServer"))
        .collect();
    assert_eq!(calls.len(), p.changed());
    // The agent on the RMS is the urgent one and comes first; one call sets everything.
    let c = p.changes().next().unwrap();
    assert_eq!(c.agent.name, "server0000.company.local");
    let list: Vec<String> = c.failover.iter().map(|f| format!("$ms['{f}']")).collect();
    assert_eq!(list.len(), 2);
    assert_eq!(
        calls[0],
        format!(
            "Set-ManagementServer -AgentManagedComputer $agents['server0000.company.local'] -PrimaryManagementServer $ms['{}'] -FailoverServer {}",
            c.primary,
            list.join(",")
        )
    );
    assert!(script.contains("$ErrorActionPreference = 'Stop'"));
    assert!(script.contains("Get-GatewayManagementServer"));
}

#[test]
fn ps2012_script_is_make_before_break() {
    // An agent whose new primary is currently its failover: it must first lose that failover
    // (keeping the others), then get the primary, then the new failover list.
    let mut inv = seed_group(3);
    inv.agents[0].failover = vec![host("MGT02.prod.local"), host("MGT03.prod.local")];
    let p = plan(
        &inv,
        &Policy {
            tolerance: 0.0,
            ..Policy::default()
        },
    )
    .unwrap();
    let change = p
        .changes()
        .find(|c| c.agent.name == "server0000.company.local")
        .unwrap();
    let mut out = Vec::new();
    write_powershell(&p, Shell::Scom2012, &mut out).unwrap();
    let script = String::from_utf8(out).unwrap();
    let agent = "$agents['server0000.company.local']";
    let calls: Vec<&str> = script
        .lines()
        .map(str::trim_start)
        .filter(|l| l.contains(agent) && l.starts_with("Set-SCOM"))
        .collect();
    if change.primary_changes() {
        let new = change.primary.as_str();
        let kept: Vec<String> = ["MGT02.prod.local", "MGT03.prod.local"]
            .iter()
            .filter(|&&f| f != new)
            .map(|f| format!("$ms['{f}']"))
            .collect();
        assert_eq!(calls.len(), 3, "{script}");
        assert_eq!(
            calls[0],
            format!(
                "Set-SCOMParentManagementServer -Agent {agent} -FailoverServer {}",
                kept.join(",")
            )
        );
        assert_eq!(
            calls[1],
            format!("Set-SCOMParentManagementServer -Agent {agent} -PrimaryServer $ms['{new}']")
        );
        assert!(calls[2].starts_with(&format!(
            "Set-SCOMParentManagementServer -Agent {agent} -FailoverServer "
        )));
    } else {
        assert_eq!(calls.len(), 1);
    }
    // Every agent that changes ends with its full target failover list.
    for c in p.changes() {
        let list: Vec<String> = c.failover.iter().map(|f| format!("$ms['{f}']")).collect();
        let want = format!(
            "Set-SCOMParentManagementServer -Agent $agents['{}'] -FailoverServer {}",
            c.agent.name,
            list.join(",")
        );
        assert!(script.contains(&want), "missing: {want}");
    }
}

#[test]
fn json_output_has_the_documented_shape() {
    let inv = seed_group(3);
    let p = plan(&inv, &Policy::default()).unwrap();
    let v: serde_json::Value = serde_json::to_value(&p).unwrap();
    assert_eq!(v["assignments"].as_array().unwrap().len(), 3);
    assert_eq!(v["load_before"]["MGT01.prod.local"], 3);
    assert_eq!(v["load_after"]["MGT01.prod.local"], 1);
    let change = &v["changes"][0];
    assert_eq!(change["primary"]["from"], "MGT01.prod.local");
    assert!(change["failover"]["from"].as_array().unwrap().is_empty());
    assert_eq!(change["failover"]["to"].as_array().unwrap().len(), 2);
}
