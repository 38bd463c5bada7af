//! The fidelity grid: which cells (limit, spike, GOGC, soft memory limit, remainder, `-gc`) the
//! harness runs, and how one cell becomes the reference program's command line and environment
//! and the simulation's flags.
//!
//! The full product of the knobs (3 limits × 8 spikes × 4 GOGC × 4 memory limits × 4 remainders
//! × 2 `-gc`, 3,072 cells) would take hours per Go version, and most of it repeats the same
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
//! 6. **GOMEMLIMIT's share** 80, 90 and 95 % × 32 and 64 MiB × spikes 0.5 and 0.9 × the
//!    remainder whole and chunked (24 cells): the seed at 90 % with its remainder whole is the
//!    known coin toss (issue 18).
//! 7. **Chunk sizes** 512 KiB and 2 MiB × 32 and 256 MiB × spikes 0.5 and 0.9 (8 cells).
//!
//! Cells that two families share are run once: 126 cells per Go version. `--quick` is 11 of
//! them: the seed with and without `-gc` and with GOMEMLIMIT at 90 %, the edges at 32 MiB 0.95
//! and 256 MiB 0.5 and 0.6, and one cell each of 64 MiB, GOGC 200, GOGC off, and the soft limit
//! with and without GOGC.
//!
//! Measured here (2 shared CPUs, `--jobs 1`, 5 runs), before families 6 and 7: `--quick` took
//! 14-23 s per Go release (136 s for the five default releases, the release build of memspike
//! included); the full grid 2.5-3 minutes per release (14 minutes for the five).

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
    /// GOMEMLIMIT at this percentage of the limit.
    pub memory_limit: Option<u64>,
    /// The remainder in pieces of this size (`1MiB`) rather than whole.
    pub chunk: Option<&'static str>,
    /// The seed's `-gc`: `runtime.GC()` after dropping the spike.
    pub gc: bool,
    /// A known edge: starts with more runs.
    pub edge: bool,
    /// In the `--quick` subset.
    pub quick: bool,
}

/// The soft memory limit's usual share of the cgroup's limit, in percent.
pub const MEMORY_LIMIT_PERCENT: u64 = 90;
/// The soft memory limit's shares the memory-limit family tries.
const MEMORY_LIMIT_PERCENTS: [u64; 3] = [80, MEMORY_LIMIT_PERCENT, 95];
/// The chunk sizes the chunk family tries besides [`CHUNK`].
const OTHER_CHUNKS: [&str; 2] = ["512KiB", "2MiB"];

impl Cell {
    /// The seed's cell.
    pub fn base() -> Cell {
        Cell {
            limit: 32 * MIB,
            spike: 0.9,
            gogc: Gogc::Percent(100),
            memory_limit: None,
            chunk: None,
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
        if let Some(percent) = self.memory_limit {
            id.push_str(&format!("-memlimit{percent}"));
        }
        if let Some(chunk) = self.chunk {
            id.push_str(&format!("-chunk{chunk}"));
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
        self.memory_limit.map(|percent| self.limit * percent / 100)
    }

    /// The reference program's arguments.
    pub fn program_args(&self) -> Vec<String> {
        let mut args = vec![
            "-limit".to_owned(),
            self.limit_text(),
            "-spike".to_owned(),
            self.spike.to_string(),
        ];
        if let Some(chunk) = self.chunk {
            args.extend(["-chunk".to_owned(), chunk.to_owned()]);
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
        if let Some(chunk) = self.chunk {
            args.extend(["--chunk".to_owned(), chunk.to_owned()]);
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
        self.chunk.unwrap_or("whole")
    }

    /// The soft limit column.
    pub fn memory_limit_text(&self) -> String {
        self.memory_limit
            .map_or_else(|| "off".to_owned(), |percent| format!("{percent}%"))
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
        for chunk in [None, Some(CHUNK)] {
            for spike in SPIKES {
                grid.add(Cell {
                    limit,
                    spike,
                    chunk,
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
                    chunk: Some(CHUNK),
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
                    memory_limit: Some(MEMORY_LIMIT_PERCENT),
                    chunk: Some(CHUNK),
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
            chunk: Some(CHUNK),
            edge: true,
            ..base.clone()
        });
    }
    grid.add(Cell {
        spike: 0.95,
        edge: true,
        ..base.clone()
    });
    for percent in MEMORY_LIMIT_PERCENTS {
        for limit in [32 * MIB, 64 * MIB] {
            for spike in [0.5, 0.9] {
                for chunk in [None, Some(CHUNK)] {
                    grid.add(Cell {
                        limit,
                        spike,
                        memory_limit: Some(percent),
                        chunk,
                        ..base.clone()
                    });
                }
            }
        }
    }
    for chunk in OTHER_CHUNKS {
        for limit in [32 * MIB, 256 * MIB] {
            for spike in [0.5, 0.9] {
                grid.add(Cell {
                    limit,
                    spike,
                    chunk: Some(chunk),
                    ..base.clone()
                });
            }
        }
    }

    let quick = [
        base.clone(),
        // The known coin toss: real Go survives it some of the time.
        Cell {
            memory_limit: Some(MEMORY_LIMIT_PERCENT),
            ..base.clone()
        },
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
            chunk: Some(CHUNK),
            ..base.clone()
        },
        Cell {
            limit: 256 * MIB,
            spike: 0.5,
            chunk: Some(CHUNK),
            ..base.clone()
        },
        Cell {
            limit: 256 * MIB,
            spike: 0.6,
            chunk: Some(CHUNK),
            ..base.clone()
        },
        Cell {
            limit: 256 * MIB,
            spike: 0.3,
            gogc: Gogc::Percent(200),
            chunk: Some(CHUNK),
            ..base.clone()
        },
        Cell {
            spike: 0.6,
            gogc: Gogc::Off,
            chunk: Some(CHUNK),
            ..base.clone()
        },
        Cell {
            limit: 256 * MIB,
            spike: 0.9,
            memory_limit: Some(MEMORY_LIMIT_PERCENT),
            chunk: Some(CHUNK),
            ..base.clone()
        },
        Cell {
            spike: 0.8,
            gogc: Gogc::Off,
            memory_limit: Some(MEMORY_LIMIT_PERCENT),
            chunk: Some(CHUNK),
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
        assert_eq!(cells.len(), 126);
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
        assert!(
            cells
                .iter()
                .any(|c| c.gogc == Gogc::Off && c.memory_limit.is_none())
        );
        assert!(
            cells
                .iter()
                .any(|c| c.gogc == Gogc::Off && c.memory_limit.is_some())
        );
        for percent in MEMORY_LIMIT_PERCENTS {
            assert!(cells.iter().any(|c| c.memory_limit == Some(percent)));
        }
        assert!(cells.iter().any(|c| c.gc));
        for chunk in [None, Some("512KiB"), Some(CHUNK), Some("2MiB")] {
            assert!(cells.iter().any(|c| c.chunk == chunk), "{chunk:?}");
        }
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
        assert_eq!(quick.len(), 11);
        assert!(quick.iter().any(|c| c.id() == Cell::base().id()));
    }

    #[test]
    fn a_cell_becomes_the_programs_and_the_simulations_command_lines() {
        let cell = Cell {
            limit: 256 * MIB,
            spike: 0.8,
            gogc: Gogc::Off,
            memory_limit: Some(MEMORY_LIMIT_PERCENT),
            chunk: Some(CHUNK),
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
