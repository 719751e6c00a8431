//! The bodies of the fuzz targets, as plain functions so that the committed seeds can also be
//! replayed on stable (`cargo test` in this folder) where no nightly toolchain exists.

use std::collections::HashMap;

use opsmgr_model::{HostName, Inventory, Policy, ServerRole, plan};

/// Arbitrary bytes to the inventory reader; when they parse, the balancer runs and its
/// properties 1 (balance), 4 (valid failover lists) and 5 (determinism, idempotence) are
/// asserted. Every other outcome must be a clean error, never a panic.
pub fn inventory(data: &[u8]) {
    let Ok(inv) = Inventory::from_json_reader(data, "fuzz") else {
        return;
    };
    let policy = Policy {
        tolerance: 0.0,
        ..Policy::default()
    };
    let Ok(p) = plan(&inv, &policy) else {
        return;
    };
    let after = p.apply();
    assert!(
        after.validate().is_ok(),
        "the plan's result is a valid inventory"
    );

    // Pools: agents behind a gateway stay with gateways, the others with management servers.
    let role = |name: &HostName| inv.server(name).map(|s| s.role);
    let gateway =
        |a: &opsmgr_model::Agent| a.primary.as_ref().and_then(role) == Some(ServerRole::Gateway);
    let eligible = |name: &HostName, behind_gateway: bool| {
        inv.server(name).is_some_and(|s| {
            s.agent_reachable
                && s.capacity() > 0
                && s.role != ServerRole::Rms
                && (s.role == ServerRole::Gateway) == behind_gateway
        })
    };
    let mut load: HashMap<&HostName, u64> = HashMap::new();
    let mut members = [0u64; 2];
    for (before, a) in inv.agents.iter().zip(&after.agents) {
        let behind = gateway(before);
        members[usize::from(behind)] += 1;
        let primary = a.primary.as_ref().expect("every agent has a primary");
        assert!(
            eligible(primary, behind),
            "{primary} is not eligible for {}",
            a.name
        );
        *load.entry(primary).or_default() += 1;
        // 4. Failover lists: distinct, not the primary, eligible.
        for (j, f) in a.failover.iter().enumerate() {
            assert!(f != primary && !a.failover[..j].contains(f));
            assert!(eligible(f, behind), "failover {f} is not eligible");
        }
    }
    // 1. Balance: each eligible server holds the floor or ceiling of its weighted share.
    for behind in [false, true] {
        let servers: Vec<_> = inv
            .servers
            .iter()
            .filter(|s| eligible(&s.name, behind))
            .collect();
        let total = members[usize::from(behind)];
        if total == 0 {
            continue;
        }
        let sum: u64 = servers.iter().map(|s| u64::from(s.capacity())).sum();
        for s in servers {
            let share = u128::from(total) * u128::from(s.capacity());
            let floor = share / u128::from(sum);
            let ceil = floor + u128::from(share % u128::from(sum) != 0);
            let n = u128::from(load.get(&s.name).copied().unwrap_or(0));
            assert!(
                n == floor || n == ceil,
                "{} carries {n}, share {floor}..{ceil}",
                s.name
            );
        }
    }
    // 5. Determinism and idempotence.
    let mut reversed = inv.clone();
    reversed.agents.reverse();
    reversed.servers.reverse();
    let targets = |p: &opsmgr_model::Plan<'_>| {
        let mut t: Vec<(String, String, Vec<String>)> = p
            .assignments()
            .map(|a| {
                (
                    a.agent.to_lowercase(),
                    a.primary.to_lowercase(),
                    a.failover.iter().map(|f| f.to_lowercase()).collect(),
                )
            })
            .collect();
        t.sort();
        t
    };
    let again = plan(&reversed, &policy).expect("a reordered inventory plans too");
    assert_eq!(
        targets(&p),
        targets(&again),
        "the plan depends on input order"
    );
    let settled = plan(&after, &policy).expect("the result plans");
    assert_eq!(settled.changed(), 0, "planning the result again changes it");
}
