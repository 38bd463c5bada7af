//! The medians the reports take over repeated runs (a comparison's rows, a program's
//! profile): the lower median, so that the figure is one a run really had.

/// The lower median of `values`, `None` for none.
pub(crate) fn median(values: impl Iterator<Item = u64>) -> Option<u64> {
    let mut v: Vec<u64> = values.collect();
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

/// The lower median of `values`, `None` for none.
pub(crate) fn median_f(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len().checked_sub(1)? / 2).copied()
}
