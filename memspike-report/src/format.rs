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

/// A rate per millisecond, for an axis: `140k/ms`, `2.5M/ms`, `12/ms`, `0.5/ms`.
pub(crate) fn per_ms(v: f64) -> String {
    format!("{}/ms", count(v))
}

/// A count, for an axis: `8.2k`, `1.5M`, `566`.
pub(crate) fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if v >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

/// Milliseconds of wall time, in every view (an axis, a table, a figure): `250 ms` (whole
/// milliseconds), `1.5 s`, `3 min`.
pub(crate) fn millis(v: f64) -> String {
    if v >= 120_000.0 {
        format!("{} min", trim(v / 60_000.0))
    } else if v >= 1_000.0 {
        format!("{} s", trim(v / 1_000.0))
    } else {
        format!("{:.0} ms", v)
    }
}

/// At most one decimal, none when it is zero: `140`, `2.5`, `0.5`.
fn trim(v: f64) -> String {
    let s = format!("{v:.1}");
    s.strip_suffix(".0").map_or(s.clone(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An axis reads `140k/ms`, not `140000.0` (issue 19), and seconds past a second.
    #[test]
    fn rates_and_times_read_short() {
        assert_eq!(per_ms(140_000.0), "140k/ms");
        assert_eq!(per_ms(2_500_000.0), "2.5M/ms");
        assert_eq!(per_ms(12.0), "12/ms");
        assert_eq!(per_ms(0.5), "0.5/ms");
        assert_eq!(count(8_239.0), "8.2k");
        assert_eq!(count(566.0), "566");
        assert_eq!(millis(250.0), "250 ms");
        assert_eq!(millis(329.4), "329 ms");
        assert_eq!(millis(1_500.0), "1.5 s");
        assert_eq!(millis(180_000.0), "3 min");
    }
}
