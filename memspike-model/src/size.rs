//! Byte sizes as people write them (`33554432`, `32MiB`, `32M`, `1.5GiB`) and as reports print
//! them. The CLI's `--limit` and the server's `?bytes=` share this one grammar.
//!
//! - Prefixes are binary whatever their spelling (`32M` = `32MB` = `32MiB` = 33554432), as for
//!   `docker run --memory` and Go's `GOMEMLIMIT`: a memory limit is counted in pages, and
//!   nobody who types `32M` for a cgroup means 32,000,000.
//! - A size is a whole number of bytes. A fraction of a unit is fine when it comes to whole
//!   bytes (`1.5GiB`, `0.5K`); one that does not (`1.5`, `1.5B`, `1.3KiB` = 1331.2 bytes) is
//!   refused rather than rounded. Exponents (`1e3`) and digit separators (`1_000`) are refused
//!   too: nobody writes a memory size that way on purpose.
//!
//! The grammar is small and strict, so it is parsed here with exact integer arithmetic: the
//! general-purpose crates round fractional bytes and accept exponents and `_` by design.

use std::fmt;

/// A size that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason} (examples: 33554432, 32MiB, 32M, 1.5GiB)")]
pub struct SizeError {
    input: String,
    reason: String,
}

/// Digits after the point beyond this (trailing zeros aside) are refused: no whole-byte size
/// needs them, and it keeps the arithmetic inside `u128`.
const MAX_FRACTION_DIGITS: usize = 18;

/// Parses a size in bytes: digits, optionally `.` and more digits, then optionally spaces and a
/// unit: `B`, or a binary prefix `K`, `M`, `G`, `T`, `P`, `E` followed by an optional `i` and an
/// optional `B` (any case). See the module documentation for what is refused.
pub fn parse(input: &str) -> Result<u64, SizeError> {
    let err = |reason: String| SizeError {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty".into()));
    }
    if s.starts_with('-') {
        return Err(err("sizes cannot be negative".into()));
    }
    if s.contains('_') {
        return Err(err("digit separators (`_`) are not accepted".into()));
    }
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = (&s[..number_len], s[number_len..].trim_start());
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let is_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !is_digits(int) || (number.contains('.') && !is_digits(frac)) {
        return Err(err("not a number with an optional unit".into()));
    }
    let shift = unit_shift(unit).ok_or_else(|| {
        err(if is_exponent(unit) {
            "exponents are not accepted".into()
        } else {
            "not a number with an optional unit".into()
        })
    })?;
    let frac = frac.trim_end_matches('0');
    if frac.len() > MAX_FRACTION_DIGITS {
        return Err(err(format!(
            "more than {MAX_FRACTION_DIGITS} digits after the point"
        )));
    }
    let too_big = || err("it does not fit in 64 bits".into());
    let int: u64 = int.parse().map_err(|_| too_big())?;
    // Both parts in units of 10^-len(frac) bytes: int * 2^shift fits (< 2^124), and so does
    // frac * 2^shift (< 10^18 * 2^60).
    let scale = 10u128.pow(frac.len() as u32);
    let frac_units = if frac.is_empty() {
        0
    } else {
        frac.parse::<u128>().map_err(|_| too_big())? << shift
    };
    let whole = (u128::from(int) << shift) + frac_units / scale;
    let rest = frac_units % scale;
    if rest != 0 {
        let digits = format!("{rest:0width$}", width = frac.len());
        return Err(err(format!(
            "it is {whole}.{} bytes, and a size must be a whole number of bytes",
            digits.trim_end_matches('0')
        )));
    }
    u64::try_from(whole).map_err(|_| too_big())
}

/// The power of two a unit stands for: `""` and `B` are bytes, `K` to `E` (with an optional
/// `i` and `B`, any case) are 2^10 to 2^60.
fn unit_shift(unit: &str) -> Option<u32> {
    let lower = unit.to_ascii_lowercase();
    let mut chars = lower.chars();
    let shift = match chars.next() {
        None => return Some(0),
        Some('b') => return chars.as_str().is_empty().then_some(0),
        Some('k') => 10,
        Some('m') => 20,
        Some('g') => 30,
        Some('t') => 40,
        Some('p') => 50,
        Some('e') => 60,
        Some(_) => return None,
    };
    matches!(chars.as_str(), "" | "i" | "b" | "ib").then_some(shift)
}

/// `e3`, `E-1`, `e+2`: scientific notation after the number.
fn is_exponent(unit: &str) -> bool {
    let mut chars = unit.chars();
    matches!(chars.next(), Some('e' | 'E'))
        && chars
            .as_str()
            .trim_start_matches(['+', '-'])
            .starts_with(|c: char| c.is_ascii_digit())
}

/// Formats bytes for people: `3.2 MiB`, `512.0 KiB`, `100 B`, and `0.98 MiB` rather than
/// `1000.0 KiB`: a figure never needs four digits before its point. The one formatter of
/// sizes for every view.
pub fn human(bytes: u64) -> Human {
    Human(bytes)
}

/// Display adapter returned by [`human`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Human(pub u64);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
        let b = self.0;
        if b < 1000 {
            return write!(f, "{b} B");
        }
        let mut v = b as f64;
        let mut unit = UNITS[0];
        for u in &UNITS[1..] {
            if v < 1000.0 {
                break;
            }
            v /= 1024.0;
            unit = u;
        }
        if v < 1.0 {
            write!(f, "{v:.2} {unit}")
        } else {
            write!(f, "{v:.1} {unit}")
        }
    }
}

