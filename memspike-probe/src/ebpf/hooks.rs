//! Which eBPF programs give which figure, in order of preference: the one place in the loader
//! to change to add a figure, a tracepoint or a fallback. A plain counter ([`Counter`]) needs
//! only its ways in [`Figure::ways`] (the compiler asks for them): [`Figure::ALL`] is built
//! from [`Counter::ALL`], and the loader, the observer and the reports carry every counter
//! alike.
//!
//! Each [`Figure`] has ways to observe it ([`Way`]); a way is one or more programs that must all
//! attach. The loader tries the ways in order and keeps the first that attaches; a figure whose
//! ways all fail is left to the non-eBPF sources (see [`crate`]).

use memspike_common::{Counter, names};

/// A figure an eBPF observer can provide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    PageFaults,
    Reclaim,
    OomVictim,
    /// A plain counter: one slot of the counters map.
    Count(Counter),
}

impl Figure {
    /// The figures with a shape of their own (maps and events of their own types).
    const SHAPED: [Figure; 3] = [Figure::PageFaults, Figure::Reclaim, Figure::OomVictim];

    /// Every figure: the shaped ones, then one per [`Counter`], in slot order.
    pub const ALL: [Figure; Self::SHAPED.len() + Counter::ALL.len()] = {
        let mut all = [Figure::PageFaults; Self::SHAPED.len() + Counter::ALL.len()];
        let mut i = 0;
        while i < all.len() {
            all[i] = match i.checked_sub(Self::SHAPED.len()) {
                None => Self::SHAPED[i],
                Some(c) => Figure::Count(Counter::ALL[c]),
            };
            i += 1;
        }
        all
    };

    /// The name `MEMSPIKE_PROBE_FAIL` and the notes use (the report's key).
    pub const fn name(self) -> &'static str {
        match self {
            Figure::PageFaults => "page_faults",
            Figure::Reclaim => "reclaim",
            Figure::OomVictim => "oom_victim",
            Figure::Count(c) => c.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Figure> {
        Figure::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The ways to observe it, best first.
    pub const fn ways(self) -> &'static [Way] {
        match self {
            Figure::PageFaults => &PAGE_FAULT_WAYS,
            Figure::Reclaim => &RECLAIM_WAYS,
            Figure::OomVictim => &OOM_WAYS,
            Figure::Count(Counter::KernelPageFaults) => &KERNEL_FAULT_WAYS,
        }
    }
}

/// How a program is attached; each needs something of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    /// BTF-typed raw tracepoint (BPF_PROG_TYPE_TRACING): needs kernel BTF, Linux 5.5.
    TpBtf,
    /// Raw tracepoint (BPF_PROG_TYPE_RAW_TRACEPOINT): Linux 4.17, no BTF.
    RawTp,
    /// Classic tracepoint (BPF_PROG_TYPE_TRACEPOINT, a perf event): needs tracefs for its id.
    Classic,
}

impl Attach {
    /// The spelling `MEMSPIKE_PROBE_FAIL` accepts after `figure/`.
    pub const fn name(self) -> &'static str {
        match self {
            Attach::TpBtf => "tp_btf",
            Attach::RawTp => "raw_tp",
            Attach::Classic => "tracepoint",
        }
    }

    pub fn from_name(name: &str) -> Option<Attach> {
        [Attach::TpBtf, Attach::RawTp, Attach::Classic]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// One program and the tracepoint it attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub program: &'static str,
    pub attach: Attach,
    /// The tracepoint's category (classic tracepoints only; the others need the name alone).
    pub category: &'static str,
    pub tracepoint: &'static str,
}

/// One way to observe a figure: programs that must all attach, and the source name reports use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Way {
    pub source: &'static str,
    pub attach: Attach,
    pub hooks: &'static [Hook],
}

const fn hook(
    program: &'static str,
    attach: Attach,
    category: &'static str,
    tp: &'static str,
) -> Hook {
    Hook {
        program,
        attach,
        category,
        tracepoint: tp,
    }
}

/// `exceptions/page_fault_user` (x86 only): raw_tp (no BTF to parse, ~25 ms of CPU per
/// load; per fault the two cost the same within this VM's noise), else tp_btf.
pub const PAGE_FAULT_WAYS: [Way; 2] = [
    Way {
        source: "ebpf raw_tp/page_fault_user",
        attach: Attach::RawTp,
        hooks: &[hook(
            names::PROG_PAGE_FAULT_RAW,
            Attach::RawTp,
            "exceptions",
            names::TP_PAGE_FAULT_USER,
        )],
    },
    Way {
        source: "ebpf tp_btf/page_fault_user",
        attach: Attach::TpBtf,
        hooks: &[hook(
            names::PROG_PAGE_FAULT_BTF,
            Attach::TpBtf,
            "exceptions",
            names::TP_PAGE_FAULT_USER,
        )],
    },
];

