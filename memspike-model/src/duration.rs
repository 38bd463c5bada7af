//! Durations as people write them in scenario files and on the command line (`100ms`, `2m`,
//! `1h 30m`: humantime's grammar), and back.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Parses a duration, with a message that says what to write.
pub fn parse(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?}: {e} (examples: 100ms, 2s, 2m, 1h 30m)"))
}

/// Prints a duration the way [`parse`] reads it.
pub fn format(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}
