//! Real-kernel tests of `memspike::probe` (need root, kernel BTF and the embedded eBPF object):
//! page faults are counted only for the observed cgroup and split by phase, an OOM kill in the
//! group is captured (and a foreign one is not), kernel-side aya-log messages reach the `log`
//! crate, and nothing stays loaded after finish, drop or SIGKILL of the loading process.
//!
//! Outside CI a missing capability prints `SKIPPED …`; under CI=true it fails.

mod common;

use std::io::{self, BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use memspike::cgroup::{Group, Hierarchy, group::Joiner};
use memspike::probe::{self, Probe};
use memspike_common::Phase;

const MIB: u64 = 1 << 20;

/// The tests count the kernel's programs and share tracefs: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Root, BTF and the embedded object; fails under CI=true, skips loudly elsewhere.
fn require_probe(what: &str) -> bool {
    if !common::require_root(what) {
        return false;
    }
    match probe::unavailable_reason() {
        None => true,
        Some(reason) if under_ci() => {
            panic!("{what}: the eBPF probe is unavailable under CI=true: {reason}")
        }
        Some(reason) => {
            eprintln!("SKIPPED {what}: {reason}");
            false
        }
    }
}

/// The group's eBPF cgroup id (v2 id or the v1 host's v2 twin); fails under CI when unknown.
fn target_id(g: &Group, what: &str) -> Option<u64> {
    match g.bpf_cgroup_id() {
        Some(id) => Some(id),
        None if under_ci() => panic!("{what}: no cgroup2 id for the group (no cgroup2 mount)"),
        None => {
            eprintln!("SKIPPED {what}: no cgroup2 id for the group (no cgroup2 mount)");
            None
        }
    }
}

/// A python3 that maps `pages` fresh private anonymous 4 KiB pages without THP and writes one
/// byte per page, then prints `done`.
fn toucher(pages: u64) -> Command {
    let script = format!(
        "import mmap\n\
         n = {pages} * 4096\n\
         m = mmap.mmap(-1, n, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)\n\
         m.madvise(mmap.MADV_NOHUGEPAGE)\n\
         for i in range(0, n, 4096):\n    m[i] = 1\n\
         print('done')\n"
    );
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Starts `cmd` inside the group(s) of `procs_files` (joined between fork and exec).
fn spawn_in(procs_files: &[PathBuf], mut cmd: Command) -> Child {
    let joiner = Joiner::new(procs_files).expect("paths without NUL");
    // SAFETY: Joiner::join_current only makes async-signal-safe calls (open, write, close)
    // on strings prepared before the fork.
    unsafe {
        cmd.pre_exec(move || joiner.join_current().map_err(io::Error::from_raw_os_error));
    }
    cmd.spawn().expect("spawn a child inside the group")
}

/// Waits for `child` and returns its exit status and its page faults (minor + major) from
/// wait4's rusage: every fault of the process, in user and kernel mode, before and after it
/// joined the group.
fn wait_faults(child: Child) -> (i32, u64) {
    let pid = i32::try_from(child.id()).expect("pid fits i32");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our un-reaped child; both pointers are valid for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", io::Error::last_os_error());
    std::mem::forget(child); // already reaped
    let faults = u64::try_from(usage.ru_minflt + usage.ru_majflt).unwrap_or(0);
    (status, faults)
}

/// Names (as the kernel keeps them: 15 bytes at most) of memspike's programs and maps.
const OUR_PROGRAMS: [&str; 5] = [
    "page_fault_user", // page_fault_user_btf and page_fault_user_raw, truncated
    "memcg_reclaim_b",
    "memcg_reclaim_e",
    "oom_mark_victim",
    "page_fault_user",
];
const OUR_MAPS: [&str; 7] = [
    "CURRENT_PHASE",
    "PAGE_FAULTS",
    "RECLAIM_START",
    "RECLAIM_STATS",
    "OOM_EVENTS",
    "AYA_LOGS",
    ".rodata",
];

/// (id, name) of every program loaded in the kernel now.
fn programs() -> Vec<(u32, String)> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| (p.id(), p.name_as_str().unwrap_or("").to_owned()))
        .collect()
}

