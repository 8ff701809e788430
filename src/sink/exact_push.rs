//! Exact accumulation on a Pushgateway: every push counted once, also when many CI jobs push
//! to one group at the same moment (METRICS.md §3, "Exact under concurrency").
//!
//! The gateway only offers blind writes (`PUT`/`POST`/`DELETE` of a whole group) and a read
//! of everything; "read the group, add this run, write it back" loses a run whenever two
//! pushes interleave. The protocol (docs/ci-at-scale.md explains it for users):
//!
//! 1. **Intent.** The push gets a random 52-bit id and first writes its own delta (this
//!    run's cumulative values) to a group of its own: the group's labels plus
//!    `ptc_push="<id>"`, families prefixed `ptc_pending_`. Nobody else writes that group, so
//!    the delta cannot be lost. (The first read runs at the same time.)
//! 2. **Merge.** From a read of the gateway: the group's counters, its *ledger* (the ids of
//!    the pushes its counters include, `ptc_push_ledger{slot}`), and its pending pushes. Every
//!    pending push not in the ledger, this one included, is added to the counters and its id
//!    to the ledger, and the group is written with this run's gauges.
//! 3. **Verify.** Read again. If this push's id is in the ledger and a pending push is
//!    still missing from it, merge again from this read; if nothing is missing, done. If this
//!    push's id is *not* in the ledger, a later write replaced this one: that writer wrote
//!    after this push's pending group was visible and verifies after its write, so it (or
//!    the writer after it) counts this push; this push stops. So in a burst every push
//!    writes about once and the last writer of the burst finishes the merge.
//! 4. **Clean up.** Pending groups already in the ledger and older than [`GRACE`] are
//!    deleted (by the push that finished the merge, a few at a time); ledger entries whose
//!    pending group is gone are dropped on the next write. A pending push counted late (by
//!    the next push, repairing an interrupted one) has its group written again first, so
//!    that the grace always runs from the moment it was counted.
//!
//! Why it is exact: a write always holds counters and ledger that agree (the counters of the
//! read plus exactly the deltas of the ids added), so no id is ever counted twice; a delta
//! lives in its pending group until its id has been in the ledger for at least half of
//! [`GRACE`], and the last writer of a burst verifies after its own write, so when the
//! pushes of a burst have all returned, every one of them is in the counters. The limits: a
//! write landing more than 5 minutes after the read it was based on (a request stuck in a
//! proxy) could undo counted pushes; a push killed between its write and its verification (the last writer
//! of a burst, which the others handed over to, included) can leave the group short until
//! the next push to the group, which repairs it (never counts it twice); and the gateway
//! must apply a write before answering it, as it does unless started with
//! `--push.disable-consistency-check` (then it answers 202 and a read may not see the
//! write yet). Per-run gauges are the last writer's.

use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::Rng;

use super::gateway_view::{read_group, GroupView};
use super::http::{DeliveryError, HttpClient};
use super::pending::pending_body;
use super::pushgateway::{self, PushgatewayConfig};
use crate::derive::totals::Totals;

/// How long a counted pending push is kept before it may be deleted: longer than any request
/// can take (`--timeout` is far shorter), so no write based on a read from before the pending
/// push was made can still arrive.
pub const GRACE_SECONDS: f64 = 10.0 * 60.0;
/// [`GRACE_SECONDS`] as the docs spell it.
pub const GRACE: &str = "10 minutes";

/// Old pending groups one push deletes at most (each push adds one, so they cannot pile up).
const CLEAN_PER_PUSH: usize = 4;

/// Merges before giving up (each needs a concurrent writer to have replaced the group).
const MAX_ROUNDS: u32 = 100;

/// What the push came to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    /// Group writes this push made (1 without contention).
    pub writes: u32,
    /// Other pushes' deltas this push added for them (pushes that were interrupted or raced).
    pub applied_for_others: usize,
    /// A later writer replaced this push's write and took over counting it (see `Step`).
    pub handed_over: bool,
    /// Old pending groups deleted.
    pub cleaned: usize,
    /// Things to say on stderr.
    pub warnings: Vec<String>,
}

/// Pushes with exact accumulation. `body` renders the group's exposition for given totals
/// (this run's gauges plus the totals' cumulative families); the ledger family is added here.
pub fn push_exact(
    client: &HttpClient,
    cfg: &PushgatewayConfig,
    delta: &Totals,
    body: &dyn Fn(&Totals) -> Result<String, String>,
) -> Result<Outcome, DeliveryError> {
    let id: u64 = rand::rng().random_range(1..(1u64 << 52));
    push_deltas(client, cfg, &[(id, delta.clone())], 0, body)
}

