use super::*;
use analytics::merge::{Added, MergeState, Merger, Retention};
use analytics::reach::User;

const DAY: i64 = DAY_MS;

fn pane(campaign: &str, start: i64, offsets: (i64, i64), impressions: u64, users: &[&str]) -> Pane {
    let mut pane: Pane = serde_json::from_value(serde_json::json!({
        "format": 3, "campaign": campaign, "channel": "email", "window": "",
        "window_start": start, "window_end": start + 60_000, "impressions": impressions,
        "clicks": 1, "conversions": 0, "spend": 0.0, "spend_micros": 2_500_000,
        "CPC": 0.0, "CPA": 0.0, "CTR": 0.0, "CVR": 0.0, "first_offset": offsets.0,
        "last_offset": offsets.1, "records": impressions + 1, "max_event_ts_ms": start + 1_000,
        "late_records": 0, "campaign_name": format!("{campaign} (name)")
    }))
    .unwrap();
    let mut reach = Reach::default();
    for u in users {
        reach.add(User::new(u));
    }
    pane.reach_sketch = Some(reach);
    pane
}

const ALL: Retention = Retention {
    span_ms: i64::MAX / 4,
    max_windows: usize::MAX,
};

/// Merges panes and checkpoints them, as the dashboard does.
fn merge_all(history: &mut History, merger: &mut Merger, panes: &[Pane], next: i64) {
    for p in panes {
        if let Added::Counted { key, .. } = merger.add(0, p) {
            let first = merger.get(&key).is_some_and(|w| w.panes == 1);
            history.count(p, key, first);
        }
    }
    let positions = BTreeMap::from([(("results".to_string(), 0), next)]);
    history
        .checkpoint(
            |k| merger.get(k),
            Checkpoint {
                positions: &positions,
                state: vec![("merge", serde_json::to_string(&merger.state()).unwrap())],
                newest: merger.watermark(),
            },
        )
        .unwrap();
}

fn all(history: &History, tier: Tier) -> Vec<Window> {
    let range = Range {
        tier,
        from: i64::MIN,
        to: i64::MAX,
    };
    history.read(&[range], None, None, usize::MAX).unwrap()
}

#[test]
fn a_checkpoint_keeps_windows_rollups_positions_and_state_together() {
    let folder = tempfile::tempdir().unwrap();
    let place = Place::Folder(folder.path().to_path_buf());
    let (mut history, resumed) = History::open(&place, Spans::default()).unwrap();
    assert!(resumed.positions.is_empty());
    let mut merger = Merger::resumed(0, ALL, MergeState::default());
    let panes = [
        pane("a", 0, (0, 4), 3, &["u1", "u2"]),
        pane("a", 60_000, (5, 9), 2, &["u2", "u3"]),
        pane("b", 3_600_000, (10, 12), 1, &["u1"]),
        pane("a", DAY, (13, 13), 4, &["u4"]),
        // The watermark two hours into day 2 closes days 0 and 1: they are
        // rolled up from their hours.
        pane("c", 2 * DAY + 2 * 3_600_000, (14, 14), 1, &["u5"]),
        pane("c", 2 * DAY + 2 * 3_600_000 + 60_000, (15, 15), 1, &["u5"]),
    ];
    merge_all(&mut history, &mut merger, &panes, 16);
    drop(history);

    let (history, resumed) = History::open(&place, Spans::default()).unwrap();
    assert_eq!(resumed.positions[&("results".to_string(), 0)], 16);
    let state: MergeState = serde_json::from_str(&resumed.state["merge"]).unwrap();
    assert_eq!(state.stats.panes, 6);
    assert_eq!(history.held(Tier::Day), (i64::MIN, 2 * DAY));
    let minutes = all(&history, Tier::Minute);
    assert_eq!(minutes.len(), 6);
    assert_eq!(minutes[0].marks(), &[(0, 4)]);
    assert_eq!(minutes[0].campaign_name.as_deref(), Some("a (name)"));
    let hours = all(&history, Tier::Hour);
    let summed: Vec<(i64, &str, u64, i64, u64)> = hours
        .iter()
        .map(|w| {
            (
                w.window_start,
                &*w.campaign,
                w.counters.impressions,
                w.counters.spend_micros,
                w.reach.estimate(),
            )
        })
        .collect();
    assert_eq!(
        summed,
        [
            (0, "a", 5, 5_000_000, 3),
            (3_600_000, "b", 1, 2_500_000, 1),
            (DAY, "a", 4, 2_500_000, 1),
            (2 * DAY + 2 * 3_600_000, "c", 2, 5_000_000, 1)
        ]
    );
    let days = all(&history, Tier::Day);
    assert_eq!(days.len(), 3, "a, b on day 0 and a on day 1; day 2 is open");
    assert_eq!(
        (days[0].counters.impressions, days[0].reach.estimate()),
        (5, 3)
    );
    assert_eq!(days[0].window_end, DAY);
    assert_eq!(
        history.bounds().unwrap(),
        Some((0, 2 * DAY + 2 * 3_600_000 + 60_000))
    );
    // Totals over every key: one row a day, reach a union.
    let range = Range {
        tier: Tier::Day,
        from: 0,
        to: 2 * DAY,
    };
    let rows = history.totals(&[range], None, None, usize::MAX).unwrap();
    let totals: Vec<(i64, &str, u64, u64, u64)> = rows
        .iter()
        .map(|w| {
            let c = &w.counters;
            (
                w.window_start,
                &*w.campaign,
                c.impressions,
                w.windows,
                w.reach.estimate(),
            )
        })
        .collect();
    assert_eq!(totals, [(0, "*", 6, 3, 3), (DAY, "*", 4, 1, 1)]);
    // A campaign's rows, over its channels; a channel's, over campaigns.
    let a = history
        .totals(&[range], Some("a"), None, usize::MAX)
        .unwrap();
    let a: Vec<(&str, &str, u64)> = a
        .iter()
        .map(|w| (&*w.campaign, &*w.channel, w.counters.impressions))
        .collect();
    assert_eq!(a, [("a", "*", 5), ("a", "*", 4)]);
    let email = history
        .totals(&[range], None, Some("email"), usize::MAX)
        .unwrap();
    assert_eq!(
        email.iter().map(|w| w.counters.impressions).sum::<u64>(),
        10
    );
    assert!(email.iter().all(|w| &*w.campaign == "*"));
}

