//! The dead-letter topic as the page shows it: counts by kind, the latest.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::source::DeadLetter;

/// How many dead letters the page lists.
const DEAD_LETTER_SAMPLES: usize = 5;

/// Most kinds of dead letters counted apart; the rest count as `other`.
const DEAD_LETTER_KINDS: usize = 64;

/// The dead-letter topic as the page shows it: counts by kind, the latest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeadLetters {
    pub total: u64,
    pub by_reason: BTreeMap<String, u64>,
    /// The latest, newest first.
    pub samples: VecDeque<DeadLetter>,
}

impl DeadLetters {
    pub(super) fn add(&mut self, dead: DeadLetter) {
        self.total += 1;
        let kind = if self.by_reason.len() < DEAD_LETTER_KINDS
            || self.by_reason.contains_key(&dead.kind)
        {
            dead.kind.clone()
        } else {
            "other".to_string()
        };
        *self.by_reason.entry(kind).or_default() += 1;
        if self.samples.len() == DEAD_LETTER_SAMPLES {
            self.samples.pop_back();
        }
        self.samples.push_front(dead);
    }
}
