//! A stream's input, read in large chunks into one page-aligned buffer and handed out as
//! slices of it: a record's frame is checked and decoded where it landed, not copied first.
//!
//! Invariant: the byte at input offset `o` lies at a buffer position congruent to `o`
//! modulo the page size. The kernel copies a file's page-cache pages (or a pipe's pages)
//! into the buffer, and that copy runs about five times slower when the destination's
//! offset within a cache line differs from the source's (763 MB from the page cache:
//! 0.30 s into a buffer 16 bytes off, 0.055 s into an aligned one).

use std::io::{ErrorKind, Read};

const PAGE_BYTES: usize = 4096;
/// Bytes asked of the input in one read, at most: few system calls, and a chunk that
/// still fits the caches of a small machine.
const READ_BYTES: usize = 1 << 20;
/// The buffer's first size: a short stream (a test's, a fuzz input) needs no more, and
/// the buffer doubles while reads keep filling it.
const FIRST_BYTES: usize = 64 << 10;

pub struct Input<'r> {
    input: &'r mut dyn Read,
    /// `buf[base..]` is page-aligned; positions below are used as `base + i`.
    buf: Vec<u8>,
    base: usize,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    eof: bool,
    /// The size the buffer may grow to (past `base`).
    capacity_max: usize,
    /// The last read filled all the room it had: the input may have more than fits.
    filled_room: bool,
}

/// A read that failed, `at` bytes after the first unconsumed byte.
pub struct ReadFailure {
    pub at: u64,
    pub source: std::io::Error,
}

impl<'r> Input<'r> {
    /// `largest` is the most bytes `fill` will be asked for at once.
    pub fn new(input: &'r mut dyn Read, largest: usize) -> Input<'r> {
        let capacity_max = (largest + PAGE_BYTES).max(READ_BYTES) + READ_BYTES;
        let (buf, base) = aligned(FIRST_BYTES);
        Input { input, buf, base, start: base, end: base, eof: false, capacity_max, filled_room: false }
    }

    /// Makes `want` bytes available, unless the input ends first; returns how many are
    /// available (at most `want`) and how many bytes were read from the input.
    pub fn fill(&mut self, want: usize) -> Result<(usize, u64), ReadFailure> {
        let mut read = 0u64;
        while self.end - self.start < want && !self.eof {
            if self.start + want > self.buf.len() {
                self.compact();
            }
            let capacity = self.buf.len() - self.base;
            if capacity < self.capacity_max && (self.filled_room || self.start + want > self.buf.len()) {
                self.grow((2 * capacity).max(2 * PAGE_BYTES + want).min(self.capacity_max));
            }
            let room = (self.buf.len() - self.end).min(READ_BYTES.max(want));
            match self.input.read(&mut self.buf[self.end..self.end + room]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.end += n;
                    read += n as u64;
                    self.filled_room = n == room;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ReadFailure { at: (self.end - self.start) as u64, source: e }),
            }
        }
        Ok(((self.end - self.start).min(want), read))
    }

    /// Moves the unconsumed bytes to the front by whole pages, keeping each byte's
    /// offset within its page.
    fn compact(&mut self) {
        let shift = (self.start - self.base) / PAGE_BYTES * PAGE_BYTES;
        self.buf.copy_within(self.start..self.end, self.start - shift);
        self.start -= shift;
        self.end -= shift;
    }

    /// Moves the unconsumed bytes to a buffer of `capacity` bytes, each at the same
    /// offset within its page.
    fn grow(&mut self, capacity: usize) {
        let (mut buf, base) = aligned(capacity);
        let start = base + (self.start - self.base) % PAGE_BYTES;
        let end = start + (self.end - self.start);
        buf[start..end].copy_from_slice(&self.buf[self.start..self.end]);
        (self.buf, self.base, self.start, self.end) = (buf, base, start, end);
    }

    /// The next `len` unconsumed bytes (`fill` made them available).
    pub fn peek(&self, len: usize) -> &[u8] {
        &self.buf[self.start..self.start + len]
    }

    pub fn consume(&mut self, len: usize) {
        assert!(len <= self.end - self.start, "consumed past what was read");
        self.start += len;
    }
}

/// A zeroed buffer with `capacity` bytes from its first page-aligned position, and that
/// position. Zeroed: a large zeroed allocation is mapped lazily, so only what is used costs.
fn aligned(capacity: usize) -> (Vec<u8>, usize) {
    let buf = vec![0u8; capacity + PAGE_BYTES];
    let base = buf.as_ptr().align_offset(PAGE_BYTES).min(PAGE_BYTES);
    (buf, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per read, and fails at `fail_at`.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        fail_at: Option<usize>,
        at: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.fail_at.is_some_and(|f| self.at >= f) {
                return Err(std::io::Error::other("device gone"));
            }
            let n = out.len().min(self.step).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn hands_out_every_byte_in_order_aligned_to_its_offset() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 7 + i / 4096) as u8).collect();
        for step in [1 << 20, 3000, 65_537] {
            let mut source = Trickle { data: &data, step, fail_at: None, at: 0 };
            let mut input = Input::new(&mut source, 300_000);
            let mut offset = 0;
            let mut sizes = [8usize, 131_096, 24, 299_999, 1].into_iter().cycle();
            loop {
                let want = sizes.next().unwrap();
                let (got, _) = input.fill(want).ok().unwrap();
                let slice = input.peek(got);
                assert_eq!(slice, &data[offset..offset + got], "step {step} at {offset}");
                assert_eq!(slice.as_ptr() as usize % PAGE_BYTES, offset % PAGE_BYTES, "step {step} at {offset}");
                input.consume(got);
                offset += got;
                if got < want {
                    break;
                }
            }
            assert_eq!(offset, data.len());
        }
    }

    #[test]
    fn a_short_input_keeps_a_small_buffer_and_a_long_one_grows_it() {
        let data = vec![9u8; 40_000];
        let mut source = Trickle { data: &data, step: 1 << 20, fail_at: None, at: 0 };
        let mut input = Input::new(&mut source, 300_000);
        assert_eq!(input.fill(50_000).ok().unwrap().0, 40_000);
        assert!(input.buf.len() <= FIRST_BYTES + PAGE_BYTES, "{}", input.buf.len());
        let data = vec![9u8; 8 << 20];
        let mut source = Trickle { data: &data, step: 1 << 20, fail_at: None, at: 0 };
        let mut input = Input::new(&mut source, 300_000);
        for _ in 0..200 {
            input.fill(40_000).ok().unwrap();
            input.consume(40_000);
        }
        assert!(input.buf.len() > READ_BYTES, "{}", input.buf.len());
    }

    #[test]
    fn a_failed_read_says_how_far_it_got() {
        let data = vec![5u8; 100_000];
        let mut source = Trickle { data: &data, step: 10_000, fail_at: Some(30_000), at: 0 };
        let mut input = Input::new(&mut source, 300_000);
        input.fill(100).ok().unwrap();
        input.consume(100);
        let failure = input.fill(50_000).err().unwrap();
        assert_eq!(failure.at, 29_900);
    }
}
