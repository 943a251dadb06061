//! The idempotent producer's sequence numbers, per producer and partition,
//! as Kafka's `ProducerStateManager` keeps them: a retried batch gets the
//! offset it was written at, a gap or an old epoch an error; a producer
//! idle for a day is forgotten.

use nisshi_sans_io::ErrorCode;
use serde::{Deserialize, Serialize};

/// How many of a producer's last batches a partition remembers: librdkafka
/// and the Java client keep at most 5 requests in flight.
const REMEMBERED: usize = 5;

/// How long a producer's state outlives its last batch: Kafka's
/// `producer.id.expiration.ms` default, a day.
pub const EXPIRY_MS: i64 = 86_400_000;

/// A producer's state on one partition, kept beside its records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequences {
    pub epoch: i16,
    /// Its last batches: first sequence, last sequence, first offset.
    pub batches: Vec<(i32, i32, i64)>,
    /// When its last batch was written (ms since the epoch); 0 in state
    /// kept before it was, which is not expired until it writes again.
    #[serde(default)]
    pub last_ms: i64,
}

/// What a batch is to a partition's producer state.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// New: append it.
    Append,
    /// Written before, at this offset: answer with it, write nothing.
    Duplicate(i64),
}

impl Sequences {
    /// Checks a batch of `count` records from `first` on, under `epoch`.
    pub fn check(
        state: Option<&Self>,
        epoch: i16,
        first: i32,
        count: i32,
    ) -> Result<Check, ErrorCode> {
        // A producer with no state (new, or forgotten after a day idle) is
        // accepted at any sequence, as Kafka's
        // `ProducerAppendInfo.checkSequence` accepts it.
        let Some(state) = state else {
            return Ok(Check::Append);
        };
        if epoch < state.epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        if epoch > state.epoch {
            return if first == 0 {
                Ok(Check::Append)
            } else {
                Err(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        let last = last_sequence(first, count);
        if let Some(&(_, _, offset)) = state
            .batches
            .iter()
            .find(|&&(f, l, _)| f == first && l == last)
        {
            return Ok(Check::Duplicate(offset));
        }
        match state.batches.last() {
            Some(&(_, l, _)) if next_sequence(l) == first => Ok(Check::Append),
            _ => Err(ErrorCode::OutOfOrderSequenceNumber),
        }
    }

    /// The state after a batch checked [`Check::Append`] is written at
    /// `offset`, at `now_ms`.
    pub fn appended(
        state: Option<Self>,
        epoch: i16,
        first: i32,
        count: i32,
        offset: i64,
        now_ms: i64,
    ) -> Self {
        let mut state = state.filter(|s| s.epoch == epoch).unwrap_or(Sequences {
            epoch,
            batches: Vec::new(),
            last_ms: now_ms,
        });
        state.last_ms = now_ms;
        if state.batches.len() == REMEMBERED {
            state.batches.remove(0);
        }
        state
            .batches
            .push((first, last_sequence(first, count), offset));
        state
    }

    /// Whether its last batch is more than [`EXPIRY_MS`] before `now_ms`.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.last_ms > 0 && now_ms - self.last_ms > EXPIRY_MS
    }
}

/// Sequences wrap at `i32::MAX` to 0, as Kafka's do.
fn last_sequence(first: i32, count: i32) -> i32 {
    ((i64::from(first) + i64::from(count) - 1) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_sequence(last: i32) -> i32 {
    if last == i32::MAX {
        0
    } else {
        last + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(batches: &[(i32, i32)]) -> Sequences {
        let mut state = None;
        let mut offset = 0;
        for &(first, count) in batches {
            state = Some(Sequences::appended(state, 0, first, count, offset, 1_000));
            offset += i64::from(count);
        }
        state.expect("a batch")
    }

    #[test]
    fn a_producer_with_no_state_is_accepted_at_any_sequence() {
        assert_eq!(Sequences::check(None, 0, 0, 3), Ok(Check::Append));
        // An expired producer's next batch goes on where it was.
        assert_eq!(Sequences::check(None, 0, 3, 3), Ok(Check::Append));
    }

    #[test]
    fn the_next_batch_follows_the_last() {
        let state = written(&[(0, 3), (3, 2)]);
        assert_eq!(Sequences::check(Some(&state), 0, 5, 1), Ok(Check::Append));
        assert_eq!(
            Sequences::check(Some(&state), 0, 6, 1),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn a_retried_batch_gets_its_first_offset_back() {
        let state = written(&[(0, 3), (3, 2), (5, 4)]);
        assert_eq!(
            Sequences::check(Some(&state), 0, 3, 2),
            Ok(Check::Duplicate(3))
        );
        assert_eq!(
            Sequences::check(Some(&state), 0, 0, 3),
            Ok(Check::Duplicate(0))
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let state = written(&[(0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1)]);
        assert_eq!(state.batches.len(), 5);
        assert_eq!(
            Sequences::check(Some(&state), 0, 0, 1),
            Err(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            Sequences::check(Some(&state), 0, 1, 1),
            Ok(Check::Duplicate(1))
        );
    }

    #[test]
    fn a_new_epoch_starts_over_and_fences_the_old_one() {
        let state = written(&[(0, 3)]);
        assert_eq!(Sequences::check(Some(&state), 1, 0, 1), Ok(Check::Append));
        let bumped = Sequences::appended(Some(state), 1, 0, 1, 3, 2_000);
        assert_eq!(bumped.batches, vec![(0, 0, 3)]);
        assert_eq!(
            Sequences::check(Some(&bumped), 0, 3, 1),
            Err(ErrorCode::InvalidProducerEpoch)
        );
    }

    #[test]
    fn sequences_wrap_at_the_largest_int() {
        let state = Sequences::appended(None, 0, i32::MAX - 1, 2, 0, 1_000);
        assert_eq!(state.batches, vec![(i32::MAX - 1, i32::MAX, 0)]);
        assert_eq!(Sequences::check(Some(&state), 0, 0, 1), Ok(Check::Append));
    }

    #[test]
    fn a_producer_idle_for_a_day_is_expired() {
        let state = written(&[(0, 3)]);
        assert_eq!(state.last_ms, 1_000);
        assert!(!state.expired(1_000 + EXPIRY_MS));
        assert!(state.expired(1_001 + EXPIRY_MS));
        // Each batch renews it.
        let renewed = Sequences::appended(Some(state), 0, 3, 1, 3, 50_000);
        assert!(!renewed.expired(1_001 + EXPIRY_MS));
        // State kept before the time was: not expired until it writes.
        let old: Sequences = serde_json::from_str(r#"{"epoch":0,"batches":[[0,2,0]]}"#).unwrap();
        assert!(!old.expired(i64::MAX));
    }
}