/// Ledger entries a run group keeps after their pending groups are gone (see [`run_id`]).
pub const RUN_LEDGER_KEEP: usize = 512;

/// The id of one fact about one run (`what`, e.g. "a timing violation of size small") in a
/// group: the same in every shard of the run, so that the shards' pending pushes of it are
/// one, and the run counts once however many of its shards report it. Below 2⁵².
pub fn run_id(group_url: &str, run: &str, what: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [group_url, run, what] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) >> 12).max(1)
}

/// Pushes to the group of a run split over shards (`shard="all"`): each of `own` is a fact of
/// the run with a [`run_id`], counted once over all shards that push it. The ledger keeps the
/// last [`RUN_LEDGER_KEEP`] ids after their pending groups are cleaned up, so a shard that
/// pushes long after the others (a queued job) is still recognised.
pub fn push_run_group(
    client: &HttpClient,
    cfg: &PushgatewayConfig,
    own: &[(u64, Totals)],
    body: &dyn Fn(&Totals) -> Result<String, String>,
) -> Result<Outcome, DeliveryError> {
    push_deltas(client, cfg, own, RUN_LEDGER_KEEP, body)
}

/// The protocol for the deltas `own` (id, delta), each in a pending group of its own.
/// `keep` ledger entries are kept after their pending group is gone (0: none).
fn push_deltas(
    client: &HttpClient,
    cfg: &PushgatewayConfig,
    own: &[(u64, Totals)],
    keep: usize,
    body: &dyn Fn(&Totals) -> Result<String, String>,
) -> Result<Outcome, DeliveryError> {
    let ids: Vec<u64> = own.iter().map(|(id, _)| *id).collect();
    let id = ids.first().copied().unwrap_or_default();
    let mut out = Outcome::default();

    // 1 and the first read of 2, side by side.
    let (put, read) = std::thread::scope(|s| {
        let put = s.spawn(|| {
            own.iter().try_for_each(|(id, delta)| {
                pushgateway::push(client, &cfg.pending(*id), &pending_body(delta))
            })
        });
        let read = read_group(client, cfg);
        (put.join(), read)
    });
    // The read's error first: it names the gateway's /metrics, not the pending group.
    let mut view = read?;
    match put {
        Ok(r) => r?,
        Err(_) => {
            return Err(DeliveryError::Setup(
                "the pending push failed unexpectedly".into(),
            ))
        }
    }
    let mut wrote = false;
    loop {
        let unapplied = unapplied(&view, &ids);
        match step(&view, &ids, wrote, &unapplied) {
            Step::Done => break,
            Step::HandedOver => {
                out.handed_over = true;
                break;
            }
            Step::Merge => {}
        }
        if out.writes >= MAX_ROUNDS {
            return Err(DeliveryError::BadAnswer {
                url: super::http::redact(&cfg.group_url()),
                message: format!(
                    "this push was not kept after {MAX_ROUNDS} writes (other pushes replaced the \
                     group each time); its delta waits in group ptc_push=\"{id:x}\" and the next \
                     push to the group will count it"
                ),
            });
        }
        // A pending push counted late (repaired long after it was made) gets a fresh push
        // time first, so that the grace of step 4 runs from its counting, not its making.
        for pid in &unapplied {
            if let Some(p) = view.pending.get(pid) {
                if !ids.contains(pid) && p.pushed_at < view.newest_push - GRACE_SECONDS / 2.0 {
                    if let Some(t) = &p.totals {
                        pushgateway::push(client, &cfg.pending(*pid), &pending_body(t))?;
                    }
                }
            }
        }
        let (totals, ledger, warnings) = merge(&view, own, &unapplied, keep);
        out.warnings.extend(warnings);
        let others = unapplied.iter().filter(|u| !ids.contains(u)).count();
        out.applied_for_others = out.applied_for_others.max(others);
        let mut text = body(&totals).map_err(DeliveryError::Setup)?;
        text.push_str(&ledger_text(&ledger));
        let started = std::time::Instant::now();
        pushgateway::push(client, cfg, &text)?;
        wrote = true;
        out.writes += 1;
        // A write that took long was queued behind others: give the writers of the burst a
        // moment (random, up to what the write took, at most a second) so that the read sees
        // the burst settled and most pushes can stop after one write.
        let waited = started.elapsed().min(std::time::Duration::from_secs(1));
        std::thread::sleep(waited.mul_f64(rand::rng().random_range(0.0..=1.0)));
        view = read_group(client, cfg)?;
    }

    // 4. Old counted pending pushes (never this one: others may not have verified yet). Only
    // the push that finished the merge cleans, a few groups at a time picked at random, so
    // that a burst of pushes does not delete the same groups over and over.
    if out.handed_over {
        return Ok(out);
    }
    let mut old: Vec<u64> = view
        .pending
        .iter()
        .filter(|(pid, p)| {
            !ids.contains(pid)
                && view.ledger.contains(pid)
                && p.pushed_at < view.newest_push - GRACE_SECONDS
        })
        .map(|(pid, _)| *pid)
        .collect();
    old.shuffle(&mut rand::rng());
    old.truncate(CLEAN_PER_PUSH);
    for pid in old {
        match pushgateway::delete(client, &cfg.pending(pid)) {
            Ok(()) => out.cleaned += 1,
            Err(e) => out
                .warnings
                .push(format!("could not delete an old pending push: {e}")),
        }
    }
    Ok(out)
}

