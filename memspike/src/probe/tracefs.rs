//! tracefs for the one classic tracepoint (`oom/mark_victim`): making sure it is mounted while a
//! probe needs it, and reading the tracepoint's record layout from its `format` file.
//!
//! The mount is shared by every [`Probe`](super::Probe) of the process: the first user mounts
//! tracefs at `/sys/kernel/tracing` if no tracefs is mounted, the last one to leave unmounts it
//! only if this process mounted it. An existing mount is never touched.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use memspike_common::OomFieldOffsets;

/// Where tracefs is mounted when this process mounts it (also the first place aya looks).
pub const TRACEFS_DIR: &str = "/sys/kernel/tracing";
/// Where older systems reach it (debugfs' automount).
const DEBUG_TRACEFS_DIR: &str = "/sys/kernel/debug/tracing";

#[derive(Debug)]
struct State {
    users: usize,
    mounted_by_us: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    users: 0,
    mounted_by_us: false,
});

/// One probe's use of tracefs; releasing it (drop) may unmount tracefs.
#[derive(Debug)]
pub struct TracefsUse {
    dir: PathBuf,
    mounted: bool,
}

impl TracefsUse {
    /// Makes sure tracefs is mounted, mounting it at [`TRACEFS_DIR`] if needed. The error is a
    /// readable reason.
    pub fn acquire() -> Result<TracefsUse, String> {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(dir) = mounted_dir() {
            state.users += 1;
            return Ok(TracefsUse {
                dir,
                mounted: false,
            });
        }
        // Not mounted (anymore): whatever this process did earlier, it mounts it now.
        mount().map_err(|e| format!("tracefs could not be mounted at {TRACEFS_DIR}: {e}"))?;
        tracing::debug!("mounted tracefs at {TRACEFS_DIR} for oom/mark_victim");
        state.mounted_by_us = true;
        state.users += 1;
        Ok(TracefsUse {
            dir: PathBuf::from(TRACEFS_DIR),
            mounted: true,
        })
    }

    /// The mounted tracefs directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this acquisition mounted tracefs (it is unmounted when the last user leaves).
    pub fn mounted(&self) -> bool {
        self.mounted
    }
}

impl Drop for TracefsUse {
    fn drop(&mut self) {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        state.users = state.users.saturating_sub(1);
        if state.users == 0 && state.mounted_by_us {
            state.mounted_by_us = false;
            match umount() {
                Ok(()) => tracing::debug!("unmounted the tracefs memspike mounted"),
                Err(e) => tracing::warn!("could not unmount tracefs at {TRACEFS_DIR}: {e}"),
            }
        }
    }
}

/// The directory of a mounted tracefs, if any (from /proc/self/mountinfo).
fn mounted_dir() -> Option<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mounts = tracefs_mounts(&info);
    [TRACEFS_DIR, DEBUG_TRACEFS_DIR]
        .into_iter()
        .find(|want| mounts.iter().any(|m| m == want))
        .map(PathBuf::from)
}

/// Mount points of type tracefs in a mountinfo text.
fn tracefs_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            (fstype == "tracefs").then(|| mount_point.replace("\\040", " "))
        })
        .collect()
}

