//! Memory stall time of the group from its PSI file, `memory.pressure` (no eBPF needed).
//!
//! cgroup v2 keeps PSI in every group, whatever its controllers, so on a v1 host the file is
//! read in the group's v2 twin, where the worker also lives. The file gives totals in µs since
//! the group was created, and the kernel's running averages (10, 60, 300 s); the observer
//! reports the totals that accrued while it watched and the averages of its last reading.

use std::path::{Path, PathBuf};

use memspike_report::facts::PsiAverages;

/// The `total=` of the `some` and `full` lines, in µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub some_us: u64,
    pub full_us: u64,
}

/// One reading of a PSI file: totals, and the averages when every one of them parses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub totals: Totals,
    pub averages: Option<PsiAverages>,
}

/// The value of `key=` on the `kind` line (`some` or `full`).
fn field<T: std::str::FromStr>(text: &str, kind: &str, key: &str) -> Option<T> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(kind))?
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Reads a PSI file's text. The `some` and `full` totals are required; the averages are
/// `None` unless all six parse (a malformed or missing one is tolerated, not an error).
pub fn parse(text: &str) -> Result<Reading, String> {
    let total = |kind: &str| {
        field::<u64>(text, kind, "total").ok_or(format!("no `{kind} ... total=N` line"))
    };
    let totals = Totals {
        some_us: total("some")?,
        full_us: total("full")?,
    };
    let avg = |kind: &str, key: &str| field::<f64>(text, kind, key).filter(|v| v.is_finite());
    let averages = (|| {
        Some(PsiAverages {
            some_avg10: avg("some", "avg10")?,
            some_avg60: avg("some", "avg60")?,
            some_avg300: avg("some", "avg300")?,
            full_avg10: avg("full", "avg10")?,
            full_avg60: avg("full", "avg60")?,
            full_avg300: avg("full", "avg300")?,
        })
    })();
    Ok(Reading { totals, averages })
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
        let start = read(&file)?.totals;
        Ok(PressureWatch { file, start })
    }

    /// The totals accrued since the start, and the averages now.
    pub fn read(&self) -> Result<Reading, String> {
        let now = read(&self.file)?;
        Ok(Reading {
            totals: Totals {
                some_us: now.totals.some_us.saturating_sub(self.start.some_us),
                full_us: now.totals.full_us.saturating_sub(self.start.full_us),
            },
            averages: now.averages,
        })
    }
}

fn read(file: &Path) -> Result<Reading, String> {
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
    fn parses_some_and_full_totals_and_averages() {
        let r = parse(REAL).unwrap();
        assert_eq!(
            r.totals,
            Totals {
                some_us: 3202,
                full_us: 2591
            }
        );
        let busy = "some avg10=12.50 avg60=3.20 avg300=0.71 total=9000\n\
                    full avg10=10.00 avg60=2.00 avg300=0.50 total=8000\n";
        assert_eq!(
            parse(busy).unwrap().averages,
            Some(PsiAverages {
                some_avg10: 12.5,
                some_avg60: 3.2,
                some_avg300: 0.71,
                full_avg10: 10.0,
                full_avg60: 2.0,
                full_avg300: 0.5,
            })
        );
        // A file without a `full` line is refused, and the message says which line is missing.
        let e = parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n").unwrap_err();
        assert!(e.contains("full"), "{e}");
    }

    #[test]
    fn malformed_averages_are_tolerated() {
        for text in [
            // An average missing, one unparsable, one not a number, extra words and lines.
            "some avg10=1.00 avg300=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4\n",
            "some avg10=x avg60=0.00 avg300=0.00 total=5\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=4\n",
            "junk\nsome avg10=NaN avg60=0.00 avg300=0.00 total=5 extra\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=4\n",
        ] {
            let r = parse(text).unwrap();
            assert_eq!(
                r.totals,
                Totals {
                    some_us: 5,
                    full_us: 4
                },
                "{text}"
            );
            assert_eq!(r.averages, None, "{text}");
        }
        assert!(parse("some avg10=0.00 total=z\nfull total=1\n").is_err());
    }

    #[test]
    fn reports_what_accrued_since_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.pressure"), REAL).unwrap();
        let w = PressureWatch::start(dir.path()).unwrap();
        std::fs::write(
            dir.path().join("memory.pressure"),
            REAL.replace("3202", "9202")
                .replace("2591", "2691")
                .replacen("avg10=0.00", "avg10=4.25", 1),
        )
        .unwrap();
        let r = w.read().unwrap();
        assert_eq!(
            r.totals,
            Totals {
                some_us: 6000,
                full_us: 100
            }
        );
        assert_eq!(r.averages.map(|a| a.some_avg10), Some(4.25));
        let e = PressureWatch::start(&dir.path().join("nope")).unwrap_err();
        assert!(e.contains("CONFIG_PSI"), "{e}");
    }
}