/// What a push does after a read.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// This push is counted and nothing visible is missing.
    Done,
    /// This push wrote the group, and a later write (one without this push's id) replaced
    /// it. That writer wrote after this push's pending group was visible, so its own
    /// verification (step 3) sees the pending group and counts it: the last writer of a burst
    /// is the one that finishes the work, and everybody else stops after one write.
    HandedOver,
    /// Merge the unapplied pending pushes and write.
    Merge,
}

fn step(view: &GroupView, ids: &[u64], wrote: bool, unapplied: &[u64]) -> Step {
    match (wrote, ids.iter().all(|id| view.ledger.contains(id))) {
        (false, _) => Step::Merge,
        (true, false) => Step::HandedOver,
        (true, true) if unapplied.is_empty() => Step::Done,
        (true, true) => Step::Merge,
    }
}

/// Pending pushes not yet in the ledger (ids ascending), this push's own always among them
/// when not in the ledger, even if their pending groups are not visible yet.
fn unapplied(view: &GroupView, own_ids: &[u64]) -> Vec<u64> {
    let mut ids: BTreeSet<u64> = view
        .pending
        .iter()
        .filter(|(pid, p)| !view.ledger.contains(pid) && p.totals.is_some())
        .map(|(pid, _)| *pid)
        .collect();
    for id in own_ids {
        if !view.ledger.contains(id) {
            ids.insert(*id);
        }
    }
    ids.into_iter().collect()
}

/// The group's totals plus the unapplied deltas, and the new ledger in slot order: the old
/// one without ids whose pending group is gone (but the last `keep` of them), plus the ids
/// added.
fn merge(
    view: &GroupView,
    own: &[(u64, Totals)],
    unapplied: &[u64],
    keep: usize,
) -> (Totals, Vec<u64>, Vec<String>) {
    let mut totals = view.totals.clone().unwrap_or_default();
    let mut warnings = Vec::new();
    for pid in unapplied {
        let d = match own.iter().find(|(id, _)| id == pid) {
            Some((_, d)) => d,
            None => match view.pending.get(pid).and_then(|p| p.totals.as_ref()) {
                Some(t) => t,
                None => continue,
            },
        };
        if let Some(w) = add_lenient(&mut totals, d) {
            warnings.push(w);
        }
    }
    // Slot order, then any id without a slot (written by an older version).
    let mut order: Vec<u64> = view.ledger_by_slot.values().copied().collect();
    let slotted: BTreeSet<u64> = order.iter().copied().collect();
    order.extend(view.ledger.iter().filter(|l| !slotted.contains(l)));
    let gone = order
        .iter()
        .filter(|l| !view.pending.contains_key(l))
        .count();
    let mut drop = gone.saturating_sub(keep);
    let mut ledger: Vec<u64> = Vec::with_capacity(order.len() + unapplied.len());
    let mut seen = BTreeSet::new();
    for l in order {
        if !view.pending.contains_key(&l) && drop > 0 {
            drop -= 1;
            continue;
        }
        if seen.insert(l) {
            ledger.push(l);
        }
    }
    ledger.extend(unapplied.iter().filter(|u| seen.insert(**u)));
    (totals, ledger, warnings)
}

