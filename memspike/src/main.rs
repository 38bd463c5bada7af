//! The `memspike` command: argument parsing, logging and exit codes. Everything else lives in
//! the library.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use memspike::{
    pacer::Gogc,
    report::{Outcome, Report},
    serve::AllowedHost,
    size,
    supervisor::{self, Interactive, RunOptions, SupervisorError},
    worker::{self, WorkerConfig},
};
use memspike_common::Phase;

#[derive(Parser)]
#[command(
    name = "memspike",
    version,
    about = "Reproduce and explain a garbage-collected heap OOM-killed by a cgroup limit while most of it is garbage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Serve HTTP on the inherited socket, as this user.
    #[arg(long, value_name = "USER")]
    serve_as: Option<String>,
    /// Names the HTTP server accepts in Host besides its address.
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_host: Vec<String>,
}

#[derive(clap::Args, Clone)]
struct ExperimentArgs {
    /// The cgroup's memory limit: 33554432, 32MiB, 32M, 1.5GiB (M = MiB).
    #[arg(long, default_value = "32MiB", value_parser = parse_limit)]
    limit: u64,
    /// The fraction of the limit the spike fills (the seed's 90 %).
    #[arg(long, default_value_t = 0.9, value_parser = parse_spike)]
    spike: f64,
    /// GOGC for the simulated runtime: a percentage, or `off`.
    #[arg(long, default_value = "100")]
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
    #[arg(long, conflicts_with_all = ["spike", "gc", "pause_at", "expect", "report", "json"])]
    interactive: bool,
    /// Where to listen in interactive mode.
    #[arg(long, default_value = "0.0.0.0:1112", requires = "interactive")]
    listen: std::net::SocketAddr,
    /// The unprivileged user the HTTP server runs as.
    #[arg(long, default_value = "nobody", requires = "interactive")]
    user: String,
    /// After an OOM kill, stop instead of starting a fresh worker.
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
    fn config(&self) -> WorkerConfig {
        WorkerConfig {
            limit: self.limit,
            spike: self.spike,
            gogc: self.gogc,
            gc_after_release: self.gc,
            pause_at: self.pause_at.map(Phase::from),
            interactive_user: None,
            allowed_hosts: Vec::new(),
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    experiment: ExperimentArgs,
    /// Print the report as JSON instead of text.
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
    #[command(flatten)]
    interactive: InteractiveArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Expect {
    Oom,
    Survive,
}

fn parse_limit(s: &str) -> Result<u64, String> {
    let bytes = size::parse(s).map_err(|e| e.to_string())?;
    supervisor::check_limit(bytes)?;
    Ok(bytes)
}

fn parse_allowed_host(s: &str) -> Result<String, String> {
    AllowedHost::parse(s)?;
    Ok(s.to_owned())
}

fn parse_spike(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
        _ => Err(format!(
            "{s:?} is not a fraction between 0 and 1 (the seed's is 0.9)"
        )),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEMSPIKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match cli.command {
        Command::Worker(args) => match worker::run(WorkerConfig {
            interactive_user: args.serve_as,
            allowed_hosts: args.allow_host,
            ..args.experiment.config()
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("memspike worker: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Run(args) => match run(&args) {
            Ok(code) => code,
            Err(e) => {
                let code = e
                    .downcast_ref::<SupervisorError>()
                    .map_or(1, SupervisorError::exit_code);
                eprintln!("memspike: error: {e:#}");
                ExitCode::from(code)
            }
        },
    }
}

fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let i = &args.interactive;
    let options = RunOptions {
        trace: !args.no_trace,
        interactive: i.interactive.then_some(Interactive {
            listen: i.listen,
            restart: !i.no_restart,
        }),
    };
    if i.interactive {
        let config = WorkerConfig {
            interactive_user: Some(i.user.clone()),
            allowed_hosts: i.allow_host.clone(),
            ..args.experiment.config()
        };
        let restarts = supervisor::run_interactive(config, options, |report| {
            print!("{}", report.text());
            let _ = std::io::stdout().flush();
        })?;
        tracing::info!("stopped after {restarts} restart(s)");
        return Ok(ExitCode::SUCCESS);
    }
    let facts = supervisor::run(args.experiment.config(), options)?;
    let interrupted = facts.interrupted;
    let report = Report::build(facts);
    let json = serde_json::to_string_pretty(&report).context("serialising the report")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{json}")?;
    } else {
        write!(out, "{}", report.text())?;
    }
    if let Some(dir) = &args.report {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
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
        _ if interrupted => ExitCode::from(130),
        (Outcome::Error, _) => ExitCode::from(1),
        (got, Some(want)) if got != want => {
            eprintln!("memspike: expected {want:?}, observed {got:?}");
            ExitCode::from(3)
        }
        _ => ExitCode::SUCCESS,
    })
}
