//! The fidelity grid: which cells (limit, spike, GOGC, soft memory limit, remainder, `-gc`) the
//! harness runs, and how one cell becomes the reference program's command line and environment
//! and the simulation's flags.
//!
//! The full product of the knobs (3 limits × 8 spikes × 4 GOGC × 2 memory limits × 2 remainders
//! × 2 `-gc`, 768 cells) would take hours per Go version, and most of it repeats the same
//! mechanism. The grid is instead a base cell, the seed's (32 MiB, spike 0.9, GOGC=100, no soft
//! limit, the remainder whole, no `-gc`), with one or two factors varied at a time:
//!
//! 1. **Spike sweeps**: every limit (32, 64, 256 MiB) × the remainder whole and in 1 MiB chunks
//!    × spikes 0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95 (48 cells): where the collection after
//!    the spike falls against the limit.
//! 2. **GOGC** 50, 200 and off × 32 and 256 MiB × spikes 0.3, 0.6, 0.9, chunked (18 cells).
//! 3. **The soft memory limit** (GOMEMLIMIT = 90 % of the limit) with GOGC 100 and off × every
//!    limit × spikes 0.5, 0.8, 0.9, chunked (18 cells).
//! 4. **`-gc`** × every limit × spikes 0.5, 0.9, 0.95, the remainder whole (9 cells).
//! 5. **The known edges** of `reference/go/MEASUREMENTS.md`: 256 MiB, chunked, GOGC=100, spikes
//!    0.45, 0.5, 0.52, 0.55, 0.56, 0.57 (where go1.19, go1.21 and go1.27 part ways), and 32 MiB
//!    at spike 0.95 (go1.21 died in the spike or the remainder). Edge cells start with more
//!    runs.
//!
//! Cells that two families share are run once: 98 cells per Go version. `--quick` is 10 of
//! them: the seed with and without `-gc`, the edges at 32 MiB 0.95 and 256 MiB 0.5 and 0.6, and
//! one cell each of 64 MiB, GOGC 200, GOGC off, and the soft limit with and without GOGC.
//!
//! Measured here (2 shared CPUs, `--jobs 1`, 5 runs): `--quick` takes 14-23 s per Go release
//! (136 s for the five default releases, the release build of memspike included); the full
//! grid 2.5-3 minutes per release (14 minutes for the five).

use std::fmt;

pub const MIB: u64 = 1 << 20;

/// The chunk size of a chunked remainder.
pub const CHUNK: &str = "1MiB";

/// GOGC as the cell sets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gogc {
    Percent(u32),
    Off,
}

impl fmt::Display for Gogc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gogc::Percent(p) => write!(f, "{p}"),
            Gogc::Off => f.write_str("off"),
        }
    }
}

/// One cell of the grid.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub limit: u64,
    pub spike: f64,
    pub gogc: Gogc,
    /// GOMEMLIMIT at [`MEMORY_LIMIT_PERCENT`] of the limit.
    pub memory_limit: bool,
    /// The remainder in [`CHUNK`] pieces rather than whole.
    pub chunked: bool,
    /// The seed's `-gc`: `runtime.GC()` after dropping the spike.
    pub gc: bool,
    /// A known edge: starts with more runs.
    pub edge: bool,
    /// In the `--quick` subset.
    pub quick: bool,
}

/// The soft memory limit's share of the cgroup's limit, in percent.
pub const MEMORY_LIMIT_PERCENT: u64 = 90;

impl Cell {
    /// The seed's cell.
    pub fn base() -> Cell {
        Cell {
            limit: 32 * MIB,
            spike: 0.9,
            gogc: Gogc::Percent(100),
            memory_limit: false,
            chunked: false,
            gc: false,
            edge: false,
            quick: false,
        }
    }

    /// A name that is unique in the grid and safe as a directory name.
    pub fn id(&self) -> String {
        let mut id = format!(
            "{}MiB-spike{}-gogc{}",
            self.limit / MIB,
            self.spike,
            self.gogc
        );
        if self.memory_limit {
            id.push_str(&format!("-memlimit{MEMORY_LIMIT_PERCENT}"));
        }
        if self.chunked {
            id.push_str(&format!("-chunk{CHUNK}"));
        }
        if self.gc {
            id.push_str("-gc");
        }
        id
    }

    /// `--limit` and `-limit`: whole MiB.
    pub fn limit_text(&self) -> String {
        format!("{}MiB", self.limit / MIB)
    }

    /// GOMEMLIMIT in bytes (rounded down, as memspike resolves `90%`), if the cell sets one.
    pub fn memory_limit_bytes(&self) -> Option<u64> {
        self.memory_limit
            .then(|| self.limit * MEMORY_LIMIT_PERCENT / 100)
    }

