//! Running child processes: streamed output, SIGINT left to the child, exit codes passed on.

use std::process::{Command, ExitCode, ExitStatus};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{SigHandler, Signal, signal};

/// Ignores SIGINT in this process while alive; restores the previous disposition on drop.
///
/// The child shares our process group, so a terminal Ctrl-C reaches it directly; we must outlive
/// it to report its exit status instead of dying first.
struct IgnoreSigint {
    /// The disposition before, unless signal() failed.
    previous: Option<SigHandler>,
}

impl IgnoreSigint {
    fn new() -> Self {
        // SAFETY: installing SIG_IGN runs no handler code and touches no Rust state.
        let previous = unsafe { signal(Signal::SIGINT, SigHandler::SigIgn) }.ok();
        IgnoreSigint { previous }
    }
}

impl Drop for IgnoreSigint {
    fn drop(&mut self) {
        if let Some(previous) = self.previous {
            // SAFETY: restores the disposition signal() returned above.
            let _ = unsafe { signal(Signal::SIGINT, previous) };
        }
    }
}

/// Spawns `cmd` (stdio inherited), waits with SIGINT ignored here, and returns its status.
///
/// SIGINT is ignored only after the spawn: an ignored disposition would survive `exec` and the
/// child could then not be interrupted.
pub fn wait_for(cmd: &mut Command) -> Result<ExitStatus> {
    let mut child = cmd
        .spawn()
        .with_context(|| format!("could not start {}", describe(cmd)))?;
    let _guard = IgnoreSigint::new();
    child
        .wait()
        .with_context(|| format!("could not wait for {}", describe(cmd)))
}

/// Runs `cmd` and fails unless it exits 0.
pub fn run_ok(cmd: &mut Command) -> Result<()> {
    let status = wait_for(cmd)?;
    if !status.success() {
        bail!("{} failed ({})", describe(cmd), status_text(status));
    }
    Ok(())
}

/// Runs `cmd` quietly and reports whether it exited 0 (false if it could not start).
pub fn succeeds_quietly(cmd: &mut Command) -> bool {
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Our exit code for a child's status: its own code, or 128+N if signal N killed it.
pub fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code & 0xff).unwrap_or(1)),
        (None, Some(sig)) => ExitCode::from(u8::try_from(128 + sig).unwrap_or(255)),
        (None, None) => ExitCode::FAILURE,
    }
}

pub fn status_text(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        (None, None) => status.to_string(),
    }
}

/// The command line, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Mutex, MutexGuard};

    /// SIGINT's disposition is process-wide: tests that wait on children take turns.
    static SIGNALS: Mutex<()> = Mutex::new(());

    fn one_at_a_time() -> MutexGuard<'static, ()> {
        SIGNALS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", script]);
        cmd
    }

    #[test]
    fn exit_codes_pass_through() -> Result<()> {
        let _turn = one_at_a_time();
        for code in [0u8, 1, 2, 3] {
            let status = wait_for(&mut sh(&format!("exit {code}")))?;
            assert_eq!(exit_code(status), ExitCode::from(code));
        }
        Ok(())
    }

    #[test]
    fn death_by_signal_becomes_128_plus_signal() -> Result<()> {
        let _turn = one_at_a_time();
        let status = wait_for(&mut sh("kill -TERM $$"))?;
        assert_eq!(
            exit_code(status),
            ExitCode::from(128 + Signal::SIGTERM as u8)
        );
        assert_eq!(status_text(status), "killed by signal 15");
        Ok(())
    }

    /// SIGINT's default disposition for this process while alive, whatever it inherited (a
    /// command started in the background by a shell inherits SIGINT ignored); restores it.
    struct DefaultSigint(SigHandler);

    impl DefaultSigint {
        fn new() -> Self {
            // SAFETY: installing SIG_DFL runs no handler code and touches no Rust state.
            DefaultSigint(unsafe { signal(Signal::SIGINT, SigHandler::SigDfl) }.expect("signal"))
        }
    }

    impl Drop for DefaultSigint {
        fn drop(&mut self) {
            // SAFETY: restores the disposition signal() returned.
            let _ = unsafe { signal(Signal::SIGINT, self.0) };
        }
    }

    #[test]
    fn sigint_while_waiting_does_not_kill_us() -> Result<()> {
        let _turn = one_at_a_time();
        let _default = DefaultSigint::new();
        // The child waits until we ignore SIGINT (bit 2 of SigIgn: we are waiting for it;
        // bounded, so that a parent that never ignores it is killed and the test fails), then
        // sends us one, then exits 3: we must be alive to report that 3. A poll of our status,
        // because a change of signal disposition is announced nowhere else.
        let status = wait_for(&mut sh(
            "n=0; until [ $(( 0x$(awk '/^SigIgn/ {print $2}' /proc/$PPID/status) & 2 )) -ne 0 ] \
               || [ $n -ge 10000 ]; do n=$((n + 1)); done; \
             kill -INT $PPID; exit 3",
        ))?;
        assert_eq!(exit_code(status), ExitCode::from(3));
        Ok(())
    }

    #[test]
    fn the_child_itself_can_still_be_interrupted() -> Result<()> {
        let _turn = one_at_a_time();
        let _default = DefaultSigint::new();
        // A signal a process sends itself is delivered before kill returns: a shell that
        // survived it would go on to exit 0.
        let status = wait_for(&mut sh("kill -INT $$; exit 0"))?;
        assert_eq!(
            exit_code(status),
            ExitCode::from(128 + Signal::SIGINT as u8)
        );
        Ok(())
    }
}
