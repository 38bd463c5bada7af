//! `--inherit`: the memory limit this process already lives under. The effective limit is the
//! smallest one on the path from this process's group up to the hierarchy's mount point — v1
//! `memory.limit_in_bytes` of each group and the leaf's `hierarchical_memory_limit` in
//! `memory.stat` (which also sees ancestors above a container's mount root), v2 `memory.max` of
//! each group — and the same for swap (v1 `memory.memsw.limit_in_bytes` /
//! `hierarchical_memsw_limit`, v2 `memory.swap.max`). Each figure names the file it came from.
//! Pure reads of a tree under a given mount, so tests drive fake trees.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{Hierarchy, Version};

/// From here up a value limits nothing: v1 writes "unlimited" as 9223372036854771712
/// (PAGE_COUNTER_MAX in bytes), v2 as `max`.
const UNLIMITED_FROM: u64 = 1 << 62;

#[derive(Debug, Error)]
pub enum InheritError {
    #[error(
        "--inherit: no memory limit on {group} or any group above it (checked {checked}); run \
         memspike inside a limited group (a container or pod with a memory limit, or \
         `systemd-run --scope -p MemoryMax=64M -- memspike ...`), or leave --inherit out and \
         give --limit",
        group = group.display()
    )]
    NoLimit { group: PathBuf, checked: String },

    #[error("--inherit: reading {path}: {source}", path = path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The limit a process in a group lives under, and where each part of it is set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EffectiveLimit {
    /// The smallest memory limit along the path, in bytes.
    pub limit: u64,
    /// The file that sets it.
    pub source: PathBuf,
    /// Swap the group may use beyond `limit` (v2: the smallest `memory.swap.max`; v1: the
    /// smallest memory+swap limit minus `limit`); `None` when nothing caps it.
    pub swap: Option<u64>,
    /// The file that sets `swap`.
    pub swap_source: Option<PathBuf>,
}

/// The smallest bound seen so far and its file.
#[derive(Default)]
struct Smallest(Option<(u64, PathBuf)>);

impl Smallest {
    fn offer(&mut self, value: Option<u64>, file: PathBuf) {
        if let Some(v) = value.filter(|v| *v < UNLIMITED_FROM)
            && self.0.as_ref().is_none_or(|(best, _)| v < *best)
        {
            self.0 = Some((v, file));
        }
    }
}

/// The effective limit of the group `h` says this process lives in.
pub fn effective_limit(h: &Hierarchy) -> Result<EffectiveLimit, InheritError> {
    effective_limit_of(&h.own_dir(), h.mount_point(), h.version())
}

