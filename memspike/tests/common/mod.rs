//! Helpers shared by the integration tests: gating tests that need root on a real kernel.

/// True when running as root. Otherwise: panics under CI (env `CI=true`), because CI must never
/// pass silently without running the test; elsewhere prints why the test is skipped and
/// returns false. Use as `if !common::require_root("...") { return; }`.
#[allow(dead_code)] // each test binary compiles its own copy and may not use every helper
pub fn require_root(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what}: needs root, and CI=true: CI must run it as root instead of skipping it");
    }
    eprintln!("SKIPPED {what}: needs root (outside CI)");
    false
}