/// A size exactly as [`parse`] reads it back: with the largest binary unit that divides it
/// (`32MiB`, `1536KiB`), else in bytes.
pub fn exact(bytes: u64) -> String {
    const UNITS: [(&str, u32); 6] = [
        ("EiB", 60),
        ("PiB", 50),
        ("TiB", 40),
        ("GiB", 30),
        ("MiB", 20),
        ("KiB", 10),
    ];
    UNITS
        .iter()
        .find(|(_, shift)| bytes != 0 && bytes.trailing_zeros() >= *shift)
        .map_or_else(
            || bytes.to_string(),
            |(u, shift)| format!("{}{u}", bytes >> shift),
        )
}

/// A size, or a share of the cgroup's limit: what scenario steps and `--memory-limit` take.
/// Written `32MiB` (any size [`parse`] reads) or `90%`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Amount {
    Bytes(u64),
    Percent(f64),
}

impl Amount {
    /// The size in bytes under a limit of `limit` bytes.
    pub fn resolve(self, limit: u64) -> u64 {
        match self {
            Amount::Bytes(b) => b,
            Amount::Percent(p) => (limit as f64 * p / 100.0) as u64,
        }
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Bytes(b) => f.write_str(&exact(*b)),
            Amount::Percent(p) => write!(f, "{}%", round_percent(*p)),
        }
    }
}

impl std::str::FromStr for Amount {
    type Err = String;
    fn from_str(s: &str) -> Result<Amount, String> {
        if let Some(p) = s.trim().strip_suffix('%') {
            return p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite() && *p > 0.0)
                .map(|p| Amount::Percent(round_percent(p)))
                .ok_or_else(|| {
                    format!("invalid percentage {s:?}: give a positive number, e.g. 90%")
                });
        }
        parse(s).map(Amount::Bytes).map_err(|e| e.to_string())
    }
}

serde_via_str!(
    Amount,
    "a size (33554432, 32MiB, 1.5GiB) or a percentage of the cgroup's limit (90%)"
);

/// Percentages are kept to 9 decimals, so that `--spike 0.9` prints as 90% and 10%.
pub fn round_percent(p: f64) -> f64 {
    (p * 1e9).round() / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_sizes_read_back() {
        for b in [
            0,
            1,
            1023,
            1024,
            1536 << 10,
            32 << 20,
            30_198_988,
            1 << 40,
            u64::MAX,
        ] {
            assert_eq!(parse(&exact(b)), Ok(b), "{}", exact(b));
        }
        assert_eq!(exact(32 << 20), "32MiB");
        assert_eq!(exact(1536 << 10), "1536KiB");
    }

    #[test]
    fn accepts_the_documented_spellings() {
        let cases = [
            ("33554432", 33_554_432),
            ("32MiB", 32 << 20),
            ("32M", 32 << 20),
            ("32MB", 32 << 20),
            ("32 MiB", 32 << 20),
            ("1.5GiB", 3 << 29),
            ("64k", 64 << 10),
            ("2ki", 2048),
            ("1EiB", 1 << 60),
            ("15.5EiB", 31 << 59),
            ("100 b", 100),
            ("0", 0),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_nonsense_with_a_reason() {
        for (input, reason) in [
            ("abc", "not a number"),
            ("", "empty"),
            ("-1", "negative"),
            ("1.5", "whole"),
            ("99999999999999999999", "64 bits"),
            ("32XiB", "not a number"),
            (
                "1.3KiB",
                "it is 1331.2 bytes, and a size must be a whole number of bytes",
            ),
            ("1.5B", "it is 1.5 bytes"),
            ("1e3", "exponents"),
            ("2.5E+1", "exponents"),
            ("1_000", "separators"),
            ("16EiB", "64 bits"),
            ("1.0000000000000000001KiB", "digits after the point"),
        ] {
            let e = parse(input).expect_err(input).to_string();
            assert!(e.contains(reason), "{input}: {e}");
        }
    }

    /// Issue 7, item 7: `1.5B`, `1.5e0` and `1_.5` were accepted (2 bytes) while `1.5` was
    /// refused.
    #[test]
    fn fractions_of_a_byte_exponents_and_underscores_are_refused() {
        for input in [
            "1.5",
            "1.5B",
            "1.5 B",
            "1.5b",
            "1.5e0",
            "1.5E0",
            "15e-1",
            "1_.5",
            "1e3",
            "1_000",
            "1_000KiB",
            "1.3KiB",
            "0.1KiB",
            "0.0000001GiB",
            "1.KiB",
            ".5KiB",
            "+1",
            "1.5.5",
        ] {
            assert!(
                parse(input).is_err(),
                "{input:?} should be refused, got {:?}",
                parse(input)
            );
        }
        // A fraction of a unit that is a whole number of bytes is fine.
        for (input, want) in [
            ("1.5GiB", 3 << 29),
            ("1.5KiB", 1536),
            ("0.5K", 512),
            ("0.25MiB", 1 << 18),
            ("1.0B", 1),
            ("2.000KiB", 2048),
        ] {
            assert_eq!(parse(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn human_readable() {
        assert_eq!(human(100).to_string(), "100 B");
        assert_eq!(human(3_355_443).to_string(), "3.2 MiB");
        assert_eq!(human(32 << 20).to_string(), "32.0 MiB");
        assert_eq!(human(3 << 29).to_string(), "1.5 GiB");
        // Never four digits before the point (issue 19: a margin of `1000.0 KiB`).
        assert_eq!(human(1000 << 10).to_string(), "0.98 MiB");
        assert_eq!(human(1000).to_string(), "0.98 KiB");
        assert_eq!(human(999).to_string(), "999 B");
        assert_eq!(human(999 << 10).to_string(), "999.0 KiB");
        assert_eq!(human((1 << 20) - 1).to_string(), "1.00 MiB");
    }
}
