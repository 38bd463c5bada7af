//! What the unit tests share about where they run (the integration tests' `tests/common` makes
//! the same rule): CI is `CI=true`; a test may skip only outside CI, and says so.

/// Whether this run is CI's.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips a test that cannot run here: prints why outside CI; under CI, fails.
pub fn skip(what: &str, why: &str) {
    assert!(
        !under_ci(),
        "{what}: {why}, and CI=true: CI must run it instead of skipping it"
    );
    eprintln!("SKIPPED {what}: {why} (outside CI)");
}

/// True as root; otherwise [`skip`]s.
pub fn require_root(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(what, "needs root");
    false
}
