//! `bench swap` runs hot swaps under a steady stream and reports each
//! figure it promises.

use std::process::{Command, Stdio};

#[test]
fn bench_swap_reports_every_swap() {
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["swap", "--swaps", "3", "--rate", "3000"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("swaps:                             3 "),
        "{stdout}"
    );
    for figure in [
        "pause",
        "first batch",
        "processing lost",
        "request to switch",
    ] {
        let line = stdout.lines().find(|l| l.starts_with(figure)).unwrap();
        assert!(
            line.contains("p50") && !line.contains("not measured"),
            "{stdout}"
        );
    }
}
