//! Pids as the kernel's tracepoints report them. Inside a PID namespace (a container, or
//! `unshare --pid`), `getpid()` and `Child::id()` are the namespace's numbers while the eBPF
//! observer sees the root namespace's; /proc numbers them in the namespace of its mount. So a
//! pid is translated through a pidfd, whose `/proc/self/fdinfo` `Pid:` line is the pid in that
//! /proc's namespace: the root's when /proc is the host's, as under `unshare` without
//! `--mount-proc` (a container with its own /proc keeps its own numbers, and the report then
//! says the victim is not the worker).

use std::io;
use std::os::fd::AsRawFd;

use rustix::process::{Pid, PidfdFlags, pidfd_open};

/// `pid` (of this process's namespace) as /proc numbers it, or `pid` itself when the kernel
/// cannot say (no pidfd support, or the process is gone).
pub fn procfs_pid(pid: u32) -> u32 {
    translate(pid).unwrap_or_else(|e| {
        tracing::debug!(pid, error = %e, "cannot translate the pid through a pidfd");
        pid
    })
}

fn translate(pid: u32) -> io::Result<u32> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // nix has no pidfd_open; rustix's is a safe wrapper that returns an owned descriptor.
    let fd = pidfd_open(pid, PidfdFlags::empty())?;
    // The fdinfo `Pid:` line (procfs does not parse a pidfd's fdinfo).
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()));
    drop(fd);
    info?
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Pid: in the pidfd's fdinfo"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_namespace_a_pid_is_itself() {
        let me = std::process::id();
        assert_eq!(translate(me).unwrap(), me);
        assert_eq!(procfs_pid(u32::MAX), u32::MAX, "no such process: unchanged");
    }
}
