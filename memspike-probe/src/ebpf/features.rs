//! What this kernel can run, asked of the kernel itself (aya's `is_map_supported` and
//! `is_program_supported` create tiny maps and load tiny programs), not inferred from files;
//! and the environment switches that force the degraded paths in tests:
//! - `MEMSPIKE_PROBE_HIDE_BTF=1`: behave as on a kernel without BTF (no `tp_btf`; raw and
//!   classic tracepoints instead);
//! - `MEMSPIKE_PROBE_FAIL=<figure>[/<attach>],...`: make the eBPF programs of `page_faults`,
//!   `reclaim` or `oom_victim` (or only their `tp_btf`, `raw_tp` or `tracepoint` way) fail to
//!   attach, through the real error path (they are pointed at a tracepoint that does not exist).

use std::sync::OnceLock;

use aya::{
    Btf,
    maps::MapType,
    programs::ProgramType,
    sys::{is_map_supported, is_program_supported},
};

use super::hooks::{Attach, Figure};

pub const HIDE_BTF_ENV: &str = "MEMSPIKE_PROBE_HIDE_BTF";
pub const FAIL_ENV: &str = "MEMSPIKE_PROBE_FAIL";
/// The tracepoint a forced failure attaches to (no kernel has it).
pub const NO_SUCH_TRACEPOINT: &str = "memspike_forced_failure";

/// The test switches, read from the environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Switches {
    pub hide_btf: bool,
    fail: Vec<(Figure, Option<Attach>)>,
    /// Parts of the switches that were not understood (reported as notes).
    pub notes: Vec<String>,
}

impl Switches {
    pub fn from_env() -> Switches {
        Switches::parse(
            std::env::var(HIDE_BTF_ENV).ok().as_deref(),
            std::env::var(FAIL_ENV).ok().as_deref(),
        )
    }

    pub fn parse(hide_btf: Option<&str>, fail: Option<&str>) -> Switches {
        let mut s = Switches {
            hide_btf: matches!(hide_btf, Some(v) if !v.is_empty() && v != "0"),
            ..Switches::default()
        };
        for item in fail
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
        {
            let (figure, attach) = match item.split_once('/') {
                Some((f, a)) => (f, Some(a)),
                None => (item, None),
            };
            match (Figure::from_name(figure), attach.map(Attach::from_name)) {
                (Some(f), None) => s.fail.push((f, None)),
                (Some(f), Some(Some(a))) => s.fail.push((f, Some(a))),
                _ => s.notes.push(format!(
                    "{FAIL_ENV}: `{item}` ignored (use page_faults, reclaim or oom_victim, \
                     optionally /tp_btf, /raw_tp or /tracepoint)"
                )),
            }
        }
        s
    }

    /// Whether `figure`'s programs attached the `attach` way are made to fail.
    pub fn fails(&self, figure: Figure, attach: Attach) -> bool {
        self.fail
            .iter()
            .any(|&(f, a)| f == figure && a.is_none_or(|a| a == attach))
    }
}

/// What the kernel supports, for the ways in [`super::hooks`].
pub struct Features {
    /// `MEMSPIKE_PROBE_HIDE_BTF`: behave as on a kernel without BTF.
    pub hide_btf: bool,
    /// The kernel's BTF (for `tp_btf`), or why there is none: parsed when a `tp_btf` way is
    /// first tried (about 25 ms of CPU), never when the raw tracepoints attach.
    btf: OnceLock<Result<Btf, String>>,
    raw_tp: Result<(), String>,
    classic: Result<(), String>,
}

impl Features {
    /// Asks the kernel. `Err` when the object cannot be loaded at all (its maps need array,
    /// per-CPU array, hash and ring-buffer maps).
    pub fn probe(switches: &Switches) -> Result<Features, String> {
        for (map, what) in [
            (MapType::Array, "BPF array maps (Linux 3.19)"),
            (MapType::PerCpuArray, "per-CPU BPF array maps (Linux 4.6)"),
            (MapType::Hash, "BPF hash maps (Linux 3.19)"),
            (MapType::RingBuf, "BPF ring buffers (Linux 5.8)"),
        ] {
            match is_map_supported(map) {
                Ok(true) => {}
                Ok(false) => return Err(format!("the kernel has no {what}")),
                Err(e) => {
                    return Err(format!(
                        "probing the kernel's BPF support: {}",
                        super::error_chain(&e)
                    ));
                }
            }
        }
        // Only a "no" rules a way out: a probe that fails is not an answer, and the real load
        // then decides (its error is the note).
        let program = |t: ProgramType, what: &str| match is_program_supported(t) {
            Ok(false) => Err(format!("the kernel does not support {what}")),
            Ok(true) => Ok(()),
            Err(e) => {
                tracing::debug!(
                    "probing support for {what} was inconclusive: {}",
                    super::error_chain(&e)
                );
                Ok(())
            }
        };
        // tp_btf needs the kernel's BTF (see `btf`). It is not probed with
        // `is_program_supported(ProgramType::Tracing)`: aya probes that type with an fentry
        // program, which parses the kernel's BTF once more (40-60 ms here) and which this
        // project's kernel refuses (EPERM) although it loads tp_btf programs. Loading the
        // tp_btf program itself is the test.
        Ok(Features {
            hide_btf: switches.hide_btf,
            btf: OnceLock::new(),
            raw_tp: program(ProgramType::RawTracePoint, "raw tracepoints (Linux 4.17)"),
            classic: program(ProgramType::TracePoint, "tracepoint programs (Linux 4.7)"),
        })
    }

    /// The kernel's BTF, parsed on first use, or why there is none.
    pub fn btf(&self) -> Result<&Btf, &str> {
        self.btf
            .get_or_init(|| {
                if self.hide_btf {
                    return Err(format!("kernel BTF hidden by {HIDE_BTF_ENV}"));
                }
                let started = std::time::Instant::now();
                let btf = Btf::from_sys_fs().map_err(|e| {
                    format!(
                        "no kernel BTF at {} ({e}): the kernel was built without \
                         CONFIG_DEBUG_INFO_BTF",
                        super::super::KERNEL_BTF
                    )
                });
                tracing::debug!(
                    ms = started.elapsed().as_secs_f64() * 1e3,
                    "parsed the kernel's BTF for tp_btf"
                );
                btf
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// Whether programs attached this way can run here, or why not.
    pub fn usable(&self, attach: Attach) -> Result<(), &str> {
        let r = match attach {
            Attach::TpBtf => return self.btf().map(|_| ()),
            Attach::RawTp => &self.raw_tp,
            Attach::Classic => &self.classic,
        };
        r.as_ref().map(|_| ()).map_err(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_parse_figures_and_ways() {
        let s = Switches::parse(
            Some("1"),
            Some("page_faults/tp_btf, oom_victim,bogus,reclaim/x"),
        );
        assert!(s.hide_btf);
        assert!(s.fails(Figure::PageFaults, Attach::TpBtf));
        assert!(!s.fails(Figure::PageFaults, Attach::RawTp));
        assert!(s.fails(Figure::OomVictim, Attach::Classic));
        assert!(!s.fails(Figure::Reclaim, Attach::TpBtf));
        assert_eq!(s.notes.len(), 2, "{:?}", s.notes);
        assert!(s.notes[0].contains("`bogus` ignored"), "{:?}", s.notes);

        let off = Switches::parse(Some("0"), None);
        assert!(!off.hide_btf && off.notes.is_empty());
        assert!(Figure::ALL.iter().all(|&f| !off.fails(f, Attach::TpBtf)));
        assert!(!Switches::parse(Some(""), Some("")).hide_btf);
    }
}
