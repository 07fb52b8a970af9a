//! Recomputes the checksums of a mutated stream, so that a fuzzer's changes reach the
//! record decoders and the receiver instead of stopping at the first frame checksum.
//!
//! The input is walked the way `StreamReader` walks it (preamble, frames up to END, then
//! the next part's preamble); each frame keeps its type, header and payload, and gets the
//! checksum its position calls for. An END with a payload of the right length gets the
//! part's true record count, length and digest. Whatever the walk cannot frame (a length
//! past the end or the maximum) is copied unchanged, so the reader meets it as it is.

use crate::stream::wire::{
    FRAME_CHECKSUM_BYTES, FRAME_HEADER_BYTES, PAYLOAD_BYTES_MAX, PREAMBLE_BYTES, Record, RecordType, frame_checksum,
};

const END_PAYLOAD_BYTES: usize = 8 + 8 + 32;

/// What to recompute besides the frame checksums and END.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seal {
    /// Also make each WRITE's block checksums match its data (version-2 parts only), so
    /// that the data reaches the receiver's store.
    pub write_checksums: bool,
}

/// The input with every checksum recomputed.
pub fn reseal(input: &[u8], seal: Seal) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while !rest.is_empty() {
        let (preamble, after) = rest.split_at(rest.len().min(PREAMBLE_BYTES));
        out.extend_from_slice(preamble);
        rest = after;
        if preamble.len() < PREAMBLE_BYTES {
            break;
        }
        match reseal_part(preamble, &mut rest, &mut out, seal) {
            PartEnd::End => continue,
            PartEnd::Unframed => {
                out.extend_from_slice(rest);
                break;
            }
        }
    }
    out
}

enum PartEnd {
    /// The part ended with an END frame; the next part (if any) follows.
    End,
    /// The rest of the input is not a whole frame.
    Unframed,
}

/// Frames of one part, from after its preamble through its END.
fn reseal_part(preamble: &[u8], rest: &mut &[u8], out: &mut Vec<u8>, seal: Seal) -> PartEnd {
    let part_start = out.len() - PREAMBLE_BYTES;
    let version = u32::from_le_bytes(preamble[8..12].try_into().expect("4 bytes"));
    let mut digest = blake3::Hasher::new();
    digest.update(preamble);
    for number in 0u64.. {
        if rest.len() < FRAME_HEADER_BYTES {
            return PartEnd::Unframed;
        }
        let payload_len = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
        if payload_len > PAYLOAD_BYTES_MAX || FRAME_HEADER_BYTES + payload_len > rest.len() {
            return PartEnd::Unframed;
        }
        let mut frame = rest[..FRAME_HEADER_BYTES + payload_len].to_vec();
        *rest = &rest[frame.len()..];
        *rest = &rest[rest.len().min(FRAME_CHECKSUM_BYTES)..];
        let kind = RecordType::from_u8(frame[0]);
        if kind == Some(RecordType::End) && payload_len == END_PAYLOAD_BYTES {
            frame[8..16].copy_from_slice(&number.to_le_bytes());
            frame[16..24].copy_from_slice(&((out.len() - part_start) as u64).to_le_bytes());
            frame[24..56].copy_from_slice(digest.clone().finalize().as_bytes());
        }
        if kind == Some(RecordType::Write) && seal.write_checksums && version >= 2 {
            seal_write_checksums(&mut frame, version);
        }
        let seed = if number == 0 { preamble } else { &[][..] };
        let checksum = frame_checksum(seed, &frame, number);
        out.extend_from_slice(&frame);
        out.extend_from_slice(&checksum);
        if kind == Some(RecordType::End) {
            return PartEnd::End;
        }
        digest.update(&checksum);
    }
    unreachable!("a part ends when its input does")
}

/// Sets a WRITE's base and overlay checksums to blake3 of the bytes it carries. The frame
/// is left alone if its payload does not decode.
fn seal_write_checksums(frame: &mut Vec<u8>, version: u32) {
    let payload = &frame[FRAME_HEADER_BYTES..];
    let Ok(Record::Write(mut write)) = Record::decode_payload(RecordType::Write, payload, version) else {
        return;
    };
    write.checksum = crate::checksum::blake3(&write.stored);
    if let Some(overlay) = write.overlay.as_mut() {
        overlay.checksum = crate::checksum::blake3(&overlay.stored);
    }
    frame.clear();
    Record::Write(write).encode_frame(frame);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::framing::StreamReader;
    use crate::stream::wire::preamble;

    fn frame(kind: RecordType, payload: &[u8], checksum: [u8; 16]) -> Vec<u8> {
        let mut f = vec![kind as u8, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(payload);
        f.extend_from_slice(&checksum);
        f
    }

    #[test]
    fn resealed_frames_pass_the_reader_checks() {
        // Goal: a part with wrong checksums and a wrong END reads as far as its payloads
        // allow once resealed. Method: a TREE_META and an END with garbage checksums and
        // counts; the reader must get past both frames' checksums and the END digest
        // (the BEGIN payload is bad, so the error must name the BEGIN payload instead).
        let mut input = preamble().to_vec();
        input.extend(frame(RecordType::TreeMeta, &7u64.to_le_bytes(), [1; 16]));
        input.extend(frame(RecordType::End, &[9; END_PAYLOAD_BYTES], [2; 16]));
        let sealed = reseal(&input, Seal::default());
        assert_eq!(sealed.len(), input.len());
        let mut bytes = &sealed[..];
        let mut reader = StreamReader::new(&mut bytes, None);
        let err = reader.next_part().unwrap_err().to_string();
        assert!(err.contains("instead of BEGIN"), "{err}");
    }
}
