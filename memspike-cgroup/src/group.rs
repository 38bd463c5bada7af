//! The experiment's memory group: creation as a child of this process's group, the memory
//! limit and swap cap (through `cgroups-rs`' memory controller), the files a child writes to
//! join it, and removal (kill what is left, bounded retries, rmdir). On v1 hosts with a cgroup2
//! mount, a same-named v2 "twin" (no controllers) gives the cgroup id that eBPF programs see.
//! A group that fails half-way through creation is removed before the error is returned.
//! On v2 it also owns what memspike changes in its own group to give the experiment's group a
//! memory controller (a supervisor leaf, `+memory` in `cgroup.subtree_control`), and undoes it
//! when the group is removed (`V2Changes`).

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cgroups_rs::fs::memory::MemController;
use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::unistd::{Pid, SysconfVar, sysconf, write};
use thiserror::Error;

use super::counters::{self, read_usage, read_value};
use super::{Counters, Hierarchy, NAME_PREFIX, Version, read_counters};

/// rmdir attempts before [`Group::remove`] gives up (backoff 2 ms doubling to 100 ms: ~3.5 s).
const REMOVE_ATTEMPTS: u32 = 40;
/// Limits from here up are "no limit" to the kernel (PAGE_COUNTER_MAX is about 2^63 bytes).
const MAX_LIMIT: u64 = 1 << 62;

/// A cgroup operation that failed; every message names the path and the operation.
#[derive(Debug, Error)]
pub enum CgroupError {
    #[error("invalid memory limit of {limit} bytes: {reason}")]
    InvalidLimit { limit: u64, reason: String },

    #[error("creating cgroup directory {path}: {source}", path = path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("writing {value:?} to {path}: {source}", path = path.display())]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },

    #[error("reading {path}: {source}", path = path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "limit not applied: wrote {wanted} to {path} but it reads back {got}",
        path = path.display(),
        got = got.map_or_else(|| "nothing readable".to_owned(), |g| g.to_string())
    )]
    LimitNotApplied {
        path: PathBuf,
        wanted: u64,
        got: Option<u64>,
    },

    #[error(
        "cannot cap swap: {path} does not exist in the new group, so swap accounting is \
         disabled; remove `swapaccount=0` / `cgroup.memory=noswap` from GRUB_CMDLINE_LINUX in \
         /etc/default/grub, run `sudo update-grub`, then reboot",
        path = path.display()
    )]
    SwapCapUnavailable { path: PathBuf },

    #[error(
        "enabling the memory controller for the children of {path} (writing \"+memory\" to its \
         cgroup.subtree_control): {reason}; run memspike in a scope of its own, e.g. \
         `sudo systemd-run --scope -p Delegate=yes -- memspike ...`",
        path = path.display()
    )]
    NotDelegated { path: PathBuf, reason: String },

    #[error(
        "removing cgroup {path}: still failing after {attempts} attempts ({source}); \
         processes left inside: {tasks:?}",
        path = path.display()
    )]
    Remove {
        path: PathBuf,
        attempts: u32,
        tasks: Vec<u32>,
        #[source]
        source: io::Error,
    },

    #[error(
        "refusing to kill the members of {path}: this supervisor (pid {pid}) is one of them",
        path = path.display()
    )]
    OwnProcessInside { path: PathBuf, pid: u32 },

    #[error("cgroup path {path} contains a NUL byte", path = path.display())]
    BadPath { path: PathBuf },
}

/// The experiment's group: `memspike-<supervisor pid>-<unique suffix>`, a child of
/// [`Hierarchy::own_dir`].
#[derive(Debug)]
pub struct Group {
    name: String,
    dir: PathBuf,
    version: Version,
    v2_twin: Option<PathBuf>,
    /// `--inherit`: the group this process already lives in. memspike never kills its members
    /// or removes it (only its own v2 twin, if it made one).
    inherited: bool,
    removed: bool,
    /// What memspike changed in its own v2 group for this group; undone after its removal.
    v2_changes: V2Changes,
    fs: &'static dyn Cgroupfs,
}

impl Group {
    /// Creates the group, sets the limit and caps swap: v1 `memory.limit_in_bytes` then
    /// `memory.memsw.limit_in_bytes` (= limit, so no swap); v2 `memory.max` = limit and
    /// `memory.swap.max` = 0, after enabling `+memory` in own group's subtree_control if needed
    /// (moving this process into a leaf `memspike-<pid>-supervisor-n<pidns>` when it is the group's
    /// only member). On v1 hosts with a cgroup2 mount it also creates the v2 twin.
    /// On failure nothing is left behind.
    pub fn create(h: &Hierarchy, limit: u64) -> Result<Group, CgroupError> {
        Group::create_on(h, limit, &REAL)
    }

