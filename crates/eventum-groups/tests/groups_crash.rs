//! Crash test with real processes: this test binary re-executes itself as a child that
//! consumes a group (acking most events, parking some) and prints every ack and park the
//! service confirmed; the parent SIGKILLs it at a random moment, reopens the store and the
//! service, and checks that the group, every confirmed dead letter and a monotonic
//! checkpoint survived; then the next child continues. At the end the parent drains the
//! group and checks that no event was lost: each was acked or is parked.
//! `EVENTUM_GROUPS_CRASH_CYCLES` sets the number of cycles (default 12).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;
use eventum_groups::{GroupSettings, GroupTarget, NackAction};
use eventum_testkit::crash::{Child, Rng, say_ready};

const CHILD_ENV: &str = "EVENTUM_GROUPS_CRASH_CHILD";
const CHILD_TEST: &str = "groups_crash_child";
const STREAMS: usize = 20;
const PER_STREAM: u64 = 30;

/// The consumer's rule: which events it parks (the rest it acks).
fn is_poison(i: u64, stream: &str) -> bool {
    i % 10 == 7 && stream.ends_with('3')
}

fn group_settings() -> GroupSettings {
    GroupSettings {
        max_attempts: 2,
        ack_timeout_ms: 60_000,
        ..settings(GroupTarget::Category("work".into()), true)
    }
}

fn crash_config() -> eventum_groups::GroupsConfig {
    eventum_groups::GroupsConfig {
        checkpoint_interval_ms: 20,
        checkpoint_every_acks: 10,
        ..fast_config()
    }
}

#[test]
#[ignore = "child process of sigkill_while_consuming_loses_no_event"]
fn groups_crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (_store, svc) = open_at(Path::new(&dir), crash_config()).await;
        say_ready();
        loop {
            let batch = svc.receive("g", "child", 8, 50).await.unwrap();
            // Slow work, so that a kill finds deliveries in flight.
            tokio::time::sleep(Duration::from_millis(4)).await;
            for d in batch {
                let line = if is_poison(data_i(&d.event), &d.event.stream) {
                    svc.nack("g", d.token, NackAction::Park, "poison")
                        .await
                        .unwrap();
                    format!("PARK {}\n", d.event.position)
                } else {
                    // Announced first: a kill right after the ack (before its line) must
                    // not look like a lost event, since the ack may be checkpointed.
                    let mut out = std::io::stdout().lock();
                    out.write_all(format!("ACKING {}\n", d.event.position).as_bytes())
                        .unwrap();
                    out.flush().unwrap();
                    drop(out);
                    let r = svc.ack("g", &[d.token]).await.unwrap();
                    assert_eq!(r.acked, 1);
                    format!("ACK {}\n", d.event.position)
                };
                let mut out = std::io::stdout().lock();
                out.write_all(line.as_bytes()).unwrap();
                out.flush().unwrap();
            }
        }
    });
}

#[test]
fn sigkill_while_consuming_loses_no_event() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let cycles: u64 = std::env::var("EVENTUM_GROUPS_CRASH_CYCLES")
        .ok()
        .map_or(12, |v| v.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let all_positions: BTreeSet<u64> = rt.block_on(async {
        let (store, svc) = open_at(dir.path(), crash_config()).await;
        fill(&store, "work", STREAMS, PER_STREAM).await;
        svc.create("g", group_settings()).await.unwrap();
        svc.shutdown().await;
        store.shutdown();
        // The user events are the first STREAMS × PER_STREAM positions.
        (0..STREAMS as u64 * PER_STREAM).collect()
    });
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    // Handed to `ack` (which may have taken effect even if the child died before saying).
    let mut acking: BTreeSet<u64> = BTreeSet::new();
    let mut confirmed_parks: BTreeSet<u64> = BTreeSet::new();
    let mut checkpoint = 0u64;
    let mut rng = Rng(0x5eed);
    for cycle in 0..cycles {
        let mut child = Child::spawn(CHILD_TEST, &[(CHILD_ENV, dir.path().as_os_str())], None);
        // Timed from the child's READY line (group service open), so that a slow start
        // on a loaded machine does not turn every cycle into a kill during open.
        child
            .wait_ready(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        let out = child
            .kill()
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        let complete = &out[..out.rfind('\n').map_or(0, |i| i + 1)];
        for line in complete.lines() {
            if let Some(p) = line.strip_prefix("ACKING ") {
                acking.insert(p.parse().unwrap());
            } else if let Some(p) = line.strip_prefix("ACK ") {
                acked.insert(p.parse().unwrap());
            } else if let Some(p) = line.strip_prefix("PARK ") {
                confirmed_parks.insert(p.parse().unwrap());
            }
        }
        rt.block_on(async {
            let (store, svc) = open_at(dir.path(), crash_config()).await;
            let info = svc.info("g").expect("the group survives");
            assert!(
                info.checkpoint >= checkpoint,
                "cycle {cycle}: checkpoint went back from {checkpoint} to {}",
                info.checkpoint
            );
            checkpoint = info.checkpoint;
            let parked: Vec<u64> = svc
                .parked("g", 0, 1000)
                .unwrap()
                .iter()
                .map(|p| p.event.position)
                .collect();
            let unique: BTreeSet<u64> = parked.iter().copied().collect();
            assert_eq!(
                unique.len(),
                parked.len(),
                "cycle {cycle}: an event parked twice"
            );
            for p in &confirmed_parks {
                assert!(
                    unique.contains(p),
                    "cycle {cycle}: confirmed park of {p} lost"
                );
            }
            // Do not consume here: the next child continues from the stored state.
            drop(svc);
            store.shutdown();
        });
    }
    // Drain what is left; then every event is acked (by someone) or parked.
    rt.block_on(async {
        let (store, svc) = open_at(dir.path(), crash_config()).await;
        let start = svc.info("g").unwrap().checkpoint;
        let mut per_stream: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        loop {
            let batch = svc.receive("g", "drain", 100, 300).await.unwrap();
            if batch.is_empty() {
                break;
            }
            for d in batch {
                assert!(d.event.position >= start, "{} was before the checkpoint {start}", d.event.position);
                per_stream
                    .entry(d.event.stream.clone())
                    .or_default()
                    .push(d.event.version);
                if is_poison(data_i(&d.event), &d.event.stream) {
                    svc.nack("g", d.token, NackAction::Park, "poison").await.unwrap();
                } else {
                    svc.ack("g", &[d.token]).await.unwrap();
                    acked.insert(d.event.position);
                }
            }
        }
        for (stream, versions) in &per_stream {
            assert!(versions.windows(2).all(|w| w[0] < w[1]), "{stream}: {versions:?}");
        }
        let parked: BTreeSet<u64> = svc
            .parked("g", 0, 1000)
            .unwrap()
            .iter()
            .map(|p| p.event.position)
            .collect();
        assert!(acked.is_subset(&acking.union(&acked).copied().collect()));
        let covered: BTreeSet<u64> = acked.union(&parked).chain(acking.iter()).copied().collect();
        let missing: Vec<u64> = all_positions.difference(&covered).copied().collect();
        assert!(missing.is_empty(), "events neither acked nor parked: {missing:?}");
        assert!(!confirmed_parks.is_empty(), "the children never parked anything");
        let unconfirmed: Vec<u64> = acking.difference(&acked).copied().collect();
        eprintln!(
            "groups crash test: {cycles} cycles, {} acked, {} parked, acks cut short by a kill {unconfirmed:?}, checkpoint {}",
            acked.len(),
            parked.len(),
            svc.info("g").unwrap().checkpoint
        );
        svc.shutdown().await;
        store.shutdown();
    });
}