fn mount() -> io::Result<()> {
    let c = |s: &str| std::ffi::CString::new(s).map_err(io::Error::other);
    let (source, target, fstype) = (c("tracefs")?, c(TRACEFS_DIR)?, c("tracefs")?);
    // SAFETY: every pointer is a valid NUL-terminated string alive for the call; data is null.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn umount() -> io::Result<()> {
    let target = std::ffi::CString::new(TRACEFS_DIR).map_err(io::Error::other)?;
    // SAFETY: a valid NUL-terminated path alive for the call.
    if unsafe { libc::umount2(target.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EBUSY) {
        return Err(err);
    }
    // Someone holds a file open in it: detach now, the kernel frees it when they close.
    // SAFETY: as above.
    if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads `events/oom/mark_victim/format` under `tracefs`.
pub fn read_oom_format(tracefs: &Path) -> Result<(OomFieldOffsets, Vec<String>), String> {
    let path = tracefs.join("events/oom/mark_victim/format");
    let text = fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    parse_oom_format(&text)
}

/// The `oom/mark_victim` field offsets from the text of its tracefs `format` file, and notes for
/// fields this kernel lacks or lays out differently (reported as 0). `pid` is required.
pub fn parse_oom_format(text: &str) -> Result<(OomFieldOffsets, Vec<String>), String> {
    let fields = parse_fields(text);
    let mut offsets = OomFieldOffsets::NONE;
    let mut notes = Vec::new();
    // (name, expected size, slot)
    let wanted: [(&str, u32, &mut u32); 9] = [
        ("pid", 4, &mut offsets.pid),
        ("comm", 4, &mut offsets.comm),
        ("total_vm", 8, &mut offsets.total_vm),
        ("anon_rss", 8, &mut offsets.anon_rss),
        ("file_rss", 8, &mut offsets.file_rss),
        ("shmem_rss", 8, &mut offsets.shmem_rss),
        ("uid", 4, &mut offsets.uid),
        ("pgtables", 8, &mut offsets.pgtables),
        ("oom_score_adj", 2, &mut offsets.oom_score_adj),
    ];
    for (name, size, slot) in wanted {
        match fields.iter().find(|f| f.name == name) {
            Some(f) if f.size == size => *slot = f.offset,
            Some(f) => notes.push(format!(
                "oom/mark_victim field {name} has size {} on this kernel (expected {size}): \
                 reported as 0",
                f.size
            )),
            None => notes.push(format!(
                "oom/mark_victim has no field {name} on this kernel: reported as 0"
            )),
        }
    }
    if offsets.pid == OomFieldOffsets::ABSENT {
        return Err(format!(
            "the oom/mark_victim format has no usable pid field ({})",
            notes.join("; ")
        ));
    }
    Ok((offsets, notes))
}

#[derive(Debug, PartialEq)]
struct Field {
    name: String,
    offset: u32,
    size: u32,
}

/// `field:<decl> <name>;\toffset:N;\tsize:N;\tsigned:N;` lines.
fn parse_fields(text: &str) -> Vec<Field> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let decl = line.strip_prefix("field:")?;
            let mut parts = decl.split(';').map(str::trim);
            let name = parts
                .next()?
                .split_whitespace()
                .last()?
                .split('[')
                .next()?
                .to_owned();
            let mut offset = None;
            let mut size = None;
            for part in parts {
                if let Some(v) = part.strip_prefix("offset:") {
                    offset = v.parse().ok();
                } else if let Some(v) = part.strip_prefix("size:") {
                    size = v.parse().ok();
                }
            }
            Some(Field {
                name,
                offset: offset?,
                size: size?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kernel 6.18's format.
    const FORMAT_6_18: &str = "name: mark_victim
ID: 609
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:__data_loc char[] comm;\toffset:12;\tsize:4;\tsigned:0;
\tfield:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;
\tfield:unsigned long anon_rss;\toffset:24;\tsize:8;\tsigned:0;
\tfield:unsigned long file_rss;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long shmem_rss;\toffset:40;\tsize:8;\tsigned:0;
\tfield:uid_t uid;\toffset:48;\tsize:4;\tsigned:0;
\tfield:unsigned long pgtables;\toffset:56;\tsize:8;\tsigned:0;
\tfield:short oom_score_adj;\toffset:64;\tsize:2;\tsigned:1;

print fmt: \"pid=%d comm=%s\", REC->pid, __get_str(comm)
";

    #[test]
    fn parses_the_6_18_layout() {
        let (o, notes) = parse_oom_format(FORMAT_6_18).unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(
            o,
            OomFieldOffsets {
                pid: 8,
                comm: 12,
                total_vm: 16,
                anon_rss: 24,
                file_rss: 32,
                shmem_rss: 40,
                uid: 48,
                pgtables: 56,
                oom_score_adj: 64,
            }
        );
    }

    #[test]
    fn older_kernels_with_pid_only_work_with_notes() {
        // Linux 5.x: `field:int pid; offset:8; size:4; signed:1;` and nothing else.
        let text = "format:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
                    \tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;\n";
        let (o, notes) = parse_oom_format(text).unwrap();
        assert_eq!(o.pid, 8);
        assert_eq!(o.anon_rss, OomFieldOffsets::ABSENT);
        assert_eq!(notes.len(), 8, "{notes:?}");
        assert!(notes[0].contains("no field comm"), "{notes:?}");
    }

    #[test]
    fn unexpected_sizes_are_not_read() {
        let text = FORMAT_6_18.replace(
            "unsigned long anon_rss;\toffset:24;\tsize:8",
            "unsigned int anon_rss;\toffset:24;\tsize:4",
        );
        let (o, notes) = parse_oom_format(&text).unwrap();
        assert_eq!(o.anon_rss, OomFieldOffsets::ABSENT);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("anon_rss has size 4"), "{notes:?}");
    }

    #[test]
    fn no_pid_is_an_error() {
        let err = parse_oom_format("format:\n").unwrap_err();
        assert!(err.contains("no usable pid"), "{err}");
    }

    #[test]
    fn finds_tracefs_mounts_in_mountinfo() {
        let info = "\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
40 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime - tracefs tracefs rw
41 22 0:13 / /sys/kernel/debug rw - debugfs debugfs rw
";
        assert_eq!(tracefs_mounts(info), vec!["/sys/kernel/tracing"]);
        assert!(tracefs_mounts("22 1 0:21 / /sys rw - sysfs sysfs rw\n").is_empty());
    }
}
