//! The only caller of zstd. A block is stored compressed only when that saves at least
//! one whole 4 KiB block on the device, as zstd frames of at most FRAME_BYTES logical
//! bytes each, so that a reader that wants a few pieces of a record decompresses only
//! the frames that hold them.

use crate::block::{Compression, LOGICAL_BYTES_MAX, blocks_for};
use crate::error::{Error, Result};

thread_local! {
    /// One zstd context per thread: creating one per block costs more than small blocks.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Logical bytes per zstd frame. A sender cutting a changed 4 KiB piece out of a
/// 128 KiB record decompresses 32 KiB, not 128; frames this size cost about 3% of the
/// compressed size against one frame per record.
pub const FRAME_BYTES: usize = 32 * 1024;

/// Returns the bytes to store and how they are compressed. Takes the buffer, so that a
/// block stored raw (half of a typical copy-in) is not copied.
pub fn compress(logical: Vec<u8>, level: i32) -> (Vec<u8>, Compression) {
    if level <= 0 || logical.len() <= 4096 {
        return (logical, Compression::None);
    }
    // Cheap test first: random-looking data is the common incompressible case, and
    // skipping zstd on it keeps a copy-in near the speed of the device.
    if looks_incompressible(&logical) {
        return (logical, Compression::None);
    }
    let packed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        match slot.as_mut() {
            Some((_, c)) => compress_frames(c, &logical),
            None => Err(std::io::Error::other("zstd context")),
        }
    });
    match packed {
        Ok(packed) if blocks_for(packed.len() as u64) < blocks_for(logical.len() as u64) => (packed, Compression::Zstd),
        _ => (logical, Compression::None),
    }
}

/// One frame per FRAME_BYTES of input, each declaring its content size (zstd's default
/// for a one-shot compression), back to back.
fn compress_frames(c: &mut zstd::bulk::Compressor<'static>, logical: &[u8]) -> std::io::Result<Vec<u8>> {
    let bound = logical.chunks(FRAME_BYTES).map(|chunk| zstd::zstd_safe::compress_bound(chunk.len())).sum();
    let mut out = vec![0u8; bound];
    let mut filled = 0;
    for chunk in logical.chunks(FRAME_BYTES) {
        filled += c.compress_to_buffer(chunk, &mut out[filled..])?;
    }
    out.truncate(filled);
    Ok(out)
}

/// Decompresses only the frames of a zstd block whose logical range `wanted(start, len)`
/// accepts; the bytes of the other frames are left zero. Reads any block `compress`
/// wrote, one frame or several; a frame without its content size, or sizes that do not
/// add up to `logical_bytes`, is corruption.
pub fn decompress_frames_where(
    stored: &[u8],
    logical_bytes: u32,
    wanted: &dyn Fn(usize, usize) -> bool,
) -> Result<Vec<u8>> {
    assert!(logical_bytes <= LOGICAL_BYTES_MAX);
    let logical = logical_bytes as usize;
    let mut out = vec![0u8; logical];
    let (mut offset, mut start) = (0, 0);
    while offset < stored.len() {
        let rest = &stored[offset..];
        let frame_bytes = match zstd::zstd_safe::find_frame_compressed_size(rest) {
            Ok(n) if n > 0 && n <= rest.len() => n,
            _ => return Err(Error::corrupt(format!("zstd block has no whole frame at byte {offset}"))),
        };
        let len = match zstd::zstd_safe::get_frame_content_size(rest) {
            Ok(Some(n)) if n <= (logical - start) as u64 => n as usize,
            _ => {
                return Err(Error::corrupt(format!(
                    "zstd frame at byte {offset} does not say a size that fits the block's {logical_bytes} bytes"
                )));
            }
        };
        if wanted(start, len) {
            let got = with_decompressor(|d| d.decompress_to_buffer(&rest[..frame_bytes], &mut out[start..start + len]))
                .map_err(|e| Error::corrupt(format!("zstd frame at byte {offset} does not decompress: {e}")))?;
            if got != len {
                return Err(Error::corrupt(format!(
                    "zstd frame at byte {offset} decompresses to {got} bytes, its header says {len}"
                )));
            }
        }
        offset += frame_bytes;
        start += len;
    }
    if start != logical {
        return Err(Error::corrupt(format!(
            "zstd block's frames hold {start} bytes, its pointer says {logical_bytes}"
        )));
    }
    Ok(out)
}

fn with_decompressor<T>(
    work: impl FnOnce(&mut zstd::bulk::Decompressor<'static>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        match slot.as_mut() {
            Some(d) => work(d),
            None => Err(std::io::Error::other("zstd context")),
        }
    })
}

