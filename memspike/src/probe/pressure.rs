//! Memory stall time of the group from its PSI file, `memory.pressure` (no eBPF needed).
//!
//! cgroup v2 keeps PSI in every group, whatever its controllers, so on a v1 host the file is
//! read in the group's v2 twin, where the worker also lives. The file gives totals in µs since
//! the group was created; the observer reports what accrued while it watched.

use std::path::{Path, PathBuf};

/// The `total=` of the `some` and `full` lines, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub some_us: u64,
    pub full_us: u64,
}

/// Reads the `some` and `full` totals from the text of a PSI file.
pub fn parse(text: &str) -> Result<Totals, String> {
    let total = |kind: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(kind))
            .and_then(|l| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix("total="))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .ok_or(format!("no `{kind} ... total=N` line"))
    };
    Ok(Totals {
        some_us: total("some")?,
        full_us: total("full")?,
    })
}

/// Stall time accrued since [`PressureWatch::start`].
#[derive(Debug)]
pub struct PressureWatch {
    file: PathBuf,
    start: Totals,
}

impl PressureWatch {
    /// `dir/memory.pressure`, read now as the baseline.
    pub fn start(dir: &Path) -> Result<PressureWatch, String> {
        let file = dir.join("memory.pressure");
        let start = read(&file)?;
        Ok(PressureWatch { file, start })
    }

    /// What accrued since the start.
    pub fn read(&self) -> Result<Totals, String> {
        let now = read(&self.file)?;
        Ok(Totals {
            some_us: now.some_us.saturating_sub(self.start.some_us),
            full_us: now.full_us.saturating_sub(self.start.full_us),
        })
    }
}

fn read(file: &Path) -> Result<Totals, String> {
    let text = std::fs::read_to_string(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{} does not exist (no cgroup2 group to read, or a kernel without CONFIG_PSI or \
             booted with psi=0)",
            file.display()
        ),
        _ => format!("reading {}: {e}", file.display()),
    })?;
    parse(&text).map_err(|e| format!("{}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine's /proc/pressure/memory format (the cgroup files are the same).
    const REAL: &str = "some avg10=0.00 avg60=0.00 avg300=0.00 total=3202\n\
                        full avg10=0.00 avg60=0.00 avg300=0.00 total=2591\n";

    #[test]
    fn parses_some_and_full_totals() {
        assert_eq!(
            parse(REAL),
            Ok(Totals {
                some_us: 3202,
                full_us: 2591
            })
        );
        // A file without a `full` line is refused, and the message says which line is missing.
        let e = parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n").unwrap_err();
        assert!(e.contains("full"), "{e}");
    }

    #[test]
    fn reports_what_accrued_since_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.pressure"), REAL).unwrap();
        let w = PressureWatch::start(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("memory.pressure"),
            REAL.replace("3202", "9202").replace("2591", "2691"),
        )
        .unwrap();
        assert_eq!(
            w.read(),
            Ok(Totals {
                some_us: 6000,
                full_us: 100
            })
        );
        let e = PressureWatch::start(&dir.path().join("nope")).unwrap_err();
        assert!(e.contains("CONFIG_PSI"), "{e}");
    }
}
