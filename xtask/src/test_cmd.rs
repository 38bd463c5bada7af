//! `cargo xtask test [-- CARGO TEST ARGS]`: the project's test command (what .ci/run calls).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Result, bail};

use crate::build_ebpf;
use crate::child;
use crate::privilege;
use crate::progress::{self, Step};
use crate::setup_ebpf;
use crate::setup_test_tools;
use crate::workspace;

pub fn test(args: &[String]) -> Result<ExitCode> {
    let ci = workspace::under_ci();
    let ebpf_object = prepare_ebpf(ci)?;
    prepare_test_tools(ci)?;

    progress::say(
        "step 4/4: cargo test --workspace (as root: the tests create cgroups and load eBPF)",
    );
    let mut env: Vec<(&str, String)> = Vec::new();
    let mut cargo_args: Vec<String> = vec!["test".into(), "--workspace".into()];
    match &ebpf_object {
        Some(object) => env.push(("MEMSPIKE_EBPF_OBJECT", object.display().to_string())),
        // Only outside CI (prepare_ebpf fails under CI): without the object the build would
        // fail, so the workspace is tested as built without eBPF.
        None => {
            progress::warn(
                "no eBPF object: testing memspike built with --features no-ebpf; the eBPF tests \
                 skip (they fail under CI)",
            );
            cargo_args.extend(["--features".into(), "no-ebpf".into()]);
        }
    }
    for var in ["CI", "RUST_LOG", "RUST_BACKTRACE", "RUST_TEST_THREADS"] {
        if let Ok(value) = std::env::var(var) {
            env.push((var, value));
        }
    }
    cargo_args.extend(args.iter().cloned());

    let mut cmd = if privilege::is_root() {
        let mut cmd = Command::new(workspace::cargo());
        cmd.args(&cargo_args).envs(env.iter().map(|(k, v)| (*k, v)));
        cmd
    } else if let Some(sudo) = privilege::sudo() {
        progress::say(
            "not root: re-running cargo test through sudo (it may ask for your password)",
        );
        as_root_via(sudo, &cargo_args, &mut env)?
    } else {
        if ci {
            bail!(
                "CI runs must be root (the tests create cgroups and load eBPF); sudo is not installed either"
            );
        }
        progress::warn(
            "not root and no sudo: running the tests as this user; root-only tests will fail or skip",
        );
        let mut cmd = Command::new(workspace::cargo());
        cmd.args(&cargo_args).envs(env.iter().map(|(k, v)| (*k, v)));
        cmd
    };
    cmd.current_dir(workspace::root());
    progress::say(format!("running {}", child::describe(&cmd)));
    let status = child::wait_for(&mut cmd)?;
    // Nothing is printed after cargo test: its summary stays the last lines of the output.
    Ok(child::exit_code(status))
}

/// `sudo -- env PATH=... CARGO_HOME=... RUSTUP_HOME=... CARGO_TARGET_DIR=... cargo test ...`
///
/// `env` carries the toolchain's location past sudo's env_reset and secure_path. Root builds go
/// to their own target directory so that the user's target/ never gets root-owned files.
fn as_root_via(
    sudo: PathBuf,
    cargo_args: &[String],
    env: &mut Vec<(&str, String)>,
) -> Result<Command> {
    for (var, value) in [
        ("PATH", std::env::var_os("PATH").map(PathBuf::from)),
        ("CARGO_HOME", workspace::cargo_home()),
        ("RUSTUP_HOME", workspace::rustup_home()),
        (
            "CARGO_TARGET_DIR",
            Some(workspace::target_dir()?.join("as-root")),
        ),
    ] {
        if let Some(value) = value {
            env.push((var, value.display().to_string()));
        }
    }
    let mut cmd = Command::new(sudo);
    cmd.args(["--", "env"]);
    cmd.args(env.iter().map(|(k, v)| format!("{k}={v}")));
    cmd.arg(workspace::cargo()).args(cargo_args);
    Ok(cmd)
}

/// Steps 1 and 2: the toolchain and the object. Outside CI a failure is a loud warning; under
/// CI it is an error, since the eBPF tests would otherwise be skipped silently.
fn prepare_ebpf(ci: bool) -> Result<Option<PathBuf>> {
    let step = Step::start("step 1/4: eBPF toolchain set-up (skipped where already done)");
    if let Err(err) = setup_ebpf::setup() {
        if ci {
            return Err(
                err.context("CI=true: the eBPF toolchain must be installable (Debian 12, root)")
            );
        }
        progress::warn(format!("eBPF toolchain set-up is impossible here: {err:#}"));
        progress::warn("continuing without eBPF (--features no-ebpf) because CI is not set");
        return Ok(None);
    }
    step.done();

    let step = Step::start("step 2/4: building the eBPF object");
    match build_ebpf::build() {
        Ok(object) => {
            step.done();
            Ok(Some(object))
        }
        Err(err) if !ci => {
            progress::warn(format!("{err:#}"));
            progress::warn("continuing without eBPF (--features no-ebpf) because CI is not set");
            Ok(None)
        }
        Err(err) => Err(err.context("CI=true: the eBPF object must build")),
    }
}

/// Step 3: what the tests run besides memspike (Debian's chromium, chromium-driver, python3).
/// Outside CI a failure is a warning (those tests then print SKIPPED or fail); under CI it is
/// an error, since they would fail.
fn prepare_test_tools(ci: bool) -> Result<()> {
    let step = Step::start(
        "step 3/4: headless Chromium, python3, Go, JDK 17 and Node.js for the tests (skipped where already installed)",
    );
    match setup_test_tools::setup() {
        Ok(()) => {
            step.done();
            Ok(())
        }
        Err(err) if !ci => {
            progress::warn(format!("the test tools cannot be set up here: {err:#}"));
            progress::warn(
                "the page and probe tests will skip or fail; continuing because CI is not set",
            );
            Ok(())
        }
        Err(err) => Err(err.context(
            "CI=true: chromium, chromium-driver and python3 must be installable (Debian 12, root)",
        )),
    }
}
