//! Redpanda's own test transforms (`transforms/testdata`), built for
//! wasm32-wasip1 by this crate's build script (the one of
//! `transform-artifacts`) for the conformance suite: read from here, not
//! embedded. A crate of their own, so that only the tests build them.

pub const TESTDATA_DIR: &str = env!("TESTDATA_DIR");

/// One of them by name (`identity`, `dynamic`, `schema-registry`, …).
pub fn testdata(name: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(std::path::Path::new(TESTDATA_DIR).join(format!("{name}.wasm")))
}
