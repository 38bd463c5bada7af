//! memspike's reports: what a `run`, an `exec`, a `compare`, a `threshold` or a `sweep` left
//! behind, explained. Pure: no root, no kernel, nothing but data in and text out.
//!
//! The chain is facts -> model -> views, as in `below`:
//! - [`facts`]: what the Linux side collected, as plain data ([`facts::RunFacts`],
//!   [`facts::ExecFacts`], the kernel's evidence, the group's counters);
//! - models, built once from the facts with every figure and the verdict derived there:
//!   [`run::Report`], [`exec::ExecReport`], [`compare::CompareReport`],
//!   [`threshold::ThresholdReport`], [`sweep::SweepReport`]; serde gives their JSON;
//! - views, behind one seam ([`Document`]): a [`View`] (headline, blocks of figures, the
//!   verdict) that [`render::text`] renders for a terminal and [`render::html`] for a browser,
//!   and a [`Picture`] ([`Chart`]: memory along a scenario's story or over wall time; a
//!   threshold's outcomes; a sweep's survival grid) that [`render::svg`] draws.
//!
//! [`outcome`] is how any run ended, decided once from its facts. [`figures`] names every
//! figure the reports, `/stats`, `/metrics` and the live page show.
//! A new output is one renderer of `View` or `Chart`; a new report is one model that says what
//! its view and chart are. [`Document::files`] is every form a `--report DIR` holds (the
//! binary writes them), besides a run's [`EVENT_LOG`].

pub mod compare;
pub mod exec;
pub mod facts;
pub mod figures;
mod format;
pub mod outcome;
pub mod render;
pub mod run;
mod stats;
pub mod sweep;
pub mod threshold;

pub use render::{
    chart::{Chart, Picture},
    view::{Tone, View},
};

/// A report in every form: the model serialises itself (JSON), and says what its view and its
/// chart are.
pub trait Document: serde::Serialize {
    /// Headline, figures and verdict, for text and HTML.
    fn view(&self) -> View;
    /// The report's chart of memory, if it has one.
    fn chart(&self) -> Option<Chart> {
        None
    }
    /// What its `timeline.svg` draws: its chart of memory, or another picture of its answers.
    fn picture(&self) -> Option<Picture> {
        self.chart().map(Picture::Timeline)
    }
    /// The report for a terminal.
    fn text(&self) -> String {
        render::text::render(&self.view())
    }
    /// The report as JSON, indented.
    fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }
    /// Every form of the report `--report DIR` holds, as (file name, contents), in [`FILES`]
    /// order (the chart only for a report that has one). A `run`'s directory also holds its
    /// [`EVENT_LOG`], streamed by the supervisor during the run, not by this.
    fn files(&self) -> serde_json::Result<Vec<(&'static str, String)>> {
        let svg = self.picture().map(|p| render::svg::render(&p));
        let html = render::html::render(&self.view(), svg.as_deref());
        let bodies = [Some(self.json()?), svg, Some(html)];
        Ok(FILES
            .into_iter()
            .zip(bodies)
            .filter_map(|(name, body)| Some((name, body?)))
            .collect())
    }
}

/// Every report memspike writes as JSON, for its schema: a document is one of these.
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, clippy::large_enum_variant)] // only its schema is used, never a value
enum AnyReport {
    Run(run::Report),
    Exec(exec::ExecReport),
    Compare(compare::CompareReport),
    Threshold(threshold::ThresholdReport),
    Sweep(sweep::SweepReport),
}

/// The JSON schema of every report (`run`, `exec`, `compare`, `threshold`, `sweep merge`),
/// derived from the report types; the key documentation is their doc comments.
/// `docs/reference/report.schema.json` is this, checked by a test.
pub fn schema() -> String {
    let mut schema = schemars::schema_for!(AnyReport);
    schema.insert("title".into(), "memspike report".into());
    // Pretty JSON of plain values cannot fail.
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// The files `--report DIR` writes, in the order written (the chart only for a report that
/// has one), each whole: the binary writes each to a temporary file in DIR and renames it, so a
/// reader never sees half a report. A `run` also leaves there its [`EVENT_LOG`].
pub const FILES: [&str; 3] = ["report.json", "timeline.svg", "report.html"];

/// `run --report DIR`'s event log: every event the worker sent, one JSON object a line (the
/// report's `events` keeps only the first and last), written by the supervisor as they arrive,
/// so a run killed half-way still leaves the events it had (its last line may then be cut).
pub const EVENT_LOG: &str = "events.jsonl";
