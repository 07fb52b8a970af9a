//! A growable byte buffer whose start lies on a DIRECT_ALIGN boundary, as O_DIRECT asks
//! of the memory it writes from; the store gathers its block writes in one, so a device
//! can send them past the page cache (file.rs). Its bytes are always initialized: it
//! grows only by copying bytes in or by zeros, never by uninitialized memory.

use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// Alignment of a direct write's memory, offset and length: 4096 satisfies every
/// logical block size Linux has (512 or 4096).
pub const DIRECT_ALIGN: usize = 4096;

pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    capacity: usize,
}

// SAFETY: the buffer owns its allocation outright, as a Vec<u8> does.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared access only reads.
unsafe impl Sync for AlignedBuf {}

impl Default for AlignedBuf {
    fn default() -> AlignedBuf {
        AlignedBuf { ptr: NonNull::<u8>::dangling(), len: 0, capacity: 0 }
    }
}

impl AlignedBuf {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the buffer and keeps its memory for the next bytes.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.reserve(bytes.len());
        // SAFETY: `reserve` made room for `bytes.len()` more bytes past `len`, and a
        // slice given by reference cannot overlap memory this buffer owns mutably.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(self.len), bytes.len()) };
        self.len += bytes.len();
    }

    pub fn extend_zeros(&mut self, count: usize) {
        self.reserve(count);
        // SAFETY: `reserve` made room for `count` more bytes past `len`.
        unsafe { std::ptr::write_bytes(self.ptr.as_ptr().add(self.len), 0, count) };
        self.len += count;
    }

    /// Room for `more` bytes past `len`, doubling as a Vec does. Growing copies what is
    /// held into fresh memory: a caller that knows its final size reserves it at once.
    pub fn reserve(&mut self, more: usize) {
        let needed = self.len.checked_add(more).expect("buffer size overflows");
        if needed <= self.capacity {
            return;
        }
        let capacity = needed.max(self.capacity * 2).max(DIRECT_ALIGN).next_multiple_of(DIRECT_ALIGN);
        let layout = Layout::from_size_align(capacity, DIRECT_ALIGN).expect("a valid layout");
        // SAFETY: the layout's size is non-zero.
        let fresh = unsafe { alloc::alloc(layout) };
        let Some(fresh) = NonNull::new(fresh) else { alloc::handle_alloc_error(layout) };
        if self.capacity > 0 {
            // SAFETY: both allocations hold at least `len` bytes and are distinct; the old
            // one was allocated with the layout rebuilt here.
            unsafe {
                std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), fresh.as_ptr(), self.len);
                alloc::dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.capacity, DIRECT_ALIGN));
            }
        }
        self.ptr = fresh;
        self.capacity = capacity;
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} bytes)", self.len)
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialized (see the module header); an empty
        // buffer's dangling pointer is non-null and aligned, as a zero-length slice needs.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds `len` initialized bytes (see the module header), owned
        // mutably here; a dangling pointer only ever comes with `len` 0.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if self.capacity > 0 {
            // SAFETY: allocated in `reserve` with this size and alignment.
            unsafe {
                alloc::dealloc(self.ptr.as_ptr(), Layout::from_size_align_unchecked(self.capacity, DIRECT_ALIGN))
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Goal: whatever it grows through, the buffer starts on the boundary and holds the
    // bytes in the order given. Method: odd-sized pieces past several doublings, a clear.
    #[test]
    fn grows_aligned_and_keeps_its_bytes() {
        let mut buf = AlignedBuf::default();
        assert!(buf.is_empty());
        assert_eq!(&buf[..], &[] as &[u8]);
        let mut want = Vec::new();
        for i in 0..200u32 {
            let piece: Vec<u8> = (0..(i * 37 % 5000)).map(|b| (b ^ i) as u8).collect();
            buf.extend_from_slice(&piece);
            want.extend_from_slice(&piece);
            buf.extend_zeros(i as usize % 7);
            want.resize(want.len() + i as usize % 7, 0);
            assert!(buf.is_empty() || (buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN));
        }
        assert!(buf[..] == want[..]);
        buf.clear();
        assert!(buf.is_empty());
        buf.extend_from_slice(b"again");
        assert_eq!(&buf[..], b"again");
    }
}
