//! How `harness test`'s `merged` invariant reads the pipeline's outputs:
//! window panes summed per window over those kept once by their identity,
//! as the dashboard counts them (`analytics::merge`); every other record
//! once.

use std::collections::{BTreeMap, BTreeSet};

use analytics::merge::{Merger, Retention};
use analytics::Pane;
use hosting::cases::{Merged, Output};

pub fn merge(records: &[Output]) -> Merged<'_> {
    let mut mergers: BTreeMap<usize, Merger> = BTreeMap::new();
    let mut others = BTreeSet::new();
    for record in records {
        // Every pane has its offsets; most other records are not parsed.
        let pane = Some(&record.line)
            .filter(|line| line.contains("first_offset"))
            .and_then(|_| record.value())
            .and_then(|value| serde_json::from_str::<Pane>(&value).ok());
        match pane {
            Some(pane) => {
                mergers
                    .entry(record.topic)
                    .or_insert_with(|| {
                        Merger::new(
                            0,
                            Retention {
                                span_ms: i64::MAX,
                                max_windows: usize::MAX,
                            },
                        )
                    })
                    .add(record.partition, &pane);
            }
            None => {
                others.insert(record.line.as_str());
            }
        }
    }
    let mut sums = BTreeMap::new();
    for (topic, merger) in &mergers {
        for w in merger.windows() {
            // Quoted: no two windows read the same.
            let of = format!(
                "the panes of {:?} {:?} window {}",
                w.campaign, w.channel, w.window_start
            );
            let totals = serde_json::json!({
                "impressions": w.counters.impressions,
                "clicks": w.counters.clicks,
                "conversions": w.counters.conversions,
                "spend_micros": w.counters.spend_micros,
                "late_records": w.counters.late_records,
                "records": w.records,
            });
            sums.insert((*topic, of), totals);
        }
    }
    Merged { sums, others }
}
