//! Discovery and preflight: finds the memory controller's hierarchy (v1 or v2) from
//! `/proc/self/mountinfo`, this process's group in it from `/proc/self/cgroup` (both parsed by
//! the `procfs` crate), an optional cgroup2 mount on v1 hosts (for the eBPF cgroup id), and
//! checks that memspike can create a limited, swap-capped group there. Each failure is one
//! [`PreflightError`] whose message says what is missing and how to fix it.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use procfs::process::{MountInfo, MountInfos, Process};
use procfs::{FromBufRead, ProcError, ProcessCGroup, ProcessCGroups};
use thiserror::Error;

use super::{V1_KERNEL_FIX, Version};

/// Why memspike cannot run its experiment on this machine; every message says how to fix it.
#[derive(Debug, Error)]
pub enum PreflightError {
    #[error(
        "memspike cannot create memory cgroups in {dir}: {source}; it needs write access to \
         that directory (run it with `sudo`, or delegate the group to this user), or run it \
         inside an existing limit with --inherit",
        dir = dir.display()
    )]
    CannotCreateGroups {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "no memory cgroup controller: {detail}; the kernel was booted without it: {fix}",
        fix = V1_KERNEL_FIX
    )]
    NoMemoryController { detail: String },

    /// v1 without `memory.memsw.*`, v2 without `memory.swap.max`.
    #[error("{}", no_swap_message(*version, file))]
    NoSwapAccounting { version: Version, file: PathBuf },

    #[error(
        "cgroup v2 memory controller is not delegated to {group}: {reason}. Fix: enable it from \
         the root down with `echo +memory | sudo tee <ancestor>/cgroup.subtree_control` for \
         every ancestor of {group}; note that a v2 group that holds processes cannot enable \
         controllers for its children, so run memspike in a scope of its own, e.g. \
         `sudo systemd-run --scope -p Delegate=yes -- memspike ...` (memspike then moves itself \
         into a leaf group), or from a group whose cgroup.subtree_control already lists memory",
        group = group.display()
    )]
    V2NotDelegated { group: PathBuf, reason: String },

    #[error("cannot read {path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("unexpected contents in {file}: {detail}")]
    Parse { file: String, detail: String },
}

/// What the hierarchy is discovered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Creating a limited, swap-capped group under this process's group.
    Create,
    /// Running inside this process's group as it is (`--inherit`).
    Inherit,
}

/// Where the memory controller lives and where this process sits in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    version: Version,
    /// Mount point of the memory hierarchy (v1: the `memory` mount; v2: the cgroup2 mount),
    /// already prefixed with the filesystem root.
    mount: PathBuf,
    /// This process's group, relative to `mount` (empty for the mount's root).
    own_rel: PathBuf,
    /// On v1 hosts that also mount cgroup2: this process's v2 group directory, the parent of
    /// the experiment group's v2 twin. `None` on pure v2 hosts (the group itself is v2).
    v2_twin_parent: Option<PathBuf>,
    /// v2 only: memory is not yet in own group's `cgroup.subtree_control` and this process is
    /// the only member, so [`super::Group::create`] moves it into a leaf first.
    v2_needs_leaf: bool,
}

fn no_swap_message(version: Version, file: &Path) -> String {
    match version {
        Version::V1 => format!(
            "cgroup v1 swap accounting is off: {} does not exist, so memspike cannot stop the \
             experiment from using swap; {V1_KERNEL_FIX}",
            file.display()
        ),
        Version::V2 => format!(
            "cgroup v2 swap accounting is off: {} does not exist, so memspike cannot set \
             memory.swap.max to 0; the kernel has swap accounting disabled (CONFIG_MEMCG_SWAP \
             off, or `swapaccount=0` / `cgroup.memory=noswap` on its command line): remove that \
             option from GRUB_CMDLINE_LINUX in /etc/default/grub, run `sudo update-grub`, then \
             reboot",
            file.display()
        ),
    }
}

/// Fails with [`PreflightError::CannotCreateGroups`] unless this process may create groups in
/// `dir` (write access as the kernel judges it: ownership, mode, CAP_DAC_OVERRIDE).
pub fn check_can_create(dir: &Path) -> Result<(), PreflightError> {
    crate::capability::can_write(dir).map_err(|source| PreflightError::CannotCreateGroups {
        dir: dir.to_path_buf(),
        source,
    })
}

