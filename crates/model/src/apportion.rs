//! The two primitives the balancer is built from: apportioning a count over weighted
//! choices, and moving as few items as possible to meet those quotas.
//!
//! Both are used twice: for agents over the eligible servers (primaries), and for the agents
//! of one primary over the other servers (first failovers).

use std::cmp::Ordering;

use crate::HostName;
use crate::hash::mix;

/// Target counts for `total` items over choices with `weights` (all above zero): each target is
/// the floor or the ceiling of `total * w / sum(w)`, and the targets sum to `total`.
///
/// Which choices get the ceiling is decided to move as little as possible: first those that
/// already hold more than the floor (each saves a move), then the least loaded (so a new
/// server takes the extra rather than an old one receiving one more), then the largest
/// remainder, then the choice's position (callers order choices by name).
pub(crate) fn apportion(total: u64, weights: &[u64], current: &[u64]) -> Vec<u64> {
    debug_assert_eq!(weights.len(), current.len());
    let sum: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    if sum == 0 {
        return vec![0; weights.len()];
    }
    let total_wide = u128::from(total);
    let mut targets = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for &w in weights {
        let share = total_wide * u128::from(w);
        // share / sum <= total, so it fits in u64.
        targets.push(u64::try_from(share / sum).unwrap_or(total));
        remainders.push(share % sum);
    }
    let assigned: u64 = targets.iter().sum();
    let extra = usize::try_from(total - assigned).unwrap_or(usize::MAX);
    let mut candidates: Vec<usize> = (0..weights.len()).filter(|&i| remainders[i] > 0).collect();
    candidates.sort_by(|&a, &b| {
        let above = |i: usize| current[i] > targets[i];
        above(b)
            .cmp(&above(a))
            .then(current[a].cmp(&current[b]))
            .then(remainders[b].cmp(&remainders[a]))
            .then(a.cmp(&b))
    });
    for &i in candidates.iter().take(extra) {
        targets[i] += 1;
    }
    targets
}

/// One item to place: its stable hash, its name (to break hash ties), its current choice, and
/// whether moving it costs a change of its own.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) hash: u64,
    pub(crate) name: &'a HostName,
    pub(crate) current: Option<u32>,
    /// False when the item changes anyway, whatever its choice: such items leave a choice
    /// above its target before any settled one does.
    pub(crate) settled: bool,
}

/// The result of [`rebalance`].
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The choice of every item, by position.
    pub(crate) choice: Vec<u32>,
    /// How many placed items stood above their choice's target before.
    pub(crate) excess: u64,
    /// Whether the tolerance kept placed items where they were.
    pub(crate) held: bool,
}

