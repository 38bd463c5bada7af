//! Leftovers: groups named `memspike-<pid>-*` (memory groups, their v2 twins and v2 supervisor
//! leaves) whose creator `<pid>` is no longer alive are killed and removed at every start. A
//! group whose pid was reused by an unrelated live process is kept (and found on a later run).
//!
//! A pid means something only in its PID namespace, so a name ends with its creator's
//! (`-n<inode of /proc/self/ns/pid, hex>`, `tag`) and only groups made in this process's own
//! namespace are judged: a memspike in a container cannot take the host's live groups for dead
//! ones, nor the host a container's. Names without the tag (older runs) count as this
//! namespace's.

use std::fs;
use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::group::{REAL, empty_and_rmdir};
use super::{Hierarchy, NAME_PREFIX, Version};

/// Removes groups named `memspike-<pid>-*` under `own_dir()` (and the v2 twin parent) whose
/// `<pid>` is not a live process of this PID namespace; returns what was removed. Failures are
/// logged, not returned.
pub fn remove_stale(h: &Hierarchy) -> Vec<PathBuf> {
    let mut parents = vec![(h.own_dir(), h.version())];
    if let Some(p) = h.v2_twin_parent() {
        parents.push((p.to_path_buf(), Version::V2));
    }
    let mut removed = Vec::new();
    for (parent, version) in parents {
        let entries = match fs::read_dir(&parent) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dir = %parent.display(), error = %e, "cannot list cgroups");
                continue;
            }
        };
        let here = pid_namespace();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            let Some(pid) = creator_pid(name) else {
                continue;
            };
            if namespace_of(name).is_some_and(|ns| Some(ns) != here) {
                continue;
            }
            if !entry.file_type().is_ok_and(|t| t.is_dir()) || pid_alive(pid) {
                continue;
            }
            let dir = entry.path();
            match empty_and_rmdir(&dir, version, &REAL) {
                Ok(()) => {
                    tracing::debug!(dir = %dir.display(), pid, "removed a stale cgroup");
                    removed.push(dir);
                }
                Err(e) => tracing::warn!(error = %e, "cannot remove a stale cgroup"),
            }
        }
    }
    removed
}

/// This process's PID namespace: the inode of `/proc/self/ns/pid`.
pub(crate) fn pid_namespace() -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

/// The end of a group's name that says whose PID namespace its pid is in: `-n<hex>`, or nothing
/// when the namespace cannot be read.
pub(crate) fn tag() -> String {
    pid_namespace().map_or_else(String::new, |ns| format!("-n{ns:x}"))
}

/// The creator's PID namespace in a name that ends with [`tag`]'s `-n<hex>`.
fn namespace_of(name: &str) -> Option<u64> {
    let (_, last) = name.rsplit_once('-')?;
    u64::from_str_radix(last.strip_prefix('n')?, 16).ok()
}

/// The creator's pid in `memspike-<pid>-<suffix>`.
pub(crate) fn creator_pid(name: &str) -> Option<u32> {
    let (pid, suffix) = name.strip_prefix(NAME_PREFIX)?.split_once('-')?;
    if suffix.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // No signal: it only checks that the process exists (EPERM: it does, as someone else's).
    matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:13 - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:19 - cgroup2 cgroup2 rw
";

    /// A pid that belonged to a process that has exited and been reaped.
    pub(crate) fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    }

    /// A group made in another PID namespace names a pid of that namespace: dead here says
    /// nothing, so it is left alone (before names carried the namespace, a memspike in a
    /// container removed the host's live groups, and the host a container's).
    #[test]
    fn groups_of_another_pid_namespace_are_not_judged() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let own = root.join("sys/fs/cgroup/memory/grp");
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("memory.memsw.limit_in_bytes"), "1\n").unwrap();
        let h = Hierarchy::from_parts(MOUNTINFO, "4:memory:/grp\n0::/grp\n", root).unwrap();
        let dead = dead_pid();
        let ours = format!("memspike-{dead}-0-1{}", tag());
        let theirs = format!("memspike-{dead}-0-1-n{:x}", pid_namespace().unwrap() + 1);
        for name in [&ours, &theirs] {
            fs::create_dir(own.join(name)).unwrap();
        }
        assert_eq!(remove_stale(&h), vec![own.join(&ours)]);
        assert!(own.join(&theirs).is_dir());
        assert_eq!(namespace_of(&theirs), Some(pid_namespace().unwrap() + 1));
        assert_eq!(namespace_of("memspike-12-0-abc"), None);
        assert_eq!(creator_pid(&ours), Some(dead));
    }

    #[test]
    fn names() {
        assert_eq!(creator_pid("memspike-123-0-abc"), Some(123));
        assert_eq!(creator_pid("memspike-123-supervisor"), Some(123));
        assert_eq!(creator_pid("memspike-123"), None);
        assert_eq!(creator_pid("memspike-12a-x"), None);
        assert_eq!(creator_pid("memspike-0-x"), None);
        assert_eq!(creator_pid("other-123-x"), None);
        assert_eq!(creator_pid("memspike--x"), None);
    }

    #[test]
    fn dead_pid_groups_are_removed_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let own = root.join("sys/fs/cgroup/memory/grp");
        let twin_parent = root.join("sys/fs/cgroup/unified/grp");
        fs::create_dir_all(&own).unwrap();
        fs::create_dir_all(&twin_parent).unwrap();
        fs::write(own.join("memory.memsw.limit_in_bytes"), "1\n").unwrap();
        let h = Hierarchy::from_parts(MOUNTINFO, "4:memory:/grp\n0::/grp\n", root).unwrap();

        let dead = format!("memspike-{}-0-1", dead_pid());
        let live = format!("memspike-{}-0-1", std::process::id());
        let other = "someone-else".to_owned();
        for parent in [&own, &twin_parent] {
            for name in [&dead, &live, &other] {
                fs::create_dir(parent.join(name)).unwrap();
            }
        }
        let mut removed = remove_stale(&h);
        removed.sort();
        let mut want = vec![own.join(&dead), twin_parent.join(&dead)];
        want.sort();
        assert_eq!(removed, want);
        for parent in [&own, &twin_parent] {
            assert!(!parent.join(&dead).exists());
            assert!(parent.join(&live).is_dir());
            assert!(parent.join(&other).is_dir());
        }
        assert!(remove_stale(&h).is_empty());
    }

    #[test]
    fn v2_supervisor_leaf_of_a_killed_run_is_removed() {
        let t = tempfile::tempdir().unwrap();
        let cg = t.path().join("sys/fs/cgroup");
        let own = cg.join("system.slice/run-u9.scope");
        fs::create_dir_all(&own).unwrap();
        fs::write(cg.join("cgroup.controllers"), "memory\n").unwrap();
        let mi = "26 22 0:24 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let h = Hierarchy::from_parts(mi, "0::/system.slice/run-u9.scope\n", t.path());
        // The scope has no cgroup.type, so discovery treats it as the root: no checks.
        let h = h.unwrap();
        let dead = own.join(format!("memspike-{}-supervisor", dead_pid()));
        let live = own.join(format!("memspike-{}-supervisor", std::process::id()));
        fs::create_dir(&dead).unwrap();
        fs::create_dir(&live).unwrap();
        assert_eq!(remove_stale(&h), vec![dead.clone()]);
        assert!(!dead.exists());
        assert!(live.is_dir());
    }
}
