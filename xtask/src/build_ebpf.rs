//! Builds the memspike-ebpf crate into a BPF ELF object with Debian's compiler.
//!
//! Why Debian's toolchain: rustup's stable has no `core` for bpfel-unknown-none and cannot
//! download rust-src here, while Debian's rustc-web ships one precompiled
//! (libstd-rust-web-dev-bpf). That `core` only fits Debian's own rustc (E0514 otherwise), so
//! RUSTC=/usr/bin/rustc is named in full (rustup's rustc comes first on PATH).
//!
//! Which cargo: Debian's /usr/bin/cargo (cargo-web 1.96, the same release as the compiler).
//! rustup's cargo 1.95 with RUSTC set also works, but the matching pair is the safer choice.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::child;
use crate::progress::{self, Step};
use crate::setup_ebpf::{self, DEBIAN_CARGO, DEBIAN_RUSTC};
use crate::workspace;

const TARGET: &str = "bpfel-unknown-none";
const CRATE: &str = "memspike-ebpf";
/// ELF e_machine for BPF.
const EM_BPF: u16 = 247;

/// The crate's directory.
pub fn crate_dir() -> PathBuf {
    workspace::root().join(CRATE)
}

/// Where the built object lands.
pub fn object_path() -> PathBuf {
    crate_dir()
        .join("target")
        .join(TARGET)
        .join("release")
        .join(CRATE)
}

/// Builds the object (incrementally) and returns its path.
pub fn build() -> Result<PathBuf> {
    for (path, package) in [(DEBIAN_RUSTC, "rustc-web"), (DEBIAN_CARGO, "cargo-web")] {
        if !Path::new(path).exists() {
            bail!(
                "{path} is missing (Debian package {package}): run `cargo xtask setup-ebpf` first"
            );
        }
    }
    let linker = setup_ebpf::bpf_linker()
        .context("bpf-linker is not installed: run `cargo xtask setup-ebpf` first")?;

    let step = Step::start(format!(
        "building {CRATE} for {TARGET} with Debian's rustc (release)"
    ));
    // Flags are passed whole in CARGO_ENCODED_RUSTFLAGS (separator 0x1f), which wins over any
    // RUSTFLAGS in the environment; with --target they reach only the BPF code, not proc-macros.
    let rustflags = [
        "-C".to_string(),
        format!("linker={}", linker.display()),
        "-C".to_string(),
        "debuginfo=2".to_string(),
        "-C".to_string(),
        "link-arg=--btf".to_string(),
    ]
    .join("\x1f");
    let mut cmd = Command::new(DEBIAN_CARGO);
    cmd.current_dir(crate_dir())
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "--target-dir",
            "target",
        ])
        .env("RUSTC", DEBIAN_RUSTC)
        // aya-ebpf uses #![feature(asm_experimental_arch)] on bpf: without this, E0554.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTDOC")
        .env_remove("RUSTC_WRAPPER")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    child::run_ok(&mut cmd).context("the eBPF build failed; see the compiler's output above")?;
    step.done();

    let object = object_path();
    check_bpf_elf(&object)?;
    progress::say(format!("eBPF object: {}", object.display()));
    Ok(object)
}

/// Fails unless `path` is a 64-bit little-endian ELF for the BPF machine.
fn check_bpf_elf(path: &Path) -> Result<()> {
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .with_context(|| format!("the build left no readable object at {}", path.display()))?;
    let machine = u16::from_le_bytes([header[18], header[19]]);
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 || machine != EM_BPF {
        bail!(
            "{} is not a 64-bit little-endian BPF ELF object (e_machine {machine})",
            path.display()
        );
    }
    Ok(())
}
