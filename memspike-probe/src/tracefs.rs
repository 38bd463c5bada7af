//! tracefs for the classic tracepoints (`oom/mark_victim`, and the `vmscan` reclaim pair
//! without BTF): their record layout (`format`) and their id (which aya reads to attach).
//!
//! An existing tracefs mount is used as it is. Otherwise tracefs is mounted where nobody else
//! sees it: a short-lived thread moves into a mount namespace of its own
//! (`unshare(CLONE_NEWNS)`; mount namespaces are per task, so only that thread moves), makes its
//! copy of the mounts `MS_REC | MS_SLAVE` (nothing propagates back to the host), mounts tracefs
//! at [`TRACEFS_DIR`] there, and runs the caller's closure, which reads the files and attaches.
//! When the thread ends, the namespace and the mount go with it, even if the process is then
//! SIGKILLed; the perf events that attach the programs do not depend on the mount and stay.
//!
//! aya caches the tracefs directory it finds first in a process; it is [`TRACEFS_DIR`] in every
//! such namespace, so the cache stays right for later probes of the same process.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use memspike_common::OomFieldOffsets;
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use procfs::FromRead;
use procfs::process::MountInfos;

/// Where tracefs is mounted when memspike mounts it (also the first place aya looks).
pub const TRACEFS_DIR: &str = "/sys/kernel/tracing";
/// Where older systems reach it (debugfs' automount).
const DEBUG_TRACEFS_DIR: &str = "/sys/kernel/debug/tracing";

/// Runs `f` where tracefs is mounted, with its directory, or with why it cannot be. `f` runs on
/// this thread when tracefs is already mounted, else on a scoped thread whose private mount
/// namespace (and tracefs mount) ends when `f` returns. A panic in `f` is resumed here.
pub fn with_tracefs<R: Send>(f: impl FnOnce(Result<&Path, String>) -> R + Send) -> R {
    if let Some(dir) = mounted_dir() {
        return f(Ok(&dir));
    }
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| match mount_privately() {
            Ok(()) => {
                tracing::debug!("mounted tracefs at {TRACEFS_DIR} in a private mount namespace");
                f(Ok(Path::new(TRACEFS_DIR)))
            }
            Err(e) => f(Err(format!(
                "tracefs is not mounted and could not be mounted in a private mount namespace: {e}"
            ))),
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The directory of a tracefs mounted in the calling thread's mount namespace, if any.
fn mounted_dir() -> Option<PathBuf> {
    // thread-self: /proc/self shows the main thread's namespace, not necessarily this one's.
    let mounts = MountInfos::from_file("/proc/thread-self/mountinfo").ok()?;
    let mounts = tracefs_mounts(&mounts);
    [TRACEFS_DIR, DEBUG_TRACEFS_DIR]
        .into_iter()
        .find(|want| mounts.iter().any(|m| m == Path::new(want)))
        .map(PathBuf::from)
}

/// Mount points of type tracefs (`procfs` leaves mountinfo's `\040` for a space in them).
fn tracefs_mounts(mounts: &MountInfos) -> Vec<PathBuf> {
    mounts
        .iter()
        .filter(|m| m.fs_type == "tracefs")
        .map(|m| PathBuf::from(m.mount_point.to_string_lossy().replace("\\040", " ")))
        .collect()
}

/// Moves the calling thread into a mount namespace of its own, whose mounts receive from the
/// host's but never send back, and mounts tracefs at [`TRACEFS_DIR`] there.
fn mount_privately() -> io::Result<()> {
    // CLONE_NEWNS (which implies CLONE_FS) affects only the calling thread.
    unshare(CloneFlags::CLONE_NEWNS)?;
    // A propagation change: no source, type or data.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )?;
    mount(
        Some("tracefs"),
        TRACEFS_DIR,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )?;
    Ok(())
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
    fn a_mount_made_for_the_closure_is_not_seen_outside_it() {
        if !memspike_testkit::require_root("a_mount_made_for_the_closure_is_not_seen_outside_it") {
            return;
        }
        if let Some(existing) = mounted_dir() {
            // Someone has tracefs mounted: it is used as it is, on this thread.
            let here = std::thread::current().id();
            let (dir, thread) =
                with_tracefs(|dir| (dir.map(Path::to_owned), std::thread::current().id()));
            assert_eq!((dir, thread), (Ok(existing), here));
            return;
        }
        let seen = with_tracefs(|dir| {
            let dir = dir.expect("mounted privately");
            (
                mounted_dir(),
                dir.join("events/oom/mark_victim/format").exists(),
            )
        });
        assert_eq!(seen, (Some(PathBuf::from(TRACEFS_DIR)), true));
        assert_eq!(
            mounted_dir(),
            None,
            "the mount stayed in the namespace of the thread"
        );
    }

    #[test]
    fn finds_tracefs_mounts_in_mountinfo() {
        let parse = |text: &str| {
            use procfs::FromBufRead;
            tracefs_mounts(&MountInfos::from_buf_read(text.as_bytes()).unwrap())
        };
        let info = "\
22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw
40 22 0:12 / /sys/kernel/tracing rw,nosuid,nodev,noexec,relatime - tracefs tracefs rw
41 22 0:13 / /sys/kernel/debug rw - debugfs debugfs rw
42 22 0:14 / /mnt/a\\040b rw - tracefs tracefs rw
";
        assert_eq!(
            parse(info),
            vec![
                PathBuf::from("/sys/kernel/tracing"),
                PathBuf::from("/mnt/a b")
            ]
        );
        assert!(parse("22 1 0:21 / /sys rw - sysfs sysfs rw\n").is_empty());
    }
}