    /// [`Group::create`] through the given cgroupfs (a fake kernel in tests).
    pub(crate) fn create_on(
        h: &Hierarchy,
        limit: u64,
        fs: &'static dyn Cgroupfs,
    ) -> Result<Group, CgroupError> {
        validate_limit(limit)?;
        let mut v2_changes = V2Changes::none(fs, h.own_dir());
        if h.version() == Version::V2 {
            ensure_v2_memory_for_children(h, &mut v2_changes)?;
        }
        let own = h.own_dir();
        let pid = std::process::id();
        let mut tries = 0;
        let (name, dir) = loop {
            let name = format!("{NAME_PREFIX}{pid}-{}", unique_suffix());
            let dir = own.join(&name);
            match fs.mkdir(&dir) {
                Ok(()) => break (name, dir),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                // v2_changes is undone as it drops.
                Err(source) => return Err(CgroupError::Create { path: dir, source }),
            }
        };
        let mut group = Group {
            name,
            dir,
            version: h.version(),
            v2_twin: None,
            inherited: false,
            removed: false,
            v2_changes,
            fs,
        };
        if let Err(e) = group.configure(h, limit) {
            if let Err(cleanup) = group.remove() {
                tracing::warn!(error = %cleanup, "cleanup after a failed group creation failed");
            }
            return Err(e);
        }
        tracing::debug!(dir = %group.dir.display(), twin = ?group.v2_twin, limit,
            "created memory cgroup");
        Ok(group)
    }

    /// `--inherit`: the group this process lives in, as it is: no limit is written and it is
    /// never emptied or removed. Its members (the supervisor among them) share its limit. On v1
    /// hosts with a cgroup2 mount, a v2 twin (no controllers, so no limit and no charge) is
    /// made under this process's own v2 group so that eBPF can tell what memspike starts from
    /// the rest; without it (read-only cgroup2 mount, say) tracing is off, with the reason.
    pub fn inherit(h: &Hierarchy) -> Group {
        let dir = h.own_dir();
        let dir_for_changes = dir.clone();
        let name = dir
            .file_name()
            .map_or_else(|| "/".to_owned(), |n| n.to_string_lossy().into_owned());
        let v2_twin = h.v2_twin_parent().and_then(|parent| {
            let twin = parent.join(format!(
                "{NAME_PREFIX}{}-{}",
                std::process::id(),
                unique_suffix()
            ));
            match REAL.mkdir(&twin) {
                Ok(()) => Some(twin),
                Err(e) => {
                    tracing::warn!(dir = %twin.display(), error = %e,
                        "cannot make a cgroup v2 twin: no cgroup id for eBPF filtering");
                    None
                }
            }
        });
        Group {
            name,
            dir,
            version: h.version(),
            v2_twin,
            inherited: true,
            removed: false,
            // Nothing of memspike's own group is changed: there is nothing to undo.
            v2_changes: V2Changes::none(&REAL, dir_for_changes),
            fs: &REAL,
        }
    }

    /// Whether this is the group memspike lives in (`--inherit`) rather than one it made.
    pub fn inherited(&self) -> bool {
        self.inherited
    }

    fn configure(&mut self, h: &Hierarchy, limit: u64) -> Result<(), CgroupError> {
        let v2 = self.version == Version::V2;
        let mem = MemController::new(self.dir.clone(), PathBuf::from("/"), v2);
        let ilimit = i64::try_from(limit).map_err(|_| CgroupError::InvalidLimit {
            limit,
            reason: "does not fit the kernel's signed 64-bit value".into(),
        })?;
        match self.version {
            Version::V1 => {
                // A fresh group is unlimited in both; memsw must stay >= memory, so memory first.
                let mem_file = self.dir.join("memory.limit_in_bytes");
                let memsw_file = self.dir.join("memory.memsw.limit_in_bytes");
                mem.set_limit(ilimit)
                    .map_err(|e| write_error(&mem_file, limit, &e))?;
                mem.set_memswap_limit(ilimit)
                    .map_err(|e| write_error(&memsw_file, limit, &e))?;
                verify(&mem_file, limit)?;
                verify(&memsw_file, limit)?;
            }
            Version::V2 => {
                let max_file = self.dir.join("memory.max");
                let swap_file = self.dir.join("memory.swap.max");
                if !swap_file.exists() {
                    return Err(CgroupError::SwapCapUnavailable { path: swap_file });
                }
                mem.set_limit(ilimit)
                    .map_err(|e| write_error(&max_file, limit, &e))?;
                mem.set_memswap_limit(0)
                    .map_err(|e| write_error(&swap_file, 0, &e))?;
                verify(&max_file, limit)?;
                verify(&swap_file, 0)?;
            }
        }
        if let Some(parent) = h.v2_twin_parent() {
            let twin = parent.join(&self.name);
            self.fs.mkdir(&twin).map_err(|source| CgroupError::Create {
                path: twin.clone(),
                source,
            })?;
            self.v2_twin = Some(twin);
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The memory group's absolute directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// On v1 hosts with a cgroup2 mount: the group's v2 twin (its cgroup id, its pressure).
    pub fn v2_twin(&self) -> Option<&Path> {
        self.v2_twin.as_deref()
    }

    /// Files a child process writes "0" into (after fork, before exec) to join the group(s):
    /// the memory group's cgroup.procs and, where present, the v2 twin's.
    /// An inherited group's children are members already: only the twin is joined.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        if !self.inherited {
            files.push(self.dir.join("cgroup.procs"));
        }
        if let Some(twin) = &self.v2_twin {
            files.push(twin.join("cgroup.procs"));
        }
        files
    }

