//! Checks on what the user asked for, made before anything is created: the limit against this
//! machine's memory, the spike against the limit, the scenario (run once in the model, over no
//! memory), the step to pause at, the account the worker runs as, and where the report goes. Each failure is one [`UsageError`] sentence that says what to change; the
//! binary exits with 2. (The kernel's side, a memory controller with swap accounting, is
//! `memspike_cgroup::discover`'s.)

use std::path::{Path, PathBuf};

use memspike_model::{
    experiment::Experiment,
    heap::{Accounting, PAGE_SIZE},
    program::{Detached, Driver},
    runtime::Runtime,
};

use memspike_model::size::human;
use memspike_worker::{host::physical_memory, privilege::PrivilegeError};

/// A scenario runs at most this many steps (allocation pieces and repetitions counted): beyond
/// it a run takes too long to be an experiment, and is most likely a typo.
pub const MAX_STEPS: u64 = 1_000_000;
/// A scenario waits at most this much simulated time in all.
pub const MAX_SIMULATED: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Below this the worker process alone (about 1-2 MiB before its first allocation) leaves no
/// room for an experiment.
pub const MIN_LIMIT: u64 = 4 << 20;

/// A setting that cannot run; the message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error(
        "--limit {limit} is below what the worker itself needs: the process alone is charged \
         1-2 MiB before its first allocation; use at least {min}",
        limit = human(*.0),
        min = human(MIN_LIMIT)
    )]
    LimitTooSmall(u64),
    #[error(
        "--limit {limit} does not fit this machine: {available} of its {total} are available, \
         so the machine would run out (and its own OOM killer act) before the cgroup's limit is \
         reached; use at most {available}",
        limit = human(*limit),
        available = human(*available),
        total = human(*total)
    )]
    LimitDoesNotFit {
        limit: u64,
        available: u64,
        total: u64,
    },
    #[error("--spike {0} is not a fraction between 0 and 1 (the seed's is 0.9)")]
    SpikeNotAFraction(f64),
    #[error(
        "--spike {spike} leaves {what} of {bytes} bytes at --limit {limit}; both the spike \
         (spike x limit) and the remainder ((1 - spike) x limit) need at least {page} bytes (one \
         heap page): use a fraction such as 0.9",
        limit = human(*limit),
        page = PAGE_SIZE
    )]
    SpikeOutOfRange {
        spike: f64,
        limit: u64,
        what: &'static str,
        bytes: u64,
    },
    #[error("scenario {name}: {why}")]
    Scenario { name: String, why: String },
    /// A scenario that could not be found or read (the message names the file and place).
    #[error(transparent)]
    ScenarioLoad(#[from] memspike_model::scenario::ScenarioError),
    #[error(
        "cannot run {0:?}: no such executable file; give a path, or a command on PATH (memspike exec -- CMD [ARGS...])"
    )]
    Command(String),
    #[error("--pause-at {step:?}: no step has that name; the steps are {}", .known.join(", "))]
    PauseAt { step: String, known: Vec<String> },
    #[error("--knob {knob}: the range's end {value} cannot run: {why}; give a narrower --range")]
    Threshold {
        knob: String,
        value: String,
        why: String,
    },
    /// A policy set that could not be read (the message says where and why).
    #[error("{0}")]
    Policies(String),
    /// Policy settings that cannot go together (the message says what to write).
    #[error("{0}")]
    Policy(String),
    /// A `--calibrate` file that holds no runtime profile (the message says why and what to do).
    #[error("{0}")]
    Calibration(String),
    #[error(transparent)]
    User(#[from] PrivilegeError),
    #[error("--report {path}: {why}; give a directory memspike can create or write to", path = .path.display())]
    ReportDir { path: PathBuf, why: String },
}

/// This machine's memory, from `/proc/meminfo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory {
    pub total: u64,
    /// What the kernel estimates it can give without swapping (`MemAvailable`).
    pub available: u64,
}

impl Memory {
    /// Reads `/proc/meminfo`; `None` if it cannot be read or parsed.
    pub fn read() -> Option<Memory> {
        Self::parse(&std::fs::read_to_string("/proc/meminfo").ok()?)
    }

    /// `MemTotal` and `MemAvailable` (kB) from a meminfo text.
    pub fn parse(meminfo: &str) -> Option<Memory> {
        let kb = |key: &str| -> Option<u64> {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()?
                .checked_mul(1024)
        };
        Some(Memory {
            total: kb("MemTotal:")?,
            available: kb("MemAvailable:")?,
        })
    }
}

/// The limit is large enough for the worker and small enough for the machine (when its memory
/// is known).
pub fn check_limit(limit: u64, memory: Option<Memory>) -> Result<(), UsageError> {
    if limit < MIN_LIMIT {
        return Err(UsageError::LimitTooSmall(limit));
    }
    match memory {
        Some(m) if limit > m.available => Err(UsageError::LimitDoesNotFit {
            limit,
            available: m.available,
            total: m.total,
        }),
        _ => Ok(()),
    }
}

/// The spike's slab and the remainder are each at least one heap page.
pub fn check_spike(spike: f64, limit: u64) -> Result<(), UsageError> {
    if !(spike > 0.0 && spike < 1.0) {
        return Err(UsageError::SpikeNotAFraction(spike));
    }
    let slab = (spike * limit as f64) as u64;
    let rest = limit.saturating_sub(slab);
    let short = if slab < PAGE_SIZE {
        Some(("a spike", slab))
    } else if rest < PAGE_SIZE {
        Some(("a remainder", rest))
    } else {
        None
    };
    match short {
        Some((what, bytes)) => Err(UsageError::SpikeOutOfRange {
            spike,
            limit,
            what,
            bytes,
        }),
        None => Ok(()),
    }
}