fn program_ids() -> Vec<u32> {
    programs().into_iter().map(|(id, _)| id).collect()
}

/// (id, name) of every map loaded in the kernel now.
fn maps() -> Vec<(u32, String)> {
    aya::maps::loaded_maps()
        .filter_map(Result::ok)
        .map(|m| (m.id(), m.name_as_str().unwrap_or("").to_owned()))
        .collect()
}

/// Loaded (programs, maps) in the whole kernel, and those named like memspike's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    programs: usize,
    maps: usize,
    our_programs: usize,
    our_maps: usize,
}

fn counts() -> Counts {
    let (p, m) = (programs(), maps());
    Counts {
        programs: p.len(),
        maps: m.len(),
        our_programs: p
            .iter()
            .filter(|(_, n)| OUR_PROGRAMS.contains(&n.as_str()))
            .count(),
        our_maps: m
            .iter()
            .filter(|(_, n)| OUR_MAPS.contains(&n.as_str()))
            .count(),
    }
}

fn tracefs_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.contains(" - tracefs "))
}

/// Waits (up to 3 s) until the loaded programs and maps are back to `before`. Other processes
/// on the machine may load or unload BPF objects meanwhile: the counts of programs and maps
/// named like memspike's must match exactly; a difference in the machine-wide totals with
/// matching memspike counts is only reported.
fn assert_counts_back(before: Counts, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let now = counts();
        if now == before {
            return;
        }
        if Instant::now() >= deadline {
            assert_eq!(
                (now.our_programs, now.our_maps),
                (before.our_programs, before.our_maps),
                "{when}: memspike programs/maps left loaded: now {now:?}, before start {before:?}"
            );
            eprintln!(
                "{when}: machine-wide BPF totals changed by other processes ({before:?} -> \
                 {now:?}); memspike's own are back to where they were"
            );
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn faults_are_counted_only_in_the_group_and_split_by_phase() {
    const WHAT: &str = "probe_root::faults_are_counted_only_in_the_group_and_split_by_phase";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    let g = Group::create(&h, 512 * MIB).expect("create group");
    let Some(target) = target_id(&g, WHAT) else {
        return;
    };
    let mut probe = Probe::start(target).expect("start the probe");

    // Step 1 (spike): 2,000 pages inside while a foreign process touches 50,000 outside.
    const N1: u64 = 2_000;
    const N2: u64 = 5_000;
    const FOREIGN: u64 = 50_000;
    probe.set_phase(Phase::Spike).expect("set phase");
    let foreign = toucher(FOREIGN).spawn().expect("spawn the foreign toucher");
    let inside = spawn_in(&g.procs_files(), toucher(N1));
    let (status, inside1_faults) = wait_faults(inside);
    assert_eq!(status, 0, "in-group toucher failed");
    // Step 2 (remainder): 5,000 pages inside, the foreign one possibly still running.
    probe.set_phase(Phase::Remainder).expect("set phase");
    let inside = spawn_in(&g.procs_files(), toucher(N2));
    let (status, inside2_faults) = wait_faults(inside);
    assert_eq!(status, 0, "in-group toucher failed");
    let (status, foreign_faults) = wait_faults(foreign);
    assert_eq!(status, 0, "foreign toucher failed");
    probe.set_phase(Phase::Done).expect("set phase");

    let ev = probe.finish().expect("finish");
    eprintln!(
        "{ev:#?}\nrusage faults: inside {inside1_faults} + {inside2_faults}, foreign {foreign_faults}"
    );
    let spike = ev.page_faults.per_phase["spike"];
    let remainder = ev.page_faults.per_phase["remainder"];
    assert_eq!(ev.page_faults.per_phase.len(), Phase::COUNT);
    assert_eq!(
        ev.page_faults.total,
        ev.page_faults.per_phase.values().sum::<u64>()
    );
    // Each step counts at least its pages, and at most the child's own faults (user-mode
    // faults after joining are a subset of its rusage count), far from the foreign 50,000.
    assert!(spike >= N1, "spike {spike} < {N1}");
    assert!(
        spike <= inside1_faults,
        "spike {spike} > rusage {inside1_faults}"
    );
    assert!(remainder >= N2, "remainder {remainder} < {N2}");
    assert!(
        remainder <= inside2_faults,
        "remainder {remainder} > rusage {inside2_faults}"
    );
    assert!(foreign_faults >= FOREIGN);
    assert!(
        ev.page_faults.total < N1 + N2 + FOREIGN / 2,
        "the foreign process was counted: {ev:?}"
    );
    assert_eq!(ev.page_faults.per_phase["startup"], 0);
    assert!(ev.oom_victims.is_empty(), "{ev:?}");
}

/// Collects kernel-side aya-log records (target memspike_ebpf) that reach the `log` crate.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target().contains("memspike_ebpf") {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let c: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(c).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        c
    })
}

