//! The only caller of zstd and lz4. A block is stored compressed only when that saves
//! at least one whole 4 KiB block on the device, as frames of at most FRAME_BYTES logical
//! bytes each, so that a reader that wants a few pieces of a record decompresses only
//! the frames that hold them.
//!
//! Whether to try at all is decided first, per record, by an entropy estimate over a
//! sample of about 2048 bytes: random-looking data (about half of a typical copy-in)
//! never reaches the compressor. On the 1 GiB bench workload that estimate sent to
//! zstd exactly the records zstd then kept (6,782 of 13,830); ZFS's other way, a fast
//! lz4 pass first that skips zstd when lz4 finds nothing, cost more CPU than it saved
//! there, since what reaches the compressor nearly always compresses (README).

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

/// The highest zstd level an operator can choose (20 and above need far more memory).
pub const ZSTD_LEVEL_MAX: u8 = 19;

/// How new file data of a pool is compressed: the algorithm and its level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Off,
    Lz4,
    Zstd { level: u8 },
}

impl Codec {
    /// The default of new pools, picked by measurement on the bench workload (README):
    /// zstd level 1 stored it in the same space as level 3 (744 against 743 MiB) for
    /// about a fifth less CPU; lz4 needed 853 MiB, more than btrfs with zstd.
    pub const DEFAULT: Codec = Codec::Zstd { level: 1 };

    /// "off" (or "none"), "lz4", "zstd" (level 3, as zstd's own default), "zstd:1" to
    /// "zstd:19"; None for anything else.
    pub fn parse(text: &str) -> Option<Codec> {
        match text {
            "off" | "none" => Some(Codec::Off),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd { level: 3 }),
            _ => text
                .strip_prefix("zstd:")
                .and_then(|l| l.parse::<u8>().ok())
                .filter(|l| (1..=ZSTD_LEVEL_MAX).contains(l))
                .map(|level| Codec::Zstd { level }),
        }
    }

    /// The name `parse` reads back: "off", "lz4", "zstd:N".
    pub fn name(&self) -> String {
        match self {
            Codec::Off => "off".into(),
            Codec::Lz4 => "lz4".into(),
            Codec::Zstd { level } => format!("zstd:{level}"),
        }
    }

    /// The same algorithm with a zstd level of at most `max` (a patch is recompressed
    /// fast; lz4 and off are unchanged).
    pub fn zstd_level_at_most(self, max: u8) -> Codec {
        match self {
            Codec::Zstd { level } => Codec::Zstd { level: level.min(max).max(1) },
            other => other,
        }
    }
}

/// What the compressor did with one record, for the counts a copy-in reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// Not tried: compression is off, the record fits one block, or it looks random.
    Skipped,
    /// Tried, and stored compressed.
    Kept,
    /// Tried, and stored raw: compression would not have saved a block.
    Discarded,
}

/// Returns the bytes to store, how they are compressed and what was tried. Takes the
/// buffer, so that a block stored raw (half of a typical copy-in) is not copied.
pub fn compress(logical: Vec<u8>, codec: Codec) -> (Vec<u8>, Compression, Attempt) {
    if codec == Codec::Off || logical.len() <= 4096 {
        return (logical, Compression::None, Attempt::Skipped);
    }
    // Cheap test first: random-looking data is the common incompressible case, and
    // skipping the compressor on it keeps a copy-in near the speed of the device.
    if looks_incompressible(&logical) {
        return (logical, Compression::None, Attempt::Skipped);
    }
    let (packed, compression) = match codec {
        Codec::Off => unreachable!("returned above"),
        Codec::Lz4 => (Ok(lz4_frames(&logical)), Compression::Lz4),
        Codec::Zstd { level } => (zstd_frames(&logical, level as i32), Compression::Zstd),
    };
    match packed {
        Ok(packed) if blocks_for(packed.len() as u64) < blocks_for(logical.len() as u64) => {
            (packed, compression, Attempt::Kept)
        }
        _ => (logical, Compression::None, Attempt::Discarded),
    }
}

