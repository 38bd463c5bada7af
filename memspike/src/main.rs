//! The `memspike` command: argument parsing, logging and exit codes. Everything else lives in
//! the library.
//!
//! Exit codes, one rule each (README, "Exit codes"):
//! - 2: the command line or the machine cannot run the experiment; nothing was created;
//! - 130: a stop signal (SIGINT, SIGTERM, SIGHUP) arrived before memspike exited, in a
//!   self-directed run; the report still says what was observed (interactive mode ends this
//!   way normally, with 0);
//! - 1: an internal failure, or the worker failed for another reason than the limit;
//! - 3: `--expect` named another outcome;
//! - 0: otherwise.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
// TEMP(issue 8): lead rewrites (the old phases).
use memspike::phase::Phase;
use memspike::{
    pacer::Gogc,
    preflight::UsageError,
    privilege::RunAs,
    report::{Outcome, Report},
    serve::AllowedHost,
    signals::{self, Interrupts},
    size,
    supervisor::{self, Interactive, RunOptions, SupervisorError},
    worker::{self, WorkerConfig},
};

#[derive(Parser)]
#[command(
    name = "memspike",
    version,
    about = "Reproduce and explain a garbage-collected heap OOM-killed by a cgroup limit while most of it is garbage"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the experiment in a fresh memory cgroup and report what happened (needs root).
    Run(RunArgs),
    /// The process inside the cgroup (started by `run`).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

#[derive(clap::Args)]
struct WorkerArgs {
    #[command(flatten)]
    experiment: ExperimentArgs,
    /// Serve HTTP on the inherited socket.
    #[arg(long)]
    interactive: bool,
    /// The credentials to take right after start, as UID:GID.
    #[arg(long, value_name = "UID:GID", value_parser = RunAs::from_arg)]
    run_as: RunAs,
    /// Names the HTTP server accepts in Host besides its address.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_host: Vec<String>,
}

#[derive(clap::Args, Clone)]
struct ExperimentArgs {
    /// The cgroup's memory limit: 33554432, 32MiB, 32M, 1.5GiB (M = MiB).
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    limit: u64,
    /// The fraction of the limit the spike fills (the seed's 90 %).
    #[arg(long, default_value_t = 0.9, value_parser = parse_spike, allow_negative_numbers = true)]
    spike: f64,
    /// GOGC for the simulated runtime: a percentage, or `off`.
    #[arg(long, default_value = "100", allow_negative_numbers = true)]
    gogc: Gogc,
    /// Run a collection right after releasing the slab (the seed's -gc): it then survives.
    #[arg(long)]
    gc: bool,
    /// Stop the worker (SIGSTOP) before this phase, to inspect its cgroup; `kill -CONT` goes on.
    #[arg(long, value_name = "PHASE")]
    pause_at: Option<PausePhase>,
}

/// Interactive mode: the seed's HTTP server on port 1112.
#[derive(clap::Args, Clone)]
struct InteractiveArgs {
    /// Keep a worker alive in the cgroup and drive its heap over HTTP (/add, /rel, /gc,
    /// /stats, /reset, /metrics, and a live page at /).
    #[arg(long, conflicts_with_all = ["spike", "gc", "pause_at", "expect", "report"])]
    interactive: bool,
    /// Where to listen in interactive mode.
    #[arg(long, default_value = "0.0.0.0:1112", requires = "interactive")]
    listen: std::net::SocketAddr,
    /// After a worker dies, stop instead of starting a fresh one.
    #[arg(long, requires = "interactive")]
    no_restart: bool,
    /// Also accept requests that name the server NAME (any port) or NAME:PORT in Host, e.g.
    /// a DNS name of this machine; repeatable. By default only its address (and localhost).
    #[arg(long = "allow-host", value_name = "NAME[:PORT]", requires = "interactive",
          value_parser = parse_allowed_host)]
    allow_host: Vec<String>,
}

/// The phases a run can pause before.
#[derive(Clone, Copy, ValueEnum)]
enum PausePhase {
    Spike,
    Release,
    Gc,
    Remainder,
}

impl From<PausePhase> for Phase {
    fn from(p: PausePhase) -> Phase {
        match p {
            PausePhase::Spike => Phase::Spike,
            PausePhase::Release => Phase::Release,
            PausePhase::Gc => Phase::Gc,
            PausePhase::Remainder => Phase::Remainder,
        }
    }
}

