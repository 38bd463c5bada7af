//! The supervisor's stop signals (SIGINT, SIGTERM, SIGHUP), received without signal handlers.
//!
//! The binary [`block`]s the three signals first thing, so one that arrives while it starts up
//! waits; [`Interrupts::install`] then reads them in a thread of its own from a `signalfd`,
//! which dequeues them as `sigwaitinfo` would and says who sent each. No
//! handler is ever installed, which matters twice:
//! - a worker forked by the supervisor inherits the default dispositions and the blocked mask,
//!   so a signal sent to the worker's pid between fork and exec stays pending until the worker
//!   [`unblock`]s it (the last step before exec) and then acts as it would on the worker
//!   itself. With a handler, the child would run the supervisor's handler instead and the
//!   signal would be lost (or, worse, taken for the supervisor's own);
//! - the watcher lives until the process exits, so a signal that arrives late (while the report
//!   is written) is still seen and still decides the exit code, never silently ignored.
//!
//! On a signal the watcher records it and kills the current worker, if any; everything else
//! (collecting, removing the group, reporting) goes on as after any other death. For `exec`
//! ([`Interrupts::set_forward`]) it passes each signal on to the command instead, which decides
//! what to do with it; a signal the terminal sent (Ctrl-C) already reached the command, which
//! shares memspike's process group, and is not sent twice.

use std::sync::{
    Arc,
    atomic::{AtomicI32, Ordering},
};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

/// The signals that stop a run.
pub const STOP_SIGNALS: [Signal; 3] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP];

/// `si_code` of a signal the kernel sent itself (the terminal's Ctrl-C, for one). A constant
/// nix does not name, so it comes from libc.
const SI_KERNEL: i32 = libc::SI_KERNEL;

/// What the watcher thread shares with the supervisor.
#[derive(Debug, Default)]
struct Shared {
    /// The first stop signal received, or 0.
    signal: AtomicI32,
    /// The worker to kill when one arrives, or 0.
    worker: AtomicI32,
    /// Pass signals on to the worker instead of killing it.
    forward: std::sync::atomic::AtomicBool,
}

/// The process's stop-signal watcher. Clones share it.
#[derive(Clone, Debug)]
pub struct Interrupts {
    shared: Arc<Shared>,
}

/// The stop signals as a set: a value on the stack, filled by sigemptyset/sigaddset (no
/// allocation, so a forked child may build it).
fn stop_set() -> SigSet {
    let mut set = SigSet::empty();
    for sig in STOP_SIGNALS {
        set.add(sig);
    }
    set
}

/// Blocks the stop signals in the calling thread (and the threads it creates afterwards).
/// The binary does this first thing, before it knows what it will do, so that a signal that
/// arrives while it starts up waits for [`Interrupts::install`] instead of killing it.
pub fn block() -> std::io::Result<()> {
    stop_set().thread_block().map_err(std::io::Error::from)
}

/// Unblocks the stop signals in the calling thread: a process that is not a supervisor (the
/// worker) takes them with their default action, and one already pending acts now.
/// Async-signal-safe (one `pthread_sigmask`, no allocation), so a forked child can call it
/// before exec. Returns the errno on failure.
pub fn unblock() -> Result<(), i32> {
    stop_set().thread_unblock().map_err(|errno| errno as i32)
}

impl Interrupts {
    /// Blocks the stop signals and starts the watcher. Call it from the main thread before any
    /// other thread exists: threads inherit the mask they are created with, and a thread that
    /// does not block the signals would take them with their default action.
    pub fn install() -> std::io::Result<Interrupts> {
        block()?;
        // Close-on-exec: the worker and commands must not inherit it.
        let signals = SignalFd::with_flags(&stop_set(), SfdFlags::SFD_CLOEXEC)?;
        let shared = Arc::new(Shared::default());
        let watcher = shared.clone();
        std::thread::Builder::new()
            .name("memspike-signals".into())
            .spawn(move || {
                loop {
                    // Blocks until one of the stop signals is pending, and dequeues it.
                    let Ok(Some(info)) = signals.read_signal() else {
                        continue;
                    };
                    let Ok(sig) = i32::try_from(info.ssi_signo) else {
                        continue;
                    };
                    let _ =
                        watcher
                            .signal
                            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                    let worker = watcher.worker.load(Ordering::SeqCst);
                    if !watcher.forward.load(Ordering::SeqCst) {
                        kill(worker);
                    } else if info.ssi_code != SI_KERNEL {
                        pass_on(worker, sig);
                    }
                }
            })?;
        Ok(Interrupts { shared })
    }