fn zstd_frames(logical: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        match slot.as_mut() {
            Some((_, c)) => compress_frames(c, logical),
            None => Err(std::io::Error::other("zstd context")),
        }
    })
}

/// Bytes of the length that starts each lz4 frame.
const LZ4_FRAME_HEADER_BYTES: usize = 4;

/// One lz4 block per FRAME_BYTES of input, each after its compressed length (u32,
/// little-endian); a frame's logical length is FRAME_BYTES but for the last, which
/// holds the rest (docs/FORMAT.md).
fn lz4_frames(logical: &[u8]) -> Vec<u8> {
    let bound: usize = logical
        .chunks(FRAME_BYTES)
        .map(|chunk| LZ4_FRAME_HEADER_BYTES + lz4_flex::block::get_maximum_output_size(chunk.len()))
        .sum();
    let mut out = vec![0u8; bound];
    let mut filled = 0;
    for chunk in logical.chunks(FRAME_BYTES) {
        let body = filled + LZ4_FRAME_HEADER_BYTES;
        let len = lz4_flex::block::compress_into(chunk, &mut out[body..]).expect("the bound fits any input");
        out[filled..body].copy_from_slice(&(len as u32).to_le_bytes());
        filled = body + len;
    }
    out.truncate(filled);
    out
}