/// Adds `d` to `acc`; a histogram whose buckets changed starts again from `d` (with a
/// warning), since counts in other buckets cannot be added.
pub fn add_lenient(acc: &mut Totals, d: &Totals) -> Option<String> {
    let mut warning = None;
    for (k, h) in &d.durations {
        if let Some(a) = acc.durations.get(k) {
            if a.bounds != h.bounds {
                warning = Some(format!(
                    "pytest_test_duration_seconds{{size=\"{}\",outcome=\"{}\"}} had buckets {:?} \
                     but this run uses {:?}; the duration histogram starts again from this run",
                    k.0, k.1, a.bounds, h.bounds
                ));
                acc.durations.remove(k);
            }
        }
    }
    if let Err(e) = acc.add(d) {
        warning = Some(e);
    }
    warning
}

/// The ledger family: one series per id, `slot` 0…n-1 (bounded label values), the id as the
/// value (exact: ids are below 2⁵²).
fn ledger_text(ledger: &[u64]) -> String {
    let mut s = format!(
        "# HELP {f} Pushes whose values this group's counters include (ptc-metrics exact \
         accumulation; internal).\n# TYPE {f} gauge\n",
        f = pushgateway::LEDGER_FAMILY
    );
    for (i, id) in ledger.iter().enumerate() {
        s.push_str(&format!(
            "{}{{slot=\"{i}\"}} {id}\n",
            pushgateway::LEDGER_FAMILY
        ));
    }
    s
}

