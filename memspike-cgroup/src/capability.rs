//! What this process may do, by capability rather than by uid: inside a container uid 0 may
//! lack them, and outside one a non-root user may hold them. Tracing needs CAP_BPF and
//! CAP_PERFMON, or CAP_SYS_ADMIN (which covers both); creating groups needs write access to
//! the parent group's directory, tested with faccessat(2) as the kernel would judge a write.
//! The effective set is the kernel's answer to capget(2), through the `caps` crate.

use std::io;
use std::path::Path;

pub use caps::Capability;
use caps::{CapSet, CapsHashSet};
use nix::fcntl::AT_FDCWD;
use nix::unistd::{AccessFlags, faccessat};

/// A set of capabilities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caps(pub CapsHashSet);

impl Caps {
    /// This process's effective set.
    pub fn effective() -> io::Result<Caps> {
        caps::read(None, CapSet::Effective)
            .map(Caps)
            .map_err(io::Error::other)
    }

    /// A set of the capabilities given.
    pub fn of(caps: impl IntoIterator<Item = Capability>) -> Caps {
        Caps(caps.into_iter().collect())
    }

    pub fn has(&self, cap: Capability) -> bool {
        self.0.contains(&cap)
    }

    /// What loading and attaching the eBPF observer lacks in this set, said as the fix
    /// (`None`: nothing).
    pub fn missing_for_tracing(&self) -> Option<String> {
        use Capability::{CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN};
        if self.has(CAP_SYS_ADMIN) || (self.has(CAP_BPF) && self.has(CAP_PERFMON)) {
            return None;
        }
        let lacking: Vec<String> = [CAP_BPF, CAP_PERFMON]
            .into_iter()
            .filter(|c| !self.has(*c))
            .map(|c| c.to_string())
            .collect();
        Some(format!("{} (or CAP_SYS_ADMIN)", lacking.join(" and ")))
    }
}

/// Whether this process may create entries in `dir` (write access as the kernel judges it
/// for the effective ids and capabilities).
pub fn can_write(dir: &Path) -> io::Result<()> {
    faccessat(
        AT_FDCWD,
        dir,
        AccessFlags::W_OK,
        nix::fcntl::AtFlags::AT_EACCESS,
    )
    .map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Capability::{CAP_BPF, CAP_DAC_OVERRIDE, CAP_PERFMON, CAP_SYS_ADMIN};

    #[test]
    fn tracing_needs_bpf_and_perfmon_or_sys_admin() {
        assert_eq!(Caps::of([CAP_SYS_ADMIN]).missing_for_tracing(), None);
        assert_eq!(Caps::of([CAP_BPF, CAP_PERFMON]).missing_for_tracing(), None);
        assert_eq!(
            Caps::of([CAP_BPF]).missing_for_tracing().as_deref(),
            Some("CAP_PERFMON (or CAP_SYS_ADMIN)")
        );
        assert_eq!(
            Caps::of([CAP_PERFMON, CAP_DAC_OVERRIDE])
                .missing_for_tracing()
                .as_deref(),
            Some("CAP_BPF (or CAP_SYS_ADMIN)")
        );
        assert_eq!(
            Caps::default().missing_for_tracing().as_deref(),
            Some("CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)")
        );
    }

    #[test]
    fn the_effective_set_is_the_kernels() {
        let caps = Caps::effective().unwrap();
        let expected = caps::has_cap(None, CapSet::Effective, CAP_SYS_ADMIN).unwrap();
        assert_eq!(caps.has(CAP_SYS_ADMIN), expected);
        // The same set the kernel shows in /proc/self/status.
        let status = procfs::process::Process::myself()
            .unwrap()
            .status()
            .unwrap();
        let bits = caps.0.iter().fold(0u64, |acc, c| acc | c.bitmask());
        assert_eq!(bits, status.capeff);
    }

    #[test]
    fn write_access_is_the_kernels_answer() {
        let t = tempfile::tempdir().unwrap();
        assert!(can_write(t.path()).is_ok());
        let err = can_write(&t.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
