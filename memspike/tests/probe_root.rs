//! Real-kernel tests of `memspike-probe` (need root, the embedded eBPF object, and a cgroup2
//! mount for the filter): page faults are counted only for the observed cgroup and split by
//! step slot, a slot beyond the counters landing in the shared `OTHER` one; an OOM kill in the group is captured by eBPF and by the kernel-log reader (and a
//! foreign one is not); kernel-side aya-log messages reach the `log` crate; each figure
//! degrades on its own (hidden BTF, a failing program, no eBPF at all), end to end through
//! the `memspike` binary; one load serves groups in turn, each counting only its own;
//! nothing stays loaded after finish, drop, a failed start or SIGKILL;
//! and tracefs is never mounted where other processes see it.
//!
//! Programs are counted by the ids the probe recorded or the process holds open
//! (/proc/PID/fdinfo), never machine-wide: other BPF users may load theirs meanwhile.
//! Outside CI a missing capability prints `SKIPPED …`; under CI=true it fails.

mod common;

use common::{u, wait_for_pause};

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};

use memspike_cgroup::{Group, Hierarchy, group::Joiner};
use memspike_common::{
    Counter,
    steps::{OTHER, SLOTS, STARTUP},
};
use memspike_probe::{
    self as probe,
    ebpf::{EbpfProbe, features::Switches, hooks::Figure},
    kmsg::KernelLog,
};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::signal::Signal;
use serde_json::Value;

const MIB: u64 = 1 << 20;

/// The tests share tracefs, the kernel log and the CPU-heavy runs: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Root and the embedded object; fails under CI=true, skips loudly elsewhere.
fn require_probe(what: &str) -> bool {
    if !common::require_root(what) {
        return false;
    }
    match probe::unavailable_reason() {
        None => true,
        Some(reason) => {
            common::skip(what, &format!("the eBPF probe is unavailable: {reason}"));
            false
        }
    }
}

/// The group's eBPF cgroup id (v2 id or the v1 host's v2 twin); fails under CI when unknown.
fn target_id(g: &Group, what: &str) -> Option<u64> {
    let id = g.bpf_cgroup_id();
    if id.is_none() {
        common::skip(what, "no cgroup2 id for the group (no cgroup2 mount)");
    }
    id
}

/// For a test of one group: the probe's requirements met (see [`require_probe`]), the tests'
/// lock held, a fresh group limited to `limit`, and its eBPF id.
fn probed_group(what: &str, limit: u64) -> Option<(MutexGuard<'static, ()>, Group, u64)> {
    if !require_probe(what) {
        return None;
    }
    let serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    let g = Group::create(&h, limit).expect("create group");
    let target = target_id(&g, what)?;
    Some((serial, g, target))
}

/// The probe loaded with `switches` and pointed at `target`.
fn start_with(target: u64, switches: &Switches) -> EbpfProbe {
    let mut probe = EbpfProbe::load_with(None, switches)
        .unwrap_or_else(|u| panic!("load the probe: {} ({:?})", u.error, u.notes));
    probe.observe(target).expect("point the probe at the group");
    probe
}

fn start(target: u64) -> EbpfProbe {
    start_with(target, &Switches::default())
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
    // libc, not nix: nix has no wait4 (the child's own rusage).
    // SAFETY: an all-zero rusage is a valid value to be overwritten.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our un-reaped child; both pointers are valid for the call.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4: {}", io::Error::last_os_error());
    std::mem::forget(child); // already reaped
    let faults = u64::try_from(usage.ru_minflt + usage.ru_majflt).unwrap_or(0);
    (status, faults)
}

