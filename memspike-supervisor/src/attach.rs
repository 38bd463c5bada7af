//! Asking a running JVM a diagnostic command, as `jcmd PID COMMAND` does, through HotSpot's
//! attach mechanism on Linux, without starting a JVM of our own (`jcmd` is one: 40 MiB and a
//! third of a second each time).
//!
//! The mechanism, as HotSpot's `attachListener_linux.cpp` and the JDK's `VirtualMachineImpl`
//! (Linux) have it:
//! 1. the JVM's attach listener is started by a SIGQUIT that finds a file `.attach_pidN` (N the
//!    JVM's pid in its own namespace) in its working directory or in `/tmp`, owned by the
//!    JVM's user; without the file, a SIGQUIT prints a thread dump instead;
//! 2. the listener listens on the Unix socket `/tmp/.java_pidN`;
//! 3. a request is `1\0jcmd\0COMMAND\0\0\0` (the protocol's version, the command, three
//!    arguments); the reply is the completion status on its first line (`0`), then the output.
//!
//! A SIGQUIT before the JVM catches it would kill it (its default action), so nothing is sent
//! before `/proc/PID/status` shows SIGQUIT caught. The socket a JVM leaves when it is killed
//! (it removes it when it exits) is removed by [`Jvm::tidy`].

use std::{
    fs,
    io::{self, Read, Write},
    os::unix::net::UnixStream,
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use memspike_model::trace::{self, jvm::NativeMemory};
use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};

/// Why a JVM could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("the JVM ended before it could be asked")]
    Ended,
    #[error("the JVM did not catch SIGQUIT within {0:?}: its attach mechanism cannot be opened")]
    NotReady(Duration),
    #[error("the JVM opened no attach socket within {0:?}")]
    NoSocket(Duration),
    #[error("the JVM refused the command: {0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A JVM to ask, by its pid.
pub struct Jvm {
    pid: u32,
    /// The JVM's `/tmp`, seen from here.
    tmp: PathBuf,
    /// Its pid in its own namespace, which names its files.
    ns_pid: u32,
    /// The attach mechanism was opened by us: its socket is ours to tidy.
    opened: bool,
}

/// How often the JVM's state is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(2);

impl Jvm {
    pub fn new(pid: u32) -> Jvm {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let ns_pid = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))
            .and_then(|ids| ids.split_whitespace().last())
            .and_then(|id| id.parse().ok())
            .unwrap_or(pid);
        // In memspike's own mount namespace the JVM's /tmp is ours, and stays reachable after
        // the JVM is gone (for [`Jvm::tidy`]); in another, through its root.
        let ns = |p: &str| fs::read_link(format!("/proc/{p}/ns/mnt")).ok();
        let tmp = match ns(&pid.to_string()) {
            Some(theirs) if Some(&theirs) == ns("self").as_ref() => PathBuf::from("/tmp"),
            _ => PathBuf::from(format!("/proc/{pid}/root/tmp")),
        };
        Jvm {
            pid,
            tmp,
            ns_pid,
            opened: false,
        }
    }

    fn socket(&self) -> PathBuf {
        self.tmp.join(format!(".java_pid{}", self.ns_pid))
    }

    /// The JVM catches SIGQUIT (`SigCgt` has its bit): its signal handling is in place.
    fn catches_sigquit(&self) -> bool {
        fs::read_to_string(format!("/proc/{}/status", self.pid))
            .ok()
            .and_then(|status| {
                let mask = status.lines().find_map(|l| l.strip_prefix("SigCgt:"))?;
                u64::from_str_radix(mask.trim(), 16).ok()
            })
            .is_some_and(|mask| mask & (1 << (Signal::SIGQUIT as u64 - 1)) != 0)
    }

    /// Opens the JVM's attach mechanism, waiting up to `wait` for the JVM to be ready and then
    /// for its socket; `stop` ends the wait early (the JVM has exited).
    pub fn open(&mut self, wait: Duration, stop: &dyn Fn() -> bool) -> Result<(), AttachError> {
        let start = Instant::now();
        if self.socket().exists() {
            return Ok(());
        }
        while !self.catches_sigquit() {
            if stop() {
                return Err(AttachError::Ended);
            }
            if start.elapsed() > wait {
                return Err(AttachError::NotReady(wait));
            }
            thread::sleep(POLL);
        }
        let trigger = self.tmp.join(format!(".attach_pid{}", self.ns_pid));
        fs::write(&trigger, b"")?;
        let opened = kill(Pid::from_raw(self.pid as i32), Signal::SIGQUIT)
            .map_err(io::Error::from)
            .map_err(AttachError::from)
            .and_then(|()| {
                while !self.socket().exists() {
                    if stop() {
                        return Err(AttachError::Ended);
                    }
                    if start.elapsed() > wait {
                        return Err(AttachError::NoSocket(wait));
                    }
                    thread::sleep(POLL);
                }
                Ok(())
            });
        let _ = fs::remove_file(&trigger);
        self.opened = opened.is_ok();
        opened
    }

    /// Runs the diagnostic command `command` (`VM.native_memory summary`) and gives its
    /// output; each read and write waits at most `timeout`.
    pub fn jcmd(&self, command: &str, timeout: Duration) -> Result<String, AttachError> {
        let mut stream = UnixStream::connect(self.socket())?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(format!("1\0jcmd\0{command}\0\0\0").as_bytes())?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        let (status, output) = reply.split_once('\n').unwrap_or((reply.as_str(), ""));
        match status.trim() {
            "0" => Ok(output.to_owned()),
            _ => Err(AttachError::Refused(reply.trim().to_owned())),
        }
    }

    /// Removes the attach socket the JVM left behind when it died without removing it (killed),
    /// if this opened it. Call once the JVM has exited.
    pub fn tidy(&self) {
        if self.opened {
            let _ = fs::remove_file(self.socket());
        }
    }
}

