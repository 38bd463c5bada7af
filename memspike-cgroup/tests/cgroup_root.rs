//! Real-kernel tests of `memspike-cgroup` (need root): create a limited, swap-capped group,
//! run real processes in it, remove it, clean up leftovers, and fail cleanly.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use memspike_cgroup::{CgroupError, Group, Hierarchy, Version, group::Joiner, remove_stale};
use nix::sys::signal::Signal;

const MIB: u64 = 1 << 20;

/// The tests look at the set of groups under own_dir(): run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns `program` so that it joins every file in `procs_files` between fork and exec, the
/// way the supervisor starts its worker.
fn spawn_in(procs_files: &[PathBuf], program: &str, args: &[&str]) -> Child {
    let joiner = Joiner::new(procs_files).expect("paths without NUL");
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null());
    // SAFETY: Joiner::join_current only makes async-signal-safe calls (open, write, close)
    // on strings prepared before the fork.
    unsafe {
        cmd.pre_exec(move || joiner.join_current().map_err(io::Error::from_raw_os_error));
    }
    cmd.spawn().expect("spawn a child inside the group")
}

/// Names of our own groups (memspike-<this pid>-*) under `dir`.
fn our_groups(dir: &Path) -> Vec<String> {
    let prefix = format!("memspike-{}-", std::process::id());
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn read_u64(path: &Path) -> u64 {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {text:?}: {e}", path.display()))
}

fn dead_pid() -> u32 {
    let mut child = Command::new("/bin/true").spawn().expect("spawn /bin/true");
    let pid = child.id();
    child.wait().expect("wait /bin/true");
    pid
}

#[test]
fn group_limits_membership_and_removal() {
    if !memspike_testkit::require_root("cgroup_root::group_limits_membership_and_removal") {
        return;
    }
    let _serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    let mut g = Group::create(&h, 32 * MIB).expect("create group");
    assert_eq!(g.dir(), h.own_dir().join(g.name()));
    assert!(g.dir().is_dir());

    // Limit and swap cap read back.
    let c = g.counters();
    assert_eq!(c.limit_bytes, Some(32 * MIB), "{c:?}");
    match h.version() {
        Version::V1 => {
            assert_eq!(
                read_u64(&g.dir().join("memory.memsw.limit_in_bytes")),
                32 * MIB
            );
            assert_eq!(c.oom_events, None);
        }
        Version::V2 => assert_eq!(read_u64(&g.dir().join("memory.swap.max")), 0),
    }
    assert_eq!(c.usage_bytes, Some(0), "a fresh group is empty: {c:?}");
    assert_eq!(c.oom_kills, Some(0), "{c:?}");

    // The v2 twin (v1 hosts with a cgroup2 mount) or the group itself gives the eBPF id.
    let v2_dir = match h.version() {
        Version::V2 => Some(g.dir().to_path_buf()),
        Version::V1 => h.v2_twin_parent().map(|p| p.join(g.name())),
    };
    if let Some(v2_dir) = &v2_dir {
        assert!(v2_dir.is_dir(), "{}", v2_dir.display());
        assert_eq!(g.bpf_cgroup_id(), Some(fs::metadata(v2_dir).unwrap().ino()));
        assert_ne!(g.bpf_cgroup_id(), Some(1), "not the v2 root");
    }

    // A real child joins before exec.
    let mut child = spawn_in(&g.procs_files(), "/bin/sleep", &["30"]);
    let pid = child.id();
    assert!(
        g.members().contains(&pid),
        "members {:?} lack {pid}",
        g.members()
    );
    let memberships = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.cgroups())
        .expect("the child's /proc/PID/cgroup");
    let v2_membership = memberships.0.iter().find(|m| m.hierarchy == 0);
    let memory = memberships
        .0
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == "memory"))
        .or(v2_membership.filter(|_| h.version() == Version::V2))
        .expect("a memory membership");
    assert!(memory.pathname.ends_with(g.name()), "{memory:?}");
    if v2_dir.is_some() {
        let v2 = v2_membership.expect("a v2 membership");
        assert!(v2.pathname.ends_with(g.name()), "{v2:?}");
    }
    assert!(
        g.usage_bytes().is_some_and(|u| u > 0),
        "the child is charged"
    );

    // remove() kills the child and removes the directories; the child is not reaped yet.
    g.remove().expect("remove");
    assert!(!g.dir().exists());
    if let Some(v2_dir) = &v2_dir {
        assert!(!v2_dir.exists());
    }
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    g.remove().expect("remove is idempotent");
    assert!(our_groups(&h.own_dir()).is_empty());
}

