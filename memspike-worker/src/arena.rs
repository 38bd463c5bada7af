//! The heap's real memory: one anonymous mapping reserved up front and made resident page by
//! page as the heap writes into it, like the Go runtime's arenas. This is the only place in
//! the simulation that touches raw memory: the model's heap ([`memspike_model::heap`]) decides
//! which pages to write and which to return, through [`Memory`].

use std::{ffi::c_void, io, num::NonZeroUsize, ptr::NonNull};

use memspike_model::heap::Memory;
use nix::sys::mman::{self, MapFlags, MmapAdvise, ProtFlags};

/// The byte written over every new slab (the seed fills its slice the same way).
pub const FILL: u8 = 0x5a;

/// The kernel's page size on the machines we care about; mincore() reports in these.
const OS_PAGE: usize = 4096;

/// A reserved, private, anonymous region. Reserving costs nothing; pages are charged to the
/// cgroup when first written and uncharged when released with `MADV_DONTNEED`.
#[derive(Debug)]
pub struct Arena {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the arena owns its mapping exclusively; moving it to another thread moves that
// ownership, and all access goes through &mut self.
unsafe impl Send for Arena {}

impl Arena {
    /// Reserves `len` bytes of address space (not memory). Transparent huge pages are turned
    /// off for the region so that the cgroup is charged exactly the pages the heap wrote.
    pub fn reserve(len: usize) -> io::Result<Arena> {
        let size = NonZeroUsize::new(len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty arena"))?;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing; no
        // existing memory is affected. MAP_NORESERVE: address space only, no commit charge.
        let p = unsafe {
            mman::mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_NORESERVE,
            )
        }?;
        let arena = Arena {
            base: p.cast::<u8>(),
            len,
        };
        // SAFETY: advice on the mapping we just created; it changes no contents.
        // A kernel without THP rejects it with EINVAL, which is harmless.
        let _ = unsafe { mman::madvise(p, len, MmapAdvise::MADV_NOHUGEPAGE) };
        Ok(arena)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Writes `byte` over `[offset, offset + len)`, making every page of it resident.
    ///
    /// Panics if the range is outside the arena; callers hand out only ranges inside it.
    pub fn write(&mut self, offset: usize, len: usize, byte: u8) {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "range outside arena"
        );
        // SAFETY: the range was checked to lie inside our mapping, which is readable and
        // writable, and &mut self guarantees nobody else accesses it.
        unsafe { std::ptr::write_bytes(self.base.as_ptr().add(offset), byte, len) };
    }

    /// Reads one byte (tests use it to check what was written).
    pub fn read(&self, offset: usize) -> u8 {
        assert!(offset < self.len, "offset outside arena");
        // SAFETY: offset is inside the mapping; an untouched page reads as zero.
        unsafe { *self.base.as_ptr().add(offset) }
    }

    /// Returns `[offset, offset + len)` to the OS (`MADV_DONTNEED`): the pages stop being
    /// resident and read back as zero, as the Go scavenger's returned pages do.
    pub fn release(&mut self, offset: usize, len: usize) -> io::Result<()> {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "range outside arena"
        );
        let start = self.base.cast::<c_void>();
        // SAFETY: the range is inside our private anonymous mapping (checked above), so the
        // offset pointer stays inside it; DONTNEED only drops its contents, which the heap no
        // longer uses.
        unsafe { mman::madvise(start.add(offset), len, MmapAdvise::MADV_DONTNEED) }
            .map_err(io::Error::from)
    }

    /// Bytes of `[0, len)` that are resident right now, as the kernel reports (mincore).
    pub fn resident_bytes(&self, len: usize) -> io::Result<u64> {
        let len = len.min(self.len);
        let pages = len.div_ceil(OS_PAGE);
        let mut vec = vec![0u8; pages];
        // libc, not nix: neither nix nor rustix wraps mincore(2).
        // SAFETY: the range starts at our page-aligned base and lies inside the mapping; the
        // vector has one byte per page as mincore requires.
        let rc = unsafe { libc::mincore(self.base.as_ptr().cast(), len, vec.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(vec.iter().filter(|b| **b & 1 == 1).count() as u64 * OS_PAGE as u64)
    }
}

impl Memory for Arena {
    fn populate(&mut self, offset: u64, len: u64) {
        // Offsets fit in usize: the heap hands out only ranges inside the arena, whose length
        // is a usize.
        self.write(offset as usize, len as usize, FILL);
    }

    fn release(&mut self, offset: u64, len: u64) -> io::Result<()> {
        Arena::release(self, offset as usize, len as usize)
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region we mapped; nothing refers to it after drop.
        let _ = unsafe { mman::munmap(self.base.cast(), self.len) };
    }
}
