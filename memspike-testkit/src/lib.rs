//! What memspike's tests share about where they run: CI is `CI=true`; a test may skip only
//! outside CI, and says so; under CI a missing capability is a failure, never a silent pass.

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

/// True when this process holds what the privileged tests need (CAP_SYS_ADMIN for cgroups and
/// eBPF, CAP_DAC_OVERRIDE to write the cgroup tree); otherwise [`skip`]s, naming what is missing.
pub fn require_root(what: &str) -> bool {
    use caps::{CapSet, Capability};
    let missing: Vec<&str> = [
        (Capability::CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
        (Capability::CAP_DAC_OVERRIDE, "CAP_DAC_OVERRIDE"),
    ]
    .into_iter()
    .filter(|(c, _)| !caps::has_cap(None, CapSet::Effective, *c).unwrap_or(false))
    .map(|(_, n)| n)
    .collect();
    if missing.is_empty() {
        return true;
    }
    skip(
        what,
        &format!("needs {} (run as root)", missing.join(" and ")),
    );
    false
}