impl Hierarchy {
    /// Reads /proc/self/mountinfo and /proc/self/cgroup and checks the preconditions.
    pub fn discover() -> Result<Hierarchy, PreflightError> {
        let (mounts, memberships) = own_mounts_and_groups()?;
        let h = Self::from_parsed(&mounts, &memberships, Path::new("/"), Use::Create)?;
        check_can_create(&h.own_dir())?;
        Ok(h)
    }

    /// `--inherit`: where this process lives, without the checks for creating a limited group
    /// (root, swap accounting, v2 delegation): nothing is created in the memory hierarchy.
    pub fn discover_inherited() -> Result<Hierarchy, PreflightError> {
        let (mounts, memberships) = own_mounts_and_groups()?;
        Self::from_parsed(&mounts, &memberships, Path::new("/"), Use::Inherit)
    }

    /// The same from given texts of /proc/self/mountinfo and /proc/self/cgroup (parsed by
    /// `procfs`, as the real files are) and a filesystem root prefix, for tests with fake trees.
    pub fn from_parts(
        mountinfo: &str,
        proc_self_cgroup: &str,
        fs_root: &Path,
    ) -> Result<Hierarchy, PreflightError> {
        Self::from_parts_for(mountinfo, proc_self_cgroup, fs_root, Use::Create)
    }

    /// [`Hierarchy::from_parts`], checking what `purpose` needs.
    pub(crate) fn from_parts_for(
        mountinfo: &str,
        proc_self_cgroup: &str,
        fs_root: &Path,
        purpose: Use,
    ) -> Result<Hierarchy, PreflightError> {
        let mounts = MountInfos::from_buf_read(mountinfo.as_bytes())
            .map_err(|e| proc_error(MOUNTINFO, e))?;
        let memberships = ProcessCGroups::from_buf_read(proc_self_cgroup.as_bytes())
            .map_err(|e| proc_error(PROC_CGROUP, e))?;
        Self::from_parsed(&mounts, &memberships, fs_root, purpose)
    }