    /// The reference program's arguments.
    pub fn program_args(&self) -> Vec<String> {
        let mut args = vec![
            "-limit".to_owned(),
            self.limit_text(),
            "-spike".to_owned(),
            self.spike.to_string(),
        ];
        if self.chunked {
            args.extend(["-chunk".to_owned(), CHUNK.to_owned()]);
        }
        if self.gc {
            args.push("-gc".to_owned());
        }
        args
    }

    /// The Go runtime's knobs for the real program: GOGC always, GOMEMLIMIT when set.
    pub fn program_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("GOGC", self.gogc.to_string())];
        if let Some(bytes) = self.memory_limit_bytes() {
            env.push(("GOMEMLIMIT", bytes.to_string()));
        }
        env
    }

    /// `memspike run`'s flags for the same experiment under `runtime` (e.g. `go1.21.13`).
    pub fn sim_args(&self, runtime: &str) -> Vec<String> {
        let mut args = vec![
            "--limit".to_owned(),
            self.limit_text(),
            "--spike".to_owned(),
            self.spike.to_string(),
            "--gogc".to_owned(),
            self.gogc.to_string(),
        ];
        if self.chunked {
            args.extend(["--chunk".to_owned(), CHUNK.to_owned()]);
        }
        if let Some(bytes) = self.memory_limit_bytes() {
            args.extend(["--memory-limit".to_owned(), bytes.to_string()]);
        }
        if self.gc {
            args.push("--gc".to_owned());
        }
        args.extend(["--runtime".to_owned(), runtime.to_owned()]);
        args
    }

    /// The remainder column: `whole` or the chunk size.
    pub fn remainder_text(&self) -> &'static str {
        if self.chunked { CHUNK } else { "whole" }
    }

    /// The soft limit column.
    pub fn memory_limit_text(&self) -> String {
        if self.memory_limit {
            format!("{MEMORY_LIMIT_PERCENT}%")
        } else {
            "off".to_owned()
        }
    }
}

const LIMITS: [u64; 3] = [32 * MIB, 64 * MIB, 256 * MIB];
const SPIKES: [f64; 8] = [0.1, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95];
const EDGE_SPIKES_256: [f64; 6] = [0.45, 0.5, 0.52, 0.55, 0.56, 0.57];

/// The whole grid, in a stable order (families as the module docs list them).
pub fn full() -> Vec<Cell> {
    let mut grid = Grid::default();
    let base = Cell::base();
    for limit in LIMITS {
        for chunked in [false, true] {
            for spike in SPIKES {
                grid.add(Cell {
                    limit,
                    spike,
                    chunked,
                    ..base.clone()
                });
            }
        }
    }
    for gogc in [Gogc::Percent(50), Gogc::Percent(200), Gogc::Off] {
        for limit in [32 * MIB, 256 * MIB] {
            for spike in [0.3, 0.6, 0.9] {
                grid.add(Cell {
                    limit,
                    spike,
                    gogc,
                    chunked: true,
                    ..base.clone()
                });
            }
        }
    }
    for gogc in [Gogc::Percent(100), Gogc::Off] {
        for limit in LIMITS {
            for spike in [0.5, 0.8, 0.9] {
                grid.add(Cell {
                    limit,
                    spike,
                    gogc,
                    memory_limit: true,
                    chunked: true,
                    ..base.clone()
                });
            }
        }
    }
    for limit in LIMITS {
        for spike in [0.5, 0.9, 0.95] {
            grid.add(Cell {
                limit,
                spike,
                gc: true,
                ..base.clone()
            });
        }
    }
    for spike in EDGE_SPIKES_256 {
        grid.add(Cell {
            limit: 256 * MIB,
            spike,
            chunked: true,
            edge: true,
            ..base.clone()
        });
    }
    grid.add(Cell {
        spike: 0.95,
        edge: true,
        ..base.clone()
    });

    let quick = [
        base.clone(),
        Cell {
            gc: true,
            ..base.clone()
        },
        Cell {
            spike: 0.95,
            ..base.clone()
        },
        Cell {
            limit: 64 * MIB,
            spike: 0.5,
            chunked: true,
            ..base.clone()
        },
        Cell {
            limit: 256 * MIB,
            spike: 0.5,
            chunked: true,
            ..base.clone()
        },
        Cell {
            limit: 256 * MIB,
            spike: 0.6,
            chunked: true,
            ..base.clone()
        },
        Cell {
            limit: 256 * MIB,
            spike: 0.3,
            gogc: Gogc::Percent(200),
            chunked: true,
            ..base.clone()
        },
        Cell {
            spike: 0.6,
            gogc: Gogc::Off,
            chunked: true,
            ..base.clone()
        },
        Cell {
            limit: 256 * MIB,
            spike: 0.9,
            memory_limit: true,
            chunked: true,
            ..base.clone()
        },
        Cell {
            spike: 0.8,
            gogc: Gogc::Off,
            memory_limit: true,
            chunked: true,
            ..base.clone()
        },
    ];
    for cell in quick {
        grid.add(Cell {
            quick: true,
            ..cell
        });
    }
    grid.cells
}