    /// [`Group::procs_files`] prepared for use between fork and exec.
    pub fn joiner(&self) -> Result<Joiner, CgroupError> {
        Joiner::new(&self.procs_files())
    }

    /// The v2 cgroup id (inode of the v2 directory) that bpf_get_current_cgroup_id() reports
    /// for members, if known.
    pub fn bpf_cgroup_id(&self) -> Option<u64> {
        let dir = match self.version {
            Version::V2 => Some(&self.dir),
            Version::V1 => self.v2_twin.as_ref(),
        }?;
        fs::metadata(dir).ok().map(|m| m.ino())
    }

    /// All counters, read now; every field is optional.
    pub fn counters(&self) -> Counters {
        read_counters(&self.dir, self.version)
    }

    pub fn usage_bytes(&self) -> Option<u64> {
        read_usage(&self.dir, self.version)
    }

    /// The file holding the group's current usage (for a member to read as it goes).
    pub fn usage_file(&self) -> PathBuf {
        counters::usage_file(&self.dir, self.version)
    }

    /// Pids in the memory group's cgroup.procs now.
    pub fn members(&self) -> Vec<u32> {
        read_procs(&self.dir)
    }

    /// SIGKILL to every task in the group but this process: what a command left behind when it
    /// exited. Nothing for an inherited group (its other members are not memspike's).
    pub fn kill_members(&self) {
        if self.inherited() {
            return;
        }
        let me = std::process::id();
        for pid in self.members().into_iter().filter(|p| *p != me) {
            let Ok(pid) = i32::try_from(pid) else {
                continue;
            };
            // pid is a member of this group, made by memspike for one command, and not this
            // process.
            if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGKILL) {
                tracing::debug!(pid, error = %e, "kill failed");
            }
        }
    }

    /// Kills any task left (SIGKILL; v2 also cgroup.kill), waits until the group is empty
    /// (bounded retries), removes the directory(ies), then undoes what memspike changed in
    /// its own v2 group (`V2Changes::restore`). Idempotent. An inherited group is left as it
    /// is; only its twin goes.
    pub fn remove(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return self.v2_changes.restore();
        }
        let mut first = if self.inherited {
            None
        } else {
            empty_and_rmdir(&self.dir, self.version, self.fs).err()
        };
        if let Some(twin) = &self.v2_twin
            && let Err(e) = empty_and_rmdir(twin, Version::V2, self.fs)
        {
            first.get_or_insert(e);
        }
        if let Some(e) = first {
            // The group still needs the controller; the next call (or the drop) tries again.
            return Err(e);
        }
        self.removed = true;
        tracing::debug!(dir = %self.dir.display(), "removed memory cgroup");
        self.v2_changes.restore()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(error = %e, "could not remove the experiment's cgroup");
        }
    }
}

/// The procs files as C strings, prepared before fork so that the child only makes
/// async-signal-safe calls (open, write, close) to join the group(s).
#[derive(Debug, Clone)]
pub struct Joiner {
    files: Vec<CString>,
}

impl Joiner {
    pub fn new(files: &[PathBuf]) -> Result<Joiner, CgroupError> {
        let files = files
            .iter()
            .map(|p| {
                CString::new(p.as_os_str().as_bytes())
                    .map_err(|_| CgroupError::BadPath { path: p.clone() })
            })
            .collect::<Result<_, _>>()?;
        Ok(Joiner { files })
    }

    /// Writes "0" (= the calling process) into each file. Async-signal-safe: no allocation,
    /// no locks: nix's `open` passes the prepared `&CStr` as it is to open(2), `write` is
    /// write(2), errors are the errno read back, and dropping the descriptor is close(2).
    /// Returns the first failing errno.
    pub fn join_current(&self) -> Result<(), i32> {
        for file in &self.files {
            let fd = open(
                file.as_c_str(),
                OFlag::O_WRONLY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| e as i32)?;
            match write(&fd, b"0") {
                Ok(1) => {}
                Ok(_) => return Err(Errno::EIO as i32),
                Err(e) => return Err(e as i32),
            }
        }
        Ok(())
    }
}

