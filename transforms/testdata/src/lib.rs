//! Redpanda's test transforms, `src/transform-sdk/go/transform/internal/testdata/*`,
//! one binary each, ported from Go to the Rust SDK with the same behaviour:
//! the harness's conformance suite (`harness/tests/testdata.rs`) runs them
//! with the assertions of Redpanda's `src/v/wasm/tests/*_test.cc`.
