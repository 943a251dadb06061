//! Builds the transforms for wasm32-wasip1 with a nested cargo, so that the
//! harness, its tests and its benchmarks always run the current `.wasm`
//! files. The nested build has a target directory of its own: the outer
//! build holds the lock on the usual one. It is one per checkout, so that
//! checkouts sharing a target directory never embed each other's modules.

use std::path::{Path, PathBuf};
use std::process::Command;

const TRANSFORMS: &[(&str, &str, &str)] = &[
    ("PIPELINE_WASM", "marketing-pipeline", "marketing-pipeline"),
    ("ENRICH_WASM", "enrich-transform", "enrich"),
    ("AGGREGATE_WASM", "aggregate-transform", "aggregate"),
    ("TEE_WASM", "tee-transform", "tee"),
];

const SOURCES: &[&str] = &[
    "transforms/analytics",
    "transforms/payload",
    "transforms/guest",
    "transforms/pipeline",
    "transforms/enrich",
    "transforms/aggregate",
    "transforms/tee",
    "Cargo.lock",
    "rust-toolchain.toml",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest
        .ancestors()
        .nth(2)
        .expect("transforms/artifacts is two levels deep");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    // OUT_DIR is <target>/<profile>/build/<package>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .unwrap_or(&out_dir)
        .join("wasm-transforms")
        .join(format!(
            "{:016x}",
            fnv1a(workspace.as_os_str().as_encoded_bytes())
        ));
    for source in SOURCES {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(source).display()
        );
    }
    build(workspace, &target_dir);
    for (var, _, bin) in TRANSFORMS {
        let wasm = target_dir
            .join("wasm32-wasip1/transform")
            .join(format!("{bin}.wasm"));
        // A missing output (a moved or cleaned target directory) reruns us.
        println!("cargo:rerun-if-changed={}", wasm.display());
        println!("cargo:rustc-env={var}={}", wasm.display());
    }
}

/// A hash that stays the same from one toolchain to the next.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn build(workspace: &Path, target_dir: &Path) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args([
            "build",
            "--profile",
            "transform",
            "--target",
            "wasm32-wasip1",
            "--target-dir",
        ])
        .arg(target_dir);
    for (_, package, _) in TRANSFORMS {
        cmd.args(["-p", package]);
    }
    // The outer build's flags and wrappers (clippy, coverage) are for the host.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("cannot run cargo to build the transforms");
    if !status.success() {
        panic!(
            "building the transforms for wasm32-wasip1 failed ({status}); if the target is \
             missing, run `rustup target add wasm32-wasip1`"
        );
    }
}