/// Decompresses the frames of an lz4 block whose logical range `wanted` accepts into
/// `out` (logical_bytes long, zero where not wanted).
fn lz4_frames_where(
    stored: &[u8],
    logical_bytes: u32,
    wanted: &dyn Fn(usize, usize) -> bool,
    out: &mut Vec<u8>,
) -> Result<()> {
    let logical = logical_bytes as usize;
    out.clear();
    out.resize(logical, 0);
    let (mut offset, mut start) = (0, 0);
    while offset < stored.len() {
        let rest = &stored[offset..];
        let len = FRAME_BYTES.min(logical.saturating_sub(start));
        let frame_bytes = match rest.get(..LZ4_FRAME_HEADER_BYTES) {
            Some(header) => u32::from_le_bytes(header.try_into().expect("4 bytes")) as usize,
            None => return Err(Error::corrupt(format!("lz4 block has no whole frame at byte {offset}"))),
        };
        let Some(body) = rest.get(LZ4_FRAME_HEADER_BYTES..LZ4_FRAME_HEADER_BYTES + frame_bytes) else {
            return Err(Error::corrupt(format!("lz4 block has no whole frame at byte {offset}")));
        };
        if len == 0 {
            return Err(Error::corrupt(format!(
                "lz4 block's frames hold more than the {logical_bytes} bytes its pointer says"
            )));
        }
        if wanted(start, len) {
            match lz4_flex::block::decompress_into(body, &mut out[start..start + len]) {
                Ok(got) if got == len => {}
                Ok(got) => {
                    return Err(Error::corrupt(format!(
                        "lz4 frame at byte {offset} decompresses to {got} bytes, not {len}"
                    )));
                }
                Err(e) => return Err(Error::corrupt(format!("lz4 frame at byte {offset} does not decompress: {e}"))),
            }
        }
        offset += LZ4_FRAME_HEADER_BYTES + frame_bytes;
        start += len;
    }
    if start != logical {
        return Err(Error::corrupt(format!("lz4 block's frames hold {start} bytes, its pointer says {logical_bytes}")));
    }
    Ok(())
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

/// Where each frame of a compressed block starts in its stored bytes, the first (at 0)
/// left out: the frame index a file record keeps beside its pointer (fs/record.rs), so
/// that a sender reads only the frames that hold the pieces it wants. Frame i holds
/// logical bytes from i * FRAME_BYTES, as `compress` writes them. Found by walking the
/// frames' headers (zstd's frame sizes, lz4's length prefixes), nothing decompressed.
/// None for a raw block, a block of one frame, and a block whose frames do not parse or
/// do not follow that layout (a block received from elsewhere, which its content check
/// judges): such a record simply has no index.
pub fn frame_starts(stored: &[u8], compression: Compression, logical_bytes: u32) -> Option<Vec<u32>> {
    let logical = logical_bytes as usize;
    let mut starts = Vec::new();
    let (mut offset, mut start) = (0usize, 0usize);
    while offset < stored.len() {
        let rest = &stored[offset..];
        let len = FRAME_BYTES.min(logical.checked_sub(start)?);
        let frame_bytes = match compression {
            Compression::None => return None,
            Compression::Zstd => {
                let n = zstd::zstd_safe::find_frame_compressed_size(rest).ok()?;
                let size = zstd::zstd_safe::get_frame_content_size(rest).ok()??;
                (size == len as u64).then_some(n)?
            }
            Compression::Lz4 => {
                let header = rest.get(..LZ4_FRAME_HEADER_BYTES)?;
                LZ4_FRAME_HEADER_BYTES + u32::from_le_bytes(header.try_into().expect("4 bytes")) as usize
            }
        };
        if len == 0 || frame_bytes == 0 || frame_bytes > rest.len() {
            return None;
        }
        if offset > 0 {
            starts.push(u32::try_from(offset).ok()?);
        }
        offset += frame_bytes;
        start += len;
    }
    (start == logical && !starts.is_empty()).then_some(starts)
}

/// Frames a compressed block of `logical_bytes` holds, as `compress` writes it.
pub fn frames_for(logical_bytes: u32) -> usize {
    (logical_bytes as usize).div_ceil(FRAME_BYTES)
}

/// Decompresses only the frames of a compressed block whose logical range
/// `wanted(start, len)` accepts; the bytes of the other frames are left zero. Reads any
/// block `compress` wrote, one frame or several; frames that do not add up to
/// `logical_bytes` are corruption. A raw block is returned whole.
pub fn decompress_frames_where(
    stored: &[u8],
    compression: Compression,
    logical_bytes: u32,
    wanted: &dyn Fn(usize, usize) -> bool,
) -> Result<Vec<u8>> {
    assert!(logical_bytes <= LOGICAL_BYTES_MAX);
    match compression {
        Compression::None => Ok(stored.to_vec()),
        Compression::Zstd => zstd_frames_where(stored, logical_bytes, wanted),
        Compression::Lz4 => {
            let mut out = Vec::new();
            lz4_frames_where(stored, logical_bytes, wanted, &mut out)?;
            Ok(out)
        }
    }
}

/// `decompress_frames_where` for zstd: a frame without its content size is corruption.
fn zstd_frames_where(stored: &[u8], logical_bytes: u32, wanted: &dyn Fn(usize, usize) -> bool) -> Result<Vec<u8>> {
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
        Compression::Zstd | Compression::Lz4 => {
            let mut out = Vec::new();
            decompress_into(&stored, compression, logical_bytes, &mut out)?;
            Ok(out)
        }
    }
}

/// Decompresses a compressed block into `out` (resized to `logical_bytes`), reusing its
/// memory: for checks that look at the bytes and drop them.
pub fn decompress_into(stored: &[u8], compression: Compression, logical_bytes: u32, out: &mut Vec<u8>) -> Result<()> {
    match compression {
        Compression::None => {
            out.clear();
            out.extend_from_slice(stored);
            Ok(())
        }
        Compression::Zstd => decompress_zstd_into(stored, logical_bytes, out),
        Compression::Lz4 => {
            assert!(logical_bytes <= LOGICAL_BYTES_MAX);
            lz4_frames_where(stored, logical_bytes, &|_, _| true, out)
        }
    }
}

