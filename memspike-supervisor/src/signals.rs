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
//! (collecting, removing the group, reporting) goes on as after any other death. For `exec`
//! ([`Interrupts::set_forward`]) it passes each signal on to the command instead, which decides
//! what to do with it; a signal the terminal sent (Ctrl-C) already reached the command, which
//! shares memspike's process group, and is not sent twice.

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
    /// Pass signals on to the worker instead of killing it.
    forward: std::sync::atomic::AtomicBool,
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
                    // SAFETY: a zeroed siginfo_t is a valid value for sigwaitinfo to fill.
                    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
                    // SAFETY: waits for one of the blocked signals in `set`; writes only `info`.
                    let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
                    if sig <= 0 {
                        continue;
                    }
                    let _ =
                        watcher
                            .signal
                            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
                    let worker = watcher.worker.load(Ordering::SeqCst);
                    if !watcher.forward.load(Ordering::SeqCst) {
                        kill(worker);
                    } else if info.si_code != libc::SI_KERNEL && worker > 0 {
                        // SAFETY: passing a stop signal to our unreaped child.
                        unsafe { libc::kill(worker, sig) };
                    }
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
    /// worker is killed at once: it must not outlive an interrupted supervisor. In forwarding
    /// mode it gets that signal instead.
    pub fn set_worker(&self, pid: i32) {
        self.shared.worker.store(pid, Ordering::SeqCst);
        match self.received() {
            Some(sig) if pid > 0 && self.shared.forward.load(Ordering::SeqCst) => {
                // SAFETY: passing a stop signal to our unreaped child.
                unsafe { libc::kill(pid, sig) };
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
