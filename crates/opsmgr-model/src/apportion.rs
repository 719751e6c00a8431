//! The two primitives the balancer is built from: apportioning a count over weighted
//! choices, and moving as few items as possible to meet those quotas.
//!
//! Both are used twice: for agents over the eligible servers (primaries), and for the agents
//! of one primary over the other servers (first failovers).

use std::cmp::Ordering;

use crate::HostName;
use crate::hostname::mix;

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

/// One item to place: its stable hash, its name (to break hash ties), and its current choice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Item<'a> {
    pub(crate) hash: u64,
    pub(crate) name: &'a HostName,
    pub(crate) current: Option<u32>,
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
    let mut movers: Vec<u32> = (0..items.len() as u32)
        .filter(|&i| items[i as usize].current.is_none())
        .collect();
    let mut load = counts;
    if !held {
        for (c, group) in members.iter_mut().enumerate() {
            let surplus = load[c].saturating_sub(targets[c]) as usize;
            if surplus == 0 {
                continue;
            }
            // The items that score lowest with this choice leave it (rendezvous hashing).
            let salt = salts[c];
            let key = |&i: &u32| {
                let it = &items[i as usize];
                (mix(it.hash ^ salt), it.name)
            };
            group.select_nth_unstable_by(surplus - 1, |a, b| key(a).cmp(&key(b)));
            for &i in &group[..surplus] {
                choice[i as usize] = u32::MAX;
                movers.push(i);
            }
            load[c] = targets[c];
        }
    }
    movers.sort_unstable_by(|&a, &b| hash_order(&items[a as usize], &items[b as usize]));
    let slots = interleaved_slots(&load, &targets, movers.len());
    for (&item, &slot) in movers.iter().zip(&slots) {
        choice[item as usize] = slot;
    }
    Outcome {
        choice,
        excess,
        held,
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

/// Orders item positions by their hash, names breaking ties: an order that does not depend
/// on how the input was sorted.
fn hash_order(a: &Item<'_>, b: &Item<'_>) -> Ordering {
    a.hash.cmp(&b.hash).then_with(|| a.name.cmp(b.name))
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
    fn interleaving_spreads_a_partial_fill() {
        assert_eq!(
            interleaved_slots(&[0, 0, 0], &[3, 1, 2], 4),
            vec![0, 2, 1, 0]
        );
        assert_eq!(interleaved_slots(&[0, 0], &[1, 1], 5), vec![0, 1]);
    }
}