/// The effective limit of `group`, walking up to (and including) `mount`.
pub fn effective_limit_of(
    group: &Path,
    mount: &Path,
    version: Version,
) -> Result<EffectiveLimit, InheritError> {
    let (mem_file, swap_file) = match version {
        Version::V1 => ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
        Version::V2 => ("memory.max", "memory.swap.max"),
    };
    let mut mem = Smallest::default();
    let mut swap = Smallest::default();
    let mut checked = Vec::new();
    let mut dir = Some(group);
    while let Some(d) = dir {
        let file = d.join(mem_file);
        mem.offer(read_limit(&file)?, file.clone());
        checked.push(file);
        let file = d.join(swap_file);
        swap.offer(read_limit(&file)?, file);
        dir = (d != mount).then(|| d.parent()).flatten();
    }
    if version == Version::V1 {
        let stat = group.join("memory.stat");
        if let Some(text) = read_optional(&stat)? {
            mem.offer(stat_field(&text, "hierarchical_memory_limit"), stat.clone());
            swap.offer(stat_field(&text, "hierarchical_memsw_limit"), stat.clone());
            checked.push(stat);
        }
    }
    let Some((limit, source)) = mem.0 else {
        return Err(InheritError::NoLimit {
            group: group.to_path_buf(),
            checked: checked
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let (swap, swap_source) = match (swap.0, version) {
        (None, _) => (None, None),
        (Some((v, file)), Version::V2) => (Some(v), Some(file)),
        // v1 caps memory and swap together: what is left for swap is the difference.
        (Some((memsw, file)), Version::V1) => (Some(memsw.saturating_sub(limit)), Some(file)),
    };
    Ok(EffectiveLimit {
        limit,
        source,
        swap,
        swap_source,
    })
}

/// A limit file: `None` when absent (the root group has none) or `max`.
fn read_limit(path: &Path) -> Result<Option<u64>, InheritError> {
    Ok(read_optional(path)?.and_then(|t| t.trim().parse().ok()))
}

fn read_optional(path: &Path) -> Result<Option<String>, InheritError> {
    match fs::read_to_string(path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(InheritError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn stat_field(stat: &str, name: &str) -> Option<u64> {
    stat.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_UNLIMITED: &str = "9223372036854771712\n";
    const MIB: u64 = 1 << 20;

    /// A v1 tree mount/a/b with the given limits (memory, memsw) on mount, a and b.
    fn v1_tree(root: &Path, limits: [(&str, &str); 3], stat: Option<&str>) -> (PathBuf, PathBuf) {
        let mount = root.join("memory");
        let leaf = mount.join("a/b");
        fs::create_dir_all(&leaf).unwrap();
        for (dir, (mem, memsw)) in [mount.clone(), mount.join("a"), leaf.clone()]
            .iter()
            .zip(limits)
        {
            fs::write(dir.join("memory.limit_in_bytes"), mem).unwrap();
            fs::write(dir.join("memory.memsw.limit_in_bytes"), memsw).unwrap();
        }
        if let Some(stat) = stat {
            fs::write(leaf.join("memory.stat"), stat).unwrap();
        }
        (mount, leaf)
    }

    #[test]
    fn v1_limit_at_the_leaf() {
        let t = tempfile::tempdir().unwrap();
        let u = (V1_UNLIMITED, V1_UNLIMITED);
        let (mount, leaf) = v1_tree(t.path(), [u, u, ("50331648\n", "50331648\n")], None);
        let e = effective_limit_of(&leaf, &mount, Version::V1).unwrap();
        assert_eq!(e.limit, 48 * MIB);
        assert_eq!(e.source, leaf.join("memory.limit_in_bytes"));
        assert_eq!(e.swap, Some(0));
        assert_eq!(
            e.swap_source,
            Some(leaf.join("memory.memsw.limit_in_bytes"))
        );
    }

    #[test]
    fn v1_limit_at_an_ancestor_wins_over_a_larger_leaf() {
        let t = tempfile::tempdir().unwrap();
        let u = (V1_UNLIMITED, V1_UNLIMITED);
        let (mount, leaf) = v1_tree(
            t.path(),
            [
                u,
                ("33554432\n", "41943040\n"),
                ("67108864\n", V1_UNLIMITED),
            ],
            None,
        );
        let e = effective_limit_of(&leaf, &mount, Version::V1).unwrap();
        assert_eq!(e.limit, 32 * MIB);
        assert_eq!(e.source, mount.join("a/memory.limit_in_bytes"));
        assert_eq!(e.swap, Some(8 * MIB), "memsw 40 MiB - memory 32 MiB");
    }

    #[test]
    fn v1_hierarchical_limit_sees_above_the_mount_root() {
        // Inside a container the limit may be set above what the mount shows.
        let t = tempfile::tempdir().unwrap();
        let u = (V1_UNLIMITED, V1_UNLIMITED);
        let stat =
            "cache 0\nhierarchical_memory_limit 25165824\nhierarchical_memsw_limit 25165824\n";
        let (mount, leaf) = v1_tree(t.path(), [u, u, u], Some(stat));
        let e = effective_limit_of(&leaf, &mount, Version::V1).unwrap();
        assert_eq!(e.limit, 24 * MIB);
        assert_eq!(e.source, leaf.join("memory.stat"));
        assert_eq!(e.swap, Some(0));
    }

    #[test]
    fn v1_unlimited_everywhere_is_refused_naming_what_was_checked() {
        let t = tempfile::tempdir().unwrap();
        let u = (V1_UNLIMITED, V1_UNLIMITED);
        let stat = format!("hierarchical_memory_limit {}", V1_UNLIMITED);
        let (mount, leaf) = v1_tree(t.path(), [u, u, u], Some(&stat));
        let err = effective_limit_of(&leaf, &mount, Version::V1).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, InheritError::NoLimit { .. }), "{msg}");
        assert!(msg.contains("no memory limit"), "{msg}");
        assert!(
            msg.contains(&mount.join("a/memory.limit_in_bytes").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("leave --inherit out"), "{msg}");
    }

    /// A v2 tree: root (no memory.max, as the kernel has it), slice, slice/pod.
    fn v2_tree(root: &Path, slice: (&str, &str), pod: (&str, &str)) -> (PathBuf, PathBuf) {
        let mount = root.join("cgroup");
        let pod_dir = mount.join("kubepods.slice/pod1");
        fs::create_dir_all(&pod_dir).unwrap();
        for (dir, (max, swap)) in [
            (mount.join("kubepods.slice"), slice),
            (pod_dir.clone(), pod),
        ] {
            fs::write(dir.join("memory.max"), max).unwrap();
            fs::write(dir.join("memory.swap.max"), swap).unwrap();
        }
        (mount, pod_dir)
    }

    #[test]
    fn v2_limit_at_the_leaf_and_at_an_ancestor() {
        let t = tempfile::tempdir().unwrap();
        let (mount, pod) = v2_tree(t.path(), ("max\n", "max\n"), ("50331648\n", "0\n"));
        let e = effective_limit_of(&pod, &mount, Version::V2).unwrap();
        assert_eq!((e.limit, e.swap), (48 * MIB, Some(0)));
        assert_eq!(e.source, pod.join("memory.max"));

        let t = tempfile::tempdir().unwrap();
        let (mount, pod) = v2_tree(t.path(), ("33554432\n", "1048576\n"), ("max\n", "max\n"));
        let e = effective_limit_of(&pod, &mount, Version::V2).unwrap();
        assert_eq!((e.limit, e.swap), (32 * MIB, Some(MIB)));
        assert_eq!(e.source, mount.join("kubepods.slice/memory.max"));
        assert_eq!(
            e.swap_source,
            Some(mount.join("kubepods.slice/memory.swap.max"))
        );
    }

    #[test]
    fn v2_max_everywhere_is_refused_and_swap_may_be_unlimited() {
        let t = tempfile::tempdir().unwrap();
        let (mount, pod) = v2_tree(t.path(), ("max\n", "max\n"), ("max\n", "max\n"));
        let err = effective_limit_of(&pod, &mount, Version::V2).unwrap_err();
        assert!(matches!(err, InheritError::NoLimit { .. }), "{err}");
        assert!(err.to_string().contains("memory.max"), "{err}");

        let t = tempfile::tempdir().unwrap();
        let (mount, pod) = v2_tree(t.path(), ("max\n", "max\n"), ("50331648\n", "max\n"));
        let e = effective_limit_of(&pod, &mount, Version::V2).unwrap();
        assert_eq!((e.swap, e.swap_source), (None, None));
    }

    #[test]
    fn the_walk_stops_at_the_mount() {
        // A limit above the mount point is not this hierarchy's.
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("memory.max"), "1048576\n").unwrap();
        let (mount, pod) = v2_tree(t.path(), ("max\n", "max\n"), ("max\n", "max\n"));
        assert!(effective_limit_of(&pod, &mount, Version::V2).is_err());
    }
}