    /// The stop signal that decides how the process exits, the last word before it does: the
    /// first one received, or one that arrived but that the watcher has not taken yet (it runs
    /// on a thread of its own, which may not have been scheduled since the signal came while
    /// the report was still being written).
    pub fn settle(&self) -> Option<i32> {
        if self.received().is_none()
            && let Ok(pending) =
                SignalFd::with_flags(&stop_set(), SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            && let Ok(Some(info)) = pending.read_signal()
            && let Ok(sig) = i32::try_from(info.ssi_signo)
        {
            let _ = self
                .shared
                .signal
                .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
        }
        self.received()
    }

    /// The first stop signal received so far, if any.
    pub fn received(&self) -> Option<i32> {
        match self.shared.signal.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }

    /// Makes `pid` the worker a stop signal kills (0: none). If a signal already arrived, the
    /// worker is killed at once: it must not outlive an interrupted supervisor. In forwarding
    /// mode it gets that signal instead.
    pub fn set_worker(&self, pid: i32) {
        self.shared.worker.store(pid, Ordering::SeqCst);
        match self.received() {
            Some(sig) if pid > 0 && self.shared.forward.load(Ordering::SeqCst) => {
                pass_on(pid, sig);
            }
            Some(_) => kill(pid),
            None => {}
        }
    }

    /// Passes stop signals on to the worker (a command run by `exec`, which decides what they
    /// mean) instead of killing it.
    pub fn set_forward(&self, forward: bool) {
        self.shared.forward.store(forward, Ordering::SeqCst);
    }
}

/// SIGKILL to `pid` (nothing for 0 or less).
pub fn kill(pid: i32) {
    if pid > 0 {
        // pid is our unreaped child (the supervisor clears it before reaping), so it cannot
        // have been reused. A child that is already gone has nothing left to kill.
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Passes the stop signal `sig` on to `pid`, our unreaped child (nothing for 0 or less).
fn pass_on(pid: i32, sig: i32) {
    if let (true, Ok(sig)) = (pid > 0, Signal::try_from(sig)) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), sig);
    }
}

/// The conventional exit code after a stop signal (`128 + SIGINT`), whichever one it was.
pub const INTERRUPTED_EXIT: u8 = 130;

/// A signal's name for people: `SIGKILL`, `SIGTERM`, ... (nix's names), or `signal N` for a
/// number nix does not name (real-time signals).
pub fn signal_name(sig: i32) -> String {
    Signal::try_from(sig).map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned())
}

/// A signal as the facts record it: its number and name.
pub fn signal(number: i32) -> memspike_report::facts::Signal {
    memspike_report::facts::Signal {
        number,
        name: signal_name(number),
    }
}

/// How a child process ended, as the facts record it.
pub fn exit_of(status: std::process::ExitStatus) -> memspike_report::facts::Exit {
    use memspike_report::facts::Exit;
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(sig)) => Exit::Signal(signal(sig)),
        (None, None) => Exit::Code(-1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: a stop signal that came while the report was written, that the watcher
    /// thread had not taken yet, was not seen at exit (the run exited 0, not 130). A signal
    /// sent to this thread alone is one the watcher can never take: `settle` must.
    #[test]
    fn a_signal_the_watcher_has_not_taken_still_settles_the_exit() {
        let interrupts = Interrupts::install().unwrap();
        nix::sys::pthread::pthread_kill(nix::sys::pthread::pthread_self(), Signal::SIGHUP).unwrap();
        assert_eq!(
            interrupts.received(),
            None,
            "the watcher cannot have taken it"
        );
        assert_eq!(interrupts.settle(), Some(Signal::SIGHUP as i32));
        assert_eq!(interrupts.received(), Some(Signal::SIGHUP as i32));
    }

    #[test]
    fn signals_are_named_as_people_know_them() {
        for (sig, name) in [
            (Signal::SIGKILL, "SIGKILL"),
            (Signal::SIGTERM, "SIGTERM"),
            (Signal::SIGINT, "SIGINT"),
            (Signal::SIGHUP, "SIGHUP"),
            (Signal::SIGSEGV, "SIGSEGV"),
            (Signal::SIGABRT, "SIGABRT"),
            (Signal::SIGBUS, "SIGBUS"),
        ] {
            assert_eq!(signal_name(sig as i32), name);
        }
        // A real-time signal has no name of its own.
        assert_eq!(signal_name(40), "signal 40");
        assert_eq!(signal(9).name, "SIGKILL");
    }
}
