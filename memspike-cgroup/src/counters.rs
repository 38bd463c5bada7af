//! Reading a memory group's counters (reader -> model): a pure reader of the files of one
//! group directory, v1 or v2, into [`Counters`], where every field is optional. A file that is
//! missing, unreadable or unparsable leaves its field `None` and is never an error: kernels
//! differ in which files they have (no `memory.peak` before 5.19, no kmem files on some v1
//! kernels), and the report prints what is known.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use super::{Counters, Version};

/// v1 reports "no limit" as PAGE_COUNTER_MAX pages in bytes (0x7FFFFFFFFFFFF000 with 4 KiB
/// pages); anything this large is treated as unlimited.
const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// Counters from a group directory of either version.
pub fn read_counters(dir: &Path, v: Version) -> Counters {
    match v {
        Version::V1 => read_v1(dir),
        Version::V2 => read_v2(dir),
    }
}

fn read_v1(dir: &Path) -> Counters {
    let stat = read_keyed(&dir.join("memory.stat"));
    let oom = read_keyed(&dir.join("memory.oom_control"));
    let usage = read_usage(dir, Version::V1);
    let memsw = read_value(&dir.join("memory.memsw.usage_in_bytes"));
    let stat_key = |local: &str, total: &str| {
        stat.as_ref()
            .and_then(|s| s.get(local).or_else(|| s.get(total)).copied())
    };
    Counters {
        usage_bytes: usage,
        peak_bytes: read_value(&dir.join("memory.max_usage_in_bytes")),
        limit_bytes: read_value(&dir.join("memory.limit_in_bytes"))
            .filter(|l| *l < V1_UNLIMITED_FROM),
        failcnt: read_value(&dir.join("memory.failcnt")),
        oom_events: None,
        oom_kills: oom.as_ref().and_then(|o| o.get("oom_kill").copied()),
        low_events: None,
        high_events: None,
        oom_group_kills: None,
        high_limit_bytes: None,
        page_cache_bytes: stat_key("cache", "total_cache"),
        anon_bytes: stat_key("rss", "total_rss"),
        anon_huge_bytes: stat_key("rss_huge", "total_rss_huge"),
        kernel_bytes: read_value(&dir.join("memory.kmem.usage_in_bytes")),
        swap_bytes: match (memsw, usage) {
            (Some(sw), Some(u)) => Some(sw.saturating_sub(u)),
            _ => None,
        },
    }
}

fn read_v2(dir: &Path) -> Counters {
    let stat = read_keyed(&dir.join("memory.stat"));
    let events = read_keyed(&dir.join("memory.events"));
    let stat_key = |k: &str| stat.as_ref().and_then(|s| s.get(k).copied());
    let event = |k: &str| events.as_ref().and_then(|e| e.get(k).copied());
    Counters {
        usage_bytes: read_usage(dir, Version::V2),
        peak_bytes: read_value(&dir.join("memory.peak")),
        limit_bytes: read_value(&dir.join("memory.max")),
        failcnt: event("max"),
        oom_events: event("oom"),
        oom_kills: event("oom_kill"),
        low_events: event("low"),
        high_events: event("high"),
        oom_group_kills: event("oom_group_kill"),
        high_limit_bytes: read_value(&dir.join("memory.high")),
        page_cache_bytes: stat_key("file"),
        anon_bytes: stat_key("anon"),
        anon_huge_bytes: stat_key("anon_thp"),
        kernel_bytes: stat_key("kernel"),
        swap_bytes: read_value(&dir.join("memory.swap.current")),
    }
}

/// The file holding a group's current usage: v1 `memory.usage_in_bytes`, v2 `memory.current`.
pub fn usage_file(dir: &Path, v: Version) -> PathBuf {
    dir.join(match v {
        Version::V1 => "memory.usage_in_bytes",
        Version::V2 => "memory.current",
    })
}

/// The usage counter alone (cheap enough to poll).
pub(crate) fn read_usage(dir: &Path, v: Version) -> Option<u64> {
    read_value(&usage_file(dir, v))
}

/// A single-value file; `None` when missing, unparsable or `max`.
pub(crate) fn read_value(path: &Path) -> Option<u64> {
    match fs::read_to_string(path) {
        Ok(text) => parse_value(&text),
        Err(e) => {
            tracing::trace!(path = %path.display(), error = %e, "cgroup counter not readable");
            None
        }
    }
}

fn read_keyed(path: &Path) -> Option<BTreeMap<String, u64>> {
    match fs::read_to_string(path) {
        Ok(text) => Some(parse_keyed(&text)),
        Err(e) => {
            tracing::trace!(path = %path.display(), error = %e, "cgroup counter not readable");
            None
        }
    }
}

