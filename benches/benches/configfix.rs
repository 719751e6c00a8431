//! Rewriting the RMS name in a 1 MB rsreportserver.config: our locate-and-splice beside a DOM
//! round trip with xmltree (parse, change the element, write), the usual way tools do it.
//!
//! Before timing, it prints how many bytes and lines each output differs from the original
//! in: ours only the two values, the DOM round trip most of the file.

#![allow(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]
#![allow(
    clippy::print_stdout,
    reason = "the byte-difference figures are part of the report"
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use opsmgr_benches::big_reporting_config;
use opsmgr_configfix::{Document, REPORTING_EXPECTED, reporting};
use xmltree::{Element, XMLNode};

const SIZE: usize = 1 << 20;

fn ours(bytes: &[u8]) -> Vec<u8> {
    let doc = Document::parse(bytes.to_vec()).expect("the benchmark file parses");
    let edit = reporting(
        &doc,
        "MGT01.prod.local",
        Some("RMS.prod.local"),
        REPORTING_EXPECTED,
    )
    .expect("two ServerName values");
    edit.output.expect("the values change")
}

fn dom(bytes: &[u8]) -> Vec<u8> {
    let mut root = Element::parse(bytes).expect("xmltree parses the file");
    let extensions = root.get_mut_child("Extensions").expect("Extensions");
    for group in ["Security", "Authentication"] {
        let name = extensions
            .get_mut_child(group)
            .and_then(|g| g.get_mut_child("Extension"))
            .and_then(|e| e.get_mut_child("Configuration"))
            .and_then(|c| c.get_mut_child("ServerName"))
            .expect("ServerName");
        name.children = vec![XMLNode::Text("MGT01.prod.local".into())];
    }
    let mut out = Vec::with_capacity(bytes.len());
    root.write(&mut out).expect("xmltree writes");
    out
}

fn differences(label: &str, before: &[u8], after: &[u8]) {
    let prefix = before.iter().zip(after).take_while(|(a, b)| a == b).count();
    let suffix = before[prefix..]
        .iter()
        .rev()
        .zip(after[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (b, a) = (
        String::from_utf8_lossy(before),
        String::from_utf8_lossy(after),
    );
    let diff = similar::TextDiff::from_lines(b.as_ref(), a.as_ref());
    let changed = diff
        .iter_all_changes()
        .filter(|c| c.tag() == similar::ChangeTag::Delete)
        .count();
    println!(
        "{label}: {} of {} bytes outside the common prefix and suffix, {changed} of {} lines changed, size {} -> {}",
        before.len() - prefix - suffix,
        before.len(),
        b.lines().count(),
        before.len(),
        after.len()
    );
}

fn configfix(c: &mut Criterion) {
    let input = big_reporting_config(SIZE);
    differences("locate-and-splice", &input, &ours(&input));
    differences("xmltree round trip", &input, &dom(&input));

    let mut group = c.benchmark_group("rewrite-1MB");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("locate-and-splice", |b| b.iter(|| ours(black_box(&input))));
    group.sample_size(20);
    group.bench_function("xmltree-dom-round-trip", |b| {
        b.iter(|| dom(black_box(&input)))
    });
    group.finish();
}

criterion_group!(benches, configfix);
criterion_main!(benches);