/// How often a JVM's native memory is asked for while it runs: its last summary before a kill
/// is at most this old.
pub const NATIVE_PERIOD: Duration = Duration::from_millis(50);
/// How long a JVM may take to start catching SIGQUIT and to open its socket.
const OPEN_WAIT: Duration = Duration::from_secs(5);
/// How long one summary may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks a JVM for its Native Memory Tracking summary every [`NATIVE_PERIOD`], on a thread of
/// its own, until told to stop; keeps the last one read.
pub struct NativeSampler {
    stop: Arc<AtomicBool>,
    thread: thread::JoinHandle<Result<NativeMemory, String>>,
}

impl NativeSampler {
    /// Starts asking the JVM `pid`, started at `started`.
    pub fn start(pid: u32, started: Instant) -> NativeSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut jvm = Jvm::new(pid);
            let mut last = Err(AttachError::Ended.to_string());
            if let Err(e) = jvm.open(OPEN_WAIT, &|| stopped.load(Ordering::Relaxed)) {
                jvm.tidy();
                return Err(e.to_string());
            }
            while !stopped.load(Ordering::Relaxed) {
                let t_ms = started.elapsed().as_secs_f64() * 1e3;
                match jvm.jcmd(trace::jvm::NATIVE_MEMORY_COMMAND, ASK_TIMEOUT) {
                    Ok(summary) => match trace::jvm::native_memory(&summary, t_ms) {
                        Some(nmt) => last = Ok(nmt),
                        // Asked early, a JVM may answer before its account is ready: the
                        // next ask may have it.
                        None if last.is_err() => {
                            tracing::debug!("the JVM's answer at {t_ms:.0} ms: {summary:?}");
                            last = Err(format!(
                                "the JVM's answers were not summaries: {:?}",
                                summary.trim()
                            ));
                        }
                        None => {}
                    },
                    // The JVM is gone, or going.
                    Err(_) => break,
                }
                thread::sleep(NATIVE_PERIOD);
            }
            jvm.tidy();
            last
        });
        NativeSampler { stop, thread }
    }

    /// Stops asking (the JVM has exited) and gives the last summary, or why there is none.
    pub fn finish(self) -> Result<NativeMemory, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .unwrap_or_else(|_| Err("the sampler failed".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{cell::Cell, process::Command};

    /// A process that does not catch SIGQUIT (a JVM run with -Xrs, or one not yet started) is
    /// never sent one: it would die of it. The wait for it ends when told to (the program
    /// ended), not after the whole of it.
    #[test]
    fn a_process_that_does_not_catch_sigquit_is_never_sent_one() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let mut jvm = Jvm::new(child.id());
        let polls = Cell::new(0);
        let stop = || {
            polls.set(polls.get() + 1);
            polls.get() > 3
        };
        let e = jvm.open(Duration::from_secs(3600), &stop).unwrap_err();
        assert!(matches!(e, AttachError::Ended), "{e}");
        assert!(child.try_wait().unwrap().is_none(), "sleep is still alive");
        assert!(!jvm.tmp.join(format!(".attach_pid{}", jvm.ns_pid)).exists());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
