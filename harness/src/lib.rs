//! The harness: hosts Redpanda data transforms outside Redpanda with the
//! same contract (see `transform-host`), over records from files.

pub mod bench;
pub mod records;
pub mod run;
pub mod runtime;
pub mod spec;
pub mod synthetic;

use std::sync::Arc;

use transform_host::{LogLine, LogStream, Logger};

/// Transform log lines on our stderr, as Redpanda puts them in its log.
pub fn stderr_logger() -> Logger {
    Arc::new(|line: LogLine<'_>| {
        let stream = match line.stream {
            LogStream::Stdout => "",
            LogStream::Stderr => " (stderr)",
        };
        eprintln!("[{}{stream}] {}", line.transform, line.line);
    })
}