impl ExperimentArgs {
    fn config(&self, interactive: bool, run_as: RunAs, allowed_hosts: Vec<String>) -> WorkerConfig {
        WorkerConfig {
            limit: self.limit,
            spike: self.spike,
            gogc: self.gogc,
            gc_after_release: self.gc,
            pause_at: self.pause_at.map(Phase::from),
            interactive,
            run_as,
            allowed_hosts,
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    experiment: ExperimentArgs,
    /// Print the report as JSON instead of text (in interactive mode: each OOM kill's report,
    /// one JSON object per line).
    #[arg(long)]
    json: bool,
    /// Also write the report as DIR/report.json.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Exit with status 3 unless this is the outcome.
    #[arg(long)]
    expect: Option<Expect>,
    /// Do not attach the eBPF observer (the report says tracing is off).
    #[arg(long)]
    no_trace: bool,
    /// The account the worker runs as (never root). Default: a private uid and gid that no
    /// account and no other process uses.
    #[arg(long, value_name = "USER")]
    user: Option<String>,
    #[command(flatten)]
    interactive: InteractiveArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Expect {
    Oom,
    Survive,
}

fn parse_size(s: &str) -> Result<u64, String> {
    size::parse(s).map_err(|e| e.to_string())
}

fn parse_allowed_host(s: &str) -> Result<String, String> {
    AllowedHost::parse(s)?;
    Ok(s.to_owned())
}

fn parse_spike(s: &str) -> Result<f64, String> {
    s.parse::<f64>().map_err(|_| {
        format!("{s:?} is not a number: give a fraction between 0 and 1 (the seed's is 0.9)")
    })
}

/// Parses the command line. A mistake is one line on stderr and exit 2 (clap's own layout,
/// with its usage and hints, is kept for `--help` and `--version`).
fn parse_cli() -> Result<Command, ExitCode> {
    match Cli::try_parse() {
        Ok(Cli {
            command: Some(command),
        }) => Ok(command),
        Ok(Cli { command: None }) => {
            eprintln!(
                "memspike: error: no command given; run `memspike run` (e.g. `memspike run --limit 32MiB`), or see `memspike --help`"
            );
            Err(ExitCode::from(2))
        }
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let text = e.to_string();
            let line = text
                .lines()
                .next()
                .unwrap_or("invalid command line")
                .trim_start_matches("error: ");
            eprintln!("memspike: error: {line} (see `memspike run --help`)");
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    // Before anything else: a stop signal that arrives while memspike starts up waits for the
    // supervisor's watcher (or, in a worker, is delivered once unblocked below).
    if let Err(e) = signals::block() {
        eprintln!("memspike: error: cannot block stop signals: {e}");
        return ExitCode::FAILURE;
    }
    let command = match parse_cli() {
        Ok(command) => command,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEMSPIKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match command {
        Command::Worker(args) => {
            // The supervisor unblocked them before exec; a worker takes them as any process.
            if let Err(errno) = signals::unblock() {
                eprintln!(
                    "memspike worker: cannot unblock stop signals: {}",
                    std::io::Error::from_raw_os_error(errno)
                );
                return ExitCode::FAILURE;
            }
            let config = args
                .experiment
                .config(args.interactive, args.run_as, args.allow_host);
            match worker::run(config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("memspike worker: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run(args) => {
            // Before any other thread exists, so that every thread inherits the blocked
            // signals (blocked since the start of main).
            let interrupts = match Interrupts::install() {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("memspike: error: cannot watch for stop signals: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let code = match run(&args, &interrupts) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("memspike: error: {e:#}");
                    e.downcast_ref::<SupervisorError>()
                        .map_or(ExitCode::FAILURE, |e| ExitCode::from(e.exit_code()))
                }
            };
            // One rule, checked last: a stop signal that arrived at any time before this point
            // makes a self-directed run exit 130.
            match interrupts.received() {
                Some(_) if !args.interactive.interactive => {
                    ExitCode::from(signals::INTERRUPTED_EXIT)
                }
                _ => code,
            }
        }
    }
}

fn run(args: &RunArgs, interrupts: &Interrupts) -> anyhow::Result<ExitCode> {
    let i = &args.interactive;
    let run_as = RunAs::resolve(args.user.as_deref())
        .map_err(|e| SupervisorError::Settings(UsageError::from(e)))?;
    let config = args
        .experiment
        .config(i.interactive, run_as, i.allow_host.clone());
    let options = RunOptions {
        trace: !args.no_trace,
        interactive: i.interactive.then_some(Interactive {
            listen: i.listen,
            restart: !i.no_restart,
        }),
        report_dir: args.report.clone(),
    };
    if i.interactive {
        let json = args.json;
        let restarts = supervisor::run_interactive(&config, &options, interrupts, |report| {
            let mut out = std::io::stdout().lock();
            let _ = match serde_json::to_string(&report) {
                Ok(line) if json => writeln!(out, "{line}"),
                _ => write!(out, "{}", report.text()),
            };
            let _ = out.flush();
        })?;
        tracing::info!("stopped after {restarts} restart(s)");
        return Ok(ExitCode::SUCCESS);
    }
    let facts = supervisor::run(&config, &options, interrupts)?;
    let report = Report::build(facts);
    let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", report.text())?;
    }
    if let Some(dir) = &args.report {
        let path = supervisor::report_path(dir);
        std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
        tracing::info!("report written to {}", path.display());
    }
    let expected = match args.expect {
        None => None,
        Some(Expect::Oom) => Some(Outcome::OomKilled),
        Some(Expect::Survive) => Some(Outcome::Survived),
    };
    Ok(match (report.outcome, expected) {
        (Outcome::Error, _) => ExitCode::from(1),
        (got, Some(want)) if got != want => {
            eprintln!("memspike: expected {want:?}, observed {got:?}");
            ExitCode::from(3)
        }
        _ => ExitCode::SUCCESS,
    })
}