/// A python3 that writes 64 MiB: in a 32 MiB group the kernel kills it.
fn hog() -> Command {
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.args(["-c", "b = b'x' * (64 << 20); print(len(b))"])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

fn tracefs_mounted() -> bool {
    procfs::process::Process::myself()
        .and_then(|me| me.mountinfo())
        .is_ok_and(|mounts| mounts.iter().any(|m| m.fs_type == "tracefs"))
}

#[test]
fn faults_are_counted_only_in_the_group_and_split_by_step() {
    const WHAT: &str = "probe_root::faults_are_counted_only_in_the_group_and_split_by_step";
    let Some((_serial, g, target)) = probed_group(WHAT, 512 * MIB) else {
        return;
    };
    let mut probe = start(target);
    // Raw tracepoints only by default: no BTF parse of memspike's own, and no perf event,
    // whose closing makes the kernel wait for RCU grace periods (~70 ms each at exit).
    assert_eq!(
        Figure::ALL.map(|f| probe.source(f)),
        [
            Some("ebpf raw_tp/page_fault_user"),
            Some("ebpf raw_tp/mm_vmscan_memcg_reclaim_begin|end"),
            Some("ebpf raw_tp/mark_victim"),
            Some("ebpf raw_tp/page_fault_kernel"),
        ],
        "{probe:?}"
    );

    // Slot 1: 2,000 pages inside while a foreign process touches 50,000 outside.
    const N1: u64 = 2_000;
    const N2: u64 = 5_000;
    const N3: u64 = 1_500;
    const FOREIGN: u64 = 50_000;
    probe.set_step(1).expect("set step");
    let foreign = toucher(FOREIGN).spawn().expect("spawn the foreign toucher");
    let inside = spawn_in(&g.procs_files(), toucher(N1));
    let (status, inside1_faults) = wait_faults(inside);
    assert_eq!(status, 0, "in-group toucher failed");
    // Slot 2: 5,000 pages inside, the foreign one possibly still running.
    probe.set_step(2).expect("set step");
    let inside = spawn_in(&g.procs_files(), toucher(N2));
    let (status, inside2_faults) = wait_faults(inside);
    assert_eq!(status, 0, "in-group toucher failed");
    let (status, foreign_faults) = wait_faults(foreign);
    assert_eq!(status, 0, "foreign toucher failed");
    // A slot far beyond the counters, written to the map as it is: the program counts it
    // under OTHER rather than dropping it.
    probe.set_step(1_000).expect("set step");
    let inside = spawn_in(&g.procs_files(), toucher(N3));
    let (status, inside3_faults) = wait_faults(inside);
    assert_eq!(status, 0, "in-group toucher failed");
    probe.set_step(3).expect("set step");

    let (counts, note) = probe.finish();
    let counts = counts.expect("finish");
    assert_eq!(note, None);
    eprintln!(
        "{counts:?}\nrusage faults: inside {inside1_faults} + {inside2_faults} + {inside3_faults}, \
         foreign {foreign_faults}"
    );
    let spike = counts.faults[1];
    let remainder = counts.faults[2];
    let other = counts.faults[OTHER as usize];
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
    assert!(other >= N3, "other {other} < {N3}");
    assert!(
        other <= inside3_faults,
        "other {other} > rusage {inside3_faults}"
    );
    assert!(foreign_faults >= FOREIGN);
    assert!(
        counts.faults.iter().sum::<u64>() < N1 + N2 + N3 + FOREIGN / 2,
        "the foreign process was counted: {counts:?}"
    );
    assert_eq!(counts.faults[STARTUP as usize], 0);
    assert_eq!(
        counts.faults[3..SLOTS - 1],
        [0; SLOTS - 4],
        "no fault in another slot"
    );
    assert!(counts.victims.is_empty(), "{counts:?}");
}

/// `read(2)` into fresh memory faults in kernel mode: `dd` reading 64 MiB of /dev/zero into a
/// buffer it never touches itself takes its page faults inside the system call. The plain
/// counter `kernel_page_faults` counts them, the user-mode counter does not.
#[test]
fn faults_inside_system_calls_are_counted_in_kernel_mode() {
    const WHAT: &str = "probe_root::faults_inside_system_calls_are_counted_in_kernel_mode";
    let Some((_serial, g, target)) = probed_group(WHAT, 512 * MIB) else {
        return;
    };
    let mut probe = start(target);
    probe.set_step(1).expect("set step");
    let mut dd = Command::new("dd");
    dd.args(["if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let (status, rusage_faults) = wait_faults(spawn_in(&g.procs_files(), dd));
    assert_eq!(status, 0, "dd failed");
    let (counts, _) = probe.finish();
    let counts = counts.expect("finish");
    let kernel = counts.counters[Counter::KernelPageFaults.slot() as usize];
    let user: u64 = counts.faults.iter().sum();
    eprintln!("kernel-mode {kernel}, user-mode {user}, rusage {rusage_faults}");
    let pages = (64 * MIB) / 4096;
    assert!(
        kernel >= pages * 9 / 10,
        "kernel-mode {kernel} < 90 % of {pages}"
    );
    assert!(
        kernel <= rusage_faults,
        "kernel-mode {kernel} > rusage {rusage_faults}"
    );
    assert!(
        user < pages / 10,
        "the buffer's faults are not user-mode: {user}"
    );
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
    let mut probe = start(target);
    // The classic tracepoint (the fallback) watches the same kills from the kernel's own record.
    let mut classic = start_with(target, &Switches::parse(None, Some("oom_victim/raw_tp")));
    assert_eq!(
        classic.source(Figure::OomVictim),
        Some("ebpf tracepoint/oom/mark_victim")
    );
    // The kernel-log reader watches the same kills, without eBPF.
    let mut kmsg = KernelLog::open(observed.name()).expect("open /dev/kmsg");

    let mut other = spawn_in(&foreign.procs_files(), hog());
    let other_pid = other.id();
    let status = other.wait().expect("wait the foreign hog");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    let mut victim = spawn_in(&observed.procs_files(), hog());
    let victim_pid = victim.id();
    let status = victim.wait().expect("wait the observed hog");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    assert_eq!(observed.counters().oom_kills, Some(1));
    assert_eq!(foreign.counters().oom_kills, Some(1));

    assert!(
        probe.notes().iter().all(|n| !n.contains("oom_victim")),
        "oom/mark_victim was not traced: {:?}",
        probe.notes()
    );
    let counts = probe.collect().expect("collect");
    assert_eq!(counts.victims.len(), 1, "{counts:#?}");
    // The victim is named as a member: the OOM dump that names the group is rate-limited
    // when the machine has had 10 kills in 5 s (other tests), the `Killed process` line never.
    let logged = kmsg.poll(&[victim_pid]).expect("read /dev/kmsg");
    eprintln!("{counts:#?}\n{logged:#?}");
    assert_eq!(logged.len(), 1, "{logged:#?}");
    for v in [&counts.victims[0], &logged[0]] {
        assert_eq!(v.pid, victim_pid, "foreign pid was {other_pid}: {v:?}");
        assert_eq!(v.comm, "python3");
        // Anonymous RSS at the kill is most of the limit (the rest: page tables, kernel
        // memory, python's own file pages if it first read them).
        assert!(
            v.anon_rss_bytes > LIMIT * 3 / 4 && v.anon_rss_bytes <= LIMIT,
            "anon_rss {} vs limit {LIMIT}",
            v.anon_rss_bytes
        );
        assert!(v.total_vm_bytes >= v.anon_rss_bytes);
        assert!(v.pgtables_bytes > 0 && v.t_ns > 0, "{v:?}");
        assert_eq!(v.uid, nix::unistd::getuid().as_raw());
    }
    // The raw program, reading the kernel's structures at offsets from its BTF, saw what the
    // kernel itself put in the classic tracepoint's record.
    let classic_victims = classic
        .collect()
        .expect("collect the classic probe")
        .victims;
    assert_eq!(classic_victims.len(), 1, "{classic_victims:#?}");
    // Each probe names the way that saw the victim.
    assert_eq!(classic_victims[0].source, "ebpf tracepoint/oom/mark_victim");
    let same = |v: &memspike_probe::OomVictimReport| memspike_probe::OomVictimReport {
        t_ns: 0,
        source: String::new(),
        parent_pid: None,
        ..v.clone()
    };
    assert_eq!(same(&counts.victims[0]), same(&classic_victims[0]));
    // Only the raw program reads the parent (the record has none): this test process spawned
    // the victim.
    assert_eq!(counts.victims[0].parent_pid, Some(std::process::id()));
    assert_eq!(classic_victims[0].parent_pid, None);
    assert_eq!(
        logged[0].parent_pid, None,
        "the kernel log does not name it"
    );
    // The two sources agree on the figures the kernel logs in kB.
    let (e, k) = (&counts.victims[0], &logged[0]);
    assert_eq!(
        (e.anon_rss_bytes, e.file_rss_bytes, e.pgtables_bytes),
        (k.anon_rss_bytes, k.file_rss_bytes, k.pgtables_bytes)
    );
    assert_eq!(
        (e.source.as_str(), k.source.as_str()),
        ("ebpf raw_tp/mark_victim", "/dev/kmsg")
    );
    // The kernel-side debug! reached the log crate (and so tracing, through tracing-log).
    let lines = logs.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("DEBUG") && l.contains(&format!("pid {victim_pid} "))),
        "no aya-log record for the victim: {lines:?}"
    );
    drop((probe, classic));
    assert_eq!(
        tracefs_mounted(),
        tracefs_before,
        "tracefs left as it was found"
    );
}

#[test]
fn nothing_stays_loaded_after_finish_drop_or_a_failed_start() {
    const WHAT: &str = "probe_root::nothing_stays_loaded_after_finish_drop_or_a_failed_start";
    let Some((_serial, _group, target)) = probed_group(WHAT, 64 * MIB) else {
        return;
    };
    let tracefs_before = tracefs_mounted();
    let me = std::process::id();
    let held_before = common::programs_of(me);

    let probe = start(target);
    let ids: BTreeSet<u32> = probe.ids().programs.into_iter().collect();
    assert_eq!(
        ids.len(),
        5,
        "page faults, reclaim begin/end, OOM, kernel-mode faults: {probe:?}"
    );
    assert_eq!(common::still_loaded(&ids).len(), ids.len());
    assert!(common::programs_of(me).is_superset(&ids));
    let (counts, note) = probe.finish();
    counts.expect("finish");
    assert_eq!(note, None, "finish waits until the kernel unloaded them");
    assert_eq!(common::still_loaded(&ids), Vec::<u32>::new());
    assert_eq!(tracefs_mounted(), tracefs_before);

    // Dropping unloads without waiting: the kernel frees the programs shortly after.
    let probe = start(target);
    let ids: BTreeSet<u32> = probe.ids().programs.into_iter().collect();
    drop(probe);
    common::assert_unloaded(&ids, "after drop");
    assert_eq!(tracefs_mounted(), tracefs_before);

    // Every figure's programs fail: the start fails, says why per figure, and the programs it
    // loaded on the way are gone.
    let every_figure = Figure::ALL.map(Figure::name).join(",");
    let all_fail = Switches::parse(None, Some(&every_figure));
    let err = EbpfProbe::load_with(None, &all_fail).expect_err("nothing attaches");
    assert!(
        err.error
            .to_string()
            .starts_with("no eBPF program could be attached"),
        "{}",
        err.error
    );
    for figure in Figure::ALL {
        assert!(
            err.notes.iter().any(|n| n
                .starts_with(&format!("{}: no eBPF program attached", figure.name()))
                && n.contains("forced by MEMSPIKE_PROBE_FAIL")),
            "{figure:?}: {:?}",
            err.notes
        );
    }
    assert_eq!(
        common::programs_of(me),
        held_before,
        "the failed start holds nothing"
    );
    assert_eq!(tracefs_mounted(), tracefs_before);

    let mut probe = start(target);
    let err = probe.observe(0).expect_err("0 is no group");
    assert!(err.to_string().contains("target cgroup id is 0"), "{err}");
}

/// One load serves groups in turn, as `compare` uses it: the second group's faults and victims
/// are its own, although the first group's observer was dropped without collecting (its
/// counters and its OOM event still in the maps), and the first group's tasks are no longer
/// counted once the second is observed.
#[test]
fn two_groups_in_turn_with_one_load_count_only_their_own() {
    const WHAT: &str = "probe_root::two_groups_in_turn_with_one_load_count_only_their_own";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let h = Hierarchy::discover().expect("preflight");
    const LIMIT: u64 = 32 * MIB;
    let first = Group::create(&h, LIMIT).expect("create the first group");
    let second = Group::create(&h, LIMIT).expect("create the second group");
    if target_id(&first, WHAT).is_none() {
        return;
    }
    let slots = || {
        probe::SlotNames::new(
            ["startup", "one", "two", "three"]
                .map(str::to_owned)
                .to_vec(),
        )
        .expect("slot names")
    };
    let mut kernel = probe::Kernel::start(true);

    // The first group: faults in slot 1 (16 MiB, within the limit) and an OOM kill, never
    // collected.
    const N1: u64 = 4_000;
    let mut first_observer = kernel.observe(probe::Target::of(&first), slots());
    assert!(first_observer.tracing_label().is_ebpf());
    let programs = common::programs_of(std::process::id());
    assert_eq!(
        programs.len(),
        5,
        "page faults, reclaim begin/end, OOM, kernel-mode faults: {programs:?}"
    );
    first_observer.set_step(1);
    let (status, _) = wait_faults(spawn_in(&first.procs_files(), toucher(N1)));
    assert_eq!(status, 0, "first toucher failed");
    let mut first_hog = spawn_in(&first.procs_files(), hog());
    let first_hog_pid = first_hog.id();
    let status = first_hog.wait().expect("wait the first hog");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    drop(first_observer);

    // The second group, with the same programs (no new load): faults in slot 2 while the
    // first group's tasks fault too, then an OOM kill in slot 3.
    const N2: u64 = 1_000;
    let mut second_observer = kernel.observe(probe::Target::of(&second), slots());
    assert!(second_observer.tracing_label().is_ebpf());
    assert_eq!(
        common::programs_of(std::process::id()),
        programs,
        "the same programs, loaded once"
    );
    second_observer.set_step(2);
    let foreign = spawn_in(&first.procs_files(), toucher(N1));
    let (status, second_faults) = wait_faults(spawn_in(&second.procs_files(), toucher(N2)));
    assert_eq!(status, 0, "second toucher failed");
    let (status, _) = wait_faults(foreign);
    assert_eq!(status, 0, "the first group's second toucher failed");
    second_observer.set_step(3);
    let mut second_hog = spawn_in(&second.procs_files(), hog());
    let second_hog_pid = second_hog.id();
    let status = second_hog.wait().expect("wait the second hog");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32), "{status:?}");
    let ev = second_observer.finish();
    eprintln!("{ev:#?}");

    let faults = ev.page_faults.expect("page faults");
    assert_eq!(faults.source, "ebpf raw_tp/page_fault_user");
    assert_eq!(faults.per_phase["startup"], 0, "{faults:?}");
    assert_eq!(
        faults.per_phase["one"], 0,
        "the first group's slot: {faults:?}"
    );
    let two = faults.per_phase["two"];
    assert!(
        (N2..=second_faults).contains(&two),
        "slot two: {two} faults for {N2} pages (rusage {second_faults}); the first group's \
         {N1} pages would show here"
    );
    assert!(faults.per_phase["three"] > 0, "the hog faulted: {faults:?}");
    let pids: Vec<u32> = ev.oom_victims.iter().map(|v| v.pid).collect();
    assert_eq!(
        pids,
        [second_hog_pid],
        "only the second group's victim (the first's was {first_hog_pid})"
    );
    assert_eq!(ev.oom_source.as_deref(), Some("ebpf raw_tp/mark_victim"));
}

