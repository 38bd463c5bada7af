//! Who we are and how to become root.

use std::path::{Path, PathBuf};

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The first executable named `name` on PATH.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    which::which_global(name).ok()
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub fn sudo() -> Option<PathBuf> {
    find_in_path("sudo")
}