fn page_size() -> u64 {
    sysconf(SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(4096)
}

fn validate_limit(limit: u64) -> Result<(), CgroupError> {
    let page = page_size();
    if limit < page {
        return Err(CgroupError::InvalidLimit {
            limit,
            reason: format!(
                "it must be at least one page ({page} bytes); the kernel would round it to 0 \
                 and no process could run in the group"
            ),
        });
    }
    if limit >= MAX_LIMIT {
        return Err(CgroupError::InvalidLimit {
            limit,
            reason: format!(
                "it must be below {MAX_LIMIT} bytes (4 EiB); such a value limits nothing (the \
                 kernel's own \"unlimited\" is 9223372036854771712)"
            ),
        });
    }
    Ok(())
}

/// Reads a limit back: the kernel rounds down to whole pages.
fn verify(path: &Path, wanted: u64) -> Result<(), CgroupError> {
    let got = read_value(path);
    let rounded = wanted - wanted % page_size();
    match got {
        Some(g) if g == wanted || g == rounded => Ok(()),
        _ => Err(CgroupError::LimitNotApplied {
            path: path.to_path_buf(),
            wanted,
            got,
        }),
    }
}

fn write_error(path: &Path, value: u64, e: &cgroups_rs::fs::error::Error) -> CgroupError {
    let source = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .map(|io| match io.raw_os_error() {
            Some(code) => io::Error::from_raw_os_error(code),
            None => io::Error::new(io.kind(), io.to_string()),
        })
        .unwrap_or_else(|| io::Error::other(e.to_string()));
    CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    }
}

/// Writes to an existing file (never creates one).
pub(crate) fn write_existing(path: &Path, value: &str) -> Result<(), CgroupError> {
    let wrap = |source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.into(),
        source,
    };
    let mut f = OpenOptions::new().write(true).open(path).map_err(wrap)?;
    f.write_all(value.as_bytes()).map_err(wrap)
}

fn unique_suffix() -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{seq}-{nanos:08x}{}", super::stale::tag())
}

/// The cgroupfs operations whose effects come from the kernel: making and removing a group
/// (the kernel fills and empties its directory), moving a process (the kernel updates both
/// groups' `cgroup.procs`) and switching a controller for a group's children (the kernel
/// rewrites `cgroup.subtree_control` and the children's files). [`REAL`] does them on the
/// real cgroupfs; tests on fake trees pass a fake kernel.
pub(crate) trait Cgroupfs: std::fmt::Debug + Sync {
    fn mkdir(&self, dir: &Path) -> io::Result<()>;
    fn rmdir(&self, dir: &Path) -> io::Result<()>;
    /// Moves process `pid` from group `from` into group `to`.
    fn move_process(&self, from: &Path, to: &Path, pid: u32) -> Result<(), CgroupError>;
    /// Writes `+memory` (`enable`) or `-memory` into `dir/cgroup.subtree_control`.
    fn set_memory_for_children(&self, dir: &Path, enable: bool) -> Result<(), CgroupError>;
}

/// The kernel's cgroupfs.
#[derive(Debug)]
pub(crate) struct RealCgroupfs;

pub(crate) static REAL: RealCgroupfs = RealCgroupfs;

impl Cgroupfs for RealCgroupfs {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        fs::remove_dir(dir)
    }

    fn move_process(&self, _from: &Path, to: &Path, pid: u32) -> Result<(), CgroupError> {
        write_existing(&to.join("cgroup.procs"), &pid.to_string())
    }

    fn set_memory_for_children(&self, dir: &Path, enable: bool) -> Result<(), CgroupError> {
        let value = if enable { "+memory" } else { "-memory" };
        write_existing(&dir.join(SUBTREE_CONTROL), value)
    }
}

const SUBTREE_CONTROL: &str = "cgroup.subtree_control";

/// What memspike changed in its own v2 group (`own`) so that the experiment's group gets a
/// memory controller, and has not undone yet. Undone by [`V2Changes::restore`]: explicitly
/// when the group is removed, else when it drops (every path: success, failure, Ctrl-C, OOM).
///
/// Concurrent memspikes: `-memory` is written only when `own` has no child group left but
/// the leaf, because disabling the controller would take it (and its limit) away from every
/// child. A group that needs it is another memspike's experiment, or anything else created
/// under `own` while memory was on; the controller is then left on and the log says so. A
/// non-root `own` that lists memory cannot hold processes, so a second memspike can only share
/// `own` when `own` is the root group; then the supervisor moves back all the same.
#[derive(Debug)]
pub(crate) struct V2Changes {
    fs: &'static dyn Cgroupfs,
    own: PathBuf,
    /// memspike wrote `+memory` into `own/cgroup.subtree_control`.
    enabled_memory: bool,
    /// memspike moved this process from `own` into this leaf, `memspike-<pid>-supervisor`.
    leaf: Option<PathBuf>,
}

