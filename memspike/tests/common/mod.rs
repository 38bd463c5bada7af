//! Helpers shared by the integration tests: what CI is, and gating tests that need what only
//! some machines have.
//!
//! A test may skip only outside CI, and says so; under CI a missing capability is a failure.
#![allow(dead_code)] // each test binary compiles its own copy and may not use every helper

/// Whether this run is CI's: `CI=true`, as CI sets it (the one definition; xtask uses the
/// same).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips a test that cannot run here: prints why outside CI; under CI, fails, because CI must
/// never pass without running it.
pub fn skip(what: &str, why: &str) {
    if under_ci() {
        panic!("{what}: {why}, and CI=true: CI must run it instead of skipping it");
    }
    eprintln!("SKIPPED {what}: {why} (outside CI)");
}

/// True when running as root; otherwise [`skip`]s. Use as
/// `if !common::require_root("...") { return; }`.
pub fn require_root(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(what, "needs root");
    false
}

/// Ids of the BPF programs process `pid` holds open (its program and link descriptors'
/// `prog_id` in /proc/PID/fdinfo): ours, whatever other BPF users load meanwhile.
#[allow(dead_code)] // each test binary compiles its own copy and may not use every helper
pub fn programs_of(pid: u32) -> std::collections::BTreeSet<u32> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return Default::default();
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Which of `ids` the kernel still lists as loaded programs.
#[allow(dead_code)]
pub fn still_loaded(ids: &std::collections::BTreeSet<u32>) -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .filter(|id| ids.contains(id))
        .collect()
}

/// Waits (polling, up to 10 s) until the kernel lists none of `ids`; panics naming `when` if
/// some stay.
#[allow(dead_code)]
pub fn assert_unloaded(ids: &std::collections::BTreeSet<u32>, when: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = still_loaded(ids);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{when}: programs {left:?} are still loaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
