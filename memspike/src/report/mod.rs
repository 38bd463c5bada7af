//! Reports: what a `run`, an `exec` or a `compare` left behind, explained.
//!
//! The chain is facts -> model -> views, as in `below`:
//! - facts: what the supervisor collected ([`run::RunFacts`], [`crate::exec::ExecFacts`]);
//! - model: plain typed data, built once from the facts with every figure and the verdict
//!   derived there ([`run::Report`], [`exec::ExecReport`], the kernel's [`evidence`]); serde
//!   gives its JSON, whose keys the README documents;
//! - views, behind one seam ([`Document`]): a [`view::View`] (headline, blocks of figures, the
//!   verdict) that [`text`] renders for a terminal and [`html`] for a browser, and a
//!   [`chart::Chart`] (memory over time) that [`svg`] draws.
//!
//! A new output is one renderer of `View` or `Chart`; a new report is one model that says what
//! its view and chart are. [`write_dir`] writes every form a `--report DIR` holds.

pub mod chart;
pub mod compare;
pub mod evidence;
pub mod exec;
pub mod html;
pub mod run;
pub mod svg;
pub mod sweep;
pub mod text;
pub mod threshold;
pub mod view;

use std::path::{Path, PathBuf};

pub use chart::Chart;
pub use evidence::{
    KernelEvidence, OomVictimReport, PageFaults, Pressure, PsiAverages, Reclaim, Tracing,
};
pub use run::{
    CgroupSection, Exit, FailedAllocation, HeapAtEnd, KernelSection, Outcome, Report, RunFacts,
    Settings, WorkerSection,
};
pub use view::View;

/// A report in every form: the model serialises itself (JSON), and says what its view and its
/// chart are.
pub trait Document: serde::Serialize {
    /// Headline, figures and verdict, for text and HTML.
    fn view(&self) -> View;
    /// Memory over time.
    fn chart(&self) -> Chart;
    /// The report for a terminal.
    fn text(&self) -> String {
        text::render(&self.view())
    }
}

/// The files `--report DIR` writes, in the order written.
pub const FILES: [&str; 3] = ["report.json", "timeline.svg", "report.html"];

/// Writes `doc` into `dir` as JSON, SVG and HTML ([`FILES`]); returns the paths written.
pub fn write_dir(doc: &impl Document, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let json = serde_json::to_string_pretty(doc).map_err(std::io::Error::other)?;
    let svg = svg::render(&doc.chart());
    let html = html::render(&doc.view(), &svg);
    let mut written = Vec::new();
    for (name, body) in FILES.iter().zip([json, svg, html]) {
        let path = dir.join(name);
        std::fs::write(&path, body)?;
        written.push(path);
    }
    Ok(written)
}
