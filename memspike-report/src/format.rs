//! How the views write a value that may be unknown: sizes, counts, shares, each `-` when the
//! kernel or the run gave none. Every report formats through here.

use memspike_model::size::human;

/// A size, or `-` when unknown.
pub(crate) fn opt_bytes(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), |b| human(b).to_string())
}

/// A share as a percentage, or `-` when unknown.
pub(crate) fn percent(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |s| format!("{:.2} %", s * 100.0))
}

/// A count, or `-` when unknown.
pub(crate) fn opt_count(v: Option<u64>) -> String {
    v.map_or("-".to_owned(), |n| n.to_string())
}

/// ` from <file>` after an inherited limit (`--inherit`), nothing otherwise.
pub(crate) fn from_source(source: Option<&str>) -> String {
    source.map_or_else(String::new, |s| format!(" from {s}"))
}
