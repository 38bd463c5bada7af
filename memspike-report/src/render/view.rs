//! What a report shows a person, before it is laid out: a headline, blocks of figures and the
//! verdict. [`text`](super::text) and [`html`](super::html) render the same `View`, so the
//! terminal and the browser never disagree about a figure.

use crate::figures::Figure;

/// How the outcome reads: the HTML report colours its headline by it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// Killed, or failed.
    Bad,
    /// Survived.
    Good,
    /// Interrupted, exited, or a comparison.
    Neutral,
}

/// One block of figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    /// Label and value, one pair per row.
    Pairs(Vec<(String, String)>),
    /// A table under a caption. A row shorter than the header spans what it has (a note
    /// such as "… 12 events omitted").
    Grid {
        caption: String,
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// A report as a person reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub headline: String,
    pub tone: Tone,
    pub blocks: Vec<Block>,
    /// What went wrong, when the experiment did not complete.
    pub error: Option<String>,
    pub verdict: String,
}

/// Label–value rows, built one at a time: each row is a named figure, labelled as the
/// registry says ([`crate::figures`]).
#[derive(Default)]
pub struct Pairs(Vec<(String, String)>);

impl Pairs {
    pub fn row(&mut self, figure: &Figure, value: impl Into<String>) {
        self.0.push((figure.label.to_owned(), value.into()));
    }
    pub fn block(self) -> Block {
        Block::Pairs(self.0)
    }
}