/// Places `items` over choices with `weights`, moving as few as possible: items without a
/// current choice are always placed; items on a choice above its target move only when the
/// share of such excess items exceeds `tolerance` (`None`: always). Which items leave a choice
/// and where each mover goes depend only on the items' and choices' hashes (`salts`), never
/// on input order.
pub(crate) fn rebalance(
    items: &[Item<'_>],
    weights: &[u64],
    salts: &[u64],
    tolerance: Option<f64>,
) -> Outcome {
    let n = weights.len();
    let mut counts = vec![0u64; n];
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (i, item) in items.iter().enumerate() {
        if let Some(c) = item.current {
            counts[c as usize] += 1;
            members[c as usize].push(i as u32);
        }
    }
    let targets = apportion(items.len() as u64, weights, &counts);
    let excess: u64 = counts
        .iter()
        .zip(&targets)
        .map(|(&c, &t)| c.saturating_sub(t))
        .sum();
    let held = tolerance.is_some_and(|tol| excess as f64 <= tol * items.len() as f64);

    let mut choice: Vec<u32> = items
        .iter()
        .map(|it| it.current.unwrap_or(u32::MAX))
        .collect();
    // Movers carry their hash beside their position: sorting a flat array is several times
    // faster than sorting positions that look their hash up.
    let mut movers: Vec<(u64, u32)> = items
        .iter()
        .enumerate()
        .filter(|(_, it)| it.current.is_none())
        .map(|(i, it)| (it.hash, i as u32))
        .collect();
    let mut load = counts;
    if !held {
        for (c, group) in members.iter().enumerate() {
            let surplus = load[c].saturating_sub(targets[c]) as usize;
            if surplus == 0 {
                continue;
            }
            // Items that change anyway leave first; then the settled items that score lowest
            // with this choice (rendezvous hashing).
            let salt = salts[c];
            let (mut leaving, mut settled): (Vec<_>, Vec<_>) = group
                .iter()
                .map(|&i| (mix(items[i as usize].hash ^ salt), i))
                .partition(|&(_, i)| !items[i as usize].settled);
            if surplus < leaving.len() {
                lowest(items, &mut leaving, surplus);
            } else {
                lowest(items, &mut settled, surplus - leaving.len());
                leaving.append(&mut settled);
            }
            // (Selecting leaves the rest unordered; the movers are sorted below.)
            for &(_, i) in &leaving {
                choice[i as usize] = u32::MAX;
                movers.push((items[i as usize].hash, i));
            }
            load[c] = targets[c];
        }
    }
    sort_by_hash(&mut movers, |a, b| {
        items[a.1 as usize].name.cmp(items[b.1 as usize].name)
    });
    let slots = interleaved_slots(&load, &targets, movers.len());
    for (&(_, item), &slot) in movers.iter().zip(&slots) {
        choice[item as usize] = slot;
    }
    Outcome {
        choice,
        excess,
        held,
    }
}

/// Keeps the `n` pairs of lowest key (name breaking ties), in no order.
fn lowest(items: &[Item<'_>], scored: &mut Vec<(u64, u32)>, n: usize) {
    if n < scored.len() {
        if n > 0 {
            scored.select_nth_unstable_by(n - 1, |a, b| by_key_then_name(items, a, b));
        }
        scored.truncate(n);
    }
}

/// Up to `want` free places, taking one from each choice below its target in turn, the
/// choices with the most room first, so that a partial fill still spreads evenly.
fn interleaved_slots(load: &[u64], targets: &[u64], want: usize) -> Vec<u32> {
    let mut room: Vec<(u64, u32)> = load
        .iter()
        .zip(targets)
        .enumerate()
        .filter(|(_, (l, t))| t > l)
        .map(|(c, (l, t))| (t - l, c as u32))
        .collect();
    room.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut slots = Vec::with_capacity(want);
    let mut round = 0;
    while slots.len() < want {
        let open = room.partition_point(|&(r, _)| r > round);
        if open == 0 {
            break;
        }
        for &(_, c) in &room[..open] {
            if slots.len() == want {
                break;
            }
            slots.push(c);
        }
        round += 1;
    }
    slots
}

/// Sorts (hash, position) pairs by hash, `tie` ordering equal hashes: one scatter into
/// buckets by the top bits, then a sort of each (on uniform hashes, tiny) bucket. For the
/// balancer's hundreds of thousands of agents this is several times faster than a comparison
/// sort, and no slower on adversarial input, whose buckets fall back to that sort.
pub(crate) fn sort_by_hash(
    pairs: &mut Vec<(u64, u32)>,
    tie: impl Fn(&(u64, u32), &(u64, u32)) -> Ordering,
) {
    let compare = |a: &(u64, u32), b: &(u64, u32)| a.0.cmp(&b.0).then_with(|| tie(a, b));
    if pairs.len() < 64 {
        pairs.sort_unstable_by(compare);
        return;
    }
    let bits = (usize::BITS - pairs.len().leading_zeros()).min(20);
    let shift = 64 - bits;
    let mut starts = vec![0usize; (1 << bits) + 1];
    for &(h, _) in pairs.iter() {
        starts[(h >> shift) as usize + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
    let mut sorted = vec![(0u64, 0u32); pairs.len()];
    let mut next = starts.clone();
    for &p in pairs.iter() {
        let b = (p.0 >> shift) as usize;
        sorted[next[b]] = p;
        next[b] += 1;
    }
    for w in starts.windows(2) {
        if w[1] - w[0] > 1 {
            sorted[w[0]..w[1]].sort_unstable_by(compare);
        }
    }
    *pairs = sorted;
}

/// Orders (key, position) pairs by key; equal keys (distinct names with colliding hashes)
/// by name, so that the order never depends on the input's order.
fn by_key_then_name(items: &[Item<'_>], a: &(u64, u32), b: &(u64, u32)) -> Ordering {
    a.0.cmp(&b.0)
        .then_with(|| items[a.1 as usize].name.cmp(items[b.1 as usize].name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_floor_or_ceil_and_sums() {
        assert_eq!(apportion(10, &[1, 1, 1], &[10, 0, 0]), vec![4, 3, 3]);
        assert_eq!(apportion(10, &[1, 1, 1], &[0, 0, 10]), vec![3, 3, 4]);
        assert_eq!(apportion(7, &[3000, 2000], &[0, 0]), vec![4, 3]);
        assert_eq!(apportion(0, &[1, 2], &[0, 0]), vec![0, 0]);
        // An exact share never gets the extra, even when it holds more.
        assert_eq!(apportion(4, &[1, 1, 2], &[4, 0, 0]), vec![1, 1, 2]);
    }

    #[test]
    fn sort_by_hash_sorts_and_breaks_ties() {
        let mut rng = 7u64;
        let mut pairs: Vec<(u64, u32)> = (0..10_000u32)
            .map(|i| {
                rng = mix(rng.wrapping_add(i as u64));
                // Many equal hashes, to exercise the tie-break inside buckets.
                (rng & 0xffff_0000_0000_00ff, i)
            })
            .collect();
        let mut expect = pairs.clone();
        expect.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        sort_by_hash(&mut pairs, |a, b| b.1.cmp(&a.1));
        assert_eq!(pairs, expect);
    }

    #[test]
    fn interleaving_spreads_a_partial_fill() {
        assert_eq!(
            interleaved_slots(&[0, 0, 0], &[3, 1, 2], 4),
            vec![0, 2, 1, 0]
        );
        assert_eq!(interleaved_slots(&[0, 0], &[1, 1], 5), vec![0, 1]);
    }
}
