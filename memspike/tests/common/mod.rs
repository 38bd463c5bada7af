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
