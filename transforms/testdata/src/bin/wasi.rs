//! `testdata/wasi/transform.go`: what the guest sees of WASI, as one JSON
//! record with no key: `{"Args", "Env", "NowNanos", "RandomNumber"}`.

use std::hash::BuildHasher;
use std::time::{SystemTime, UNIX_EPOCH};

use redpanda_transform_sdk::{
    on_record_written, BorrowedRecord, RecordWriter, WriteError, WriteEvent,
};

fn main() {
    on_record_written(
        |_: WriteEvent, out: &mut RecordWriter| -> Result<(), WriteError> {
            let info = serde_json::json!({
                "Args": std::env::args().collect::<Vec<_>>(),
                "Env": std::env::vars().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
                "NowNanos": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64),
                // Seeded by random_get, as Go's math/rand is.
                "RandomNumber": std::collections::hash_map::RandomState::new().hash_one(0u64) >> 1,
            });
            let value = info.to_string();
            out.write(BorrowedRecord::new(None, Some(value.as_bytes())))
        },
    )
}
