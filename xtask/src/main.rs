//! `cargo xtask`: the project's run and test commands and the eBPF toolchain around them.
//!
//! Everything a fresh Debian 12 machine needs is set up by `cargo xtask run` and
//! `cargo xtask test` themselves; `setup-ebpf` and `build-ebpf` are the same steps on their own.

mod apt;
mod build_ebpf;
mod child;
mod fidelity;
mod layers;
mod observer_cost;
mod privilege;
mod progress;
mod run_cmd;
mod setup_ebpf;
mod setup_test_tools;
mod soak;
mod speed;
mod test_cmd;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "memspike's project automation",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build memspike (release) and the eBPF observer, then run `memspike run ARGS...` as root.
    ///
    /// Example: `cargo xtask run --limit 32MiB`. memspike's exit code is passed through
    /// (0 report written, 1 internal failure, 2 usage/preflight, 3 --expect mismatch;
    /// 128+N if it died by signal N).
    Run {
        /// Arguments for `memspike run` (see `cargo xtask run -- --help`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The project's test command: set up the eBPF toolchain, build the eBPF object, then run
    /// `cargo test --workspace` as root. Arguments after `--` go to `cargo test`.
    Test {
        /// Extra arguments for `cargo test` (e.g. `-- -- --nocapture`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install the eBPF toolchain (Debian's rustc-web with a precompiled core for
    /// bpfel-unknown-none, LLVM 22, bpf-linker). Idempotent; needs root on Debian 12.
    SetupEbpf,
    /// Install what the tests run besides memspike: Debian's chromium and chromium-driver for
    /// the page test (headless, driven over WebDriver) and python3 for the probe tests.
    /// Idempotent; needs root on Debian.
    SetupTestTools,
    /// Build the memspike-ebpf crate into a BPF object with Debian's compiler; prints its path.
    BuildEbpf,
    /// A bounded soak of the real binary (as root): hundreds of runs, 8 at once, with SIGKILL,
    /// SIGINT and SIGTERM injected at random times into the supervisor or the worker, OOM
    /// kills, interactive sessions and bad command lines; then checks that no cgroup, BPF
    /// program, tracefs mount or process is left, and prints the counts.
    Soak(soak::Options),
    /// memspike's simulation against the real Go runtime (as root): builds the reference
    /// program (reference/go) with each Go release, runs it cell by cell of a grid under
    /// `memspike exec` and the simulation with the same knobs, prints the agreement table and
    /// writes target/fidelity/fidelity.{md,csv}. Exits 1 if a stable cell disagrees or the
    /// model's prediction says "survives" where every real run died.
    Fidelity(fidelity::Options),
    /// The architecture, checked: the crates in layer order (each uses only those below it),
    /// the pure ones free of libc, aya, tokio and the like, and no module cycles in any
    /// crate. Prints the layers and each crate's module count.
    Layers,
    /// Wall times of the real release binary (as root): `--runs` (default 20) interleaved runs
    /// of each case (a traced and an untraced default run, ...), printed as a markdown table
    /// of median, min and max with each case's ratio to its baseline and its target.
    Speed(speed::Options),
    /// What `memspike exec` adds to a real program (as root): Debian's gofmt on a generated
    /// file, alone in a memory cgroup, under `memspike exec --no-trace` and under `memspike
    /// exec`, interleaved; prints median wall and CPU time and each against the bare run.
    ObserverCost(observer_cost::Options),
}

fn main() -> ExitCode {
    // `cargo xtask run --help` must show the *xtask* help; `cargo xtask run -- --help` is
    // memspike's. clap handles the former because `args` only starts at the first positional.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { args } => run_cmd::run(&args),
        Command::Test { args } => test_cmd::test(&args),
        Command::SetupEbpf => setup_ebpf::setup().map(|()| ExitCode::SUCCESS),
        Command::SetupTestTools => setup_test_tools::setup().map(|()| ExitCode::SUCCESS),
        Command::Soak(options) => soak::soak(&options),
        Command::Fidelity(options) => fidelity::fidelity(&options),
        Command::Speed(options) => speed::speed(&options),
        Command::ObserverCost(options) => observer_cost::observer_cost(&options),
        Command::Layers => layers::layers(),
        Command::BuildEbpf => build_ebpf::build().map(|object| {
            println!("{}", object.display());
            ExitCode::SUCCESS
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("[xtask] error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Command {
        let argv = std::iter::once("xtask").chain(args.iter().copied());
        match Cli::try_parse_from(argv) {
            Ok(cli) => cli.command,
            Err(err) => panic!("{args:?} did not parse: {err}"),
        }
    }

    #[test]
    fn run_forwards_memspike_flags_untouched() {
        match parse(&["run", "--limit", "32MiB", "--expect", "oom-kill"]) {
            Command::Run { args } => assert_eq!(args, ["--limit", "32MiB", "--expect", "oom-kill"]),
            _ => panic!("not the run command"),
        }
    }

    #[test]
    fn test_takes_cargo_test_args_after_double_dash() {
        match parse(&["test", "--", "-p", "memspike", "--", "--nocapture"]) {
            Command::Test { args } => assert_eq!(args, ["-p", "memspike", "--", "--nocapture"]),
            _ => panic!("not the test command"),
        }
    }

    #[test]
    fn run_help_is_xtask_help() {
        let argv = ["xtask", "run", "--help"];
        let err = Cli::try_parse_from(argv).err().map(|e| e.kind());
        assert_eq!(err, Some(clap::error::ErrorKind::DisplayHelp));
    }
}
