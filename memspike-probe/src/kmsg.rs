//! OOM victims from the kernel log (`/dev/kmsg`), for when no eBPF program watches
//! `oom/mark_victim`.
//!
//! The log is opened when the observer starts and read from its end, so only what the kernel
//! logs afterwards is seen. Each OOM kill logs two lines:
//! - `oom-kill:constraint=…,oom_memcg=<path>,task_memcg=<path>,task=<comm>,pid=<pid>,uid=<uid>`,
//!   which names the memory cgroups: a kill is ours when either path has the group's name
//!   (`memspike-<pid>-<n>-<random>`, unique) as a component;
//! - `… Killed process <pid> (<comm>) total-vm:<kB>kB, anon-rss:<kB>kB, file-rss:<kB>kB,
//!   shmem-rss:<kB>kB, UID:<uid> pgtables:<kB>kB oom_score_adj:<n>`, the victim's figures.
//!
//! The first belongs to the OOM dump, which the kernel rate-limits (10 per 5 s, `oom_rs`);
//! the second is always logged. So a `Killed process` line is also ours when its pid is one
//! the observer saw in the group while it lived (the caller passes those pids).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::OomVictimReport;

/// Where the kernel log is read.
pub const KMSG: &str = "/dev/kmsg";
/// The source name reports give victims found here.
pub const SOURCE: &str = "/dev/kmsg";
/// A record is at most about 1 KiB of text plus its dictionary; the kernel refuses a read into
/// a smaller buffer (EINVAL) rather than cut a record.
const RECORD_MAX: usize = 8192;

/// The kernel log, read from where it ended at [`KernelLog::open`].
#[derive(Debug)]
pub struct KernelLog {
    file: File,
    matcher: OomMatcher,
    buf: Vec<u8>,
    /// Records the kernel overwrote before they were read (EPIPE).
    lost: u64,
}

impl KernelLog {
    /// Opens the log at its end, to find OOM kills in the group named `group`.
    pub fn open(group: &str) -> Result<KernelLog, String> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(OFlag::O_NONBLOCK.bits())
            .open(KMSG)
            .map_err(|e| format!("opening {KMSG}: {e}"))?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| format!("seeking to the end of {KMSG}: {e}"))?;
        Ok(KernelLog {
            file,
            matcher: OomMatcher::new(group),
            buf: vec![0; RECORD_MAX],
            lost: 0,
        })
    }

    /// Reads every record logged since the last call; returns the group's new victims.
    /// `members` are pids seen in the group.
    pub fn poll(&mut self, members: &[u32]) -> Result<Vec<OomVictimReport>, String> {
        let mut victims = Vec::new();
        loop {
            match self.file.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    if let Some(v) = std::str::from_utf8(&self.buf[..n])
                        .ok()
                        .and_then(|record| self.matcher.record(record, members))
                    {
                        victims.push(v);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The ring buffer wrapped past us: the next read returns the oldest record left.
                Err(e) if e.raw_os_error() == Some(Errno::EPIPE as i32) => self.lost += 1,
                Err(e) => return Err(format!("reading {KMSG}: {e}")),
            }
        }
        Ok(victims)
    }

    /// How many times records were overwritten before they could be read.
    pub fn lost(&self) -> u64 {
        self.lost
    }
}

/// Pairs a group's `oom-kill:` lines with the `Killed process` line that follows.
#[derive(Debug)]
pub struct OomMatcher {
    group: String,
    /// Pids the `oom-kill:` line placed in the group, waiting for their `Killed process` line.
    pending: Vec<u32>,
}

impl OomMatcher {
    pub fn new(group: &str) -> OomMatcher {
        OomMatcher {
            group: group.to_owned(),
            pending: Vec::new(),
        }
    }

    /// One `/dev/kmsg` record (`prio,seq,usec,flags;message` then ` KEY=value` lines); the
    /// victim when it completes a kill in the group, or kills one of its `members`.
    pub fn record(&mut self, record: &str, members: &[u32]) -> Option<OomVictimReport> {
        let (header, rest) = record.split_once(';')?;
        let usec: u64 = header.split(',').nth(2)?.parse().ok()?;
        let message = rest.lines().next()?;
        if let Some(fields) = message.strip_prefix("oom-kill:") {
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            };
            let ours =
                |path: Option<&str>| path.is_some_and(|p| p.split('/').any(|c| c == self.group));
            if (ours(field("task_memcg")) || ours(field("oom_memcg")))
                && let Some(pid) = field("pid").and_then(|p| p.parse().ok())
            {
                self.pending.push(pid);
            }
            return None;
        }
        let killed = parse_killed(message)?;
        match self.pending.iter().position(|&p| p == killed.pid) {
            Some(at) => {
                self.pending.swap_remove(at);
            }
            None if members.contains(&killed.pid) => {}
            None => return None,
        }
        Some(OomVictimReport {
            t_ns: usec.saturating_mul(1000),
            ..killed
        })
    }
}

