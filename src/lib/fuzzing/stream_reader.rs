//! Fuzz target `stream_reader`: the stream reader (preamble, frames, checksums, END),
//! every record decoder in `stream::wire`, the `snaprecv --dump` lines, and resume tokens.
//!
//! The input is read as a stream twice: as it is, which exercises framing, truncation
//! and checksum errors, and resealed (its checksums recomputed), which takes the mutated
//! payloads to the record decoders. Each record that decodes must encode back to a
//! record that decodes equal to it, in a frame of the size `frame_bytes` predicts (the
//! size estimate of `snapsend -n` relies on it).

use super::reseal::{Seal, reseal};
use crate::stream::dump::describe;
use crate::stream::framing::StreamReader;
use crate::stream::token::ResumeToken;
use crate::stream::wire::{FRAME_CHECKSUM_BYTES, FRAME_HEADER_BYTES, Record, STREAM_VERSION};

pub fn run(data: &[u8]) {
    read_stream(data);
    read_stream(&reseal(data, Seal::default()));
    decode_token(data);
}

/// Reads every part and record until the input ends or an error stops the reader.
fn read_stream(bytes: &[u8]) {
    let mut input = bytes;
    let mut reader = StreamReader::new(&mut input, None);
    // Each record consumes at least a frame header, so the input bounds the loop.
    while let Ok(Some(begin)) = reader.next_part() {
        check_record(&Record::Begin(begin));
        loop {
            match reader.next_record() {
                Ok(record) => {
                    check_record(&record);
                    if let Record::End(_) = record {
                        break;
                    }
                }
                Err(_) => return,
            }
        }
    }
}

fn check_record(record: &Record) {
    let _ = describe(record);
    // A version-1 PATCH has no base hash, which this version's encoder always writes.
    if matches!(record, Record::Patch(p) if p.base_hash.is_none()) {
        return;
    }
    let mut frame = Vec::new();
    record.encode_frame(&mut frame);
    assert_eq!(frame.len() + FRAME_CHECKSUM_BYTES, record.frame_bytes() as usize, "{record:?}");
    let decoded = Record::decode_payload(record.record_type(), &frame[FRAME_HEADER_BYTES..], STREAM_VERSION)
        .expect("an encoded record decodes");
    assert_eq!(&decoded, record);
}

/// A token as typed (any text), and a token made from the input's first 48 bytes, which
/// must decode to what it was made of.
fn decode_token(data: &[u8]) {
    let _ = ResumeToken::decode(&String::from_utf8_lossy(data));
    let Some(body) = data.get(..48) else { return };
    let field = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    let token = ResumeToken {
        snapshot_guid: body[..16].try_into().expect("16 bytes"),
        base_guid: Some(body[16..32].try_into().expect("16 bytes")).filter(|g| *g != [0; 16]),
        point: crate::stream::wire::ResumePoint { ino: field(32), record: field(40) },
        from_bookmark: false,
    };
    match ResumeToken::decode(&token.encode()) {
        Ok(decoded) => assert_eq!(decoded, token),
        Err(_) => assert_eq!(token.point.ino, 0, "only a token without a resume point is refused"),
    }
}
