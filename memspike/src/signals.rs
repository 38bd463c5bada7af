//! The supervisor's stop signals (SIGINT, SIGTERM, SIGHUP), received without signal handlers.
//!
//! The binary [`block`]s the three signals first thing, so one that arrives while it starts up
//! waits; [`Interrupts::install`] then waits for them in a thread of its own (`sigwait`). No
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
//! (collecting, removing the group, reporting) goes on as after any other death.

use std::sync::{
    Arc,
    atomic::{AtomicI32, Ordering},
};

/// The signals that stop a run.
pub const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// What the watcher thread shares with the supervisor.
#[derive(Debug, Default)]
struct Shared {
    /// The first stop signal received, or 0.
    signal: AtomicI32,
    /// The worker to kill when one arrives, or 0.
    worker: AtomicI32,
}

/// The process's stop-signal watcher. Clones share it.
#[derive(Clone, Debug)]
pub struct Interrupts {
    shared: Arc<Shared>,
}

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a sigset_t we own; the signal numbers
    // are valid constants.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in STOP_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the stop signals in the calling thread (and the threads it creates afterwards).
/// The binary does this first thing, before it knows what it will do, so that a signal that
/// arrives while it starts up waits for [`Interrupts::install`] instead of killing it.
pub fn block() -> std::io::Result<()> {
    let set = stop_set();
    // SAFETY: sets this thread's mask from a valid sigset_t; the old mask is not needed.
    match unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        rc => Err(std::io::Error::from_raw_os_error(rc)),
    }
}

/// Unblocks the stop signals in the calling thread: a process that is not a supervisor (the
/// worker) takes them with their default action, and one already pending acts now.
/// Async-signal-safe (one `pthread_sigmask`), so a forked child can call it before exec.
/// Returns the errno on failure.
pub fn unblock() -> Result<(), i32> {
    let set = stop_set();
    // SAFETY: changes the calling thread's mask from a valid sigset_t.
    match unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) } {
        0 => Ok(()),
        errno => Err(errno),
    }
}

impl Interrupts {
    /// Blocks the stop signals and starts the watcher. Call it from the main thread before any
    /// other thread exists: threads inherit the mask they are created with, and a thread that
    /// does not block the signals would take them with their default action.
    pub fn install() -> std::io::Result<Interrupts> {
        block()?;
        let set = stop_set();
        let shared = Arc::new(Shared::default());
        let watcher = shared.clone();
        std::thread::Builder::new()
            .name("memspike-signals".into())
            .spawn(move || {
                loop {
                    let mut sig: libc::c_int = 0;
                    // SAFETY: waits for one of the blocked signals in `set`; writes only `sig`.
                    if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
                        continue;
                    }
                    let _ =
                        watcher
                            .signal
                            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                    kill(watcher.worker.load(Ordering::SeqCst));
                }
            })?;
        Ok(Interrupts { shared })
    }

    /// The first stop signal received so far, if any.
    pub fn received(&self) -> Option<i32> {
        match self.shared.signal.load(Ordering::SeqCst) {
            0 => None,
            sig => Some(sig),
        }
    }

    /// Makes `pid` the worker a stop signal kills (0: none). If a signal already arrived, the
    /// worker is killed at once: it must not outlive an interrupted supervisor.
    pub fn set_worker(&self, pid: i32) {
        self.shared.worker.store(pid, Ordering::SeqCst);
        if pid > 0 && self.received().is_some() {
            kill(pid);
        }
    }
}

/// SIGKILL to `pid` (nothing for 0 or less).
pub fn kill(pid: i32) {
    if pid > 0 {
        // SAFETY: sending a signal has no memory-safety preconditions; pid is our unreaped
        // child (the supervisor clears it before reaping), so it cannot have been reused.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// The conventional exit code after a stop signal (`128 + SIGINT`), whichever one it was.
pub const INTERRUPTED_EXIT: u8 = 130;

/// A signal's name for people: `SIGKILL`, `SIGTERM`, ..., or `signal N`.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGBUS => "SIGBUS".into(),
        other => format!("signal {other}"),
    }
}