/// The `--quick` subset of [`full`].
pub fn quick() -> Vec<Cell> {
    full().into_iter().filter(|c| c.quick).collect()
}

/// Cells added once each: a cell that is already there takes the new one's `edge` and `quick`.
#[derive(Default)]
struct Grid {
    cells: Vec<Cell>,
}

impl Grid {
    fn add(&mut self, cell: Cell) {
        let id = cell.id();
        match self.cells.iter_mut().find(|c| c.id() == id) {
            Some(existing) => {
                existing.edge |= cell.edge;
                existing.quick |= cell.quick;
            }
            None => self.cells.push(cell),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_grid_has_its_documented_size_and_unique_cells() {
        let cells = full();
        assert_eq!(cells.len(), 98);
        let ids: HashSet<String> = cells.iter().map(Cell::id).collect();
        assert_eq!(ids.len(), cells.len());
        assert_eq!(
            cells[0],
            Cell {
                spike: 0.1,
                ..Cell::base()
            }
        );
    }

    #[test]
    fn the_grid_spans_the_knobs_the_issue_asks_for() {
        let cells = full();
        for limit in LIMITS {
            assert!(cells.iter().any(|c| c.limit == limit));
        }
        for spike in SPIKES {
            assert!(cells.iter().any(|c| c.spike == spike), "spike {spike}");
        }
        for gogc in [50, 100, 200] {
            assert!(cells.iter().any(|c| c.gogc == Gogc::Percent(gogc)));
        }
        assert!(cells.iter().any(|c| c.gogc == Gogc::Off && !c.memory_limit));
        assert!(cells.iter().any(|c| c.gogc == Gogc::Off && c.memory_limit));
        assert!(cells.iter().any(|c| c.gc));
        assert!(cells.iter().any(|c| c.chunked) && cells.iter().any(|c| !c.chunked));
    }

    #[test]
    fn edges_and_quick_cells_are_marked_once_on_the_shared_cell() {
        let cells = full();
        let seed_095 = Cell {
            spike: 0.95,
            ..Cell::base()
        };
        let found: Vec<&Cell> = cells.iter().filter(|c| c.id() == seed_095.id()).collect();
        assert_eq!(found.len(), 1);
        assert!(found[0].edge && found[0].quick);
        assert_eq!(cells.iter().filter(|c| c.edge).count(), 7);
        let quick = quick();
        assert_eq!(quick.len(), 10);
        assert!(quick.iter().any(|c| c.id() == Cell::base().id()));
    }

    #[test]
    fn a_cell_becomes_the_programs_and_the_simulations_command_lines() {
        let cell = Cell {
            limit: 256 * MIB,
            spike: 0.8,
            gogc: Gogc::Off,
            memory_limit: true,
            chunked: true,
            gc: true,
            ..Cell::base()
        };
        assert_eq!(cell.id(), "256MiB-spike0.8-gogcoff-memlimit90-chunk1MiB-gc");
        assert_eq!(
            cell.program_args(),
            ["-limit", "256MiB", "-spike", "0.8", "-chunk", "1MiB", "-gc"]
        );
        // 90 % of 256 MiB, rounded down: the figure MEASUREMENTS.md ran with.
        assert_eq!(
            cell.program_env(),
            [
                ("GOGC", "off".to_owned()),
                ("GOMEMLIMIT", "241591910".to_owned())
            ]
        );
        assert_eq!(
            cell.sim_args("go1.21.13"),
            [
                "--limit",
                "256MiB",
                "--spike",
                "0.8",
                "--gogc",
                "off",
                "--chunk",
                "1MiB",
                "--memory-limit",
                "241591910",
                "--gc",
                "--runtime",
                "go1.21.13"
            ]
        );
        let seed = Cell::base();
        assert_eq!(seed.program_args(), ["-limit", "32MiB", "-spike", "0.9"]);
        assert_eq!(seed.program_env(), [("GOGC", "100".to_owned())]);
        assert_eq!(seed.memory_limit_bytes(), None);
    }
}
