//! The balancer on 10k, 100k and 1M agents over 3, 10 and 50 management servers.
//!
//! `bulk/…`: every agent on one server without failovers, as after a bulk install, planned
//! with every other server as failover (`failovers: None`): the most work a plan does.
//! `steady/…`: the same group once balanced with two failovers each, planned again: what a
//! scheduled `om-balance check` costs.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use opsmgr_benches::bulk_install;
use opsmgr_model::balance::{Policy, plan};

const AGENTS: [usize; 3] = [10_000, 100_000, 1_000_000];
const SERVERS: [usize; 3] = [3, 10, 50];

fn balance(c: &mut Criterion) {
    let mut bulk = c.benchmark_group("bulk");
    bulk.sample_size(10).warm_up_time(Duration::from_secs(1));
    let all = Policy {
        failovers: None,
        ..Policy::default()
    };
    for agents in AGENTS {
        for servers in SERVERS {
            let inv = bulk_install(agents, servers);
            bulk.throughput(Throughput::Elements(agents as u64));
            bulk.bench_with_input(
                BenchmarkId::new(format!("{servers}-servers"), agents),
                &inv,
                |b, inv| b.iter(|| plan(black_box(inv), &all).map(|p| p.moved())),
            );
        }
    }
    bulk.finish();

    let mut steady = c.benchmark_group("steady");
    steady.sample_size(10).warm_up_time(Duration::from_secs(1));
    let policy = Policy {
        failovers: Some(2),
        ..Policy::default()
    };
    for agents in AGENTS {
        for servers in SERVERS {
            let inv = match plan(&bulk_install(agents, servers), &policy) {
                Ok(p) => p.apply(),
                Err(e) => panic!("{e}"),
            };
            steady.throughput(Throughput::Elements(agents as u64));
            steady.bench_with_input(
                BenchmarkId::new(format!("{servers}-servers"), agents),
                &inv,
                |b, inv| b.iter(|| plan(black_box(inv), &policy).map(|p| p.changed())),
            );
        }
    }
    steady.finish();
}

criterion_group!(benches, balance);
criterion_main!(benches);