    /// [`Hierarchy::from_parts_for`] from what `procfs` parsed.
    fn from_parsed(
        mount_infos: &MountInfos,
        memberships: &ProcessCGroups,
        fs_root: &Path,
        purpose: Use,
    ) -> Result<Hierarchy, PreflightError> {
        let create = purpose == Use::Create;
        let mounts: Vec<Mount> = mount_infos.iter().map(Mount::from).collect();
        let memberships: &[ProcessCGroup] = &memberships.0;

        let v2_mount = mounts.iter().find(|m| m.fs_type == "cgroup2");
        let v2_path = memberships
            .iter()
            .find(|m| m.hierarchy == 0 && m.controllers.is_empty())
            .map(|m| m.pathname.as_str());

        let v1_memory = mounts
            .iter()
            .find(|m| m.fs_type == "cgroup" && m.super_opts.iter().any(|o| o == "memory"));

        if let Some(mount) = v1_memory {
            let path = memberships
                .iter()
                .find(|m| m.controllers.iter().any(|c| c == "memory"))
                .map(|m| m.pathname.as_str())
                .ok_or_else(|| PreflightError::Parse {
                    file: "/proc/self/cgroup".into(),
                    detail: "a v1 memory hierarchy is mounted but this process has no `memory` \
                             line"
                        .into(),
                })?;
            let own_rel = relative_to_mount(mount, path)?;
            let mount_dir = under_root(fs_root, &mount.mount_point);
            let own = mount_dir.join(&own_rel);
            require_dir(&own)?;
            let memsw = own.join("memory.memsw.limit_in_bytes");
            if create && !memsw.exists() {
                return Err(PreflightError::NoSwapAccounting {
                    version: Version::V1,
                    file: memsw,
                });
            }
            let v2_twin_parent = match (v2_mount, v2_path) {
                (Some(m), Some(p)) => match relative_to_mount(m, p) {
                    Ok(rel) => {
                        let dir = under_root(fs_root, &m.mount_point).join(rel);
                        if dir.is_dir() {
                            Some(dir)
                        } else {
                            tracing::warn!(dir = %dir.display(),
                                "own cgroup v2 group not found; no cgroup id for eBPF filtering");
                            None
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring the cgroup2 mount");
                        None
                    }
                },
                _ => None,
            };
            return Ok(Hierarchy {
                version: Version::V1,
                mount: mount_dir,
                own_rel,
                v2_twin_parent,
                v2_needs_leaf: false,
            });
        }

        let Some(mount) = v2_mount else {
            return Err(PreflightError::NoMemoryController {
                detail: "/proc/self/mountinfo has neither a cgroup v1 hierarchy with the memory \
                         controller nor a cgroup2 mount"
                    .into(),
            });
        };
        let mount_dir = under_root(fs_root, &mount.mount_point);
        let root_controllers = mount_dir.join("cgroup.controllers");
        if !read_words(&root_controllers)?.iter().any(|c| c == "memory") {
            return Err(PreflightError::NoMemoryController {
                detail: format!(
                    "{} does not list `memory` and no v1 memory hierarchy is mounted",
                    root_controllers.display()
                ),
            });
        }
        let path = v2_path.ok_or_else(|| PreflightError::Parse {
            file: "/proc/self/cgroup".into(),
            detail: "a cgroup2 hierarchy is mounted but there is no `0::` line".into(),
        })?;
        let own_rel = relative_to_mount(mount, path)?;
        let own = mount_dir.join(&own_rel);
        require_dir(&own)?;

        // The real root group has no cgroup.type and no internal-process constraint.
        let is_root = !own.join("cgroup.type").exists();
        let mut v2_needs_leaf = false;
        if create && !is_root {
            let controllers = own.join("cgroup.controllers");
            if !read_words(&controllers)?.iter().any(|c| c == "memory") {
                return Err(PreflightError::V2NotDelegated {
                    group: own,
                    reason: format!(
                        "{} does not list `memory` (its parent's cgroup.subtree_control lacks \
                         it)",
                        controllers.display()
                    ),
                });
            }
            let swap_max = own.join("memory.swap.max");
            if !swap_max.exists() {
                return Err(PreflightError::NoSwapAccounting {
                    version: Version::V2,
                    file: swap_max,
                });
            }
            let subtree = own.join("cgroup.subtree_control");
            if !read_words(&subtree)?.iter().any(|c| c == "memory") {
                let procs_file = own.join("cgroup.procs");
                let procs = read_words(&procs_file)?;
                let me = std::process::id().to_string();
                let others: Vec<&String> = procs.iter().filter(|p| **p != me).collect();
                if !others.is_empty() {
                    return Err(PreflightError::V2NotDelegated {
                        reason: format!(
                            "{} lacks `memory` and it cannot be enabled because the group also \
                             holds other processes ({})",
                            subtree.display(),
                            others
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        group: own,
                    });
                }
                v2_needs_leaf = !procs.is_empty();
            }
        }
        Ok(Hierarchy {
            version: Version::V2,
            mount: mount_dir,
            own_rel,
            v2_twin_parent: None,
            v2_needs_leaf,
        })
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Absolute directory of the group this process runs in (the parent of experiment groups).
    pub fn own_dir(&self) -> PathBuf {
        self.mount.join(&self.own_rel)
    }

    /// Mount point of the memory hierarchy.
    pub fn mount_point(&self) -> &Path {
        &self.mount
    }

    /// On v1 hosts with a cgroup2 mount: this process's v2 group, parent of the v2 twins.
    pub fn v2_twin_parent(&self) -> Option<&Path> {
        self.v2_twin_parent.as_deref()
    }

    /// v2: whether creating a group first moves this process into a leaf child of own_dir().
    pub fn v2_needs_leaf(&self) -> bool {
        self.v2_needs_leaf
    }
}

const MOUNTINFO: &str = "/proc/self/mountinfo";
const PROC_CGROUP: &str = "/proc/self/cgroup";

/// This process's mounts and cgroup memberships, as `procfs` reads them.
fn own_mounts_and_groups() -> Result<(MountInfos, ProcessCGroups), PreflightError> {
    let me = Process::myself().map_err(|e| proc_error("/proc/self", e))?;
    let mounts = me.mountinfo().map_err(|e| proc_error(MOUNTINFO, e))?;
    let memberships = me.cgroups().map_err(|e| proc_error(PROC_CGROUP, e))?;
    Ok((mounts, memberships))
}

/// A `procfs` error as ours: what could not be read stays an I/O error, the rest is a text
/// that did not parse.
fn proc_error(file: &str, e: ProcError) -> PreflightError {
    let source = match e {
        ProcError::Io(source, _) => source,
        ProcError::PermissionDenied(_) => io::ErrorKind::PermissionDenied.into(),
        ProcError::NotFound(_) => io::ErrorKind::NotFound.into(),
        other => {
            return PreflightError::Parse {
                file: file.to_owned(),
                detail: other.to_string(),
            };
        }
    };
    PreflightError::Io {
        path: PathBuf::from(file),
        source,
    }
}

fn read_text(path: &Path) -> Result<String, PreflightError> {
    fs::read_to_string(path).map_err(|source| PreflightError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn read_words(path: &Path) -> Result<Vec<String>, PreflightError> {
    Ok(read_text(path)?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
}

fn require_dir(dir: &Path) -> Result<(), PreflightError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(PreflightError::Io {
            path: dir.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::NotADirectory,
                "own cgroup is not a directory",
            ),
        }),
        Err(source) => Err(PreflightError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// `fs_root` + an absolute path from mountinfo.
fn under_root(fs_root: &Path, abs: &Path) -> PathBuf {
    fs_root.join(abs.strip_prefix("/").unwrap_or(abs))
}

/// The group path from /proc/self/cgroup, relative to what `mount` shows of the hierarchy.
fn relative_to_mount(mount: &Mount, cgroup_path: &str) -> Result<PathBuf, PreflightError> {
    let path = Path::new(cgroup_path);
    path.strip_prefix(&mount.root)
        .map(Path::to_path_buf)
        .map_err(|_| PreflightError::Parse {
            file: "/proc/self/cgroup".into(),
            detail: format!(
                "own group {cgroup_path} is outside the part of the hierarchy mounted at {} \
             (mount root {})",
                mount.mount_point.display(),
                mount.root.display()
            ),
        })
}

/// One mount of /proc/self/mountinfo, the fields memspike needs, unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub root: PathBuf,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_opts: Vec<String>,
}

impl From<&MountInfo> for Mount {
    fn from(m: &MountInfo) -> Mount {
        Mount {
            root: unescape_octal(OsStr::new(&m.root)),
            mount_point: unescape_octal(m.mount_point.as_os_str()),
            fs_type: m.fs_type.clone(),
            super_opts: m.super_options.keys().cloned().collect(),
        }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`; `procfs` leaves the escapes in
/// its paths (eminence/procfs#262), so they are undone here.
fn unescape_octal(s: &OsStr) -> PathBuf {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// This machine's layout: tmpfs at /sys/fs/cgroup, v1 memory, cgroup2 at .../unified.
    const V1_MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime shared:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
31 23 0:28 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:19 - cgroup2 cgroup2 rw,nsdelegate
";
    const V1_CGROUP: &str = "\
9:name=systemd:/
4:memory:/process_api/abc
1:cpu:/
0::/
";
    const V2_MOUNTINFO: &str = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
26 22 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    pub(crate) fn fake_v1(root: &Path, with_memsw: bool) -> PathBuf {
        let own = root.join("sys/fs/cgroup/memory/process_api/abc");
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        if with_memsw {
            fs::write(
                own.join("memory.memsw.limit_in_bytes"),
                "9223372036854771712\n",
            )
            .unwrap();
        }
        fs::create_dir_all(root.join("sys/fs/cgroup/unified")).unwrap();
        own
    }

    pub(crate) fn fake_v2(
        root: &Path,
        own_controllers: &str,
        subtree: &str,
        procs: &str,
    ) -> PathBuf {
        let cg = root.join("sys/fs/cgroup");
        let own = cg.join("system.slice/memspike.scope");
        fs::create_dir_all(&own).unwrap();
        fs::write(
            cg.join("cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        fs::write(own.join("cgroup.type"), "domain\n").unwrap();
        fs::write(own.join("cgroup.controllers"), own_controllers).unwrap();
        fs::write(own.join("cgroup.subtree_control"), subtree).unwrap();
        fs::write(own.join("cgroup.procs"), procs).unwrap();
        fs::write(own.join("memory.swap.max"), "max\n").unwrap();
        own
    }

    const V2_CGROUP: &str = "0::/system.slice/memspike.scope\n";

    #[test]
    fn v1_layout_like_this_machine() {
        let t = tempfile::tempdir().unwrap();
        let own = fake_v1(t.path(), true);
        let h = Hierarchy::from_parts(V1_MOUNTINFO, V1_CGROUP, t.path()).unwrap();
        assert_eq!(h.version(), Version::V1);
        assert_eq!(h.own_dir(), own);
        assert_eq!(h.mount_point(), t.path().join("sys/fs/cgroup/memory"));
        assert_eq!(
            h.v2_twin_parent(),
            Some(t.path().join("sys/fs/cgroup/unified").as_path())
        );
        assert!(!h.v2_needs_leaf());
    }

    #[test]
    fn v1_without_memsw_is_no_swap_accounting() {
        let t = tempfile::tempdir().unwrap();
        fake_v1(t.path(), false);
        let err = Hierarchy::from_parts(V1_MOUNTINFO, V1_CGROUP, t.path()).unwrap_err();
        assert!(
            matches!(
                err,
                PreflightError::NoSwapAccounting {
                    version: Version::V1,
                    ..
                }
            ),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("memory.memsw.limit_in_bytes"), "{msg}");
        assert!(msg.contains("cgroup_enable=memory swapaccount=1"), "{msg}");
        assert!(
            msg.contains("GRUB_CMDLINE_LINUX") && msg.contains("update-grub"),
            "{msg}"
        );
        assert!(msg.contains("reboot"), "{msg}");
    }

    #[test]
    fn v1_mount_root_is_stripped() {
        // Inside a container the mount shows only a subtree of the hierarchy.
        let t = tempfile::tempdir().unwrap();
        let mi = "35 31 0:32 /docker/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let own = t.path().join("sys/fs/cgroup/memory/inner");
        fs::create_dir_all(&own).unwrap();
        fs::write(own.join("memory.memsw.limit_in_bytes"), "1\n").unwrap();
        let h = Hierarchy::from_parts(mi, "4:memory:/docker/c1/inner\n", t.path()).unwrap();
        assert_eq!(h.own_dir(), own);
        assert_eq!(h.v2_twin_parent(), None);
    }

    #[test]
    fn missing_memory_controller() {
        let t = tempfile::tempdir().unwrap();
        let mi = "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        let err = Hierarchy::from_parts(mi, "1:cpu:/\n", t.path()).unwrap_err();
        assert!(
            matches!(err, PreflightError::NoMemoryController { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("cgroup_enable=memory"), "{err}");

        // v2 mount whose root does not offer memory.
        let cg = t.path().join("sys/fs/cgroup");
        fs::create_dir_all(&cg).unwrap();
        fs::write(cg.join("cgroup.controllers"), "cpu io pids\n").unwrap();
        let err = Hierarchy::from_parts(V2_MOUNTINFO, "0::/\n", t.path()).unwrap_err();
        assert!(
            matches!(err, PreflightError::NoMemoryController { .. }),
            "{err}"
        );
    }

    #[test]
    fn pure_v2_layout() {
        let t = tempfile::tempdir().unwrap();
        let own = fake_v2(t.path(), "cpu memory pids\n", "memory\n", "");
        let h = Hierarchy::from_parts(V2_MOUNTINFO, V2_CGROUP, t.path()).unwrap();
        assert_eq!(h.version(), Version::V2);
        assert_eq!(h.own_dir(), own);
        assert_eq!(h.v2_twin_parent(), None);
        assert!(!h.v2_needs_leaf());
    }

    #[test]
    fn v2_only_member_needs_a_leaf() {
        let t = tempfile::tempdir().unwrap();
        let me = format!("{}\n", std::process::id());
        fake_v2(t.path(), "memory\n", "", &me);
        let h = Hierarchy::from_parts(V2_MOUNTINFO, V2_CGROUP, t.path()).unwrap();
        assert!(h.v2_needs_leaf());
    }

    #[test]
    fn v2_without_memory_in_parent_controllers() {
        let t = tempfile::tempdir().unwrap();
        fake_v2(t.path(), "cpu pids\n", "", "");
        let err = Hierarchy::from_parts(V2_MOUNTINFO, V2_CGROUP, t.path()).unwrap_err();
        assert!(
            matches!(err, PreflightError::V2NotDelegated { .. }),
            "{err}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("+memory") && msg.contains("cgroup.subtree_control"),
            "{msg}"
        );
        assert!(msg.contains("systemd-run --scope -p Delegate=yes"), "{msg}");
    }

    #[test]
    fn v2_group_with_other_processes_cannot_delegate() {
        let t = tempfile::tempdir().unwrap();
        fake_v2(t.path(), "memory\n", "", "1\n4242\n");
        let err = Hierarchy::from_parts(V2_MOUNTINFO, V2_CGROUP, t.path()).unwrap_err();
        assert!(
            matches!(err, PreflightError::V2NotDelegated { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("4242"), "{err}");
    }

    #[test]
    fn v2_without_swap_max() {
        let t = tempfile::tempdir().unwrap();
        let own = fake_v2(t.path(), "memory\n", "memory\n", "");
        fs::remove_file(own.join("memory.swap.max")).unwrap();
        let err = Hierarchy::from_parts(V2_MOUNTINFO, V2_CGROUP, t.path()).unwrap_err();
        assert!(
            matches!(
                err,
                PreflightError::NoSwapAccounting {
                    version: Version::V2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("memory.swap.max"), "{err}");
    }

    #[test]
    fn inherit_needs_neither_swap_accounting_nor_delegation() {
        let t = tempfile::tempdir().unwrap();
        let own = fake_v1(t.path(), false);
        let h = Hierarchy::from_parts_for(V1_MOUNTINFO, V1_CGROUP, t.path(), Use::Inherit).unwrap();
        assert_eq!(h.own_dir(), own);

        // A v2 pod's group: memory not delegated further, other processes inside.
        let t = tempfile::tempdir().unwrap();
        let own = fake_v2(t.path(), "memory\n", "", "1\n4242\n");
        let h = Hierarchy::from_parts_for(V2_MOUNTINFO, V2_CGROUP, t.path(), Use::Inherit).unwrap();
        assert_eq!((h.version(), h.own_dir()), (Version::V2, own));
        assert!(!h.v2_needs_leaf());
    }

    #[test]
    fn creating_groups_needs_write_access_and_says_where() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        assert!(check_can_create(t.path()).is_ok());
        let ro = t.path().join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        let caps = crate::capability::Caps::effective().unwrap();
        match check_can_create(&ro) {
            // Root with CAP_DAC_OVERRIDE writes anywhere: the kernel's answer, not the mode's.
            Ok(()) => assert!(caps.has(crate::capability::Capability::CAP_DAC_OVERRIDE)),
            Err(e) => {
                let msg = e.to_string();
                assert!(msg.contains(&ro.display().to_string()), "{msg}");
                assert!(
                    msg.contains("write access") && msg.contains("--inherit"),
                    "{msg}"
                );
            }
        }
        let err = check_can_create(&t.path().join("missing")).unwrap_err();
        assert!(
            matches!(err, PreflightError::CannotCreateGroups { .. }),
            "{err}"
        );
    }

    #[test]
    fn mountinfo_parsing() {
        let m = Mount::from(
            &MountInfo::from_line(
                "41 31 0:38 /a\\134b /sys/fs/cgroup/uni\\040fied rw,relatime shared:19 master:2 - cgroup2 cgroup2 rw",
            )
            .unwrap(),
        );
        assert_eq!(m.mount_point, PathBuf::from("/sys/fs/cgroup/uni fied"));
        assert_eq!(m.root, PathBuf::from("/a\\b"));
        assert_eq!(m.fs_type, "cgroup2");
        assert!(MountInfo::from_line("garbage").is_err());
        let ms = ProcessCGroups::from_buf_read("4:memory:/a:b\n0::/\n".as_bytes()).unwrap();
        assert_eq!(ms.0[0].pathname, "/a:b");
        assert_eq!(ms.0[1].controllers, Vec::<String>::new());
        let err = Hierarchy::from_parts("", "nonsense\n", Path::new("/")).unwrap_err();
        assert!(
            matches!(&err, PreflightError::Parse { file, .. } if file == PROC_CGROUP),
            "{err}"
        );
    }
}
