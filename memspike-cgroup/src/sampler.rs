//! Cheap, frequent readings of a group's memory: its usage and the anonymous and file parts of
//! `memory.stat`, read through files opened once (`pread`, a reused buffer, no allocation per
//! reading), so that `exec` can sample them every few milliseconds.

use std::{fs::File, io, os::unix::fs::FileExt, path::Path};

use super::{Version, counters::usage_file};
pub use memspike_report::facts::Reading;

/// The group's usage and `memory.stat`, opened once.
#[derive(Debug)]
pub struct Sampler {
    usage: File,
    stat: File,
    keys: (&'static str, &'static str),
    buf: Vec<u8>,
}

impl Sampler {
    pub fn open(dir: &Path, v: Version) -> io::Result<Sampler> {
        Ok(Sampler {
            usage: File::open(usage_file(dir, v))?,
            stat: File::open(dir.join("memory.stat"))?,
            keys: match v {
                Version::V1 => ("rss", "cache"),
                Version::V2 => ("anon", "file"),
            },
            buf: vec![0; 16 << 10],
        })
    }

    /// Reads both files now; a figure that cannot be read is `None`.
    pub fn read(&mut self) -> Reading {
        let usage = read_into(&self.usage, &mut self.buf).and_then(|n| {
            std::str::from_utf8(&self.buf[..n])
                .ok()?
                .trim()
                .parse()
                .ok()
        });
        let (anon, file) = match read_into(&self.stat, &mut self.buf) {
            Some(n) => (
                keyed(&self.buf[..n], self.keys.0),
                keyed(&self.buf[..n], self.keys.1),
            ),
            None => (None, None),
        };
        Reading {
            usage_bytes: usage,
            anon_bytes: anon,
            file_bytes: file,
        }
    }
}

fn read_into(f: &File, buf: &mut [u8]) -> Option<usize> {
    f.read_at(buf, 0).ok()
}

/// The value of `key` in a `key value` per line text.
fn keyed(text: &[u8], key: &str) -> Option<u64> {
    text.split(|b| *b == b'\n').find_map(|line| {
        let rest = line.strip_prefix(key.as_bytes())?.strip_prefix(b" ")?;
        std::str::from_utf8(rest).ok()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_anon_and_file_of_each_version_again_and_again() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("memory.usage_in_bytes"), "4096\n").unwrap();
        std::fs::write(
            d.join("memory.stat"),
            "cache 8192\nrss 12288\nrss_huge 0\ntotal_rss 99\n",
        )
        .unwrap();
        let mut s = Sampler::open(d, Version::V1).unwrap();
        let want = Reading {
            usage_bytes: Some(4096),
            anon_bytes: Some(12288),
            file_bytes: Some(8192),
        };
        assert_eq!(s.read(), want);
        std::fs::write(d.join("memory.usage_in_bytes"), "1048576\n").unwrap();
        assert_eq!(s.read().usage_bytes, Some(1 << 20));
        std::fs::write(d.join("memory.current"), "5\n").unwrap();
        std::fs::write(d.join("memory.stat"), "anon 7\nanon_thp 0\nfile 9\n").unwrap();
        let mut s = Sampler::open(d, Version::V2).unwrap();
        assert_eq!(
            s.read(),
            Reading {
                usage_bytes: Some(5),
                anon_bytes: Some(7),
                file_bytes: Some(9)
            }
        );
    }
}
