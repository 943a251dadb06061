//! Builds the transforms for wasm32-wasip1 with a nested cargo, so that the
//! harness, its tests and its benchmarks always run the current `.wasm`
//! files. Two packages run this script: `transform-artifacts` builds the
//! deployable transforms, `testdata-artifacts` Redpanda's test transforms,
//! which only the tests need (a newcomer's first build skips them). The
//! nested build has a target directory of its own: the outer build holds
//! the lock on the usual one. It is one per checkout, so that checkouts
//! sharing a target directory never embed each other's modules; both
//! packages share it (the second waits for the first's lock, then reuses
//! what it compiled).
//!
//! The modules are copied into `OUT_DIR` and embedded from there. Cargo
//! reruns a build script when a `rerun-if-changed` path is newer than its
//! last run, so naming the nested build's outputs (written *during* the
//! run) made every second build rerun it; `OUT_DIR` is removed together with
//! everything else when the target directory is cleaned.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip1";

const TRANSFORMS: &[(&str, &str, &str)] = &[
    ("PIPELINE_WASM", "marketing-pipeline", "marketing-pipeline"),
    ("ENRICH_WASM", "enrich-transform", "enrich"),
    ("AGGREGATE_WASM", "aggregate-transform", "aggregate"),
    ("TEE_WASM", "tee-transform", "tee"),
];

/// Redpanda's test transforms (`transforms/testdata`), for the conformance suite.
const TESTDATA: &[&str] = &[
    "identity",
    "identity-logging",
    "dynamic",
    "setup-panic",
    "start-panic",
    "transform-panic",
    "transform-error",
    "wasi",
    "schema-registry",
];

const SOURCES: &[&str] = &[
    "transforms/analytics",
    "transforms/record-payload",
    "transforms/transform-guest",
    "transforms/marketing-pipeline",
    "transforms/enrich-transform",
    "transforms/aggregate-transform",
    "transforms/tee-transform",
    "transforms/testdata",
    "Cargo.toml",
    "Cargo.lock",
    ".cargo/config.toml",
    "rust-toolchain.toml",
];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let workspace = manifest
        .ancestors()
        .nth(2)
        .expect("transforms/*-artifacts are two levels deep");
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
    ensure_target();
    let built = |bin: &str| {
        target_dir
            .join(TARGET)
            .join("transform")
            .join(format!("{bin}.wasm"))
    };
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("testdata-artifacts") {
        build(workspace, &target_dir, &["testdata"]);
        let testdata = out_dir.join("testdata");
        std::fs::create_dir_all(&testdata).expect("creating OUT_DIR/testdata");
        for bin in TESTDATA {
            copy_if_changed(&built(bin), &testdata.join(format!("{bin}.wasm")));
        }
        println!("cargo:rustc-env=TESTDATA_DIR={}", testdata.display());
        return;
    }
    let packages: Vec<&str> = TRANSFORMS.iter().map(|(_, package, _)| *package).collect();
    build(workspace, &target_dir, &packages);
    for (var, _, bin) in TRANSFORMS {
        let embedded = out_dir.join(format!("{bin}.wasm"));
        copy_if_changed(&built(bin), &embedded);
        println!("cargo:rustc-env={var}={}", embedded.display());
    }
}

/// Leaves an unchanged file alone, so that its embedder is not rebuilt.
fn copy_if_changed(from: &Path, to: &Path) {
    let bytes = std::fs::read(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    if std::fs::read(to).ok().as_ref() != Some(&bytes) {
        std::fs::write(to, bytes).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
    }
}

/// A hash that stays the same from one toolchain to the next.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Adds the wasm32-wasip1 standard library when the toolchain lacks it.
/// `rust-toolchain.toml` names the target, but rustup adds it only when it
/// installs the toolchain itself, and not at all with `RUSTUP_AUTO_INSTALL=0`.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let Some(sysroot) = sysroot else {
        return;
    };
    if sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
    {
        return;
    }
    // rustup's proxies tell which toolchain is building us.
    let toolchain = std::env::var("RUSTUP_TOOLCHAIN").ok();
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", TARGET]);
    if let Some(toolchain) = &toolchain {
        cmd.args(["--toolchain", toolchain]);
    }
    let added = cmd.status().map(|s| s.success()).unwrap_or(false);
    let toolchain = toolchain.as_deref().unwrap_or("the active toolchain");
    if added {
        println!(
            "cargo:warning={toolchain} had no {TARGET} target, which the transforms are built for: this build added it with `rustup target add {TARGET}`"
        );
    } else {
        println!(
            "cargo:warning={toolchain} has no {TARGET} target and rustup could not add it: run `rustup target add {TARGET}`"
        );
    }
}

fn build(workspace: &Path, target_dir: &Path, packages: &[&str]) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--profile", "transform", "--target", TARGET])
        .arg("--target-dir")
        .arg(target_dir);
    for package in packages {
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
            "building the transforms for {TARGET} failed ({status}); if the target is \
             missing, run `rustup target add {TARGET}`"
        );
    }
}
