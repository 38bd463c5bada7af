//! Byte sizes as people write them (`33554432`, `32MiB`, `32M`, `1.5GiB`) and as reports print
//! them. Parsing is delegated to `parse-size`; this module fixes the conventions.
//!
//! Prefixes are binary whatever their spelling (`32M` = `32MB` = `32MiB` = 33554432), as for
//! `docker run --memory` and Go's `GOMEMLIMIT`: a memory limit is counted in pages, and nobody
//! who types `32M` for a cgroup means 32,000,000.

use std::fmt;

/// A size that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason} (examples: 33554432, 32MiB, 32M, 1.5GiB)")]
pub struct SizeError {
    input: String,
    reason: &'static str,
}

/// Parses a size in bytes: a whole number of bytes, or a number (fractions allowed) with a
/// binary unit `K`, `M`, `G`, `T` (optionally followed by `i` and/or `B`).
pub fn parse(input: &str) -> Result<u64, SizeError> {
    let err = |reason| SizeError {
        input: input.to_owned(),
        reason,
    };
    let s = input.trim();
    if s.starts_with('-') {
        return Err(err("sizes cannot be negative"));
    }
    // A bare number is a count of bytes, and a fraction of a byte means nothing.
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') && s.contains('.') {
        return Err(err("a number of bytes must be whole"));
    }
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| {
            err(match e {
                parse_size::Error::Empty => "it is empty",
                parse_size::Error::PosOverflow => "it does not fit in 64 bits",
                _ => "not a number with an optional unit",
            })
        })
}

/// Formats bytes for people: `3.2 MiB`, `512 KiB`, `100 B`.
pub fn human(bytes: u64) -> Human {
    Human(bytes)
}

/// Display adapter returned by [`human`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Human(pub u64);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        let b = self.0;
        if b < 1024 {
            return write!(f, "{b} B");
        }
        let mut v = b as f64 / 1024.0;
        let mut unit = UNITS[0];
        for u in &UNITS[1..] {
            if v < 1024.0 {
                break;
            }
            v /= 1024.0;
            unit = u;
        }
        write!(f, "{v:.1} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            let e = parse(input).expect_err(input).to_string();
            assert!(e.contains(reason), "{input}: {e}");
        }
    }

    #[test]
    fn human_readable() {
        assert_eq!(human(100).to_string(), "100 B");
        assert_eq!(human(3_355_443).to_string(), "3.2 MiB");
        assert_eq!(human(32 << 20).to_string(), "32.0 MiB");
        assert_eq!(human(3 << 29).to_string(), "1.5 GiB");
    }
}