#[test]
fn oom_kill_is_counted() {
    if !memspike_testkit::require_root("cgroup_root::oom_kill_is_counted") {
        return;
    }
    let _serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    let g = Group::create(&h, 32 * MIB).expect("create group");
    // dd reads 64 MiB of zeros into one buffer: it writes every page of it, in a 32 MiB group.
    let mut child = spawn_in(
        &g.procs_files(),
        "dd",
        &["if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    let c = g.counters();
    assert_eq!(c.oom_kills, Some(1), "{c:?}");
    assert!(c.peak_bytes.is_some_and(|p| p >= 30 * MIB), "{c:?}");
    assert!(
        c.anon_bytes.is_some() && c.page_cache_bytes.is_some(),
        "{c:?}"
    );
    assert_eq!(c.swap_bytes, Some(0), "{c:?}");
    if h.version() == Version::V2 {
        assert!(c.oom_events.is_some_and(|o| o >= 1), "{c:?}");
    }
    drop(g); // Drop removes it
    assert!(our_groups(&h.own_dir()).is_empty());
}

#[test]
fn remove_stale_removes_dead_pid_leftovers() {
    if !memspike_testkit::require_root("cgroup_root::remove_stale_removes_dead_pid_leftovers") {
        return;
    }
    let _serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    let name = format!("memspike-{}-leftover", dead_pid());
    let mut dirs = vec![h.own_dir().join(&name)];
    if let Some(p) = h.v2_twin_parent() {
        dirs.push(p.join(&name));
    }
    for d in &dirs {
        fs::create_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }
    // A process left running inside the leftover, as after a supervisor crash.
    let files: Vec<PathBuf> = dirs.iter().map(|d| d.join("cgroup.procs")).collect();
    let mut orphan = spawn_in(&files, "/bin/sleep", &["30"]);
    let live = Group::create(&h, 32 * MIB).expect("create a live group");

    let removed = remove_stale(&h);
    for d in &dirs {
        assert!(removed.contains(d), "{removed:?} lacks {}", d.display());
        assert!(!d.exists());
    }
    assert!(live.dir().is_dir(), "a group of a live pid is kept");
    assert!(!removed.iter().any(|r| r.ends_with(live.name())));
    assert_eq!(
        orphan.wait().unwrap().signal(),
        Some(Signal::SIGKILL as i32)
    );
}

#[test]
fn impossible_limit_is_a_readable_error_and_leaves_nothing() {
    if !memspike_testkit::require_root(
        "cgroup_root::impossible_limit_is_a_readable_error_and_leaves_nothing",
    ) {
        return;
    }
    let _serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    for limit in [0, 1000, u64::MAX] {
        let err = Group::create(&h, limit).expect_err("impossible limit accepted");
        assert!(matches!(err, CgroupError::InvalidLimit { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&limit.to_string()) && msg.contains("limit"),
            "{msg}"
        );
        eprintln!("limit {limit}: {msg}");
        assert!(our_groups(&h.own_dir()).is_empty());
    }
}

#[test]
fn failure_after_mkdir_removes_the_memory_group() {
    if !memspike_testkit::require_root("cgroup_root::failure_after_mkdir_removes_the_memory_group")
    {
        return;
    }
    let _serial = serial();
    let real = Hierarchy::discover().expect("preflight");
    let Some(v2_parent) = real.v2_twin_parent() else {
        memspike_testkit::skip(
            "cgroup_root::failure_after_mkdir_removes_the_memory_group",
            "no cgroup2 mount next to the v1 memory hierarchy",
        );
        return;
    };
    // A hierarchy whose v2 twin parent disappears between discovery and creation.
    let scratch = v2_parent.join(format!("memspike_test_parent_{}", std::process::id()));
    fs::create_dir(&scratch).unwrap();
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2_mount_rel = scratch
        .strip_prefix("/sys/fs/cgroup/unified")
        .expect("v2 at unified");
    let proc_cgroup: String = fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("0::") {
                format!("0::/{}\n", v2_mount_rel.display())
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let h = Hierarchy::from_parts(&mountinfo, &proc_cgroup, Path::new("/")).expect("preflight");
    assert_eq!(h.v2_twin_parent(), Some(scratch.as_path()));
    fs::remove_dir(&scratch).unwrap();

    let err = Group::create(&h, 32 * MIB).expect_err("twin parent is gone");
    assert!(matches!(err, CgroupError::Create { .. }), "{err:?}");
    assert!(err.to_string().contains("memspike_test_parent_"), "{err}");
    assert!(
        our_groups(&h.own_dir()).is_empty(),
        "{:?}",
        our_groups(&h.own_dir())
    );
}
