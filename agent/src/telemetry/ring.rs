//! How full the kernel ring buffer is: the bytes between the reader's position and the
//! kernel's. aya's `RingBuf` keeps both positions private, so the agent maps the map's two
//! position pages a second time, read-only (the kernel allows any read-only mapping of a ring
//! buffer map: page 0 holds `consumer_pos`, page 1 `producer_pos`).

use std::{
    io,
    os::fd::{AsFd, AsRawFd},
    ptr::NonNull,
    sync::atomic::{AtomicUsize, Ordering},
};

/// The ring's size and its positions, mapped read-only.
#[derive(Debug)]
pub struct RingFill {
    pages: NonNull<libc::c_void>,
    page_size: usize,
    size_bytes: u64,
}

// SAFETY: the mapping is read-only and only read through atomic loads; it belongs to this
// value alone and is unmapped once, on drop.
unsafe impl Send for RingFill {}

impl RingFill {
    /// Maps the position pages of the ring buffer map `ring` and reads its size.
    pub fn new(ring: &impl AsFd) -> io::Result<Self> {
        let fd = ring.as_fd();
        let info = super::fdinfo::read(fd)?;
        let size_bytes = super::fdinfo::field(&info, "max_entries")
            .ok_or_else(|| io::Error::other("no max_entries in the map's fdinfo"))?;
        // SAFETY: sysconf has no preconditions.
        let page_size = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| io::Error::other("no page size"))?;
        // SAFETY: a new shared read-only mapping of two pages of a valid ring buffer map fd;
        // it aliases no Rust object, and the kernel keeps it valid after the fd closes.
        let address = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * page_size,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if address == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let pages = NonNull::new(address).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self {
            pages,
            page_size,
            size_bytes,
        })
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Bytes written by the kernel and not yet consumed (records with their 8-byte headers,
    /// also those reserved and not yet submitted).
    pub fn used_bytes(&self) -> u64 {
        let position = |page: usize| {
            // SAFETY: each position is an `unsigned long` at the start of its page (page
            // aligned, so aligned for AtomicUsize), inside the mapping, which lives as long as
            // `self`; the kernel and the reader update them concurrently, hence atomic loads.
            let atomic = unsafe {
                &*self
                    .pages
                    .as_ptr()
                    .cast::<u8>()
                    .add(page * self.page_size)
                    .cast::<AtomicUsize>()
            };
            atomic.load(Ordering::Acquire) as u64
        };
        let consumer = position(0);
        let producer = position(1);
        producer.saturating_sub(consumer).min(self.size_bytes)
    }
}

impl Drop for RingFill {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, of this length, unmapped only here.
        unsafe {
            libc::munmap(self.pages.as_ptr(), 2 * self.page_size);
        }
    }
}
