//! Tests only: a fake cgroup v2 kernel over a directory tree, for driving the real group code
//! without a v2 memory controller. It does what the kernel does on the operations memspike
//! makes (mkdir fills the group's files from its parent's `cgroup.subtree_control`, rmdir
//! refuses a populated group, a move updates both `cgroup.procs`, `±memory` rewrites
//! `cgroup.subtree_control` and the children's memory files) and enforces the rules memspike
//! must respect: no internal processes in a non-root group, no controller the group lacks.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;

use super::group::{CgroupError, Cgroupfs};

#[derive(Debug)]
pub(crate) struct FakeV2;

pub(crate) static FAKE_V2: FakeV2 = FakeV2;

/// The files the kernel gives a group whose parent enables memory for it.
pub(crate) const MEMORY_FILES: [(&str, &str); 7] = [
    ("memory.current", "0\n"),
    ("memory.max", "max\n"),
    ("memory.high", "max\n"),
    ("memory.peak", "0\n"),
    ("memory.swap.max", "max\n"),
    (
        "memory.events",
        "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    ),
    ("memory.stat", "anon 0\nfile 0\nkernel 0\n"),
];

fn words(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn write_words(path: &Path, words: &[String]) -> io::Result<()> {
    let text = if words.is_empty() {
        String::new()
    } else {
        format!("{}\n", words.join(" "))
    };
    fs::write(path, text)
}

fn is_root(dir: &Path) -> bool {
    !dir.join("cgroup.type").exists()
}

fn busy(path: &Path, value: &str) -> CgroupError {
    CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_owned(),
        source: io::Error::from(Errno::EBUSY),
    }
}

fn children(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|es| {
            es.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Gives `dir` (or takes away) the memory files and `memory` in its cgroup.controllers.
fn set_memory_files(dir: &Path, on: bool) -> io::Result<()> {
    let controllers = dir.join("cgroup.controllers");
    let mut ctrl = words(&controllers);
    ctrl.retain(|c| c != "memory");
    if on {
        ctrl.push("memory".to_owned());
    }
    write_words(&controllers, &ctrl)?;
    for (file, text) in MEMORY_FILES {
        if on {
            fs::write(dir.join(file), text)?;
        } else if let Err(e) = fs::remove_file(dir.join(file))
            && e.kind() != io::ErrorKind::NotFound
        {
            return Err(e);
        }
    }
    Ok(())
}

impl Cgroupfs for FakeV2 {
    fn mkdir(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir(dir)?;
        let parent = dir.parent().unwrap_or(dir);
        for (file, text) in [
            ("cgroup.procs", ""),
            ("cgroup.type", "domain\n"),
            ("cgroup.controllers", ""),
            ("cgroup.subtree_control", ""),
            ("cgroup.kill", ""),
            (
                "memory.pressure",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n\
                 full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
            ),
        ] {
            fs::write(dir.join(file), text)?;
        }
        let inherited = words(&parent.join("cgroup.subtree_control"));
        if inherited.iter().any(|c| c == "memory") {
            set_memory_files(dir, true)?;
        }
        Ok(())
    }

    fn rmdir(&self, dir: &Path) -> io::Result<()> {
        if !dir.is_dir() {
            return Err(io::Error::from(Errno::ENOENT));
        }
        if !children(dir).is_empty() || !words(&dir.join("cgroup.procs")).is_empty() {
            return Err(io::Error::from(Errno::EBUSY));
        }
        fs::remove_dir_all(dir)
    }

    fn move_process(&self, from: &Path, to: &Path, pid: u32) -> Result<(), CgroupError> {
        let pid_s = pid.to_string();
        let to_procs = to.join("cgroup.procs");
        if !is_root(to) && !words(&to.join("cgroup.subtree_control")).is_empty() {
            return Err(busy(&to_procs, &pid_s));
        }
        let from_procs = from.join("cgroup.procs");
        let mut left = words(&from_procs);
        left.retain(|p| *p != pid_s);
        let mut joined = words(&to_procs);
        if !joined.contains(&pid_s) {
            joined.push(pid_s.clone());
        }
        let io = |source| CgroupError::Write {
            path: to_procs.clone(),
            value: pid_s.clone(),
            source,
        };
        fs::write(
            &from_procs,
            left.iter().map(|p| format!("{p}\n")).collect::<String>(),
        )
        .map_err(io)?;
        fs::write(
            &to_procs,
            joined.iter().map(|p| format!("{p}\n")).collect::<String>(),
        )
        .map_err(io)
    }

    fn set_memory_for_children(&self, dir: &Path, enable: bool) -> Result<(), CgroupError> {
        let file = dir.join("cgroup.subtree_control");
        let value = if enable { "+memory" } else { "-memory" };
        let io = |source| CgroupError::Write {
            path: file.clone(),
            value: value.to_owned(),
            source,
        };
        if enable {
            if !is_root(dir) && !words(&dir.join("cgroup.procs")).is_empty() {
                return Err(busy(&file, value));
            }
            if !is_root(dir) && !words(&dir.join("cgroup.controllers")).contains(&"memory".into()) {
                return Err(io(io::Error::from(Errno::ENOENT)));
            }
        }
        let mut list = words(&file);
        list.retain(|c| c != "memory");
        if enable {
            list.push("memory".to_owned());
        }
        write_words(&file, &list).map_err(io)?;
        for child in children(dir) {
            set_memory_files(&child, enable).map_err(io)?;
        }
        Ok(())
    }
}

/// Every directory and file under `root` with its contents (`None` for directories).
pub(crate) fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<String>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if e.file_type().unwrap().is_dir() {
                out.insert(rel, None);
                todo.push(path);
            } else {
                out.insert(rel, Some(fs::read_to_string(&path).unwrap()));
            }
        }
    }
    out
}
