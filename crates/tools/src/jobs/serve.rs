//! `om-ca serve`: the drop share processed as requests arrive, for years. File events (the
//! `notify` crate) start a batch soon after a request lands; a full sweep every `sweep`
//! catches what a network mount never reports and republishes the CRL when it is due; a
//! request still settling is looked at again once it has settled. A stop request (the
//! caller's flag, set by SIGTERM or SIGINT) is honoured between batches: the batch in hand
//! finishes, so nothing is left half-written; a kill mid-batch is what the batch itself is
//! safe against.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use notify::Watcher as _;
use opsmgr_ca::authority::{Authority, Published};
use opsmgr_ca::dropfolder::{FileOutcome, Outcome, ProcessOptions, Summary};

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// A full sweep of the share at least this often, events or not.
    pub sweep: Duration,
    /// How long after a file event the batch starts (more files of one copy arrive together).
    pub debounce: Duration,
    /// How often the stop flag is looked at while idle.
    pub tick: Duration,
    /// The least time between the end of one batch and the start of the next: a client
    /// rewriting a request without pause starts at most one batch per gap.
    pub gap: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            sweep: Duration::from_secs(60),
            debounce: Duration::from_millis(200),
            tick: Duration::from_millis(200),
            gap: Duration::from_secs(1),
        }
    }
}

/// What the service reports, one event at a time, for the caller to log.
#[derive(Debug)]
pub enum Event<'a> {
    /// Started: whether file events are watched (else only sweeps, and why).
    Started {
        /// `None` when events are watched; else why not.
        no_events: Option<String>,
    },
    /// A request's outcome, said once: when first seen and each time it changes.
    Outcome(&'a FileOutcome),
    /// A batch that looked at files or published a CRL.
    Batch {
        /// What it did.
        summary: &'a Summary,
        /// How long it took.
        seconds: f64,
    },
    /// A CRL published by a batch.
    Crl(&'a Published),
    /// A batch that could not run (the share unreachable, the CA locked too long...): the
    /// service goes on and tries again at the next sweep.
    Failed(String),
    /// Stopped on request, with nothing half-done.
    Stopped,
}

/// Runs the service until `stop` is set: batches of `share` with `ca` under `options`, each
/// outcome and batch reported to `report`.
pub fn serve(
    ca: &mut Authority,
    share: &Path,
    options: &ProcessOptions,
    serve: &ServeOptions,
    stop: &AtomicBool,
    report: &mut dyn FnMut(Event<'_>),
) -> Result<()> {
    let (tx, rx) = mpsc::channel::<()>();
    let watched = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only requests arriving or changing start a batch: the batch's own writes (.cer,
        // .bundle, moves into processed/) must not start another.
        if let Ok(event) = event
            && !event.kind.is_access()
            && event
                .paths
                .iter()
                .any(|p| opsmgr_ca::dropfolder::is_request_name(p.file_name().unwrap_or_default()))
        {
            let _ = tx.send(());
        }
    })
    .and_then(|mut w| {
        w.watch(share, notify::RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    let (_watcher, no_events) = match watched {
        Ok(w) => (Some(w), None),
        Err(e) => (None, Some(e.to_string())),
    };
    report(Event::Started { no_events });

    let mut said: HashMap<String, (Outcome, Option<i64>)> = HashMap::new();
    let mut next = Instant::now();
    let mut earliest = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            match rx.recv_timeout((next - now).min(serve.tick)) {
                Ok(()) => next = next.min((Instant::now() + serve.debounce).max(earliest)),
                Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
            }
            continue;
        }
        while rx.try_recv().is_ok() {}
        next = Instant::now() + serve.sweep;
        let started = Instant::now();
        match super::process(ca, share, options, SystemTime::now(), &|_, _, _| {}) {
            Ok((summary, warning)) => {
                if let Some(w) = warning {
                    report(Event::Failed(w));
                }
                let mut seen = HashMap::with_capacity(summary.files.len());
                for f in &summary.files {
                    let key = (f.result, f.id);
                    if said.get(&f.file) != Some(&key) {
                        report(Event::Outcome(f));
                    }
                    seen.insert(f.file.clone(), key);
                }
                // Files gone from the share are forgotten: the map never outgrows the share.
                said = seen;
                if let Some(crl) = &summary.crl {
                    report(Event::Crl(crl));
                }
                if summary.processed > 0 || summary.crl.is_some() {
                    report(Event::Batch {
                        summary: &summary,
                        seconds: started.elapsed().as_secs_f64(),
                    });
                }
                // A request still settling is looked at again once it has.
                if summary.waiting > 0 {
                    next = next.min(Instant::now() + options.settle + serve.debounce);
                }
            }
            Err(e) => report(Event::Failed(format!("{e:#}"))),
        }
        earliest = Instant::now() + serve.gap;
        next = next.max(earliest);
    }
    report(Event::Stopped);
    Ok(())
}