#[test]
fn each_figure_attaches_on_its_own() {
    const WHAT: &str = "probe_root::each_figure_attaches_on_its_own";
    let Some((_serial, g, target)) = probed_group(WHAT, 64 * MIB) else {
        return;
    };
    const PF_RAW: &str = "ebpf raw_tp/page_fault_user";
    const PF_BTF: &str = "ebpf tp_btf/page_fault_user";
    const RECLAIM_RAW: &str = "ebpf raw_tp/mm_vmscan_memcg_reclaim_begin|end";
    const RECLAIM_BTF: &str = "ebpf tp_btf/mm_vmscan_memcg_reclaim_begin|end";
    const RECLAIM_CLASSIC: &str = "ebpf tracepoint/vmscan/mm_vmscan_memcg_reclaim_begin|end";
    const OOM_RAW: &str = "ebpf raw_tp/mark_victim";
    const OOM_CLASSIC: &str = "ebpf tracepoint/oom/mark_victim";
    let cases = [
        // (hide BTF, fail, page faults, reclaim, OOM victim)
        (
            None,
            Some("page_faults"),
            None,
            Some(RECLAIM_RAW),
            Some(OOM_RAW),
        ),
        (
            None,
            Some("oom_victim/raw_tp"),
            Some(PF_RAW),
            Some(RECLAIM_RAW),
            Some(OOM_CLASSIC),
        ),
        // The tp_btf ways, with the BTF parsed only then.
        (
            None,
            Some("page_faults/raw_tp,reclaim/raw_tp,oom_victim"),
            Some(PF_BTF),
            Some(RECLAIM_BTF),
            None,
        ),
        (
            None,
            Some("reclaim/raw_tp,reclaim/tp_btf"),
            Some(PF_RAW),
            Some(RECLAIM_CLASSIC),
            Some(OOM_RAW),
        ),
        // Without BTF: no tp_btf, and no layout for the raw OOM program.
        (
            Some("1"),
            None,
            Some(PF_RAW),
            Some(RECLAIM_RAW),
            Some(OOM_CLASSIC),
        ),
        (
            Some("1"),
            Some("page_faults/raw_tp,reclaim/raw_tp"),
            None,
            Some(RECLAIM_CLASSIC),
            Some(OOM_CLASSIC),
        ),
    ];
    for (hide, fail, faults, reclaim, oom) in cases {
        let switches = Switches::parse(hide, fail);
        let mut probe = start_with(target, &switches);
        let case = format!("hide {hide:?}, fail {fail:?}: {probe:?}");
        assert_eq!(probe.source(Figure::PageFaults), faults, "{case}");
        assert_eq!(probe.source(Figure::Reclaim), reclaim, "{case}");
        assert_eq!(probe.source(Figure::OomVictim), oom, "{case}");
        // A figure that fell back or has no program says why in a note.
        for (figure, source, best) in [
            (Figure::PageFaults, faults, PF_RAW),
            (Figure::OomVictim, oom, OOM_RAW),
        ] {
            if source != Some(best) {
                assert!(
                    probe.notes().iter().any(|n| n.starts_with(figure.name())),
                    "{case}"
                );
            }
        }
        // The attached page-fault program counts (its step map works whichever way it is).
        probe.set_step(1).expect("set step");
        let (status, _) = wait_faults(spawn_in(&g.procs_files(), toucher(1_000)));
        assert_eq!(status, 0);
        let (counts, note) = probe.finish();
        let counts = counts.expect("collect");
        assert_eq!(note, None);
        if faults.is_some() {
            assert!(counts.faults[1] >= 1_000, "{case}: {counts:?}");
        }
    }
}

