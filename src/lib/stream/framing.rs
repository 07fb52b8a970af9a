//! Writing and reading parts of a stream: preamble, checksummed frames, the End digest.
//!
//! The reader verifies each frame's checksum before it decodes the payload, and the End
//! record's count, length and digest before it reports a part complete. Every error it
//! returns names the record number and the byte offset in the whole input.

use super::generate::Sink;
use super::input::Input;
use super::wire::{
    Begin, End, FRAME_CHECKSUM_BYTES, FRAME_HEADER_BYTES, PAYLOAD_BYTES_MAX, PREAMBLE_BYTES, Record, RecordType,
    check_preamble, frame_checksum, frame_checksum_split, preamble,
};
use crate::error::{Error, Result};
use std::io::{Read, Write};

/// Told of the bytes written or read, and of the run's size when a Begin says it.
pub trait Progress {
    fn advance(&mut self, bytes: u64);
    fn expect(&mut self, _run_bytes: u64) {}
}

impl Progress for indicatif::ProgressBar {
    fn advance(&mut self, bytes: u64) {
        self.inc(bytes);
    }
    fn expect(&mut self, run_bytes: u64) {
        if run_bytes > 0 && self.length() != Some(run_bytes) {
            self.set_length(run_bytes);
        }
    }
}

pub struct StreamWriter<'w> {
    out: &'w mut dyn Write,
    progress: Option<&'w mut dyn Progress>,
    frame: Vec<u8>,
    number: u64,
    part_bytes: u64,
    digest: blake3::Hasher,
    /// Bytes written in all parts.
    pub total_bytes: u64,
}

fn write_error(e: std::io::Error) -> Error {
    Error::io("cannot write the stream to standard output", e)
}

impl<'w> StreamWriter<'w> {
    pub fn new(out: &'w mut dyn Write, progress: Option<&'w mut dyn Progress>) -> StreamWriter<'w> {
        StreamWriter {
            out,
            progress,
            frame: Vec::new(),
            number: 0,
            part_bytes: 0,
            digest: blake3::Hasher::new(),
            total_bytes: 0,
        }
    }

    fn put(&mut self, bytes_len: usize) {
        self.part_bytes += bytes_len as u64;
        self.total_bytes += bytes_len as u64;
        if let Some(progress) = self.progress.as_mut() {
            progress.advance(bytes_len as u64);
        }
    }

    /// Starts a part: the preamble and the Begin record.
    pub fn begin(&mut self, begin: Begin) -> Result<()> {
        self.number = 0;
        self.part_bytes = 0;
        self.digest = blake3::Hasher::new();
        let pre = preamble();
        self.out.write_all(&pre).map_err(write_error)?;
        self.digest.update(&pre);
        self.put(pre.len());
        self.write_frame(&Record::Begin(begin), &pre)
    }

    fn write_frame(&mut self, record: &Record, seed: &[u8]) -> Result<()> {
        self.frame.clear();
        let (tail, checksum) = match seed.is_empty() {
            true => {
                let tail = record.encode_frame_head(&mut self.frame);
                (tail, frame_checksum_split(&self.frame, tail, self.number))
            }
            false => {
                record.encode_frame(&mut self.frame);
                (&[][..], frame_checksum(seed, &self.frame, self.number))
            }
        };
        self.out.write_all(&self.frame).map_err(write_error)?;
        self.out.write_all(tail).map_err(write_error)?;
        self.out.write_all(&checksum).map_err(write_error)?;
        self.digest.update(&checksum);
        self.number += 1;
        self.put(self.frame.len() + tail.len() + FRAME_CHECKSUM_BYTES);
        Ok(())
    }

    /// Ends a part with its digest; returns the part's size in bytes.
    pub fn end(&mut self) -> Result<u64> {
        let end = End { records: self.number, bytes: self.part_bytes, digest: *self.digest.finalize().as_bytes() };
        self.write_frame(&Record::End(end), &[])?;
        self.out.flush().map_err(write_error)?;
        Ok(self.part_bytes)
    }
}

impl Sink for StreamWriter<'_> {
    fn record(&mut self, record: &Record) -> Result<()> {
        self.write_frame(record, &[])
    }
}

