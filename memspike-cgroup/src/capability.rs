//! What this process may do, by capability rather than by uid: inside a container uid 0 may
//! lack them, and outside one a non-root user may hold them. Tracing needs CAP_BPF and
//! CAP_PERFMON, or CAP_SYS_ADMIN (which covers both); creating groups needs write access to
//! the parent group's directory, tested with faccessat(2) as the kernel would judge a write.
//! The effective set is read from `/proc/self/status` (`CapEff`, one hexadecimal word).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub const CAP_DAC_OVERRIDE: u32 = 1;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// A set of capabilities, one bit each (as the kernel numbers them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps(pub u64);

impl Caps {
    /// This process's effective set.
    pub fn effective() -> io::Result<Caps> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        Caps::from_status(&status).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "no CapEff line in /proc/self/status",
            )
        })
    }

    /// The `CapEff` line of a `/proc/<pid>/status` text.
    pub fn from_status(status: &str) -> Option<Caps> {
        let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
        u64::from_str_radix(hex.trim(), 16).ok().map(Caps)
    }

    pub fn has(self, cap: u32) -> bool {
        cap < 64 && self.0 & (1 << cap) != 0
    }

    /// What loading and attaching the eBPF observer lacks in this set, said as the fix
    /// (`None`: nothing).
    pub fn missing_for_tracing(self) -> Option<String> {
        if self.has(CAP_SYS_ADMIN) || (self.has(CAP_BPF) && self.has(CAP_PERFMON)) {
            return None;
        }
        let lacking: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
            .into_iter()
            .filter(|(c, _)| !self.has(*c))
            .map(|(_, n)| n)
            .collect();
        Some(format!("{} (or CAP_SYS_ADMIN)", lacking.join(" and ")))
    }
}

/// Whether this process may create entries in `dir` (write access as the kernel judges it
/// for the effective ids and capabilities).
pub fn can_write(dir: &Path) -> io::Result<()> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: path is a valid NUL-terminated string for the call; faccessat only reads it.
    let rc =
        unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::W_OK, libc::AT_EACCESS) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[u32]) -> Caps {
        Caps(list.iter().fold(0, |acc, c| acc | 1 << c))
    }

    #[test]
    fn tracing_needs_bpf_and_perfmon_or_sys_admin() {
        assert_eq!(caps(&[CAP_SYS_ADMIN]).missing_for_tracing(), None);
        assert_eq!(caps(&[CAP_BPF, CAP_PERFMON]).missing_for_tracing(), None);
        assert_eq!(
            caps(&[CAP_BPF]).missing_for_tracing().as_deref(),
            Some("CAP_PERFMON (or CAP_SYS_ADMIN)")
        );
        assert_eq!(
            caps(&[CAP_PERFMON, CAP_DAC_OVERRIDE])
                .missing_for_tracing()
                .as_deref(),
            Some("CAP_BPF (or CAP_SYS_ADMIN)")
        );
        assert_eq!(
            Caps(0).missing_for_tracing().as_deref(),
            Some("CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)")
        );
    }

    #[test]
    fn the_effective_set_is_read_from_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                      CapEff:\t000000c000200000\nCapBnd:\t000001ffffffffff\n";
        let c = Caps::from_status(status).unwrap();
        assert!(c.has(CAP_SYS_ADMIN) && c.has(CAP_BPF) && c.has(CAP_PERFMON));
        assert!(!c.has(CAP_DAC_OVERRIDE));
        assert_eq!(Caps::from_status("Name:\tx\n"), None);
        assert!(Caps::effective().is_ok());
    }

    #[test]
    fn write_access_is_the_kernels_answer() {
        let t = tempfile::tempdir().unwrap();
        assert!(can_write(t.path()).is_ok());
        let err = can_write(&t.path().join("missing")).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    }
}
