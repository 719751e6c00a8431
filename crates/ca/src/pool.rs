//! The batch's threads: a map over a slice on scoped threads, results in input order.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` over `items` on `jobs` threads (at least one, at most one per item), results in
/// input order. A panic in `f` is resumed on the caller's thread.
pub(crate) fn par_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut slots: Vec<Option<R>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..jobs.clamp(1, items.len().max(1)))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(item)));
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(done) => {
                    for (i, r) in done {
                        slots[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_their_order_whatever_the_threads() {
        let items: Vec<u32> = (0..1000).collect();
        for jobs in [0, 1, 3, 64] {
            assert_eq!(
                par_map(&items, jobs, |x| x * 2),
                (0..1000).map(|x| x * 2).collect::<Vec<_>>()
            );
        }
        assert!(par_map(&[] as &[u32], 4, |x| *x).is_empty());
    }
}
