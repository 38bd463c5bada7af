//! Installs the eBPF toolchain on Debian 12 (see shared notes "ebpf-toolchain"):
//! Debian's rustc-web/cargo-web 1.96 with a precompiled `core` for bpfel-unknown-none, LLVM 22,
//! and bpf-linker built against that LLVM. Every step is skipped when already done.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::apt::{self, Package};
use crate::child;
use crate::privilege;
use crate::progress::{self, Step};
use crate::workspace;

/// Debian's rustc (from rustc-web); rustup's rustc comes first on PATH, so it is named in full.
pub const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
/// Debian's cargo (from cargo-web).
pub const DEBIAN_CARGO: &str = "/usr/bin/cargo";
/// Where libstd-rust-web-dev-bpf puts the precompiled `core` for the target.
pub const BPF_CORE_DIR: &str = "/usr/lib/rustlib/bpfel-unknown-none/lib";
/// The LLVM that rustc-web 1.96 uses; bpf-linker must link against the same major version.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The Debian packages, each with the reason it is needed.
const PACKAGES: [Package; 4] = [
    (
        "rustc-web",
        "Debian's Rust 1.96 compiler (LLVM 22), installed as /usr/bin/rustc beside rustup's",
    ),
    ("cargo-web", "the cargo that matches it (/usr/bin/cargo)"),
    (
        "libstd-rust-web-dev-bpf",
        "a precompiled `core` for bpfel-unknown-none, which rustup cannot download here (no rust-src, so no -Z build-std)",
    ),
    (
        "llvm-22-dev",
        "LLVM 22 libraries for bpf-linker (Debian 12's default llvm-config is LLVM 14)",
    ),
];

const APT_HINT: &str = "rustc-web 1.96, libstd-rust-web-dev-bpf and llvm-22-dev come from Debian's \
    security suite: make sure `bookworm-security` is in /etc/apt/sources.list(.d) \
    (`apt-cache policy rustc-web` should offer 1.96)";

/// Installs whatever is missing, or fails saying why and what to run by hand.
pub fn setup() -> Result<()> {
    apt::ensure(&PACKAGES, install_packages)?;
    check_bpf_core()?;

    match bpf_linker() {
        Some(linker) => progress::say(format!("bpf-linker present: {}", linker_version(&linker))),
        None => install_bpf_linker()?,
    }
    progress::say("eBPF toolchain ready");
    Ok(())
}

/// The installed bpf-linker: on PATH, or where `cargo install` puts it.
pub fn bpf_linker() -> Option<PathBuf> {
    let candidates = privilege::find_in_path("bpf-linker")
        .into_iter()
        .chain(workspace::cargo_home().map(|h| h.join("bin").join("bpf-linker")));
    candidates
        .filter(|p| privilege::is_executable(p))
        .find(|p| child::succeeds_quietly(Command::new(p).arg("--version")))
}

fn linker_version(linker: &Path) -> String {
    Command::new(linker)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| linker.display().to_string())
}

fn check_bpf_core() -> Result<()> {
    let has_core = std::fs::read_dir(BPF_CORE_DIR)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
        })
        .unwrap_or(false);
    if !has_core {
        bail!(
            "no precompiled core for bpfel-unknown-none in {BPF_CORE_DIR}; install libstd-rust-web-dev-bpf ({APT_HINT})"
        );
    }
    Ok(())
}

fn install_packages(missing: &[&str]) -> Result<()> {
    if !apt::is_debian() {
        print_manual_commands(missing);
        bail!(
            "this is not a Debian system (no /etc/debian_version or apt-get): install the packages above by hand"
        );
    }
    if !privilege::is_root() {
        print_manual_commands(missing);
        bail!(
            "installing Debian packages needs root: run `cargo xtask setup-ebpf` from a root shell, or the commands above (apt-get as root, cargo install as yourself)"
        );
    }
    if let Some(codename) = debian_codename().filter(|c| c != "bookworm") {
        progress::warn(format!(
            "this is Debian '{codename}', not 12 (bookworm): the package names below may not exist here"
        ));
    }
    apt::announce(&PACKAGES, missing);

    apt::update()?;

    let step = Step::start(format!(
        "apt-get install {} (about 250 MB)",
        missing.join(" ")
    ));
    apt::install(missing).with_context(|| format!("apt-get install failed. {APT_HINT}"))?;
    step.done();
    progress::say(format!(
        "installed: {}",
        apt::installed_versions(&PACKAGES).join(", ")
    ));
    Ok(())
}

fn install_bpf_linker() -> Result<()> {
    if !Path::new(LLVM_PREFIX).join("bin/llvm-config").exists() {
        bail!(
            "{LLVM_PREFIX}/bin/llvm-config is missing: install llvm-22-dev first (`cargo xtask setup-ebpf` as root)"
        );
    }
    progress::say(format!(
        "will install bpf-linker {BPF_LINKER_VERSION} with `cargo install`: the linker for bpfel-unknown-none, \
         built against LLVM 22 (LLVM_PREFIX={LLVM_PREFIX}; its default feature wants LLVM 23)"
    ));
    let step = Step::start("cargo install bpf-linker (compiles from crates.io, about a minute)");
    let mut cmd = Command::new(workspace::cargo());
    cmd.env("LLVM_PREFIX", LLVM_PREFIX)
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--locked",
        ])
        .args(["--no-default-features", "--features", "llvm-22"]);
    child::run_ok(&mut cmd).context("could not build bpf-linker; see cargo's output above")?;
    step.done();
    let linker = bpf_linker().context(
        "bpf-linker was installed but does not run (`bpf-linker --version` failed); check $CARGO_HOME/bin",
    )?;
    progress::say(format!(
        "bpf-linker installed: {} ({})",
        linker_version(&linker),
        linker.display()
    ));
    Ok(())
}

fn debian_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
}

fn print_manual_commands(missing: &[&str]) {
    progress::say(
        "to install the eBPF toolchain by hand (Debian 12, with bookworm-security enabled):",
    );
    eprintln!("    sudo apt-get update");
    eprintln!(
        "    sudo apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    eprintln!(
        "    LLVM_PREFIX={LLVM_PREFIX} cargo install bpf-linker --version {BPF_LINKER_VERSION} --locked \
         --no-default-features --features llvm-22"
    );
}