fn decompress_zstd_into(stored: &[u8], logical_bytes: u32, out: &mut Vec<u8>) -> Result<()> {
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

/// Bytes the entropy estimate samples, at least: fewer understate the entropy of random
/// data (2048 uniform samples show about 7.9 bits per byte, 512 only about 7.6).
const ENTROPY_SAMPLES_MIN: usize = 2048;

/// Samples the bytes and estimates their order-0 entropy. Above 7.6 bits per byte
/// neither zstd nor lz4 saves a 4 KiB block of a record, so we do not try. Records of
/// every size are sampled alike (every byte of a small one): a fixed stride left the
/// 4-31 KiB records untested, and a quarter of the records zstd was tried on were
/// random small files it could not shrink.
pub fn looks_incompressible(bytes: &[u8]) -> bool {
    let mut counts = [0u32; 256];
    // An odd stride: an even one aliases with data of a power-of-two period (a stride
    // of 64 saw 4 byte values of a record that holds all 256 evenly).
    let step = match (bytes.len() / ENTROPY_SAMPLES_MIN).max(1) {
        even if even % 2 == 0 => even - 1,
        odd => odd,
    };
    let mut samples = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        counts[bytes[i] as usize] += 1;
        samples += 1;
        i += step;
    }
    if (samples as usize) < ENTROPY_SAMPLES_MIN {
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
    entropy > 7.6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_compresses_and_round_trips() {
        let text: Vec<u8> =
            b"the quick brown fox jumps over the lazy dog. ".iter().cycle().take(131072).copied().collect();
        for (codec, expect) in [
            (Codec::Zstd { level: 1 }, Compression::Zstd),
            (Codec::Zstd { level: 19 }, Compression::Zstd),
            (Codec::Lz4, Compression::Lz4),
        ] {
            let (stored, c, attempt) = compress(text.clone(), codec);
            assert_eq!((c, attempt), (expect, Attempt::Kept), "{codec:?}");
            assert!(stored.len() < text.len() / 4, "{codec:?}");
            assert_eq!(decompress(stored, c, text.len() as u32).unwrap(), text, "{codec:?}");
        }
        let (stored, c, attempt) = compress(text.clone(), Codec::Off);
        assert_eq!((c, attempt), (Compression::None, Attempt::Skipped));
        assert_eq!(stored, text);
    }

    #[test]
    fn the_decision_skips_random_records_of_every_size_and_tries_the_rest() {
        // Goal: the entropy estimate sends no random record to the compressor, whatever
        // its size (a fixed stride once left 4-31 KiB records untested), and every
        // compressible one. Method: random and text records of sizes around the limits.
        for len in [4097, 8192, 20_000, 32 * 1024, 65_537, 131_072] {
            let random = xorshift_bytes(len, len as u64);
            let (stored, c, attempt) = compress(random.clone(), Codec::Zstd { level: 3 });
            assert_eq!((c, attempt), (Compression::None, Attempt::Skipped), "random {len}");
            assert_eq!(stored, random);
            let text: Vec<u8> =
                b"words of a log line, 2026-12-06 17:00 ok\n".iter().cycle().take(len).copied().collect();
            assert!(!looks_incompressible(&text), "text {len}");
            assert_eq!(compress(text, Codec::Lz4).2, Attempt::Kept, "text {len}");
        }
        // The sample sees the histogram the whole record has: a record with a period of
        // 256 bytes holding every value evenly looks as random to it as it is to an
        // order-0 estimate (an even stride once saw 4 values of it and tried zstd).
        for len in [20_000, 65_536, 131_072] {
            let periodic: Vec<u8> = (0..len).map(|i| ((i * 31 + i / 4093) as u8) ^ 2).collect();
            assert!(looks_incompressible(&periodic), "periodic {len}");
        }
        // A record of one block cannot save one: not tried.
        let small = vec![7u8; 4096];
        assert_eq!(compress(small, Codec::Zstd { level: 1 }).2, Attempt::Skipped);
        // Tried but not kept: random bytes of 64 values (6 bits each), in which lz4, which
        // finds repeats but codes no entropy, saves nothing.
        let six_bits: Vec<u8> = xorshift_bytes(131_072, 5).iter().map(|b| b & 0x3f).collect();
        assert!(!looks_incompressible(&six_bits));
        let (_, c, attempt) = compress(six_bits, Codec::Lz4);
        assert_eq!((c, attempt), (Compression::None, Attempt::Discarded));
    }

    #[test]
    fn lz4_frames_decompress_alone_and_bad_ones_are_corruption() {
        let text: Vec<u8> = (0..100_000u32).map(|i| b"abcdefgh"[(i * 7 % 8) as usize] ^ (i / 3000) as u8).collect();
        let (stored, c, _) = compress(text.clone(), Codec::Lz4);
        assert_eq!(c, Compression::Lz4);
        let third = |start: usize, _len: usize| start == 2 * FRAME_BYTES;
        let part = decompress_frames_where(&stored, c, text.len() as u32, &third).unwrap();
        let frame = 2 * FRAME_BYTES..3 * FRAME_BYTES;
        assert_eq!(&part[frame.clone()], &text[frame.clone()]);
        assert!(part[..frame.start].iter().chain(&part[frame.end..]).all(|&b| b == 0));
        let all = |_: usize, _: usize| true;
        let mut flipped = stored.clone();
        flipped[0] ^= 0x40; // the first frame's length
        let first_frame = 4 + u32::from_le_bytes(stored[..4].try_into().unwrap()) as usize;
        for (bytes, logical, says) in [
            (&stored[..stored.len() - 1], 100_000, "no whole frame"),
            (&stored[..first_frame], 100_000, "frames hold 32768 bytes"),
            (&stored[..], 100_001, "bytes, not 1697"),
            (&stored[..], 99_999, "does not decompress"),
            (&stored[..], 65_536, "hold more than"),
            (&[9u8, 0, 0][..], 16, "no whole frame"),
            (&flipped[..], 100_000, "lz4"),
        ] {
            let err = decompress_frames_where(bytes, Compression::Lz4, logical, &all).unwrap_err().to_string();
            assert!(err.contains(says), "{says}: {err}");
        }
    }

    #[test]
    fn codec_names_read_back_and_patches_cap_only_zstd() {
        for codec in [Codec::Off, Codec::Lz4, Codec::Zstd { level: 1 }, Codec::Zstd { level: ZSTD_LEVEL_MAX }] {
            assert_eq!(Codec::parse(&codec.name()), Some(codec));
        }
        assert_eq!(Codec::parse("none"), Some(Codec::Off));
        assert_eq!(Codec::parse("zstd:20"), None);
        assert_eq!(Codec::Zstd { level: 9 }.zstd_level_at_most(1), Codec::Zstd { level: 1 });
        assert_eq!(Codec::Lz4.zstd_level_at_most(1), Codec::Lz4);
        assert_eq!(Codec::Off.zstd_level_at_most(1), Codec::Off);
    }

    fn xorshift_bytes(len: usize, seed: u64) -> Vec<u8> {
        let mut x = 0x9e3779b97f4a7c15u64 ^ seed;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
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
        let (stored, c, _) = compress(data.clone(), Codec::Zstd { level: 3 });
        assert_eq!(c, Compression::None);
        assert_eq!(stored, data);
    }

    #[test]
    fn records_are_cut_into_frames_that_decompress_alone() {
        let text: Vec<u8> = (0..131072u32).map(|i| b"abcdefgh"[(i * 7 % 8) as usize] ^ (i / 3000) as u8).collect();
        let (stored, c, _) = compress(text.clone(), Codec::Zstd { level: 3 });
        assert_eq!(c, Compression::Zstd);
        assert_eq!(decompress(stored.clone(), c, text.len() as u32).unwrap(), text, "frames concatenate");
        // Only the third frame.
        let third = |start: usize, _len: usize| start == 2 * FRAME_BYTES;
        let part = decompress_frames_where(&stored, c, text.len() as u32, &third).unwrap();
        let frame = 2 * FRAME_BYTES..3 * FRAME_BYTES;
        assert_eq!(&part[frame.clone()], &text[frame.clone()]);
        assert!(part[..frame.start].iter().chain(&part[frame.end..]).all(|&b| b == 0));
        // A record written as one frame (by earlier versions) reads the same way.
        let one = zstd::bulk::compress(&text, 3).unwrap();
        assert_eq!(decompress_frames_where(&one, c, text.len() as u32, &|_, _| true).unwrap(), text);
    }

    #[test]
    fn frames_that_do_not_add_up_are_corruption() {
        let text: Vec<u8> = b"0123456789".iter().cycle().take(100_000).copied().collect();
        let (stored, _, _) = compress(text.clone(), Codec::Zstd { level: 3 });
        let all = |_: usize, _: usize| true;
        for (bytes, logical, says) in [
            (&stored[..stored.len() - 1], 100_000, "no whole frame"),
            (&stored[..], 100_001, "frames hold"),
            (&stored[..], 99_999, "does not say a size"),
            (&[0u8; 16][..], 16, "no whole frame"),
        ] {
            let err = decompress_frames_where(bytes, Compression::Zstd, logical, &all).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    /// Goal: the frame index found from a block's stored bytes names where each frame
    /// after the first starts, for zstd and lz4 and records of every frame count; a
    /// block that is raw, one frame, cut into other frames or damaged has none. Method:
    /// each frame's range decompressed alone gives that frame's logical bytes.
    #[test]
    fn frame_starts_name_each_frame_and_only_ours() {
        for codec in [Codec::Zstd { level: 1 }, Codec::Lz4] {
            for len in [32 * 1024 + 1, 65_536, 100_000, 131_072] {
                let text: Vec<u8> =
                    (0..len as u32).map(|i| b"abcdefgh"[(i * 7 % 8) as usize] ^ (i / 3000) as u8).collect();
                let (stored, c, _) = compress(text.clone(), codec);
                let starts = frame_starts(&stored, c, len as u32).unwrap();
                assert_eq!(starts.len(), frames_for(len as u32) - 1, "{codec:?} {len}");
                let bounds: Vec<usize> =
                    std::iter::once(0).chain(starts.iter().map(|&s| s as usize)).chain([stored.len()]).collect();
                for (i, w) in bounds.windows(2).enumerate() {
                    let logical = &text[i * FRAME_BYTES..((i + 1) * FRAME_BYTES).min(len)];
                    let got =
                        decompress_frames_where(&stored[w[0]..w[1]], c, logical.len() as u32, &|_, _| true).unwrap();
                    assert_eq!(got, logical, "{codec:?} {len} frame {i}");
                }
                assert_eq!(frame_starts(&stored[..stored.len() - 1], c, len as u32), None, "cut short");
                assert_eq!(frame_starts(&stored, c, len as u32 + FRAME_BYTES as u32), None, "another frame count");
                if c == Compression::Zstd {
                    // zstd frames say their size; lz4's do not (the pointer says it).
                    assert_eq!(frame_starts(&stored, c, len as u32 + 1), None, "another size");
                    assert_eq!(frame_starts(&stored, c, len as u32 - 1), None, "another size");
                }
            }
        }
        let text: Vec<u8> = b"0123456789".iter().cycle().take(131_072).copied().collect();
        assert_eq!(frame_starts(&text, Compression::None, 131_072), None, "raw");
        let (one, c, _) = compress(text[..32 * 1024].to_vec(), Codec::Zstd { level: 1 });
        assert_eq!(frame_starts(&one, c, 32 * 1024), None, "one frame");
        // One zstd frame for the whole record, as earlier versions wrote: not our layout.
        let whole = zstd::bulk::compress(&text, 1).unwrap();
        assert_eq!(frame_starts(&whole, Compression::Zstd, 131_072), None);
        assert_eq!(frame_starts(&[0xff; 64], Compression::Zstd, 131_072), None);
        assert_eq!(frame_starts(&[0xff; 64], Compression::Lz4, 131_072), None);
    }

    #[test]
    fn bad_zstd_is_corruption() {
        let err = decompress(vec![1, 2, 3, 4], Compression::Zstd, 100).unwrap_err();
        assert!(err.to_string().contains("does not decompress"));
    }
}
