//! Fresh memory for the benches: a private anonymous mapping with transparent huge pages off,
//! as the heap's arena maps it, so that every 4 KiB page faults once when first touched.
//! Unmapped when dropped. Written here, not through the arena, so that a floor measured with
//! it does not go through memspike's own code.

// Each bench that includes this module uses the half it needs.
#![allow(dead_code)]

use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::mman::{self, MapFlags, MmapAdvise, ProtFlags};

pub struct Fresh {
    base: NonNull<u8>,
    len: usize,
}

impl Fresh {
    /// Maps `len` bytes (address space only, nothing resident yet).
    pub fn map(len: usize) -> Fresh {
        let size = NonZeroUsize::new(len).expect("a non-empty mapping");
        // SAFETY: a fresh private anonymous mapping at an address of the kernel's choosing;
        // nothing else refers to it.
        let p = unsafe {
            mman::mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
            )
        }
        .expect("mmap failed");
        // SAFETY: advice on our own mapping: 4 KiB pages only.
        let _ = unsafe { mman::madvise(p, len, MmapAdvise::MADV_NOHUGEPAGE) };
        Fresh {
            base: p.cast(),
            len,
        }
    }

    /// Writes `byte` over every byte of it.
    pub fn fill(&mut self, byte: u8) {
        // SAFETY: `len` bytes at `base` are mapped readable and writable, and `&mut self`
        // keeps anyone else from them.
        unsafe { std::ptr::write_bytes(self.base.as_ptr(), byte, self.len) };
    }

    /// Writes one byte every `stride` bytes: one first-touch fault per page for a page stride.
    pub fn touch(&mut self, stride: usize) {
        for off in (0..self.len).step_by(stride) {
            // SAFETY: off < len, inside the mapping; volatile so the write is not elided.
            unsafe { self.base.as_ptr().add(off).write_volatile(1) };
        }
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; nothing refers to it afterwards.
        let _ = unsafe { mman::munmap(self.base.cast(), self.len) };
    }
}