/// The bench's floor: an empty program on the same tracepoint (never used by a run).
pub const PAGE_FAULT_NOP_WAY: Way = Way {
    source: "ebpf tp_btf/page_fault_user (empty program)",
    attach: Attach::TpBtf,
    hooks: &[hook(
        names::PROG_PAGE_FAULT_NOP,
        Attach::TpBtf,
        "exceptions",
        names::TP_PAGE_FAULT_USER,
    )],
};

/// `exceptions/page_fault_kernel` (x86 only): raw_tp, else tp_btf, as for user faults.
const KERNEL_FAULT_WAYS: [Way; 2] = [
    Way {
        source: "ebpf raw_tp/page_fault_kernel",
        attach: Attach::RawTp,
        hooks: &[hook(
            names::PROG_KERNEL_FAULT_RAW,
            Attach::RawTp,
            "exceptions",
            names::TP_PAGE_FAULT_KERNEL,
        )],
    },
    Way {
        source: "ebpf tp_btf/page_fault_kernel",
        attach: Attach::TpBtf,
        hooks: &[hook(
            names::PROG_KERNEL_FAULT_BTF,
            Attach::TpBtf,
            "exceptions",
            names::TP_PAGE_FAULT_KERNEL,
        )],
    },
];

/// `vmscan/mm_vmscan_memcg_reclaim_begin|end`: raw_tp, else tp_btf, else the classic
/// tracepoints (whose perf events cost ~70 ms of RCU grace periods when detached).
const RECLAIM_WAYS: [Way; 3] = [
    Way {
        source: "ebpf raw_tp/mm_vmscan_memcg_reclaim_begin|end",
        attach: Attach::RawTp,
        hooks: &[
            hook(
                names::PROG_RECLAIM_BEGIN_RAW,
                Attach::RawTp,
                names::TP_VMSCAN_CATEGORY,
                names::TP_RECLAIM_BEGIN,
            ),
            hook(
                names::PROG_RECLAIM_END_RAW,
                Attach::RawTp,
                names::TP_VMSCAN_CATEGORY,
                names::TP_RECLAIM_END,
            ),
        ],
    },
    Way {
        source: "ebpf tp_btf/mm_vmscan_memcg_reclaim_begin|end",
        attach: Attach::TpBtf,
        hooks: &[
            hook(
                names::PROG_RECLAIM_BEGIN,
                Attach::TpBtf,
                names::TP_VMSCAN_CATEGORY,
                names::TP_RECLAIM_BEGIN,
            ),
            hook(
                names::PROG_RECLAIM_END,
                Attach::TpBtf,
                names::TP_VMSCAN_CATEGORY,
                names::TP_RECLAIM_END,
            ),
        ],
    },
    Way {
        source: "ebpf tracepoint/vmscan/mm_vmscan_memcg_reclaim_begin|end",
        attach: Attach::Classic,
        hooks: &[
            hook(
                names::PROG_RECLAIM_BEGIN_TP,
                Attach::Classic,
                names::TP_VMSCAN_CATEGORY,
                names::TP_RECLAIM_BEGIN,
            ),
            hook(
                names::PROG_RECLAIM_END_TP,
                Attach::Classic,
                names::TP_VMSCAN_CATEGORY,
                names::TP_RECLAIM_END,
            ),
        ],
    },
];

/// `oom/mark_victim`: the raw tracepoint (the victim's figures read from its `task_struct` at
/// offsets from the kernel's BTF; detaching it costs nothing), else the classic tracepoint (its
/// fields read at offsets from tracefs; detaching its perf event makes the kernel wait for RCU
/// grace periods, about 70 ms here).
const OOM_WAYS: [Way; 2] = [
    Way {
        source: "ebpf raw_tp/mark_victim",
        attach: Attach::RawTp,
        hooks: &[hook(
            names::PROG_OOM_MARK_VICTIM_RAW,
            Attach::RawTp,
            names::TP_OOM_CATEGORY,
            names::TP_OOM_NAME,
        )],
    },
    Way {
        source: "ebpf tracepoint/oom/mark_victim",
        attach: Attach::Classic,
        hooks: &[hook(
            names::PROG_OOM_MARK_VICTIM,
            Attach::Classic,
            names::TP_OOM_CATEGORY,
            names::TP_OOM_NAME,
        )],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_figure_has_a_way() {
        for f in Figure::ALL {
            assert_eq!(Figure::from_name(f.name()), Some(f));
            assert!(!f.ways().is_empty());
            for w in f.ways() {
                assert!(w.hooks.iter().all(|h| h.attach == w.attach), "{w:?}");
                assert!(w.source.starts_with("ebpf "), "{w:?}");
            }
        }
        assert_eq!(Figure::from_name("faults"), None);
        for a in [Attach::TpBtf, Attach::RawTp, Attach::Classic] {
            assert_eq!(Attach::from_name(a.name()), Some(a));
        }
    }
}
