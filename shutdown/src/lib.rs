//! How a long-running process learns to stop: Ctrl-C (or SIGTERM) sets a
//! flag that its loops read between two pieces of work, and its servers
//! wait for, so that work in flight finishes and is flushed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

/// A flag that Ctrl-C (or SIGTERM) sets; `stopping` is said when it is set.
/// A second Ctrl-C ends the process at once.
pub fn stop_on_ctrl_c(stopping: &'static str) -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
        eprintln!("\n{stopping} (Ctrl-C again to quit at once)…");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

/// Completes once `flag` is set: how servers learn that the process stops.
pub async fn until_set(flag: Arc<AtomicBool>) {
    while !flag.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