#[test]
fn a_rollup_gains_across_checkpoints_and_unions_reach() {
    let (mut history, _) = History::open(&Place::Memory, Spans::default()).unwrap();
    let mut merger = Merger::resumed(0, ALL, MergeState::default());
    merge_all(
        &mut history,
        &mut merger,
        &[pane("a", 0, (0, 1), 2, &["u1", "u2"])],
        2,
    );
    merge_all(
        &mut history,
        &mut merger,
        &[pane("a", 60_000, (2, 3), 2, &["u2", "u3"])],
        4,
    );
    // A re-emitted pane is the merge's to keep out: nothing is pending.
    merge_all(
        &mut history,
        &mut merger,
        &[pane("a", 0, (0, 1), 2, &["u1", "u2"])],
        5,
    );
    assert!(all(&history, Tier::Day).is_empty(), "day 0 is still open");
    // Panes of day 1 close day 0: its row is rolled up from its hours.
    let closing = [
        pane("b", DAY + 2 * 3_600_000, (5, 5), 1, &["u9"]),
        pane("b", DAY + 3 * 3_600_000, (6, 6), 1, &["u9"]),
    ];
    merge_all(&mut history, &mut merger, &closing, 7);
    let day = &all(&history, Tier::Day)[0];
    assert_eq!(
        (day.counters.impressions, day.panes, day.reach.estimate()),
        (4, 2, 3)
    );
    assert_eq!(day.windows, 2);
    // A late pane of the closed day adds to its row directly.
    merge_all(
        &mut history,
        &mut merger,
        &[pane("a", 120_000, (7, 7), 5, &["u3", "u4"])],
        8,
    );
    let day = &all(&history, Tier::Day)[0];
    assert_eq!(
        (day.counters.impressions, day.panes, day.reach.estimate()),
        (9, 3, 4)
    );
    assert_eq!(day.windows, 3);
    assert_eq!(all(&history, Tier::Day).len(), 1, "day 1 is still open");
    assert_eq!(all(&history, Tier::Minute).len(), 5);
}