/// Parses a single-value cgroup file (`12345\n`); `max` (v2 "no limit") and junk give `None`.
pub fn parse_value(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Parses a flat keyed file (`memory.stat`, `memory.events`, `memory.oom_control`): one
/// `key value` pair per line. Lines that do not fit are skipped.
pub fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let key = words.next()?;
            let value = words.next()?.parse().ok()?;
            Some((key.to_owned(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const V1_STAT: &str = "cache 589824\nrss 1720320\nrss_huge 2097152\nshmem 0\n\
        hierarchical_memory_limit 33554432\ntotal_cache 600000\ntotal_rss 1720320\n";
    const V1_OOM: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
    const V2_STAT: &str = "anon 31457280\nfile 4096000\nkernel 614400\nkernel_stack 32768\n\
        anon_thp 29360128\nfile_thp 0\n";
    const V2_EVENTS: &str = "low 2\nhigh 40\nmax 17\noom 1\noom_kill 1\noom_group_kill 0\n";

    #[test]
    fn parse_memory_stat_events_oom_control() {
        let s = parse_keyed(V1_STAT);
        assert_eq!(s["cache"], 589824);
        assert_eq!(s["rss_huge"], 2097152);
        let o = parse_keyed(V1_OOM);
        assert_eq!((o["oom_kill"], o["under_oom"]), (1, 0));
        let e = parse_keyed(V2_EVENTS);
        assert_eq!((e["max"], e["oom"], e["oom_kill"]), (17, 1, 1));
        let junk = parse_keyed("one\nkey notanumber\n\nok 3 extra\n");
        assert_eq!(junk.len(), 1);
        assert_eq!(junk["ok"], 3);
        assert_eq!(parse_value("33554432\n"), Some(33554432));
        assert_eq!(parse_value("max\n"), None);
        assert_eq!(parse_value(""), None);
    }

    #[test]
    fn v1_all_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for (f, v) in [
            ("memory.usage_in_bytes", "30000000\n"),
            ("memory.max_usage_in_bytes", "33681408\n"),
            ("memory.limit_in_bytes", "33554432\n"),
            ("memory.failcnt", "0\n"),
            ("memory.oom_control", V1_OOM),
            ("memory.stat", V1_STAT),
            ("memory.kmem.usage_in_bytes", "614400\n"),
            ("memory.memsw.usage_in_bytes", "30004096\n"),
        ] {
            fs::write(d.join(f), v).unwrap();
        }
        let c = read_counters(d, Version::V1);
        assert_eq!(
            c,
            Counters {
                usage_bytes: Some(30000000),
                peak_bytes: Some(33681408),
                limit_bytes: Some(33554432),
                failcnt: Some(0),
                oom_events: None,
                oom_kills: Some(1),
                low_events: None,
                high_events: None,
                oom_group_kills: None,
                high_limit_bytes: None,
                page_cache_bytes: Some(589824),
                anon_bytes: Some(1720320),
                anon_huge_bytes: Some(2097152),
                kernel_bytes: Some(614400),
                swap_bytes: Some(4096),
            }
        );
    }

    #[test]
    fn v1_unlimited_and_total_fallback() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::write(d.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        fs::write(d.join("memory.stat"), "total_cache 8192\ntotal_rss 4096\n").unwrap();
        let c = read_counters(d, Version::V1);
        assert_eq!(c.limit_bytes, None);
        assert_eq!(c.page_cache_bytes, Some(8192));
        assert_eq!(c.anon_bytes, Some(4096));
        assert_eq!(c.swap_bytes, None);
    }

    #[test]
    fn v2_all_files() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        for (f, v) in [
            ("memory.current", "33000000\n"),
            ("memory.peak", "33554432\n"),
            ("memory.max", "33554432\n"),
            ("memory.high", "25165824\n"),
            ("memory.events", V2_EVENTS),
            ("memory.stat", V2_STAT),
            ("memory.swap.current", "0\n"),
        ] {
            fs::write(d.join(f), v).unwrap();
        }
        let c = read_counters(d, Version::V2);
        assert_eq!(
            c,
            Counters {
                usage_bytes: Some(33000000),
                peak_bytes: Some(33554432),
                limit_bytes: Some(33554432),
                failcnt: Some(17),
                oom_events: Some(1),
                oom_kills: Some(1),
                low_events: Some(2),
                high_events: Some(40),
                oom_group_kills: Some(0),
                high_limit_bytes: Some(25165824),
                page_cache_bytes: Some(4096000),
                anon_bytes: Some(31457280),
                anon_huge_bytes: Some(29360128),
                kernel_bytes: Some(614400),
                swap_bytes: Some(0),
            }
        );
        fs::write(d.join("memory.max"), "max\n").unwrap();
        fs::write(d.join("memory.high"), "max\n").unwrap();
        let c = read_counters(d, Version::V2);
        assert_eq!((c.limit_bytes, c.high_limit_bytes), (None, None));
        // A malformed events file: the lines that fit are read, the others are None.
        fs::write(
            d.join("memory.events"),
            "low\nhigh x\nmax 3\noom_group_kill 1 2\n\0\n",
        )
        .unwrap();
        let c = read_counters(d, Version::V2);
        assert_eq!(
            (c.low_events, c.high_events, c.failcnt, c.oom_group_kills),
            (None, None, Some(3), Some(1))
        );
    }

    #[test]
    fn missing_files_are_none_not_errors() {
        let t = tempfile::tempdir().unwrap();
        assert_eq!(read_counters(t.path(), Version::V1), Counters::default());
        assert_eq!(read_counters(t.path(), Version::V2), Counters::default());
        assert_eq!(
            read_counters(&t.path().join("gone"), Version::V2),
            Counters::default()
        );
        // Partial: only memory.current and an events file without oom_kill (old kernels).
        fs::write(t.path().join("memory.current"), "5\n").unwrap();
        fs::write(
            t.path().join("memory.events"),
            "low 0\nhigh 0\nmax 2\noom 1\n",
        )
        .unwrap();
        let c = read_counters(t.path(), Version::V2);
        assert_eq!(c.usage_bytes, Some(5));
        assert_eq!(
            (c.failcnt, c.oom_events, c.oom_kills, c.oom_group_kills),
            (Some(2), Some(1), None, None)
        );
        assert_eq!(c.peak_bytes, None);
        assert_eq!(read_usage(t.path(), Version::V2), Some(5));
    }
}
