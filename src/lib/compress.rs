//! The only caller of zstd. A block is stored compressed only when that saves at least
//! one whole 4 KiB block on the device.

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
            Some((_, c)) => c.compress(&logical),
            None => Err(std::io::Error::other("zstd context")),
        }
    });
    match packed {
        Ok(packed) if blocks_for(packed.len() as u64) < blocks_for(logical.len() as u64) => (packed, Compression::Zstd),
        _ => (logical, Compression::None),
    }
}

pub fn decompress(stored: Vec<u8>, compression: Compression, logical_bytes: u32) -> Result<Vec<u8>> {
    match compression {
        Compression::None => Ok(stored),
        Compression::Zstd => {
            assert!(logical_bytes <= LOGICAL_BYTES_MAX);
            let out = DECOMPRESSOR
                .with(|cell| {
                    let mut slot = cell.borrow_mut();
                    if slot.is_none() {
                        *slot = zstd::bulk::Decompressor::new().ok();
                    }
                    match slot.as_mut() {
                        Some(d) => d.decompress(&stored, logical_bytes as usize),
                        None => Err(std::io::Error::other("zstd context")),
                    }
                })
                .map_err(|e| Error::corrupt(format!("zstd block does not decompress: {e}")))?;
            if out.len() != logical_bytes as usize {
                return Err(Error::corrupt(format!(
                    "zstd block decompresses to {} bytes, its pointer says {logical_bytes}",
                    out.len()
                )));
            }
            Ok(out)
        }
    }
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
    fn bad_zstd_is_corruption() {
        let err = decompress(vec![1, 2, 3, 4], Compression::Zstd, 100).unwrap_err();
        assert!(err.to_string().contains("does not decompress"));
    }
}