/// `… Killed process PID (COMM) total-vm:NkB, anon-rss:NkB, file-rss:NkB, shmem-rss:NkB,
/// UID:N pgtables:NkB oom_score_adj:N`. Fields a kernel does not log are 0.
pub fn parse_killed(message: &str) -> Option<OomVictimReport> {
    let (_, after) = message.split_once("Killed process ")?;
    let (pid, after) = after.split_once(" (")?;
    // The name may itself hold ") ": the figures start after the last one.
    let (comm, figures) = after.rsplit_once(") ")?;
    let value = |key: &str| {
        figures.split([' ', ',']).find_map(|w| {
            w.strip_prefix(key)?
                .strip_prefix(':')?
                .trim_end_matches("kB")
                .parse::<i64>()
                .ok()
        })
    };
    let kb =
        |key: &str| value(key).map_or(0, |n| u64::try_from(n).unwrap_or(0).saturating_mul(1024));
    Some(OomVictimReport {
        pid: pid.trim().parse().ok()?,
        comm: comm.to_owned(),
        // The kernel log does not name the parent.
        parent_pid: None,
        total_vm_bytes: kb("total-vm"),
        anon_rss_bytes: kb("anon-rss"),
        file_rss_bytes: kb("file-rss"),
        shmem_rss_bytes: kb("shmem-rss"),
        pgtables_bytes: kb("pgtables"),
        uid: value("UID")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(0),
        oom_score_adj: value("oom_score_adj")
            .and_then(|n| i16::try_from(n).ok())
            .unwrap_or(0),
        t_ns: 0,
        source: SOURCE.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `/dev/kmsg` records from this machine (kernel 6.18): four memory-cgroup OOM kills
    /// in four groups, three `memspike` workers (one as uid 65534) and a `python3`, each with
    /// its whole dump.
    const FIXTURE: &str = include_str!("fixtures/kmsg-oom-6.18.txt");

    fn victims(group: &str) -> Vec<OomVictimReport> {
        let mut m = OomMatcher::new(group);
        FIXTURE.lines().filter_map(|r| m.record(r, &[])).collect()
    }

    #[test]
    fn finds_the_groups_victim_and_only_it() {
        let v = victims("memspike-9759-0-38bce1f1");
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(
            v[0],
            OomVictimReport {
                pid: 9763,
                comm: "memspike".into(),
                parent_pid: None,
                total_vm_bytes: 24_834_588 * 1024,
                anon_rss_bytes: 32_384 * 1024,
                file_rss_bytes: 9_656 * 1024,
                shmem_rss_bytes: 0,
                pgtables_bytes: 156 * 1024,
                uid: 65534,
                oom_score_adj: 0,
                t_ns: 346_000_815_000,
                source: "/dev/kmsg".into(),
            }
        );
        let v = victims("memspike-9966-3-23e3693c");
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].pid, v[0].comm.as_str()), (9974, "python3"));
        assert!(victims("memspike-1-0-00000000").is_empty());
        // A prefix of a group's name is another group.
        assert!(victims("memspike-9759-0-38bce1f").is_empty());
    }

    #[test]
    fn a_killed_line_without_its_oom_kill_line_is_not_ours() {
        let mut m = OomMatcher::new("g");
        let killed = "3,816,346000815,-;Memory cgroup out of memory: Killed process 9763 \
                      (memspike) total-vm:1kB, anon-rss:2kB, file-rss:0kB, shmem-rss:0kB, \
                      UID:0 pgtables:4kB oom_score_adj:0";
        assert_eq!(m.record(killed, &[]), None);
        let oom = "6,815,346000784,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),\
                   cpuset=/,mems_allowed=0,oom_memcg=/a/g,task_memcg=/a/g,task=memspike,\
                   pid=9763,uid=0";
        assert_eq!(m.record(oom, &[]), None);
        let v = m.record(killed, &[]).expect("paired");
        assert_eq!((v.pid, v.anon_rss_bytes), (9763, 2048));
        assert_eq!(m.record(killed, &[]), None, "each kill is reported once");
    }

    /// When the OOM dump was rate-limited away, the `Killed process` line alone names a pid
    /// the group had (real records of this machine: the kernel logged 60 kills in 10 s).
    #[test]
    fn a_killed_line_of_a_known_member_is_ours_without_the_dump() {
        const RATE_LIMITED: &str = "3,9666,2179773378,-;Memory cgroup out of memory: Killed \
            process 1149 (memspike) total-vm:24759200kB, anon-rss:32512kB, file-rss:3904kB, \
            shmem-rss:0kB, UID:0 pgtables:124kB oom_score_adj:0";
        let mut m = OomMatcher::new("memspike-1139-0-3865c4c0");
        assert_eq!(m.record(RATE_LIMITED, &[1150]), None);
        let v = m.record(RATE_LIMITED, &[1149]).expect("a member");
        assert_eq!((v.pid, v.anon_rss_bytes), (1149, 32_512 * 1024));
    }

    #[test]
    fn odd_names_and_missing_fields() {
        let v = parse_killed(
            "Out of memory: Killed process 5 (a) b) total-vm:10kB, UID:7 oom_score_adj:-1000",
        )
        .unwrap();
        assert_eq!(v.comm, "a) b");
        assert_eq!(v.total_vm_bytes, 10 * 1024);
        assert_eq!(v.anon_rss_bytes, 0);
        assert_eq!(v.uid, 7);
        assert_eq!(v.oom_score_adj, -1000);
        assert_eq!(parse_killed("Killed process x (a) total-vm:1kB"), None);
        assert_eq!(parse_killed("nothing here"), None);
    }
}