/// Where the reader is, for messages.
#[derive(Clone, Copy, Debug, Default)]
pub struct Position {
    /// Record number within the part (Begin is 0).
    pub record: u64,
    /// Byte offset of the record's frame in the whole input.
    pub offset: u64,
    pub part: u32,
}

pub struct StreamReader<'r> {
    input: Input<'r>,
    progress: Option<&'r mut dyn Progress>,
    /// Bytes consumed from the input.
    offset: u64,
    part_start: u64,
    number: u64,
    parts_read: u32,
    /// Parts the run's first BEGIN announced: the input must not end before them.
    parts_expected: u32,
    digest: blake3::Hasher,
    /// The current part's stream version, from its preamble.
    version: u32,
    /// Where the last record returned began.
    pub position: Position,
}

impl<'r> StreamReader<'r> {
    pub fn new(input: &'r mut dyn Read, progress: Option<&'r mut dyn Progress>) -> StreamReader<'r> {
        StreamReader {
            input: Input::new(input, FRAME_HEADER_BYTES + PAYLOAD_BYTES_MAX + FRAME_CHECKSUM_BYTES),
            progress,
            offset: 0,
            part_start: 0,
            number: 0,
            parts_read: 0,
            parts_expected: 0,
            digest: blake3::Hasher::new(),
            version: super::wire::STREAM_VERSION,
            position: Position::default(),
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where the current part's preamble began.
    pub fn part_start(&self) -> u64 {
        self.part_start
    }

    /// Makes the next `want` bytes of the input available (`Input::peek`), unless it
    /// ends first; returns how many are.
    fn fill(&mut self, want: usize) -> Result<usize> {
        let (available, read) = self
            .input
            .fill(want)
            .map_err(|failure| Error::StreamRead { at: self.offset + failure.at, source: failure.source })?;
        if let Some(progress) = self.progress.as_mut() {
            progress.advance(read);
        }
        Ok(available)
    }

    /// Consumes `len` available bytes.
    fn consume(&mut self, len: usize) {
        self.input.consume(len);
        self.offset += len as u64;
    }

    fn truncated(&self) -> Error {
        Error::stream(format!(
            "the stream is truncated: it ends at byte {} inside record {} of part {}, before its END record",
            self.offset, self.number, self.parts_read
        ))
    }

    /// Starts the next part: Ok(None) when the input ends cleanly after a whole part.
    pub fn next_part(&mut self) -> Result<Option<Begin>> {
        let mut pre = [0u8; PREAMBLE_BYTES];
        self.position = Position { record: 0, offset: self.offset, part: self.parts_read };
        let filled = self.fill(PREAMBLE_BYTES)?;
        pre[..filled].copy_from_slice(self.input.peek(filled));
        self.consume(filled);
        if filled == 0 {
            if self.parts_read == 0 {
                return Err(Error::stream("the input is empty: not a snapfs stream"));
            }
            if self.parts_read < self.parts_expected {
                return Err(Error::stream(format!(
                    "the stream is truncated: it ends at byte {} after part {} of the {} its BEGIN records announce",
                    self.offset, self.parts_read, self.parts_expected
                )));
            }
            return Ok(None);
        }
        if filled < PREAMBLE_BYTES {
            let magic_prefix = &super::wire::STREAM_MAGIC[..filled.min(8)];
            if pre[..filled.min(8)] != *magic_prefix {
                return Err(Error::stream(format!(
                    "not a snapfs stream: {filled} bytes that do not start with \"SNAPSTRM\""
                )));
            }
            return Err(self.truncated());
        }
        self.version = check_preamble(&pre)?;
        self.part_start = self.position.offset;
        self.number = 0;
        self.digest = blake3::Hasher::new();
        self.digest.update(&pre);
        match self.read_frame(&pre)? {
            Record::Begin(begin) => {
                if let Some(progress) = self.progress.as_mut() {
                    progress.expect(begin.run_bytes);
                }
                if self.parts_read == 0 {
                    self.parts_expected = begin.parts;
                } else if begin.parts != self.parts_expected {
                    return Err(self.locate(Error::stream(format!(
                        "BEGIN announces {} parts where the first part announced {}",
                        begin.parts, self.parts_expected
                    ))));
                }
                if begin.part != self.parts_read {
                    return Err(self.locate(Error::stream(format!(
                        "BEGIN says part {} where part {} was expected (a part is missing or repeated)",
                        begin.part, self.parts_read
                    ))));
                }
                Ok(Some(begin))
            }
            other => Err(self
                .locate(Error::stream(format!("the first record is {} instead of BEGIN", other.record_type().name())))),
        }
    }

    /// The next record of the part; End only after its digest checks out.
    pub fn next_record(&mut self) -> Result<Record> {
        let record = self.read_frame(&[])?;
        if let Record::End(end) = &record {
            self.check_end(end)?;
            self.parts_read += 1;
        }
        Ok(record)
    }

    fn check_end(&self, end: &End) -> Result<()> {
        let records = self.number - 1;
        let bytes = self.position.offset - self.part_start;
        let digest = *self.digest.clone().finalize().as_bytes();
        if end.records != records || end.bytes != bytes {
            return Err(self.locate(Error::stream(format!(
                "END counts {} records in {} bytes, but the part has {records} records in {bytes} bytes",
                end.records, end.bytes
            ))));
        }
        if end.digest != digest {
            return Err(self.locate(Error::stream("END digest does not match the part's records")));
        }
        Ok(())
    }

    /// Adds where the reader is to an error.
    pub fn locate(&self, e: Error) -> Error {
        let at =
            format!("record {} of part {} at byte {}", self.position.record, self.position.part, self.position.offset);
        match e {
            Error::Stream { what } => Error::stream(format!("{at}: {what}")),
            // The target's own blocks, read while applying the record: a pool problem.
            e @ Error::Corrupt(_) => e.corrupt_context(|what| format!("{what} (while applying {at} of the stream)")),
            other => other,
        }
    }

    /// Reads, checks and decodes one frame, in place in the input's buffer.
    fn read_frame(&mut self, seed: &[u8]) -> Result<Record> {
        let start = self.offset;
        self.position = Position { record: self.number, offset: start, part: self.parts_read };
        let available = self.fill(FRAME_HEADER_BYTES)?;
        if available < FRAME_HEADER_BYTES {
            self.consume(available);
            return Err(self.truncated());
        }
        let header: [u8; FRAME_HEADER_BYTES] = self.input.peek(FRAME_HEADER_BYTES).try_into().expect("8 bytes");
        let kind_byte = header[0];
        let payload_len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        if payload_len > PAYLOAD_BYTES_MAX {
            self.consume(FRAME_HEADER_BYTES);
            return Err(self.locate(Error::stream(format!(
                "record of {payload_len} bytes, more than the {PAYLOAD_BYTES_MAX} a record may have"
            ))));
        }
        let total = FRAME_HEADER_BYTES + payload_len + FRAME_CHECKSUM_BYTES;
        let available = self.fill(total)?;
        // A frame the checks below refuse was read all the same.
        self.offset += available as u64;
        if available < total {
            self.input.consume(available);
            return Err(self.truncated());
        }
        let frame = self.input.peek(total);
        let body_end = FRAME_HEADER_BYTES + payload_len;
        let expected = frame_checksum(seed, &frame[..body_end], self.number);
        let matches = frame[body_end..] == expected;
        let decoded = match RecordType::from_u8(kind_byte) {
            Some(kind) if matches && header[1..4] == [0, 0, 0] => {
                Some(Record::decode_payload(kind, &frame[FRAME_HEADER_BYTES..body_end], self.version))
            }
            _ => None,
        };
        self.input.consume(total);
        if !matches {
            return Err(self.locate(Error::stream(
                "record checksum mismatch: the stream was damaged, or records are missing, repeated or out of order",
            )));
        }
        self.number += 1;
        let kind = RecordType::from_u8(kind_byte)
            .ok_or_else(|| self.locate(Error::stream(format!("unknown record type {kind_byte}"))))?;
        if kind != RecordType::End {
            self.digest.update(&expected);
        }
        if header[1..4] != [0, 0, 0] {
            return Err(self.locate(Error::stream("reserved bytes of a record header are not zero")));
        }
        decoded
            .expect("decoded when the checks above pass")
            .map_err(|e| match e {
                Error::Corrupt(c) => Error::stream(c.to_string()),
                other => other,
            })
            .map_err(|e| self.locate(e))
    }
}