impl V2Changes {
    fn none(fs: &'static dyn Cgroupfs, own: PathBuf) -> V2Changes {
        V2Changes {
            fs,
            own,
            enabled_memory: false,
            leaf: None,
        }
    }

    /// Undoes what is still changed, in the order the kernel allows: `-memory` (if no child
    /// group needs it), then the supervisor back into `own` (a non-root group lists no
    /// controller in its subtree_control while it holds processes), then the leaf removed.
    /// Idempotent; a step that fails is tried again at the next call.
    pub(crate) fn restore(&mut self) -> Result<(), CgroupError> {
        if self.enabled_memory {
            let others = child_groups(&self.own, self.leaf.as_deref());
            if others.is_empty() {
                self.fs.set_memory_for_children(&self.own, false)?;
                tracing::debug!(group = %self.own.display(), "wrote -memory back");
            } else {
                tracing::info!(group = %self.own.display(), others = ?others,
                    "left the memory controller on for the children of the group: other \
                     groups under it use it");
            }
            self.enabled_memory = false;
        }
        if let Some(leaf) = &self.leaf {
            self.fs.move_process(leaf, &self.own, std::process::id())?;
            match self.fs.rmdir(leaf) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CgroupError::Remove {
                        path: leaf.clone(),
                        attempts: 1,
                        tasks: read_procs(leaf),
                        source,
                    });
                }
            }
            tracing::debug!(leaf = %leaf.display(), "the supervisor is back in its group");
            self.leaf = None;
        }
        Ok(())
    }
}

impl Drop for V2Changes {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            tracing::warn!(error = %e, "could not undo what memspike changed in its own cgroup \
                (a supervisor leaf is removed by the next run once this process has exited)");
        }
    }
}

/// The child groups (directories) of `dir` but `except`.
fn child_groups(dir: &Path, except: Option<&Path>) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| except.is_none_or(|x| e.path() != x))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// v2: children of own group get the memory controller only if own group's
/// cgroup.subtree_control lists it, which a non-root group can only do without members.
/// Each change is recorded in `changes` as soon as it is made.
fn ensure_v2_memory_for_children(
    h: &Hierarchy,
    changes: &mut V2Changes,
) -> Result<(), CgroupError> {
    let own = h.own_dir();
    let subtree = own.join(SUBTREE_CONTROL);
    let text = fs::read_to_string(&subtree).map_err(|source| CgroupError::Read {
        path: subtree.clone(),
        source,
    })?;
    if text.split_whitespace().any(|c| c == "memory") {
        return Ok(());
    }
    let fs = changes.fs;
    let me = std::process::id();
    if h.v2_needs_leaf() && read_procs(&own).contains(&me) {
        let leaf = own.join(format!(
            "{NAME_PREFIX}{me}-supervisor{}",
            super::stale::tag()
        ));
        match fs.mkdir(&leaf) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Create { path: leaf, source }),
        }
        // Recorded before the move: restore() then moves back (a no-op if the move failed)
        // and removes the leaf.
        changes.leaf = Some(leaf.clone());
        fs.move_process(&own, &leaf, me)?;
        tracing::info!(leaf = %leaf.display(),
            "moved the supervisor into a leaf group so its group can delegate memory");
    }
    fs.set_memory_for_children(&own, true)
        .map_err(|e| CgroupError::NotDelegated {
            path: own.clone(),
            reason: match e {
                CgroupError::Write { source, .. }
                    if source.raw_os_error() == Some(Errno::EBUSY as i32) =>
                {
                    "EBUSY: the group holds processes (no internal processes rule)".to_owned()
                }
                other => other.to_string(),
            },
        })?;
    changes.enabled_memory = true;
    Ok(())
}