#[test]
fn oom_kill_in_the_group_is_captured_and_a_foreign_one_is_not() {
    const WHAT: &str = "probe_root::oom_kill_in_the_group_is_captured_and_a_foreign_one_is_not";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let logs = capture();
    let h = Hierarchy::discover().expect("preflight");
    const LIMIT: u64 = 32 * MIB;
    let observed = Group::create(&h, LIMIT).expect("create the observed group");
    let foreign = Group::create(&h, LIMIT).expect("create the foreign group");
    let Some(target) = target_id(&observed, WHAT) else {
        return;
    };
    let tracefs_before = tracefs_mounted();
    let probe = Probe::start(target).expect("start the probe");

    // Writes 64 MiB into a 32 MiB group: the kernel kills it.
    let hog = || {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args(["-c", "b = b'x' * (64 << 20); print(len(b))"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    };
    let mut other = spawn_in(&foreign.procs_files(), hog());
    let other_pid = other.id();
    let status = other.wait().expect("wait the foreign hog");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    let mut victim = spawn_in(&observed.procs_files(), hog());
    let victim_pid = victim.id();
    let status = victim.wait().expect("wait the observed hog");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(observed.counters().oom_kills, Some(1));
    assert_eq!(foreign.counters().oom_kills, Some(1));

    let ev = probe.finish().expect("finish");
    eprintln!("{ev:#?}");
    assert!(
        ev.notes.iter().all(|n| !n.contains("not traced")),
        "oom/mark_victim was not traced: {:?}",
        ev.notes
    );
    assert_eq!(ev.oom_victims.len(), 1, "{ev:#?}");
    let v = &ev.oom_victims[0];
    assert_eq!(v.pid, victim_pid, "foreign pid was {other_pid}: {v:?}");
    assert_ne!(v.pid, other_pid);
    assert_eq!(v.comm, "python3");
    // Anonymous RSS at the kill is most of the limit (the rest: page tables, kernel memory,
    // python's own file pages if it first read them).
    assert!(
        v.anon_rss_bytes > LIMIT * 3 / 4 && v.anon_rss_bytes <= LIMIT,
        "anon_rss {} vs limit {LIMIT}",
        v.anon_rss_bytes
    );
    assert!(v.total_vm_bytes >= v.anon_rss_bytes);
    assert!(v.pgtables_bytes > 0 && v.t_ns > 0, "{v:?}");
    // SAFETY: getuid has no preconditions.
    assert_eq!(v.uid, unsafe { libc::getuid() });
    // The kernel-side debug! reached the log crate (and so tracing, through tracing-log).
    let lines = logs.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("DEBUG") && l.contains(&format!("pid {victim_pid} "))),
        "no aya-log record for the victim: {lines:?}"
    );
    assert_eq!(
        tracefs_mounted(),
        tracefs_before,
        "tracefs left as it was found"
    );
}