/// `memspike run --json ARGS` with `env`; the exit code and the report.
fn run_json(args: &[&str], env: &[(&str, &str)]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_memspike"))
        .arg("run")
        .arg("--json")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run memspike");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON report ({e}); stderr: {stderr}"));
    (out.status.code().expect("exit code"), report)
}

/// The 4 KiB pages the spike wrote: its `end` event's growth.
fn spike_pages(r: &Value) -> u64 {
    let end = r["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["event"] == "end" && e["phase"] == "spike")
        .expect("the spike ended");
    u(&end["grown"]).div_ceil(4096)
}

/// The default run was OOM-killed in the remainder, the spike's faults are its pages (each
/// faults once; at most 2 % more for the kernel's own faults on the group's memory), and the
/// kernel's victim is the worker.
fn assert_default_run(r: &Value, faults_source: &str, oom_source: &str) {
    assert_eq!(r["outcome"], "oom_killed", "{r:#}");
    assert_eq!(r["died_in"], "remainder");
    let k = &r["kernel"];
    assert_eq!(k["page_faults"]["source"], faults_source, "{k:#}");
    let pages = spike_pages(r);
    let spike = u(&k["page_faults"]["per_phase"]["spike"]);
    assert!(
        (pages..=pages + pages / 50).contains(&spike),
        "spike: {spike} faults for {pages} pages ({faults_source})"
    );
    assert!(u(&k["page_faults"]["per_phase"]["remainder"]) > 0, "{k:#}");
    let v = &k["oom_victim"];
    assert_eq!(v["source"], oom_source, "{k:#}");
    assert_eq!(v["pid"], r["worker"]["pid"], "{k:#}");
    assert_eq!(v["comm"], "memspike");
    let limit = u(&r["limit_bytes"]);
    assert!(
        u(&v["anon_rss_bytes"]) > limit * 3 / 4 && u(&v["anon_rss_bytes"]) <= limit,
        "{v:#}"
    );
    let verdict = r["verdict"].as_str().expect("verdict");
    assert!(verdict.contains("(the worker)"), "{verdict}");
}

#[test]
fn without_btf_a_run_uses_raw_and_classic_tracepoints() {
    const WHAT: &str = "probe_root::without_btf_a_run_uses_raw_and_classic_tracepoints";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let (code, r) = run_json(&["--expect", "oom"], &[("MEMSPIKE_PROBE_HIDE_BTF", "1")]);
    assert_eq!(code, 0, "{r:#}");
    assert_eq!(r["kernel"]["tracing"], "ebpf");
    assert_default_run(
        &r,
        "ebpf raw_tp/page_fault_user",
        "ebpf tracepoint/oom/mark_victim",
    );
    assert_eq!(
        r["kernel"]["reclaim"]["source"],
        "ebpf raw_tp/mm_vmscan_memcg_reclaim_begin|end"
    );
    assert!(
        u(&r["kernel"]["reclaim"]["stalls"]) > 0,
        "{:#}",
        r["kernel"]
    );
    let notes = r["kernel"]["notes"].to_string();
    assert!(notes.contains("MEMSPIKE_PROBE_HIDE_BTF"), "{notes}");
}

#[test]
fn without_bpf_a_run_takes_its_figures_from_the_cgroup_and_the_kernel_log() {
    const WHAT: &str =
        "probe_root::without_bpf_a_run_takes_its_figures_from_the_cgroup_and_the_kernel_log";
    if !common::require_root(WHAT) {
        return;
    }
    let _serial = serial();
    for (args, env, tracing) in [
        (&["--no-trace"][..], &[][..], "unavailable: --no-trace"),
        (
            &[][..],
            &[(
                "MEMSPIKE_PROBE_FAIL",
                "page_faults,reclaim,oom_victim,kernel_page_faults",
            )][..],
            "unavailable: no eBPF program could be attached",
        ),
    ] {
        let mut args = args.to_vec();
        args.extend(["--expect", "oom"]);
        let (code, r) = run_json(&args, env);
        assert_eq!(code, 0, "{r:#}");
        let k = &r["kernel"];
        assert!(
            k["tracing"]
                .as_str()
                .is_some_and(|t| t.starts_with(tracing)),
            "{k:#}"
        );
        assert_default_run(&r, "memory.stat pgfault", "/dev/kmsg");
        assert_eq!(k["major_faults"]["source"], "memory.stat pgmajfault");
        assert_eq!(k["reclaim"], Value::Null, "no eBPF, no reclaim stalls");
        // PSI: the group's v2 (or v2 twin) directory has memory.pressure whatever its
        // controllers; the kill came after the kernel reclaimed in vain, which is a stall.
        assert_eq!(k["pressure"]["source"], "memory.pressure", "{k:#}");
        assert!(
            u(&k["pressure"]["some_ns"]) >= u(&k["pressure"]["full_ns"]),
            "{k:#}"
        );
    }
}

#[test]
fn a_failing_page_fault_program_costs_only_its_figure() {
    const WHAT: &str = "probe_root::a_failing_page_fault_program_costs_only_its_figure";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let (code, r) = run_json(
        &["--expect", "oom"],
        &[("MEMSPIKE_PROBE_FAIL", "page_faults")],
    );
    assert_eq!(code, 0, "{r:#}");
    let k = &r["kernel"];
    assert_eq!(k["tracing"], "ebpf");
    assert_default_run(&r, "memory.stat pgfault", "ebpf raw_tp/mark_victim");
    assert_eq!(
        k["reclaim"]["source"],
        "ebpf raw_tp/mm_vmscan_memcg_reclaim_begin|end"
    );
    let notes = k["notes"].to_string();
    assert!(
        notes.contains("page_faults: no eBPF program attached")
            && notes.contains("forced by MEMSPIKE_PROBE_FAIL"),
        "{notes}"
    );
}

#[test]
fn sigkill_of_the_supervisor_unloads_its_programs() {
    const WHAT: &str = "probe_root::sigkill_of_the_supervisor_unloads_its_programs";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let mut run = Command::new(env!("CARGO_BIN_EXE_memspike"))
        .args(["run", "--json", "--pause-at", "spike"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start memspike");
    let worker = wait_for_pause(&mut run, "spike");
    let ids = common::programs_of(run.id());
    assert_eq!(ids.len(), 5, "the supervisor holds its 5 programs: {ids:?}");
    run.kill().expect("SIGKILL the supervisor");
    let status = run.wait().expect("reap the supervisor");
    assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    common::assert_unloaded(&ids, "after SIGKILL of the supervisor");
    common::wait_for_exit(worker, "the worker to die with its SIGKILLed supervisor");
    // The group a SIGKILLed supervisor leaves is what the next run sweeps; sweep it now.
    memspike_cgroup::remove_stale(&Hierarchy::discover().expect("preflight"));
}

/// Tracefs mount points in `pid`'s mount namespace.
fn tracefs_mounts_of(pid: u32) -> Vec<String> {
    let mounts = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.mountinfo())
        .expect("read mountinfo");
    mounts
        .into_iter()
        .filter(|m| m.fs_type == "tracefs")
        .map(|m| m.mount_point.display().to_string())
        .collect()
}

/// A process that holds a mount namespace of its own (a private copy of ours, with no tracefs
/// mounted, or with one mounted at /sys/kernel/tracing), so that a memspike run started in it
/// can be watched without other processes on the machine mounting or unmounting tracefs in the
/// same view. Killed on drop.
struct MountNamespace {
    holder: Child,
}

impl MountNamespace {
    fn new(with_tracefs: bool) -> MountNamespace {
        let root = std::ffi::CString::new("/").expect("no NUL");
        let tracefs = std::ffi::CString::new("tracefs").expect("no NUL");
        let tracefs_dir = std::ffi::CString::new(probe::TRACEFS_DIR).expect("no NUL");
        let targets = [probe::TRACEFS_DIR, "/sys/kernel/debug/tracing"]
            .map(|p| std::ffi::CString::new(p).expect("no NUL"));
        let mut cmd = Command::new("/bin/sleep");
        cmd.arg("3600").stdin(Stdio::null());
        // SAFETY: the closure only makes system calls (unshare, mount, umount2) through nix's
        // thin wrappers, on C strings prepared before the fork (passed as they are: no
        // allocation).
        unsafe {
            cmd.pre_exec(move || {
                unshare(CloneFlags::CLONE_NEWNS)?;
                // Private: nothing propagates in from the host's namespace, nor out of it.
                mount(
                    None::<&CStr>,
                    root.as_c_str(),
                    None::<&CStr>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&CStr>,
                )?;
                for t in &targets {
                    while umount2(t.as_c_str(), MntFlags::MNT_DETACH).is_ok() {}
                }
                if with_tracefs {
                    mount(
                        Some(tracefs.as_c_str()),
                        tracefs_dir.as_c_str(),
                        Some(tracefs.as_c_str()),
                        MsFlags::empty(),
                        None::<&CStr>,
                    )?;
                }
                Ok(())
            });
        }
        let holder = cmd.spawn().expect("spawn the namespace holder");
        MountNamespace { holder }
    }

    fn tracefs_mounts(&self) -> Vec<String> {
        tracefs_mounts_of(self.holder.id())
    }

    /// `memspike ARGS` started inside this namespace.
    fn memspike(&self, args: &[&str]) -> Command {
        let ns = std::fs::File::open(format!("/proc/{}/ns/mnt", self.holder.id()))
            .expect("open the holder's mount namespace");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_memspike"));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: setns (nix's thin wrapper) on a descriptor opened before the fork; the
        // forked child is single-threaded and shares no fs_struct, as setns(CLONE_NEWNS)
        // requires.
        unsafe {
            cmd.pre_exec(move || Ok(setns(&ns, CloneFlags::CLONE_NEWNS)?));
        }
        cmd
    }
}

impl Drop for MountNamespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// What the observer logs (debug) when it mounts tracefs for itself.
const PRIVATE_MOUNT_LOG: &str =
    "mounted tracefs at /sys/kernel/tracing in a private mount namespace";

#[test]
fn a_run_never_mounts_tracefs_where_others_see_it_even_when_sigkilled() {
    const WHAT: &str =
        "probe_root::a_run_never_mounts_tracefs_where_others_see_it_even_when_sigkilled";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let ns = MountNamespace::new(false);
    assert_eq!(
        ns.tracefs_mounts(),
        Vec::<String>::new(),
        "no tracefs to start"
    );

    // A run paused before its spike: the observer is attached, oom/mark_victim included.
    let mut run = ns
        .memspike(&["run", "--json", "--pause-at", "spike"])
        .spawn()
        .expect("start memspike");
    let worker = wait_for_pause(&mut run, "spike");
    assert_eq!(
        ns.tracefs_mounts(),
        Vec::<String>::new(),
        "a tracefs mount appeared in the supervisor's namespace during the run"
    );
    run.kill().expect("SIGKILL the supervisor");
    run.wait().expect("reap the supervisor");
    common::wait_for_exit(worker, "the worker to die with its SIGKILLed supervisor");
    assert_eq!(
        ns.tracefs_mounts(),
        Vec::<String>::new(),
        "the SIGKILLed supervisor left tracefs mounted"
    );
    memspike_cgroup::remove_stale(&Hierarchy::discover().expect("preflight"));

    // A whole run in the same namespace still gets the OOM victim from the classic tracepoint,
    // through tracefs mounted in its own thread's namespace.
    let out = ns
        .memspike(&["run", "--json", "--expect", "oom"])
        .env("MEMSPIKE_LOG", "memspike=debug")
        .output()
        .expect("run memspike");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(PRIVATE_MOUNT_LOG), "{stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        r["kernel"]["oom_victim"]["pid"], r["worker"]["pid"],
        "{r:#}"
    );
    assert_eq!(ns.tracefs_mounts(), Vec::<String>::new());
}

#[test]
fn an_existing_tracefs_mount_is_used_and_left_as_it_is() {
    const WHAT: &str = "probe_root::an_existing_tracefs_mount_is_used_and_left_as_it_is";
    if !require_probe(WHAT) {
        return;
    }
    let _serial = serial();
    let ns = MountNamespace::new(true);
    let before = ns.tracefs_mounts();
    assert_eq!(before, vec![probe::TRACEFS_DIR.to_owned()]);
    let out = ns
        .memspike(&["run", "--json", "--expect", "oom"])
        .env("MEMSPIKE_LOG", "memspike=debug")
        .output()
        .expect("run memspike");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains(PRIVATE_MOUNT_LOG),
        "mounted its own although one was there: {stderr}"
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        r["kernel"]["oom_victim"]["source"],
        "ebpf raw_tp/mark_victim"
    );
    assert_eq!(
        r["kernel"]["oom_victim"]["pid"], r["worker"]["pid"],
        "{r:#}"
    );
    assert_eq!(ns.tracefs_mounts(), before, "the mount is left as it was");
}