/// The scenario runs: every step resolves to something to do under the limit, and the whole
/// fits this machine's address space. It is run once in the model over memory that is only
/// counted (no limit, nothing touched), so a mistake is found before any group exists.
pub fn check_scenario(experiment: &Experiment) -> Result<(), UsageError> {
    let scenario = experiment.effective_scenario();
    let cost = scenario.cost(experiment.limit);
    let refuse = |why: String| UsageError::Scenario {
        name: experiment.scenario.name.clone(),
        why,
    };
    if cost.steps > MAX_STEPS {
        return Err(refuse(format!(
            "it runs {} steps (allocation pieces and repetitions counted); at most {MAX_STEPS}: use fewer repetitions or larger chunks",
            cost.steps
        )));
    }
    if cost.waited > MAX_SIMULATED {
        return Err(refuse(format!(
            "it waits {} of simulated time in all; at most {}: use shorter waits or fewer repetitions",
            memspike_model::duration::format(cost.waited),
            memspike_model::duration::format(MAX_SIMULATED)
        )));
    }
    let capacity = physical_memory() / PAGE_SIZE * PAGE_SIZE;
    let rt = Runtime::new(
        Accounting::default(),
        Accounting::default(),
        capacity,
        experiment.runtime_config(0, 0),
    );
    let mut dry = Driver::new(rt, NoEvents, Detached::default());
    dry.run(&scenario, experiment.limit)
        .map_err(|e| refuse(e.to_string()))
}

/// Events of a dry run, dropped.
struct NoEvents;

impl memspike_model::event::Sink for NoEvents {
    fn send(&mut self, _: &memspike_model::event::Event) -> std::io::Result<()> {
        Ok(())
    }
}

/// `--pause-at` names one of the scenario's steps.
pub fn check_pause_at(experiment: &Experiment) -> Result<(), UsageError> {
    let Some(step) = &experiment.pause_at else {
        return Ok(());
    };
    let known = experiment.effective_scenario().step_names();
    if known.contains(step) {
        Ok(())
    } else {
        Err(UsageError::PauseAt {
            step: step.clone(),
            known,
        })
    }
}

/// `--report DIR` can receive the report: it is, or can be made, a writable directory. The
/// directory is created here (it is what the user asked for) and a probe file written and
/// removed, so that a run never goes ahead only to fail at the end.
pub fn check_report_dir(dir: &Path) -> Result<(), UsageError> {
    let fail = |why: String| UsageError::ReportDir {
        path: dir.to_owned(),
        why,
    };
    if dir.exists() && !dir.is_dir() {
        return Err(fail("it is a file, not a directory".into()));
    }
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create it ({e})")))?;
    let probe = dir.join(format!(".memspike-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| fail(format!("cannot write in it ({e})")))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn meminfo_is_read_in_bytes() {
        let m = Memory::parse(
            "MemTotal:       24590104 kB\nMemFree:  100 kB\nMemAvailable:   23000000 kB\n",
        )
        .unwrap();
        assert_eq!(m.total, 24_590_104 * 1024);
        assert_eq!(m.available, 23_000_000 * 1024);
        assert_eq!(Memory::parse("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn limits_must_fit_the_worker_and_the_machine() {
        let m = Some(Memory {
            total: 24 * GIB,
            available: 23 * GIB,
        });
        assert!(check_limit(32 * MIB, m).is_ok());
        assert!(check_limit(32 * MIB, None).is_ok());
        for big in [64 * GIB, 1 << 50, 5 << 60] {
            let e = check_limit(big, m).unwrap_err().to_string();
            assert!(e.contains("does not fit") && e.contains("23.0 GiB"), "{e}");
        }
        let e = check_limit(MIB, m).unwrap_err().to_string();
        assert!(e.contains("below what the worker itself needs"), "{e}");
    }

    #[test]
    fn a_spike_or_remainder_below_a_page_is_refused() {
        assert!(check_spike(0.9, 32 * MIB).is_ok());
        for (spike, says) in [
            (1e-300, "a spike of 0 bytes"),
            (0.000_1, "a spike of 3355 bytes"),
            (0.999_9, "a remainder of 3356 bytes"),
            (f64::NAN, "not a fraction"),
            (-0.1, "not a fraction"),
            (1.0, "not a fraction"),
        ] {
            let e = check_spike(spike, 32 * MIB).unwrap_err().to_string();
            assert!(e.contains(says), "{spike}: {e}");
        }
    }

    #[test]
    fn the_report_dir_must_be_a_writable_directory() {
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = check_report_dir(&file).unwrap_err().to_string();
        assert!(e.contains("it is a file"), "{e}");
        let nested = t.path().join("a/b");
        check_report_dir(&nested).unwrap();
        assert!(nested.is_dir());
        assert_eq!(
            std::fs::read_dir(&nested).unwrap().count(),
            0,
            "probe removed"
        );
        for bad in ["/proc/x", "/sys/x"] {
            let e = check_report_dir(Path::new(bad)).unwrap_err().to_string();
            assert!(e.contains("cannot create it"), "{bad}: {e}");
        }
    }
}