#[test]
fn nothing_stays_loaded_after_finish_drop_or_a_failed_start() {
    const WHAT: &str = "probe_root::nothing_stays_loaded_after_finish_drop_or_a_failed_start";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    let g = Group::create(&h, 64 * MIB).expect("create group");
    let Some(target) = target_id(&g, WHAT) else {
        return;
    };
    let tracefs_before = tracefs_mounted();
    let before = counts();

    let probe = Probe::start(target).expect("start");
    let during = counts();
    assert!(
        during.our_programs >= before.our_programs + 4 && during.programs >= before.programs + 4,
        "4 programs attached: {during:?} vs {before:?}"
    );
    let ev = probe.finish().expect("finish");
    assert!(
        ev.notes.iter().all(|n| !n.contains("still loaded")),
        "{ev:?}"
    );
    assert_counts_back(before, "after finish");
    assert_eq!(tracefs_mounted(), tracefs_before);

    let probe = Probe::start(target).expect("start again");
    assert!(counts().our_programs >= before.our_programs + 4);
    drop(probe);
    assert_counts_back(before, "after drop without finish");
    assert_eq!(tracefs_mounted(), tracefs_before);

    let err = Probe::start(0).expect_err("0 observes nothing");
    assert!(err.to_string().contains("target cgroup id is 0"), "{err}");
    assert_counts_back(before, "after a failed start");
}

/// Env var that turns [`helper_hold_a_probe`] into the process that gets SIGKILLed.
const HELPER_ENV: &str = "MEMSPIKE_PROBE_HELPER_TARGET";

/// Not a test by itself: started by `sigkill_of_the_loader_leaves_nothing` in a child process.
#[test]
#[ignore = "helper process for sigkill_of_the_loader_leaves_nothing"]
fn helper_hold_a_probe() {
    let Some(target) = std::env::var(HELPER_ENV)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let probe = Probe::start(target).expect("helper: start");
    println!("probe ready");
    std::thread::sleep(Duration::from_secs(60));
    drop(probe);
}

#[test]
fn sigkill_of_the_loader_leaves_nothing() {
    const WHAT: &str = "probe_root::sigkill_of_the_loader_leaves_nothing";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    let g = Group::create(&h, 64 * MIB).expect("create group");
    let Some(target) = target_id(&g, WHAT) else {
        return;
    };
    let tracefs_before = tracefs_mounted();
    let before_programs = program_ids();
    let before = counts();
    let mut helper = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "helper_hold_a_probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(HELPER_ENV, target.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the helper");
    let stdout = helper.stdout.take().expect("piped");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest may print "test helper_hold_a_probe ... " on the same line first.
        .any(|l| l.contains("probe ready"));
    assert!(ready, "the helper did not start its probe");
    let new: Vec<u32> = program_ids()
        .into_iter()
        .filter(|id| !before_programs.contains(id))
        .collect();
    assert!(new.len() >= 4, "the helper's programs are loaded: {new:?}");
    helper.kill().expect("SIGKILL the helper");
    let status = helper.wait().expect("reap the helper");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    let deadline = Instant::now() + Duration::from_secs(3);
    while program_ids().iter().any(|id| new.contains(id)) {
        assert!(
            Instant::now() < deadline,
            "programs {new:?} outlived SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_counts_back(before, "after SIGKILL of the loader");
    // A tracefs the killed helper mounted stays mounted (it had no chance to unmount it): it is
    // not a BPF leftover, but put the machine back as it was.
    if !tracefs_before && tracefs_mounted() {
        let dir = std::ffi::CString::new(probe::TRACEFS_DIR).expect("no NUL");
        // SAFETY: a valid NUL-terminated path alive for the call.
        let rc = unsafe { libc::umount2(dir.as_ptr(), 0) };
        assert_eq!(
            rc,
            0,
            "umount {}: {}",
            probe::TRACEFS_DIR,
            io::Error::last_os_error()
        );
    }
}
