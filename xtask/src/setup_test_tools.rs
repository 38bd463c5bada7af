//! Installs what the tests run besides memspike, from Debian: headless Chromium and
//! chromedriver for the page test (memspike/tests/page_browser.rs, which drives the interactive
//! mode's page at `/` over the W3C WebDriver protocol), python3 for the probe tests' page
//! toucher (memspike/tests/probe_root.rs), Go 1.19 for the `exec` tests' real Go program
//! (reference/go, built by memspike/tests/exec_root.rs), JDK 17 for their real Java program
//! (reference/java), and Node.js for their real JavaScript program (reference/javascript).
//! Skipped when every package is already installed.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::apt::{self, Package};
use crate::privilege;
use crate::progress::{self, Step};

/// Where the test looks for the browser and its driver (Debian's paths).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The python the probe tests run.
const PYTHON3: &str = "/usr/bin/python3";
/// The Go toolchain the exec tests build the reference program with.
pub const GO: &str = "/usr/bin/go";
/// The JDK the exec tests compile and run the Java reference with.
const JAVAC: &str = "/usr/bin/javac";
const JAVA: &str = "/usr/bin/java";
/// The Node.js the exec tests run the JavaScript reference with.
const NODE: &str = "/usr/bin/node";

/// The Debian packages, each with the reason it is needed.
const PACKAGES: [Package; 6] = [
    (
        "chromium",
        "the browser that memspike/tests/page_browser.rs runs headless to test the page at `/`",
    ),
    (
        "chromium-driver",
        "chromedriver, the W3C WebDriver server the test talks to (same version as chromium)",
    ),
    (
        "python3",
        "/usr/bin/python3, which memspike/tests/probe_root.rs runs to take a known number of page \
         faults (and an OOM kill) inside and outside a group",
    ),
    (
        "golang-go",
        "Go 1.19 (/usr/bin/go), which memspike/tests/exec_root.rs builds the reference program \
         (reference/go) with, to run a real Go program under `memspike exec`",
    ),
    (
        "openjdk-17-jdk-headless",
        "JDK 17 (/usr/bin/javac, /usr/bin/java), which memspike/tests/exec_root.rs compiles and \
         runs the Java reference (reference/java) with, to read a JVM's GC log under `memspike exec`",
    ),
    (
        "nodejs",
        "Node.js (/usr/bin/node), which memspike/tests/exec_root.rs runs the JavaScript reference \
         (reference/javascript) with, to read V8's collection trace under `memspike exec`",
    ),
];

/// Installs whatever is missing, or fails saying why and what to run by hand.
pub fn setup() -> Result<()> {
    apt::ensure(&PACKAGES, install)?;
    for binary in [CHROMIUM, CHROMEDRIVER] {
        if !privilege::is_executable(Path::new(binary)) {
            bail!("{binary} is missing although its package is installed; reinstall it");
        }
    }
    for (binary, package) in [
        (PYTHON3, "python3"),
        (GO, "golang-go"),
        (JAVAC, "openjdk-17-jdk-headless"),
        (JAVA, "openjdk-17-jdk-headless"),
        (NODE, "nodejs"),
    ] {
        if !privilege::is_executable(Path::new(binary)) {
            bail!("{binary} is missing although {package} is installed; reinstall it");
        }
    }
    progress::say("headless Chromium, python3, Go, JDK 17 and Node.js ready");
    Ok(())
}

fn install(missing: &[&str]) -> Result<()> {
    if !apt::is_debian() {
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
    apt::announce(&PACKAGES, missing);

    // The package lists are refreshed only when they do not offer the packages (a fresh
    // machine), or when installing from them fails (stale lists): once at most, and not at all
    // right after the eBPF set-up has refreshed them.
    let mut updated = false;
    if !all_have_candidates(missing) {
        apt::update()?;
        updated = true;
    }
    let size = if missing.contains(&"chromium") {
        " (about 130 MB to download, 440 MB on disk)"
    } else {
        ""
    };
    let step = Step::start(format!("apt-get install {}{size}", missing.join(" ")));
    if let Err(err) = apt::install(missing) {
        if updated {
            return Err(err.context(
                "apt-get install failed; chromium comes from Debian's main and security suites",
            ));
        }
        progress::warn(format!(
            "apt-get install failed ({err:#}); refreshing the package lists and trying again"
        ));
        apt::update()?;
        apt::install(missing).context(
            "apt-get install failed; chromium comes from Debian's main and security suites",
        )?;
    }
    step.done();
    progress::say(format!(
        "installed: {}",
        apt::installed_versions(&PACKAGES).join(", ")
    ));
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