#[test]
fn minute_windows_past_their_span_go_and_their_rollups_stay() {
    let spans = Spans {
        minute_ms: Some(2 * DAY),
        ..Spans::default()
    };
    let (mut history, _) = History::open(&Place::Memory, spans).unwrap();
    let mut merger = Merger::resumed(0, ALL, MergeState::default());
    let mut offset = 0;
    for day in 0..6 {
        let panes: Vec<Pane> = (0..3)
            .map(|i| {
                offset += 1;
                pane("a", day * DAY + i * 3_600_000, (offset, offset), 1, &["u"])
            })
            .collect();
        merge_all(&mut history, &mut merger, &panes, offset + 1);
    }
    // The newest event time is on day 5: minute windows of days 0 to 1 are
    // past the 2-day span and, a day after their last pane, gone.
    let kept: Vec<i64> = all(&history, Tier::Minute)
        .iter()
        .map(|w| w.window_start / DAY)
        .collect();
    assert!(kept.iter().all(|&d| d >= 2), "{kept:?}");
    // Days 0 to 4 have closed; day 5 is read from its hours.
    assert_eq!(all(&history, Tier::Day).len(), 5);
    assert_eq!(history.held(Tier::Day).1, 5 * DAY);
    let total: u64 = all(&history, Tier::Hour)
        .iter()
        .map(|w| w.counters.impressions)
        .sum();
    assert_eq!(total, 18);
}

#[test]
fn another_format_or_a_damaged_file_is_refused_with_how_to_rebuild() {
    let folder = tempfile::tempdir().unwrap();
    let place = Place::Folder(folder.path().to_path_buf());
    drop(History::open(&place, Spans::default()).unwrap());
    Connection::open(folder.path().join(FILE))
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let err = format!(
        "{:#}",
        History::open(&place, Spans::default()).err().unwrap()
    );
    assert!(
        err.contains("format 99") && err.contains(&folder.path().display().to_string()),
        "{err}"
    );
    assert!(err.contains("rebuilds the history from `results`"), "{err}");

    let damaged = tempfile::tempdir().unwrap();
    std::fs::write(damaged.path().join(FILE), vec![7u8; 8192]).unwrap();
    let place = Place::Folder(damaged.path().to_path_buf());
    let err = format!(
        "{:#}",
        History::open(&place, Spans::default()).err().unwrap()
    );
    assert!(
        err.contains("damaged") && err.contains("rebuilds the history"),
        "{err}"
    );
}

#[test]
fn a_second_dashboard_is_kept_out_of_the_folder() {
    let folder = tempfile::tempdir().unwrap();
    let place = Place::Folder(folder.path().to_path_buf());
    let _first = History::open(&place, Spans::default()).unwrap();
    let err = History::open(&place, Spans::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("another dashboard"), "{err}");
}

#[test]
fn a_full_disk_keeps_everything_pending_until_there_is_room() {
    let (mut history, _) = History::open(&Place::Memory, Spans::default()).unwrap();
    let mut merger = Merger::resumed(0, ALL, MergeState::default());
    merge_all(
        &mut history,
        &mut merger,
        &[pane("a", 0, (0, 0), 1, &["u"])],
        1,
    );
    // SQLite's own "database or disk is full", as on a full disk.
    let pages: i64 = history
        .conn
        .lock()
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    history
        .conn
        .lock()
        .execute_batch(&format!("PRAGMA max_page_count = {pages}"))
        .unwrap();
    let panes: Vec<Pane> = (1..2000)
        .map(|i| pane(&format!("k{i}"), i * 60_000, (i, i), 1, &["u"]))
        .collect();
    for p in &panes {
        if let Added::Counted { key, .. } = merger.add(0, p) {
            history.count(p, key, true);
        }
    }
    let positions = BTreeMap::from([(("results".to_string(), 0), 2000)]);
    let at = |merger: &Merger| Checkpoint {
        positions: &positions,
        state: vec![],
        newest: merger.watermark(),
    };
    let err = history
        .checkpoint(|k| merger.get(k), at(&merger))
        .unwrap_err();
    assert!(format!("{err:#}").contains("full"), "{err:#}");
    history
        .conn
        .lock()
        .execute_batch("PRAGMA max_page_count = 1073741823")
        .unwrap();
    history.checkpoint(|k| merger.get(k), at(&merger)).unwrap();
    assert_eq!(all(&history, Tier::Minute).len(), 2000);
    let total = |tier| -> u64 {
        all(&history, tier)
            .iter()
            .map(|w| w.counters.impressions)
            .sum()
    };
    assert_eq!(total(Tier::Hour), 2000);
    // Day 0 closed in the checkpoint that failed, and once in the one that
    // succeeded: its 1,440 minutes are counted once.
    assert_eq!(total(Tier::Day), 1440);
    drop(history);
}
