//! Embeds the eBPF object (memspike-ebpf, built by `cargo xtask build-ebpf` with Debian's
//! compiler) into the memspike binary.
//!
//! The object is taken from `MEMSPIKE_EBPF_OBJECT` (set by `cargo xtask test`/`run`), else from
//! its default build path. It must be there and be a BPF ELF object: it is copied to OUT_DIR,
//! and the crate embeds it with `include_bytes!`. A missing or wrong object is a build
//! error that says what to do, so that nothing builds without its observer by accident (and
//! no test of the object can skip because a build happened to run before the object existed).
//!
//! With the `no-ebpf` feature the crate builds without any object, on purpose: the object is
//! neither looked for nor embedded, and every report says tracing is unavailable because of
//! that feature.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// ELF e_machine for BPF.
const EM_BPF: u16 = 247;

fn main() {
    println!("cargo::rerun-if-env-changed=MEMSPIKE_EBPF_OBJECT");
    println!("cargo::rerun-if-changed=build.rs");

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let embedded = out_dir.join("memspike-ebpf.o");

    if std::env::var_os("CARGO_FEATURE_NO_EBPF").is_some() {
        let _ = fs::remove_file(&embedded);
        return;
    }

    let object = match std::env::var_os("MEMSPIKE_EBPF_OBJECT") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => default_object(),
    };
    // Also when the file does not exist yet: once `cargo xtask build-ebpf` creates it, the next
    // build finds it.
    println!("cargo::rerun-if-changed={}", object.display());

    match check_bpf_object(&object) {
        Ok(()) => {
            if let Err(e) = fs::copy(&object, &embedded) {
                panic!(
                    "copying the eBPF object {} to {}: {e}",
                    object.display(),
                    embedded.display()
                );
            }
        }
        Err(reason) => {
            let _ = fs::remove_file(&embedded);
            println!("cargo::error=memspike's eBPF observer is missing: {reason}.");
            println!(
                "cargo::error=Build it first with `cargo xtask build-ebpf` (`cargo xtask test` and \
                 `cargo xtask run` build it too), or point MEMSPIKE_EBPF_OBJECT at a built \
                 object, or build without eBPF on purpose with `--features no-ebpf` (the \
                 reports then say kernel tracing is unavailable)."
            );
        }
    }
}

/// `memspike-ebpf/target/bpfel-unknown-none/release/memspike-ebpf`, where the xtask puts it.
fn default_object() -> PathBuf {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    manifest
        .join("..")
        .join("memspike-ebpf")
        .join("target")
        .join("bpfel-unknown-none")
        .join("release")
        .join("memspike-ebpf")
}

/// Ok if `path` is a 64-bit little-endian ELF for the BPF machine; else why not.
fn check_bpf_object(path: &Path) -> Result<(), String> {
    let mut header = [0u8; 20];
    let read = fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("no eBPF object at {}", path.display()));
        }
        Err(e) => return Err(format!("reading the eBPF object {}: {e}", path.display())),
        Ok(()) => {}
    }
    let machine = u16::from_le_bytes([header[18], header[19]]);
    if &header[..4] != b"\x7fELF" || header[4] != 2 || header[5] != 1 || machine != EM_BPF {
        return Err(format!(
            "{} is not a 64-bit little-endian BPF ELF object",
            path.display()
        ));
    }
    Ok(())
}
