//! The `memspike` command: the command line ([`cli`]), one function per subcommand
//! ([`commands`]), logging and exit codes. Everything else lives in the library crates.
//!
//! Exit codes, one rule each (docs/concepts.md, "Exit codes"):
//! - 2: the command line or the machine cannot run the experiment; nothing was created;
//! - 130: a stop signal (SIGINT, SIGTERM, SIGHUP) arrived before memspike exited, in a
//!   self-directed run; the report still says what was observed (interactive mode ends this
//!   way normally, with 0);
//! - 1: an internal failure, or the worker failed for another reason than the limit;
//! - 3: `--expect` named another outcome, or `sweep merge --complete` found a cell without a
//!   row or a line that is not one;
//! - 0: otherwise.

mod cli;
mod commands;

use std::{io::IsTerminal, process::ExitCode};

use memspike_supervisor::{
    signals::{self, Interrupts},
    supervisor::SupervisorError,
};

use cli::Command;

fn main() -> ExitCode {
    // Before anything else: a stop signal that arrives while memspike starts up waits for the
    // supervisor's watcher (or, in a worker, is delivered once unblocked below).
    if let Err(e) = signals::block() {
        eprintln!("memspike: error: cannot block stop signals: {e}");
        return ExitCode::FAILURE;
    }
    let command = match cli::parse() {
        Ok(command) => command,
        Err(code) => return code,
    };
    tracing_subscriber::fmt()
        // Stderr, with a progress bar lifted while a line prints.
        .with_writer(|| memspike_supervisor::progress::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEMSPIKE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match command {
        Command::Scenarios => commands::scenarios(),
        Command::Worker => worker(),
        Command::Exec(args) => supervised(true, |i| commands::exec(&args, i)),
        Command::Compare(args) => supervised(true, |i| commands::compare(&args, i)),
        Command::Threshold(args) => supervised(true, |i| commands::threshold(&args, i)),
        Command::Sweep(args) => supervised(true, |i| commands::sweep(&args, i)),
        // One rule, checked last: a stop signal that arrived at any time before the end makes a
        // self-directed run exit 130 (an interactive session ends that way normally).
        Command::Run(args) => {
            let self_directed = !args.interactive.interactive;
            supervised(self_directed, |i| commands::run(&args, i))
        }
    }
}

/// The process inside the group (the hidden `worker` subcommand).
fn worker() -> ExitCode {
    // The supervisor unblocked them before exec; a worker takes them as any process.
    if let Err(errno) = signals::unblock() {
        eprintln!(
            "memspike worker: cannot unblock stop signals: {}",
            std::io::Error::from_raw_os_error(errno)
        );
        return ExitCode::FAILURE;
    }
    match memspike_worker::worker::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("memspike worker: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a supervising command: installs the stop-signal watcher (before any other thread
/// exists, so that every thread inherits the signals blocked since the start of `main`), maps
/// an error to its exit code, and exits 130 after a stop signal when `interrupted_exit`.
fn supervised(
    interrupted_exit: bool,
    body: impl FnOnce(&Interrupts) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let interrupts = match Interrupts::install() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("memspike: error: cannot watch for stop signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match body(&interrupts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("memspike: error: {e:#}");
            e.downcast_ref::<SupervisorError>()
                .map_or(ExitCode::FAILURE, |e| ExitCode::from(e.exit_code()))
        }
    };
    match interrupts.settle() {
        Some(_) if interrupted_exit => ExitCode::from(signals::INTERRUPTED_EXIT),
        _ => code,
    }
}