/// Pids listed in `dir/cgroup.procs` (empty when unreadable).
pub(crate) fn read_procs(dir: &Path) -> Vec<u32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| {
            t.split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills every member of `dir` and removes it, with bounded retries while the kernel still
/// reports it busy. A directory that is already gone counts as removed.
pub(crate) fn empty_and_rmdir(
    dir: &Path,
    v: Version,
    fs: &dyn Cgroupfs,
) -> Result<(), CgroupError> {
    let me = std::process::id();
    let mut delay = Duration::from_millis(2);
    let mut last = None;
    for attempt in 1..=REMOVE_ATTEMPTS {
        match fs.rmdir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(Errno::EBUSY as i32) => last = Some(e),
            Err(source) => {
                return Err(CgroupError::Remove {
                    path: dir.to_path_buf(),
                    attempts: attempt,
                    tasks: read_procs(dir),
                    source,
                });
            }
        }
        let tasks = read_procs(dir);
        if tasks.contains(&me) {
            return Err(CgroupError::OwnProcessInside {
                path: dir.to_path_buf(),
                pid: me,
            });
        }
        let kill_file = dir.join("cgroup.kill");
        if v == Version::V2
            && kill_file.exists()
            && let Err(e) = write_existing(&kill_file, "1")
        {
            tracing::debug!(error = %e, "cgroup.kill failed; falling back to kill(2)");
        }
        for pid in tasks {
            let Ok(pid) = i32::try_from(pid) else {
                continue;
            };
            // pid is a member of the group being removed and is not this process (checked
            // above).
            if let Err(e) = kill(Pid::from_raw(pid), Signal::SIGKILL) {
                tracing::debug!(pid, error = %e, "kill failed");
            }
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(100));
    }
    Err(CgroupError::Remove {
        path: dir.to_path_buf(),
        attempts: REMOVE_ATTEMPTS,
        tasks: read_procs(dir),
        source: last.unwrap_or_else(|| Errno::EBUSY.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discover::Hierarchy;
    use std::fs;

    const V1_MOUNTINFO: &str = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:19 - cgroup2 cgroup2 rw,nsdelegate
";
    const V2_MOUNTINFO: &str = "26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n";

    fn fake_v1(root: &Path) -> Hierarchy {
        let own = root.join("sys/fs/cgroup/memory/grp");
        fs::create_dir_all(&own).unwrap();
        fs::write(
            own.join("memory.memsw.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        fs::create_dir_all(root.join("sys/fs/cgroup/unified/grp")).unwrap();
        Hierarchy::from_parts(V1_MOUNTINFO, "4:memory:/grp\n0::/grp\n", root).unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn invalid_limits_are_rejected_before_anything_is_created() {
        let t = tempfile::tempdir().unwrap();
        let h = fake_v1(t.path());
        for limit in [0, 100, u64::MAX, MAX_LIMIT] {
            let err = Group::create(&h, limit).unwrap_err();
            assert!(matches!(err, CgroupError::InvalidLimit { .. }), "{err}");
            assert!(err.to_string().contains(&limit.to_string()), "{err}");
        }
        assert_eq!(entries(&h.own_dir()), vec!["memory.memsw.limit_in_bytes"]);
    }

    #[test]
    fn v1_fake_tree_gets_limit_memsw_and_twin() {
        let t = tempfile::tempdir().unwrap();
        let h = fake_v1(t.path());
        let g = Group::create(&h, 32 << 20).unwrap();
        assert!(
            g.name()
                .starts_with(&format!("memspike-{}-", std::process::id()))
        );
        assert_eq!(g.dir(), h.own_dir().join(g.name()));
        let read = |f: &str| fs::read_to_string(g.dir().join(f)).unwrap();
        assert_eq!(read("memory.limit_in_bytes"), "33554432");
        assert_eq!(read("memory.memsw.limit_in_bytes"), "33554432");
        let twin = t.path().join("sys/fs/cgroup/unified/grp").join(g.name());
        assert!(twin.is_dir());
        assert_eq!(
            g.procs_files(),
            vec![g.dir().join("cgroup.procs"), twin.join("cgroup.procs")]
        );
        assert_eq!(g.bpf_cgroup_id(), Some(fs::metadata(&twin).unwrap().ino()));
        assert_eq!(g.counters().limit_bytes, Some(32 << 20));
        // A fake tree holds regular files, which rmdir cannot remove; the tempdir does it.
        std::mem::forget(g);
    }

    #[test]
    fn failure_after_mkdir_leaves_nothing() {
        // v2 group without memory.swap.max (fake tree: the kernel would create it).
        let t = tempfile::tempdir().unwrap();
        let cg = t.path().join("sys/fs/cgroup");
        fs::create_dir_all(&cg).unwrap();
        fs::write(cg.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(cg.join("cgroup.subtree_control"), "memory\n").unwrap();
        let h = Hierarchy::from_parts(V2_MOUNTINFO, "0::/\n", t.path()).unwrap();
        let err = Group::create(&h, 32 << 20).unwrap_err();
        assert!(
            matches!(err, CgroupError::SwapCapUnavailable { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("memory.swap.max"), "{err}");
        assert_eq!(
            entries(&cg),
            vec!["cgroup.controllers", "cgroup.subtree_control"]
        );
    }

    /// A v2 host with `own` = `rel` under the mount: the root offers memory to its children,
    /// `own` (a systemd scope) has it in cgroup.controllers but not in subtree_control and this
    /// process as its only member, so memspike must move into a leaf first.
    fn fake_v2_scope(root: &Path, rel: &str) -> (PathBuf, Hierarchy) {
        let cg = root.join("sys/fs/cgroup");
        fs::create_dir_all(&cg).unwrap();
        fs::write(cg.join("cgroup.controllers"), "cpu io memory pids\n").unwrap();
        fs::write(cg.join("cgroup.subtree_control"), "cpu memory pids\n").unwrap();
        let own = cg.join(rel);
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("cgroup.type"), "domain\n").unwrap();
        fs::write(own.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        // A non-root group with members enables nothing for children (no internal processes).
        fs::write(own.join("cgroup.subtree_control"), "").unwrap();
        fs::write(
            own.join("cgroup.procs"),
            format!("{}\n", std::process::id()),
        )
        .unwrap();
        for (f, text) in crate::fakefs::MEMORY_FILES {
            fs::write(own.join(f), text).unwrap();
        }
        let h = Hierarchy::from_parts(V2_MOUNTINFO, &format!("0::/{rel}\n"), root).unwrap();
        (own, h)
    }

    #[test]
    fn v2_run_in_a_scope_leaves_the_tree_as_it_was() {
        use crate::fakefs::{FAKE_V2, snapshot};
        let t = tempfile::tempdir().unwrap();
        let (own, h) = fake_v2_scope(t.path(), "system.slice/run-u7.scope");
        assert!(h.v2_needs_leaf());
        let before = snapshot(t.path());
        let me = std::process::id().to_string();
        let leaf = own.join(format!("memspike-{me}-supervisor{}", crate::stale::tag()));

        let mut g = Group::create_on(&h, 32 << 20, &FAKE_V2).unwrap();
        // During the run: the supervisor in its leaf, memory on for the children, the limit set.
        let read = |p: PathBuf| fs::read_to_string(p).unwrap();
        assert_eq!(read(leaf.join("cgroup.procs")), format!("{me}\n"));
        assert_eq!(read(own.join("cgroup.procs")), "");
        assert_eq!(read(own.join("cgroup.subtree_control")), "memory\n");
        assert_eq!(read(g.dir().join("memory.max")), "33554432");
        assert_eq!(read(g.dir().join("memory.swap.max")), "0");
        assert_eq!(g.counters().limit_bytes, Some(32 << 20));

        g.remove().unwrap();
        assert_eq!(snapshot(t.path()), before);
        g.remove().unwrap();
        drop(g);
        assert_eq!(snapshot(t.path()), before);
    }

    #[test]
    fn v2_changes_are_undone_when_the_group_drops_without_remove() {
        // The Ctrl-C / OOM / error paths: the session drops the group.
        use crate::fakefs::{FAKE_V2, snapshot};
        let t = tempfile::tempdir().unwrap();
        let (_, h) = fake_v2_scope(
            t.path(),
            "user.slice/user-1000.slice/user@1000.service/app.slice/run-u3.scope",
        );
        let before = snapshot(t.path());
        let g = Group::create_on(&h, 16 << 20, &FAKE_V2).unwrap();
        assert_ne!(snapshot(t.path()), before);
        drop(g);
        assert_eq!(snapshot(t.path()), before);
    }

    #[test]
    fn v2_delegated_group_that_already_lists_memory_is_left_alone() {
        // A user's delegated slice whose subtree_control already offers memory (set up by
        // the user, memspike running from a leaf below it): memspike writes only its group.
        use crate::fakefs::{FAKE_V2, snapshot};
        let t = tempfile::tempdir().unwrap();
        let rel = "user.slice/user-1000.slice/user@1000.service/app.slice/memspike.slice";
        let (own, _) = fake_v2_scope(t.path(), rel);
        fs::write(own.join("cgroup.procs"), "").unwrap();
        fs::write(own.join("cgroup.subtree_control"), "memory\n").unwrap();
        let h = Hierarchy::from_parts(V2_MOUNTINFO, &format!("0::/{rel}\n"), t.path()).unwrap();
        assert!(!h.v2_needs_leaf());
        let before = snapshot(t.path());
        let mut g = Group::create_on(&h, 32 << 20, &FAKE_V2).unwrap();
        let mut changed: Vec<_> = snapshot(t.path())
            .into_iter()
            .filter(|(k, v)| before.get(k) != Some(v))
            .map(|(k, _)| k)
            .collect();
        changed.retain(|k| !k.starts_with(g.dir().strip_prefix(t.path()).unwrap()));
        assert_eq!(
            changed,
            Vec::<PathBuf>::new(),
            "only the group itself is new"
        );
        g.remove().unwrap();
        assert_eq!(snapshot(t.path()), before);
    }

    #[test]
    fn v2_failed_creation_undoes_the_leaf() {
        use crate::fakefs::{FAKE_V2, snapshot};
        let t = tempfile::tempdir().unwrap();
        let (own, h) = fake_v2_scope(t.path(), "system.slice/run-u8.scope");
        // Memory taken away between discovery and creation: "+memory" fails (ENOENT).
        fs::write(own.join("cgroup.controllers"), "cpu pids\n").unwrap();
        let before = snapshot(t.path());
        let err = Group::create_on(&h, 32 << 20, &FAKE_V2).unwrap_err();
        assert!(matches!(err, CgroupError::NotDelegated { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("systemd-run --scope -p Delegate=yes"),
            "{err}"
        );
        assert_eq!(snapshot(t.path()), before);
    }

    #[test]
    fn v2_memory_stays_on_while_another_memspike_uses_it() {
        // Two memspikes in the root group (the only group that may hold processes and list
        // memory in its subtree_control at once).
        use crate::fakefs::{FAKE_V2, snapshot};
        let t = tempfile::tempdir().unwrap();
        let cg = t.path().join("sys/fs/cgroup");
        fs::create_dir_all(&cg).unwrap();
        fs::write(cg.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(cg.join("cgroup.subtree_control"), "").unwrap();
        fs::write(cg.join("cgroup.procs"), "1\n").unwrap();
        let h = Hierarchy::from_parts(V2_MOUNTINFO, "0::/\n", t.path()).unwrap();
        let before = snapshot(t.path());

        let mut first = Group::create_on(&h, 32 << 20, &FAKE_V2).unwrap();
        let mut second = Group::create_on(&h, 48 << 20, &FAKE_V2).unwrap();
        first.remove().unwrap();
        // The second group keeps its controller and its limit.
        assert_eq!(
            fs::read_to_string(cg.join("cgroup.subtree_control")).unwrap(),
            "memory\n"
        );
        assert_eq!(second.counters().limit_bytes, Some(48 << 20));
        second.remove().unwrap();
        // Left on: the memspike that enabled it was not the last one out.
        assert_eq!(
            fs::read_to_string(cg.join("cgroup.subtree_control")).unwrap(),
            "memory\n"
        );

        // In the other order the one that enabled it leaves last and turns it off.
        fs::write(cg.join("cgroup.subtree_control"), "").unwrap();
        let mut first = Group::create_on(&h, 32 << 20, &FAKE_V2).unwrap();
        let mut second = Group::create_on(&h, 48 << 20, &FAKE_V2).unwrap();
        second.remove().unwrap();
        first.remove().unwrap();
        assert_eq!(snapshot(t.path()), before);
    }

    #[test]
    fn joiner_writes_zero_into_each_file() {
        let t = tempfile::tempdir().unwrap();
        let files = vec![t.path().join("a"), t.path().join("b")];
        for f in &files {
            fs::write(f, "").unwrap();
        }
        Joiner::new(&files).unwrap().join_current().unwrap();
        for f in &files {
            assert_eq!(fs::read_to_string(f).unwrap(), "0");
        }
        let missing = Joiner::new(&[t.path().join("nope")])
            .unwrap()
            .join_current();
        assert_eq!(missing, Err(Errno::ENOENT as i32));
    }

    #[test]
    fn an_inherited_group_is_joined_through_its_twin_only_and_never_removed() {
        let t = tempfile::tempdir().unwrap();
        let h = fake_v1(t.path());
        let before = entries(&h.own_dir());
        let mut g = Group::inherit(&h);
        assert!(g.inherited());
        assert_eq!((g.dir(), g.name()), (h.own_dir().as_path(), "grp"));
        let twin = g.v2_twin.clone().expect("a v2 twin under the own v2 group");
        assert_eq!(twin.parent(), h.v2_twin_parent());
        assert_eq!(g.procs_files(), vec![twin.join("cgroup.procs")]);
        assert_eq!(g.bpf_cgroup_id(), Some(fs::metadata(&twin).unwrap().ino()));
        g.remove().unwrap();
        assert!(!twin.exists(), "the twin is memspike's and goes");
        assert_eq!(
            entries(&h.own_dir()),
            before,
            "the inherited group is untouched"
        );
    }

    #[test]
    fn remove_is_idempotent_and_accepts_missing_dirs() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("memspike-1-x");
        fs::create_dir(&dir).unwrap();
        let mut g = Group {
            name: "memspike-1-x".into(),
            dir: dir.clone(),
            version: Version::V1,
            v2_twin: Some(t.path().join("gone")),
            inherited: false,
            removed: false,
            v2_changes: V2Changes::none(&REAL, t.path().to_path_buf()),
            fs: &REAL,
        };
        g.remove().unwrap();
        assert!(!dir.exists());
        g.remove().unwrap();
    }
}
