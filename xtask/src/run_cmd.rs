//! `cargo xtask run ARGS...`: build everything, then `memspike run ARGS...` as root.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};

use crate::build_ebpf;
use crate::child;
use crate::privilege;
use crate::progress::{self, Step};
use crate::setup_ebpf;
use crate::workspace;

/// Exit code for "cannot run: usage/preflight", the same as memspike's own.
const EXIT_PREFLIGHT: u8 = 2;

/// Sets up and builds the eBPF object, then builds memspike in release, which embeds it; when
/// the object cannot be built, builds memspike with `--features no-ebpf` (it then reports
/// kernel tracing as unavailable). Returns the binary.
pub fn build_release() -> Result<PathBuf> {
    let ebpf_object = prepare_ebpf();
    let step = Step::start("building memspike (cargo build --release -p memspike)");
    let mut build = Command::new(workspace::cargo());
    build
        .current_dir(workspace::root())
        .args(["build", "--release", "-p", "memspike"]);
    match &ebpf_object {
        Some(object) => {
            build.env("MEMSPIKE_EBPF_OBJECT", object);
        }
        // Without the feature a build without the object fails (memspike-probe/build.rs).
        None => {
            build.args(["--features", "no-ebpf"]);
        }
    }
    child::run_ok(&mut build).context("building memspike failed; see cargo's output above")?;
    step.done();
    Ok(workspace::target_dir()?.join("release").join("memspike"))
}

pub fn run(args: &[String]) -> Result<ExitCode> {
    let binary = build_release()?;
    let mut env: Vec<(&str, String)> = Vec::new();
    for var in ["RUST_LOG", "RUST_BACKTRACE", "NO_COLOR"] {
        if let Ok(value) = std::env::var(var) {
            env.push((var, value));
        }
    }

    let mut cmd = if privilege::is_root() {
        let mut cmd = Command::new(&binary);
        cmd.arg("run")
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v)));
        cmd
    } else if let Some(sudo) = privilege::sudo() {
        progress::say(
            "memspike needs root to create cgroups: running it through sudo (it may ask for your password)",
        );
        as_root_via(&sudo, &binary, args, &env)
    } else {
        progress::say(format!(
            "memspike needs root (or CAP_SYS_ADMIN) to create its cgroup, and sudo is not installed. \
             Run it as root: `{} run {}`, or run `cargo xtask run` from a root shell",
            binary.display(),
            args.join(" ")
        ));
        return Ok(ExitCode::from(EXIT_PREFLIGHT));
    };
    progress::say(format!("running {}", child::describe(&cmd)));
    let status = child::wait_for(&mut cmd)?;
    Ok(child::exit_code(status))
}

/// `sudo -- env VAR=value ... BINARY run ARGS`: `env` carries the variables past sudo's
/// env_reset and secure_path without needing --preserve-env rights in sudoers.
fn as_root_via(sudo: &Path, binary: &Path, args: &[String], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(sudo);
    cmd.args(["--", "env"]);
    cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
    cmd.arg(binary).arg("run").args(args);
    cmd
}

/// Sets up the eBPF toolchain and builds the observer; `None` (with a warning) if it cannot,
/// in which case memspike is built with `--features no-ebpf` and runs without the observer.
fn prepare_ebpf() -> Option<PathBuf> {
    let step = Step::start("eBPF toolchain set-up (skipped where already done)");
    if let Err(err) = setup_ebpf::setup() {
        progress::warn(format!("{err:#}"));
        progress::warn(
            "continuing without the eBPF observer (the report will lack kernel-side data)",
        );
        return None;
    }
    step.done();
    match build_ebpf::build() {
        Ok(object) => Some(object),
        Err(err) => {
            progress::warn(format!("{err:#}"));
            progress::warn(
                "continuing without the eBPF observer (the report will lack kernel-side data)",
            );
            None
        }
    }
}
