//! Resume tokens: what an interrupted `snaprecv -s` saved, as one string an operator
//! copies from `snapctl status` into `snapsend -t`, like ZFS's receive_resume_token.
//!
//! `1-` then hex of: snapshot guid (16), base guid (16, zero for a full stream),
//! resume inode (u64), resume record (u64), and an xxh3-64 of those 48 bytes (u64).
//! `2-` and the same: the part is from a bookmark of the base (its base guid is the
//! bookmarked snapshot's), and its rest is sent from that bookmark too.

use super::wire::ResumePoint;
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeToken {
    pub snapshot_guid: [u8; 16],
    /// None for a full stream.
    pub base_guid: Option<[u8; 16]>,
    pub point: ResumePoint,
    /// The part is from a bookmark.
    pub from_bookmark: bool,
}

const BODY_BYTES: usize = 48;

impl ResumeToken {
    pub fn encode(&self) -> String {
        let mut body = Vec::with_capacity(BODY_BYTES + 8);
        body.extend_from_slice(&self.snapshot_guid);
        body.extend_from_slice(&self.base_guid.unwrap_or([0; 16]));
        body.extend_from_slice(&self.point.ino.to_le_bytes());
        body.extend_from_slice(&self.point.record.to_le_bytes());
        let check = xxhash_rust::xxh3::xxh3_64(&body);
        body.extend_from_slice(&check.to_le_bytes());
        let kind = if self.from_bookmark { 2 } else { 1 };
        format!("{kind}-{}", body.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }

    pub fn decode(text: &str) -> Result<ResumeToken> {
        let bad = |why: &str| Error::BadResumeToken { why: why.to_string() };
        let text = text.trim();
        let (from_bookmark, hex) = match (text.strip_prefix("1-"), text.strip_prefix("2-")) {
            (Some(hex), _) => (false, hex),
            (_, Some(hex)) => (true, hex),
            _ => return Err(bad("it does not start with 1- or 2-")),
        };
        if hex.len() != 2 * (BODY_BYTES + 8) || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad("wrong length or not hexadecimal"));
        }
        let bytes: Vec<u8> =
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits")).collect();
        let (body, check) = bytes.split_at(BODY_BYTES);
        if xxhash_rust::xxh3::xxh3_64(body).to_le_bytes() != check {
            return Err(bad("its checksum does not match"));
        }
        let guid = |at: usize| -> [u8; 16] { body[at..at + 16].try_into().expect("16 bytes") };
        let word = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().expect("8 bytes"));
        let base = guid(16);
        let point = ResumePoint { ino: word(32), record: word(40) };
        if point.ino == 0 {
            return Err(bad("it names no resume point"));
        }
        if from_bookmark && base == [0; 16] {
            return Err(bad("it is from a bookmark but names no base"));
        }
        Ok(ResumeToken { snapshot_guid: guid(0), base_guid: (base != [0; 16]).then_some(base), point, from_bookmark })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_damage() {
        let point = ResumePoint { ino: 42, record: 3 };
        let token = ResumeToken { snapshot_guid: [7; 16], base_guid: Some([9; 16]), point, from_bookmark: false };
        let text = token.encode();
        assert_eq!(ResumeToken::decode(&text).unwrap(), token);
        let marked = ResumeToken { from_bookmark: true, ..token.clone() };
        assert!(marked.encode().starts_with("2-"));
        assert_eq!(ResumeToken::decode(&marked.encode()).unwrap(), marked);
        let mut damaged = text.clone().into_bytes();
        damaged[10] = if damaged[10] == b'0' { b'1' } else { b'0' };
        assert!(ResumeToken::decode(std::str::from_utf8(&damaged).unwrap()).is_err());
        assert!(ResumeToken::decode("nonsense").is_err());
    }
}
