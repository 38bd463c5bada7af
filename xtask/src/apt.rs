//! Debian packages for the set-up commands (setup_ebpf, setup_test_tools): which of a list are
//! installed and at what version, whether this is a Debian system apt-get can install on, and
//! the apt-get update and install runs. What to install, when to refresh the lists, and what to
//! tell the user to run by hand stay with each set-up.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use crate::child;
use crate::privilege;
use crate::progress::{self, Step};

/// A Debian package and the reason it is needed (printed before installing it).
pub type Package = (&'static str, &'static str);

/// Says the packages are present, or hands the missing ones to `install`.
pub fn ensure(packages: &[Package], install: impl FnOnce(&[&str]) -> Result<()>) -> Result<()> {
    let missing = missing(packages);
    if !missing.is_empty() {
        return install(&missing);
    }
    progress::say(format!(
        "Debian packages present: {}",
        installed_versions(packages).join(", ")
    ));
    Ok(())
}

/// The packages of the list that are not installed, in its order.
fn missing(packages: &[Package]) -> Vec<&'static str> {
    packages
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !is_installed(name))
        .collect()
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains("install ok installed")
        })
        .unwrap_or(false)
}

/// "name version" for each package, for the record.
pub fn installed_versions(packages: &[Package]) -> Vec<String> {
    packages
        .iter()
        .map(|(name, _)| {
            Command::new("dpkg-query")
                .args(["-W", "-f=${Package} ${Version}", name])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|| format!("{name} (not installed)"))
        })
        .collect()
}

/// Whether this is a Debian system with apt-get on PATH.
pub fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists() && privilege::find_in_path("apt-get").is_some()
}

/// Says, for each missing package of the list, that it will be installed and why.
pub fn announce(packages: &[Package], missing: &[&str]) {
    for (name, why) in packages.iter().filter(|(name, _)| missing.contains(name)) {
        progress::say(format!("will install {name}: {why}"));
    }
}

/// Refreshes the package lists (`apt-get update`), as a timed step.
pub fn update() -> Result<()> {
    let step = Step::start("apt-get update (refreshing Debian's package lists)");
    child::run_ok(command().arg("update"))
        .context("apt-get update failed; check the network and /etc/apt/sources.list(.d)")?;
    step.done();
    Ok(())
}

/// `apt-get install -y --no-install-recommends PACKAGES`; the caller names the step.
pub fn install(packages: &[&str]) -> Result<()> {
    child::run_ok(
        command()
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages),
    )
}

/// apt-get, never stopping to ask questions.
fn command() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_package_is_missing_and_reported_as_not_installed() {
        const NONE: Package = ("memspike-no-such-package", "a test");
        assert_eq!(missing(&[NONE]), ["memspike-no-such-package"]);
        assert_eq!(
            installed_versions(&[NONE]),
            ["memspike-no-such-package (not installed)"]
        );
    }
}