pub fn decompress(stored: Vec<u8>, compression: Compression, logical_bytes: u32) -> Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(stored),
        Compression::Zstd => {
            let mut out = Vec::new();
            decompress_zstd_into(&stored, logical_bytes, &mut out)?;
            Ok(out)
        }
    }
}

/// Decompresses a zstd block into `out` (resized to `logical_bytes`), reusing its
/// memory: for checks that look at the bytes and drop them.
pub fn decompress_zstd_into(stored: &[u8], logical_bytes: u32, out: &mut Vec<u8>) -> Result<()> {
    assert!(logical_bytes <= LOGICAL_BYTES_MAX);
    // Into the vector's spare capacity: no zero fill ahead of the decompression.
    out.clear();
    out.reserve_exact(logical_bytes as usize);
    let got = with_decompressor(|d| d.decompress_to_buffer(stored, out))
        .map_err(|e| Error::corrupt(format!("zstd block does not decompress: {e}")))?;
    if got != logical_bytes as usize {
        return Err(Error::corrupt(format!(
            "zstd block decompresses to {got} bytes, its pointer says {logical_bytes}"
        )));
    }
    Ok(())
}

/// Samples the bytes and estimates their order-0 entropy. Above 7.6 bits per byte zstd
/// cannot save a 4 KiB block out of a 128 KiB record, so we do not try.
fn looks_incompressible(bytes: &[u8]) -> bool {
    let mut counts = [0u32; 256];
    let step = 61; // prime stride: samples spread over the whole record
    let mut samples = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        counts[bytes[i] as usize] += 1;
        samples += 1;
        i += step;
    }
    if samples < 512 {
        return false;
    }
    let n = samples as f64;
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    // A sample of 2 KiB from uniform random bytes shows about 7.9 bits.
    entropy > 7.6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_compresses_and_round_trips() {
        let text: Vec<u8> =
            b"the quick brown fox jumps over the lazy dog. ".iter().cycle().take(131072).copied().collect();
        let (stored, c) = compress(text.clone(), 3);
        assert_eq!(c, Compression::Zstd);
        assert!(stored.len() < text.len() / 4);
        assert_eq!(decompress(stored, c, text.len() as u32).unwrap(), text);
    }

    #[test]
    fn random_is_stored_raw() {
        let mut x = 0x9e3779b97f4a7c15u64;
        let data: Vec<u8> = (0..131072)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let (stored, c) = compress(data.clone(), 3);
        assert_eq!(c, Compression::None);
        assert_eq!(stored, data);
    }

    #[test]
    fn records_are_cut_into_frames_that_decompress_alone() {
        let text: Vec<u8> = (0..131072u32).map(|i| b"abcdefgh"[(i * 7 % 8) as usize] ^ (i / 3000) as u8).collect();
        let (stored, c) = compress(text.clone(), 3);
        assert_eq!(c, Compression::Zstd);
        assert_eq!(decompress(stored.clone(), c, text.len() as u32).unwrap(), text, "frames concatenate");
        // Only the third frame.
        let third = |start: usize, _len: usize| start == 2 * FRAME_BYTES;
        let part = decompress_frames_where(&stored, text.len() as u32, &third).unwrap();
        let frame = 2 * FRAME_BYTES..3 * FRAME_BYTES;
        assert_eq!(&part[frame.clone()], &text[frame.clone()]);
        assert!(part[..frame.start].iter().chain(&part[frame.end..]).all(|&b| b == 0));
        // A record written as one frame (by earlier versions) reads the same way.
        let one = zstd::bulk::compress(&text, 3).unwrap();
        assert_eq!(decompress_frames_where(&one, text.len() as u32, &|_, _| true).unwrap(), text);
    }

    #[test]
    fn frames_that_do_not_add_up_are_corruption() {
        let text: Vec<u8> = b"0123456789".iter().cycle().take(100_000).copied().collect();
        let (stored, _) = compress(text.clone(), 3);
        let all = |_: usize, _: usize| true;
        for (bytes, logical, says) in [
            (&stored[..stored.len() - 1], 100_000, "no whole frame"),
            (&stored[..], 100_001, "frames hold"),
            (&stored[..], 99_999, "does not say a size"),
            (&[0u8; 16][..], 16, "no whole frame"),
        ] {
            let err = decompress_frames_where(bytes, logical, &all).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn bad_zstd_is_corruption() {
        let err = decompress(vec![1, 2, 3, 4], Compression::Zstd, 100).unwrap_err();
        assert!(err.to_string().contains("does not decompress"));
    }
}
