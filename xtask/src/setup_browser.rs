//! Installs headless Chromium and chromedriver from Debian for the page test
//! (memspike/tests/page_browser.rs), which drives the interactive mode's page at `/` over the
//! W3C WebDriver protocol. Skipped when both packages are already installed.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::child;
use crate::privilege;
use crate::progress::{self, Step};

/// Where the test looks for the browser and its driver (Debian's paths).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The Debian packages, each with the reason it is needed.
const PACKAGES: [(&str, &str); 2] = [
    (
        "chromium",
        "the browser that memspike/tests/page_browser.rs runs headless to test the page at `/`",
    ),
    (
        "chromium-driver",
        "chromedriver, the W3C WebDriver server the test talks to (same version as chromium)",
    ),
];

/// Installs whatever is missing, or fails saying why and what to run by hand.
pub fn setup() -> Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !is_installed(name))
        .collect();
    if missing.is_empty() {
        progress::say(format!(
            "Debian packages present: {}",
            installed_versions().join(", ")
        ));
    } else {
        install(&missing)?;
    }
    for binary in [CHROMIUM, CHROMEDRIVER] {
        if !privilege::is_executable(Path::new(binary)) {
            bail!("{binary} is missing although its package is installed; reinstall it");
        }
    }
    progress::say("headless Chromium ready");
    Ok(())
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

fn installed_versions() -> Vec<String> {
    PACKAGES
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

fn install(missing: &[&str]) -> Result<()> {
    if !Path::new("/etc/debian_version").exists() || privilege::find_in_path("apt-get").is_none() {
        print_manual_commands(missing);
        bail!(
            "this is not a Debian system (no /etc/debian_version or apt-get): install Chromium and chromedriver by hand \
             (the test also accepts MEMSPIKE_CHROMIUM and MEMSPIKE_CHROMEDRIVER)"
        );
    }
    if !privilege::is_root() {
        print_manual_commands(missing);
        bail!(
            "installing Debian packages needs root: run the commands above, or `cargo xtask test` from a root shell"
        );
    }
    for (name, why) in PACKAGES.iter().filter(|(name, _)| missing.contains(name)) {
        progress::say(format!("will install {name}: {why}"));
    }

    // The package lists are refreshed only when they do not offer the packages (a fresh
    // machine), or when installing from them fails (stale lists): once at most, and not at all
    // right after the eBPF set-up has refreshed them.
    let mut updated = false;
    if !all_have_candidates(missing) {
        apt_update()?;
        updated = true;
    }
    let install = |missing: &[&str]| {
        child::run_ok(
            apt()
                .args(["install", "-y", "--no-install-recommends"])
                .args(missing),
        )
    };
    let size = if missing.contains(&"chromium") {
        " (about 130 MB to download, 440 MB on disk)"
    } else {
        ""
    };
    let step = Step::start(format!("apt-get install {}{size}", missing.join(" ")));
    if let Err(err) = install(missing) {
        if updated {
            return Err(err.context(
                "apt-get install failed; chromium comes from Debian's main and security suites",
            ));
        }
        progress::warn(format!(
            "apt-get install failed ({err:#}); refreshing the package lists and trying again"
        ));
        apt_update()?;
        install(missing).context(
            "apt-get install failed; chromium comes from Debian's main and security suites",
        )?;
    }
    step.done();
    progress::say(format!("installed: {}", installed_versions().join(", ")));
    Ok(())
}

/// Whether apt's current lists offer a version of every package.
fn all_have_candidates(packages: &[&str]) -> bool {
    let Ok(out) = Command::new("apt-cache")
        .args(["policy"])
        .args(packages)
        .output()
    else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let candidates = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Candidate:"))
        .filter(|c| c.trim() != "(none)")
        .count();
    out.status.success() && candidates == packages.len()
}

fn apt_update() -> Result<()> {
    let step = Step::start("apt-get update (refreshing Debian's package lists)");
    child::run_ok(apt().arg("update"))
        .context("apt-get update failed; check the network and /etc/apt/sources.list(.d)")?;
    step.done();
    Ok(())
}

fn apt() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

fn print_manual_commands(missing: &[&str]) {
    progress::say("to install headless Chromium for the page test by hand:");
    eprintln!(
        "    Debian:    sudo apt-get update && sudo apt-get install -y --no-install-recommends {}",
        missing.join(" ")
    );
    eprintln!("    elsewhere: a Chromium or Chrome and the chromedriver of the same version, then");
    eprintln!(
        "               MEMSPIKE_CHROMIUM=/path/to/chrome MEMSPIKE_CHROMEDRIVER=/path/to/chromedriver"
    );
}
