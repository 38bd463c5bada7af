//! What reports draw ([`Picture`]): memory along an axis, a threshold's outcomes, a sweep's
//! survival grid. A [`Chart`] (memory) is plain data: stacked
//! areas (the heap's live, garbage and free parts), lines (the next-GC goal, the trigger, the
//! cgroup's usage, its limit and the memory limit; one line per policy in a comparison),
//! vertical marks (collections with the goal each set, the OOM kill with its victim), an
//! page faults on a second axis and, for a scenario, the bands of its steps.
//! The x is a scenario's [`super::story`] axis (percent, when `bands` is not empty) or
//! milliseconds of wall time. [`svg`](super::svg) draws it.
//!
//! Series are named and coloured by [`Role`], whose labels come from the named figures
//! ([`crate::figures`]) and whose colours are the live page's (its CSS
//! variables, in `memspike-worker`; a test there keeps the two the same), so the report and the page read alike.

use memspike_model::threshold::Knob;

use super::story::{self, Band};
use crate::figures::{self, Figure};

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`, as CSS writes it.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// What a series shows; its label and colour follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Live,
    Garbage,
    Free,
    NextGc,
    Trigger,
    CgroupUsage,
    Limit,
    /// The runtime's soft memory limit (Go's GOMEMLIMIT).
    MemoryLimit,
    /// Page faults (the second axis): per millisecond over wall time, so far along a story.
    Faults,
    /// The cgroup usage of the `n`th policy of a comparison.
    Policy(usize),
}

/// The page's palette (light theme), by CSS variable.
pub const PALETTE: [(&str, Rgb); 7] = [
    ("--live", Rgb(0x1f, 0x5f, 0xbf)),
    ("--garbage", Rgb(0xd9, 0x8a, 0x00)),
    ("--free", Rgb(0x9a, 0xa5, 0xb1)),
    ("--nextgc", Rgb(0x8a, 0x4f, 0xbf)),
    ("--cgroup", Rgb(0x1d, 0x7a, 0x45)),
    ("--limit", Rgb(0xc6, 0x28, 0x28)),
    ("--muted", Rgb(0x55, 0x5e, 0x69)),
];

/// Colours for the policies of a comparison (distinct from the limit's red), in order.
const POLICY_COLOURS: [Rgb; 8] = [
    Rgb(0x1f, 0x5f, 0xbf),
    Rgb(0xd9, 0x8a, 0x00),
    Rgb(0x1d, 0x7a, 0x45),
    Rgb(0x8a, 0x4f, 0xbf),
    Rgb(0x00, 0x83, 0x8f),
    Rgb(0x8d, 0x6e, 0x63),
    Rgb(0xd8, 0x1b, 0x60),
    Rgb(0x55, 0x5e, 0x69),
];

fn palette(var: &str) -> Rgb {
    PALETTE
        .iter()
        .find(|(v, _)| *v == var)
        .map_or(Rgb(0, 0, 0), |(_, c)| *c)
}

impl Role {
    /// The named figure it draws, if it is one.
    pub fn figure(self) -> Option<&'static Figure> {
        Some(match self {
            Role::Live => &figures::LIVE,
            Role::Garbage => &figures::GARBAGE,
            Role::Free => &figures::FREE,
            Role::NextGc => &figures::NEXT_GC,
            Role::Trigger => &figures::GC_TRIGGER,
            Role::CgroupUsage => &figures::CGROUP_USAGE,
            Role::Limit => &figures::LIMIT,
            Role::MemoryLimit => &figures::MEMORY_LIMIT,
            Role::Faults | Role::Policy(_) => return None,
        })
    }

    pub fn colour(self) -> Rgb {
        match self {
            Role::Live => palette("--live"),
            Role::Garbage => palette("--garbage"),
            Role::Free => palette("--free"),
            Role::NextGc => palette("--nextgc"),
            Role::Trigger => palette("--nextgc"),
            Role::CgroupUsage => palette("--cgroup"),
            Role::Limit => palette("--limit"),
            Role::MemoryLimit | Role::Faults => palette("--muted"),
            Role::Policy(n) => POLICY_COLOURS[n % POLICY_COLOURS.len()],
        }
    }

    /// Dashed, as on the page: goals and limits are plans, not memory.
    pub fn dashed(self) -> bool {
        matches!(
            self,
            Role::NextGc | Role::Trigger | Role::Limit | Role::MemoryLimit
        )
    }
}

/// One series: `(x, value)` points, bytes for memory and faults per ms for the rate.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub role: Role,
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series of a named figure, labelled by it.
    pub fn of(role: Role, points: Vec<(f64, f64)>) -> Series {
        let label = role.figure().map_or("", |f| f.label).to_owned();
        Series {
            role,
            label,
            points,
        }
    }
}

impl Series {
    /// A level held from x = 0 to `x_end`: the group's limit, the memory limit.
    pub fn level(role: Role, bytes: u64, x_end: f64) -> Series {
        let v = bytes as f64;
        Series::of(role, vec![(0.0, v), (x_end, v)])
    }

    /// The last value held on to `x_end`, when the series ends before it.
    pub fn held_to(mut self, x_end: f64) -> Series {
        if let Some(&(x, v)) = self.points.last()
            && x < x_end
        {
            self.points.push((x_end, v));
        }
        self
    }

    /// The same values held until the next point: a plan (a goal, a trigger) changes at an
    /// instant, it does not slide between events.
    pub fn stepped(mut self) -> Series {
        let mut points = Vec::with_capacity(self.points.len() * 2);
        for (i, &(t, v)) in self.points.iter().enumerate() {
            if i > 0 {
                points.push((t, self.points[i - 1].1));
            }
            points.push((t, v));
        }
        self.points = points;
        self
    }
}

/// What a vertical mark marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarkKind {
    Gc,
    Oom,
}

/// A vertical mark; its label may be left out where there is no room for it (a collection's;
/// never the kill's).
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub x: f64,
    pub kind: MarkKind,
    pub label: String,
}

/// Memory along the story of a scenario, or over wall time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chart {
    pub title: String,
    /// What the x-axis is.
    pub x_label: String,
    /// The scenario's steps along the x-axis, which is then its story (0 to 100); empty for
    /// an axis of milliseconds.
    pub bands: Vec<Band>,
    /// Stacked bottom first.
    pub stack: Vec<Series>,
    pub lines: Vec<Series>,
    pub marks: Vec<Mark>,
    /// Page faults on a second axis ([`Role::Faults`]): per millisecond over wall time, a
    /// count so far along a story.
    pub faults: Option<Series>,
}

impl Chart {
    /// The axis's end: the story's, or the last time any series or mark reaches.
    pub fn x_max(&self) -> f64 {
        if !self.bands.is_empty() {
            return story::END;
        }
        let series = self.stack.iter().chain(&self.lines).chain(&self.faults);
        let points = series.flat_map(|s| s.points.iter().map(|p| p.0));
        points
            .chain(self.marks.iter().map(|m| m.x))
            .fold(0.0, f64::max)
    }

    /// The highest memory value drawn (the stack's top included).
    pub fn y_max(&self) -> f64 {
        let stacked = self.stacked();
        let top = stacked
            .last()
            .map_or(0.0, |s| s.points.iter().map(|p| p.1).fold(0.0, f64::max));
        self.lines
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(top, f64::max)
    }

    /// The stack as cumulative series: each one's points plus everything below it.
    pub fn stacked(&self) -> Vec<Series> {
        let mut out: Vec<Series> = Vec::with_capacity(self.stack.len());
        for s in &self.stack {
            let points = match out.last() {
                None => s.points.clone(),
                Some(below) => s
                    .points
                    .iter()
                    .zip(&below.points)
                    .map(|(p, b)| (p.0, p.1 + b.1))
                    .collect(),
            };
            out.push(Series {
                points,
                ..s.clone()
            });
        }
        out
    }
}

/// What a report draws: memory along an axis ([`Chart`]), outcomes along a knob
/// ([`Outcomes`]), or survival over a grid of cells ([`Grid`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Picture {
    Timeline(Chart),
    Outcomes(Outcomes),
    Grid(Grid),
}

/// Outcomes along a knob, a row per policy: what `threshold` draws. Each run is a dot at the
/// value it ran at (survived or killed); the band where real runs flipped, the band where the
/// model's draws disagreed, and the value every run survived nearest the risky end are marked.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcomes {
    pub title: String,
    pub knob: Knob,
    /// The range searched, low to high.
    pub range: (f64, f64),
    pub rows: Vec<OutcomeRow>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutcomeRow {
    pub name: String,
    /// Every run: the value, and whether it survived.
    pub runs: Vec<(f64, bool)>,
    pub flipped: Option<(f64, f64)>,
    pub marginal: Option<(f64, f64)>,
    pub survives: Option<f64>,
}

/// Survival over a grid, a row per policy and a column per limit (and scenario): what `sweep
/// merge` draws. Each cell is coloured by the share of its runs that survived, and says it.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    pub title: String,
    /// Each column's name, on up to two lines (`\n` between them).
    pub columns: Vec<String>,
    pub rows: Vec<GridRow>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GridRow {
    pub name: String,
    /// Per column: runs survived, and runs; `None` where none ran.
    pub cells: Vec<Option<(u32, u32)>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_adds_up_and_bounds_the_scale() {
        let s = |role, ys: &[f64]| {
            Series::of(
                role,
                ys.iter().enumerate().map(|(i, y)| (i as f64, *y)).collect(),
            )
        };
        let chart = Chart {
            stack: vec![
                s(Role::Live, &[1.0, 2.0]),
                s(Role::Garbage, &[3.0, 0.0]),
                s(Role::Free, &[0.0, 5.0]),
            ],
            lines: vec![s(Role::Limit, &[6.0, 6.0])],
            ..Chart::default()
        };
        let stacked = chart.stacked();
        assert_eq!(stacked[2].points, vec![(0.0, 4.0), (1.0, 7.0)]);
        assert_eq!(chart.y_max(), 7.0);
        assert_eq!(chart.x_max(), 1.0);
        assert_eq!(chart.stack[1].label, "garbage");
    }
}