/// Pending groups by labels, for `prune` and `delete`: kept here so the label name and the
/// grace rule stay in one place.
pub fn is_pending(labels: &BTreeMap<String, String>) -> bool {
    labels.contains_key(pushgateway::PENDING_LABEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::gateway_view::PendingPush;

    fn run(runs: f64, small_passed: f64) -> Totals {
        let mut t = Totals {
            runs,
            ..Totals::default()
        };
        t.tests
            .insert(("small".into(), "passed".into()), small_passed);
        t.timing.insert("small".into(), 0.0);
        t.flaky.insert("small".into(), runs);
        t.failures.insert("assertion".into(), 1.0);
        t.durations.insert(
            ("small".into(), "passed".into()),
            crate::derive::totals::HistTotal {
                bounds: vec![0.1, 1.0],
                cumulative: vec![small_passed, small_passed],
                sum: 0.05 * small_passed,
                count: small_passed,
            },
        );
        t
    }

    fn view(totals: Option<Totals>, ledger: &[u64], pending: &[(u64, Totals)]) -> GroupView {
        GroupView {
            exists: totals.is_some(),
            totals,
            ledger: ledger.iter().copied().collect(),
            ledger_by_slot: (0u64..).zip(ledger.iter().copied()).collect(),
            pending: pending
                .iter()
                .map(|(id, t)| {
                    (
                        *id,
                        PendingPush {
                            totals: Some(t.clone()),
                            pushed_at: 1.0,
                        },
                    )
                })
                .collect(),
            newest_push: 1.0,
        }
    }

    #[test]
    fn merges_every_pending_push_not_in_the_ledger_once() {
        // Base holds 3 runs, among them push 7 (pending group still there) and 9 (gone).
        let v = view(
            Some(run(3.0, 90.0)),
            &[7, 9],
            &[
                (7, run(1.0, 30.0)),
                (8, run(1.0, 30.0)),
                (42, run(1.0, 30.0)),
            ],
        );
        let un = unapplied(&v, &[42]);
        assert_eq!(un, vec![8, 42]);
        let (t, ledger, w) = merge(&v, &[(42, run(1.0, 30.0))], &un, 0);
        assert!(w.is_empty());
        assert_eq!(t.runs, 5.0);
        assert_eq!(t.tests[&("small".into(), "passed".into())], 150.0);
        assert_eq!(t.durations[&("small".into(), "passed".into())].count, 150.0);
        assert_eq!(ledger, vec![7, 8, 42]);
        // Once in the ledger, nothing is added again.
        let v2 = view(
            Some(t),
            &[7, 8, 42],
            &[
                (7, run(1.0, 30.0)),
                (8, run(1.0, 30.0)),
                (42, run(1.0, 30.0)),
            ],
        );
        assert!(unapplied(&v2, &[42]).is_empty());
    }

    #[test]
    fn own_push_counts_even_before_its_pending_group_is_visible() {
        let v = view(None, &[], &[]);
        let un = unapplied(&v, &[5]);
        assert_eq!(un, vec![5]);
        let (t, ledger, _) = merge(&v, &[(5, run(1.0, 2.0))], &un, 0);
        assert_eq!((t.runs, ledger), (1.0, vec![5]));
    }

    #[test]
    fn changed_buckets_restart_the_histogram() {
        let mut acc = run(2.0, 4.0);
        let mut d = run(1.0, 1.0);
        d.durations
            .get_mut(&("small".to_string(), "passed".to_string()))
            .unwrap()
            .bounds = vec![0.5, 1.0];
        let w = add_lenient(&mut acc, &d).unwrap();
        assert!(
            w.contains("had buckets [0.1, 1.0] but this run uses [0.5, 1.0]"),
            "{w}"
        );
        assert_eq!(acc.runs, 3.0);
        assert_eq!(acc.durations[&("small".into(), "passed".into())].count, 1.0);
    }

    #[test]
    fn the_last_writer_finishes_and_the_others_hand_over() {
        let t = run(1.0, 1.0);
        // Before the first write: always merge.
        assert_eq!(step(&view(None, &[], &[]), &[7], false, &[7]), Step::Merge);
        // Own id counted, nothing missing: done.
        let v = view(Some(t.clone()), &[7], &[(7, t.clone())]);
        assert_eq!(step(&v, &[7], true, &unapplied(&v, &[7])), Step::Done);
        // Own id counted, another pending push missing (its writer read earlier): merge.
        let v = view(Some(t.clone()), &[7], &[(7, t.clone()), (9, t.clone())]);
        assert_eq!(unapplied(&v, &[7]), vec![9]);
        assert_eq!(step(&v, &[7], true, &unapplied(&v, &[7])), Step::Merge);
        // Own write replaced by a later one without this id: hand over.
        let v = view(Some(t.clone()), &[9], &[(7, t.clone()), (9, t)]);
        assert_eq!(step(&v, &[7], true, &unapplied(&v, &[7])), Step::HandedOver);
    }

    #[test]
    fn ledger_ids_are_exact_integers() {
        let l = [1, (1u64 << 52) - 1];
        let t = ledger_text(&l);
        assert!(
            t.ends_with("ptc_push_ledger{slot=\"1\"} 4503599627370495\n"),
            "{t}"
        );
    }

    fn timing_run(size: &str) -> Totals {
        let mut t = Totals::default();
        t.timing_runs.insert(size.into(), 1.0);
        t
    }

    #[test]
    fn a_fact_pushed_by_several_shards_counts_once() {
        let url = "http://gw/metrics/job/pytest/project/app/shard/all";
        let small = run_id(url, "4711", "timing small");
        assert_eq!(small, run_id(url, "4711", "timing small"));
        assert_ne!(small, run_id(url, "4712", "timing small"));
        assert_ne!(small, run_id(url, "4711", "timing medium"));
        assert!(small > 0 && small < 1 << 52);
        // Shard 1 counted it; shard 3 (same id, same delta) finds it in the ledger.
        let v = view(
            Some(timing_run("small")),
            &[small],
            &[(small, timing_run("small"))],
        );
        assert!(unapplied(&v, &[small]).is_empty());
        assert_eq!(step(&v, &[small], false, &[]), Step::Merge);
        let (t, ledger, _) = merge(&v, &[(small, timing_run("small"))], &[], RUN_LEDGER_KEEP);
        assert_eq!((t.timing_runs["small"], ledger), (1.0, vec![small]));
        assert_eq!(step(&v, &[small], true, &[]), Step::Done);
    }

    #[test]
    fn a_run_group_keeps_the_last_ids_after_their_pending_groups_are_gone() {
        // Ledger 1..=6 in slot order, pending groups of 5 and 6 still there, keep 2: the
        // oldest gone ids (1, 2) are dropped, 3 and 4 kept, then 5, 6 and the new 9.
        let v = view(
            Some(timing_run("small")),
            &[1, 2, 3, 4, 5, 6],
            &[(5, timing_run("small")), (6, timing_run("small"))],
        );
        let (_, ledger, _) = merge(&v, &[(9, timing_run("large"))], &[9], 2);
        assert_eq!(ledger, vec![3, 4, 5, 6, 9]);
        // A plain group keeps none of them.
        let (_, ledger, _) = merge(&v, &[(9, timing_run("large"))], &[9], 0);
        assert_eq!(ledger, vec![5, 6, 9]);
        // A straggler whose id was kept is not counted again.
        let v = view(
            Some(timing_run("small")),
            &[3, 4],
            &[(3, timing_run("small"))],
        );
        assert!(unapplied(&v, &[3]).is_empty());
    }
}
