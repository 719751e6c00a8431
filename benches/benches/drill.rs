//! The drill (the README's main job) at 200, 2,000 and 10,000 agents, per phase. Each drill
//! run serves every phase's measurement: criterion asks each phase for its samples in turn,
//! and the n-th sample of every phase comes from the n-th run, so a size costs about a dozen
//! drills, not one per phase and sample.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, criterion_group, criterion_main};
use opsmgr_drill::{Report, clean_up, run_drill};

/// Drill runs of one size, shared by the phases' measurements.
struct Runs {
    agents: usize,
    reports: Vec<Report>,
    root: tempfile::TempDir,
}

impl Runs {
    fn nth(&mut self, n: usize) -> &Report {
        while self.reports.len() <= n {
            let dir = self.root.path().join(self.reports.len().to_string());
            let report = match run_drill(&dir, self.agents, &mut |_| {}) {
                Ok(r) => r,
                Err(e) => panic!("the drill failed: {e:#}"),
            };
            assert!(
                report.checks.iter().all(|c| c.passed),
                "a check failed: {report:?}"
            );
            // Each run's files go before the next, so disk use stays at one drill's worth.
            let _ = clean_up(&dir);
            self.reports.push(report);
        }
        &self.reports[n]
    }
}

fn drill(c: &mut Criterion) {
    let sizes: Vec<usize> = match std::env::var("OPSMGR_DRILL_SIZES") {
        Ok(list) => list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect(),
        Err(_) => vec![200, 2_000, 10_000],
    };
    let mut group = c.benchmark_group("drill");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    for agents in sizes {
        let mut runs = Runs {
            agents,
            reports: Vec::new(),
            root: match tempfile::tempdir() {
                Ok(d) => d,
                Err(e) => panic!("{e}"),
            },
        };
        let names: Vec<&'static str> = runs.nth(0).phases.iter().map(|p| p.name).collect();
        for (k, name) in names.into_iter().enumerate() {
            let mut next = 0;
            group.bench_function(BenchmarkId::new(name, agents), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            next += 1;
                            Duration::from_secs_f64(runs.nth(next - 1).phases[k].seconds)
                        })
                        .sum()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, drill);
criterion_main!(benches);
