//! Artifacts at rest: content sealed as it streams, in segments, under the session's data key (a
//! [`DataKey`] wrapped by the KEK ring like users' keys, `crate::vault`), so a leaked bucket reveals
//! nothing and a leaked database holds only wrapped keys.
//!
//! The format (`docs/files.md`): an 8-byte header (`1`, then a 7-byte random nonce prefix of this
//! object), then the segments: each [`SEGMENT`] bytes of plaintext (the last one fewer, or none for an
//! empty file) sealed with AES-256-GCM, its 16-byte tag after it. Segment `i`'s nonce is
//! `prefix || i (4 bytes, big-endian) || last (1 byte)` (the STREAM construction of Hoang, Reyhanitabar,
//! Rogaway and Vizár, 2015): segments cannot be reordered, dropped or moved to another object, and a
//! stream cut at a segment boundary does not end well. The associated data binds the content to its
//! object's key. [`Sealer`] and [`Opener`] hold at most one segment, whatever the object's size.

use crate::vault::{DataKey, VaultError};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};

/// Plaintext bytes per segment.
pub const SEGMENT: usize = 64 * 1024;
const TAG: usize = 16;
/// The header: the format's version and the nonce prefix.
pub const HEADER: usize = 8;
const VERSION: u8 = 1;
/// The random bytes of an object's nonce prefix (the caller's randomness).
pub const NONCE_PREFIX: usize = 7;
const PREFIX: usize = NONCE_PREFIX;

/// Why a stream cannot be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// More or fewer bytes than declared.
    #[error("{got} bytes where {declared} were declared")]
    Length {
        /// Declared.
        declared: u64,
        /// Seen so far (or in all).
        got: u64,
    },
    /// A sealed size no plaintext size gives.
    #[error("{0} bytes is not the size of a sealed object")]
    NotSealedSize(u64),
    /// Tampered with, truncated, reordered, or not this object's.
    #[error("the sealed content does not open (tampered with, truncated, or not this object's)")]
    Unsealable,
}

impl From<VaultError> for StreamError {
    fn from(_: VaultError) -> Self {
        StreamError::Unsealable
    }
}

fn segments(plain: u64) -> u64 {
    plain.div_ceil(SEGMENT as u64).max(1)
}

/// The sealed size of `plain` bytes.
pub fn sealed_len(plain: u64) -> u64 {
    HEADER as u64 + plain + TAG as u64 * segments(plain)
}

/// The plaintext size of a sealed object of `sealed` bytes.
pub fn plain_len(sealed: u64) -> Result<u64, StreamError> {
    let body = sealed.checked_sub(HEADER as u64).ok_or(StreamError::NotSealedSize(sealed))?;
    let n = body.div_ceil((SEGMENT + TAG) as u64).max(1);
    let plain = body.checked_sub(TAG as u64 * n).ok_or(StreamError::NotSealedSize(sealed))?;
    if sealed_len(plain) == sealed {
        Ok(plain)
    } else {
        Err(StreamError::NotSealedSize(sealed))
    }
}

fn nonce(prefix: &[u8; PREFIX], index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[..PREFIX].copy_from_slice(prefix);
    // At most 2^32 segments (256 TiB): far beyond any artifact limit; checked in `new`.
    n[PREFIX..PREFIX + 4].copy_from_slice(&(index as u32).to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn too_long(plain: u64) -> bool {
    segments(plain) > u64::from(u32::MAX)
}

/// Seals a stream of a declared size, chunk by chunk.
pub struct Sealer {
    cipher: Aes256Gcm,
    aad: Vec<u8>,
    prefix: [u8; PREFIX],
    buf: Vec<u8>,
    index: u64,
    segments: u64,
    declared: u64,
    seen: u64,
    header: bool,
}

impl core::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sealer").field("declared", &self.declared).field("seen", &self.seen).finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer of `size` bytes under `key`, bound to `aad` (the object's key), with 7 random bytes
    /// (the caller's randomness) as the object's nonce prefix.
    pub fn new(key: &DataKey, aad: &[u8], random: [u8; PREFIX], size: u64) -> Result<Sealer, StreamError> {
        if too_long(size) {
            return Err(StreamError::Length { declared: size, got: 0 });
        }
        Ok(Sealer {
            cipher: Aes256Gcm::new(key.bytes().into()),
            aad: aad.to_vec(),
            prefix: random,
            buf: Vec::with_capacity(SEGMENT),
            index: 0,
            segments: segments(size),
            declared: size,
            seen: 0,
            header: false,
        })
    }

    fn seal_segment(&mut self, last: bool, out: &mut Vec<u8>) {
        let nonce = nonce(&self.prefix, self.index, last);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &self.buf, aad: &self.aad })
            .expect("AES-GCM seals any segment");
        out.extend_from_slice(&sealed);
        self.buf.clear();
        self.index += 1;
    }

    fn header(&mut self, out: &mut Vec<u8>) {
        if !self.header {
            out.push(VERSION);
            out.extend_from_slice(&self.prefix);
            self.header = true;
        }
    }

    /// Takes the next plaintext bytes; returns what is sealed so far (the header and every full segment
    /// but the last).
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<u8>, StreamError> {
        self.seen += chunk.len() as u64;
        if self.seen > self.declared {
            return Err(StreamError::Length { declared: self.declared, got: self.seen });
        }
        let mut out = Vec::new();
        self.header(&mut out);
        while !chunk.is_empty() {
            let take = (SEGMENT - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() == SEGMENT && self.index + 1 < self.segments {
                self.seal_segment(false, &mut out);
            }
        }
        Ok(out)
    }

    /// Ends the stream: the last segment, once every declared byte came.
    pub fn finish(mut self) -> Result<Vec<u8>, StreamError> {
        if self.seen != self.declared {
            return Err(StreamError::Length { declared: self.declared, got: self.seen });
        }
        let mut out = Vec::new();
        self.header(&mut out);
        self.seal_segment(true, &mut out);
        Ok(out)
    }
}

/// Opens a sealed stream of a known size, chunk by chunk.
pub struct Opener {
    cipher: Aes256Gcm,
    aad: Vec<u8>,
    prefix: Option<[u8; PREFIX]>,
    buf: Vec<u8>,
    index: u64,
    segments: u64,
    plain: u64,
}

impl core::fmt::Debug for Opener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Opener").field("plain", &self.plain).finish_non_exhaustive()
    }
}

impl Opener {
    /// An opener of a sealed object of `sealed` bytes under `key`, bound to `aad`.
    pub fn new(key: &DataKey, aad: &[u8], sealed: u64) -> Result<Opener, StreamError> {
        let plain = plain_len(sealed)?;
        Ok(Opener {
            cipher: Aes256Gcm::new(key.bytes().into()),
            aad: aad.to_vec(),
            prefix: None,
            buf: Vec::with_capacity(SEGMENT + TAG),
            index: 0,
            segments: segments(plain),
            plain,
        })
    }

    /// The plaintext's size.
    pub fn plain_len(&self) -> u64 {
        self.plain
    }

    fn open_segment(&mut self, last: bool) -> Result<Vec<u8>, StreamError> {
        let prefix = self.prefix.as_ref().ok_or(StreamError::Unsealable)?;
        let nonce = nonce(prefix, self.index, last);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(&nonce), Payload { msg: &self.buf, aad: &self.aad })
            .map_err(|_| StreamError::Unsealable)?;
        self.buf.clear();
        self.index += 1;
        Ok(plain)
    }

    /// Takes the next sealed bytes; returns the plaintext of every full segment but the last.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::new();
        while !chunk.is_empty() {
            if self.prefix.is_none() {
                let take = (HEADER - self.buf.len()).min(chunk.len());
                self.buf.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.buf.len() == HEADER {
                    if self.buf[0] != VERSION {
                        return Err(StreamError::Unsealable);
                    }
                    let mut prefix = [0u8; PREFIX];
                    prefix.copy_from_slice(&self.buf[1..]);
                    self.prefix = Some(prefix);
                    self.buf.clear();
                }
                continue;
            }
            if self.index + 1 >= self.segments {
                // The last segment is opened by `finish`, once it is whole.
                if self.buf.len() + chunk.len() > SEGMENT + TAG {
                    return Err(StreamError::Unsealable);
                }
                self.buf.extend_from_slice(chunk);
                break;
            }
            let take = (SEGMENT + TAG - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() == SEGMENT + TAG {
                out.extend(self.open_segment(false)?);
            }
        }
        Ok(out)
    }

    /// Ends the stream: the last segment's plaintext, once it all came and opened.
    pub fn finish(mut self) -> Result<Vec<u8>, StreamError> {
        if self.index + 1 != self.segments {
            return Err(StreamError::Unsealable);
        }
        self.open_segment(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> DataKey {
        DataKey::from_random([b; 32])
    }

    fn seal(content: &[u8], chunk: usize) -> Vec<u8> {
        let mut s = Sealer::new(&key(1), b"obj", [9; PREFIX], content.len() as u64).unwrap();
        let mut out = Vec::new();
        for c in content.chunks(chunk.max(1)) {
            out.extend(s.push(c).unwrap());
        }
        out.extend(s.finish().unwrap());
        out
    }

    fn open(sealed: &[u8], chunk: usize, k: &DataKey, aad: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut o = Opener::new(k, aad, sealed.len() as u64)?;
        let mut out = Vec::new();
        for c in sealed.chunks(chunk.max(1)) {
            out.extend(o.push(c)?);
        }
        out.extend(o.finish()?);
        Ok(out)
    }

    #[test]
    fn any_size_in_any_chunks_round_trips_at_its_computed_size() {
        for size in [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, 3 * SEGMENT + 17] {
            let content: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            for chunk in [1, 1000, SEGMENT, SEGMENT + TAG + 3, 1 << 20] {
                if size > 70_000 && chunk == 1 {
                    continue;
                }
                let sealed = seal(&content, chunk);
                assert_eq!(sealed.len() as u64, sealed_len(size as u64), "{size} in chunks of {chunk}");
                assert_eq!(plain_len(sealed.len() as u64), Ok(size as u64));
                assert_eq!(open(&sealed, chunk, &key(1), b"obj").unwrap(), content, "{size}/{chunk}");
            }
        }
        assert!(plain_len(7).is_err() && plain_len(HEADER as u64 + 5).is_err());
    }

    #[test]
    fn tampering_truncation_reordering_another_key_or_object_do_not_open() {
        let content: Vec<u8> = (0..3 * SEGMENT + 5).map(|i| i as u8).collect();
        let sealed = seal(&content, 4096);
        let mut flipped = sealed.clone();
        flipped[HEADER + 10] ^= 1;
        assert_eq!(open(&flipped, 4096, &key(1), b"obj"), Err(StreamError::Unsealable));
        assert_eq!(open(&sealed, 4096, &key(2), b"obj"), Err(StreamError::Unsealable), "another key");
        assert_eq!(open(&sealed, 4096, &key(1), b"other"), Err(StreamError::Unsealable), "another object");
        // Cut at a segment boundary: the rest reads as a shorter object whose last segment is not last.
        let cut = &sealed[..HEADER + 2 * (SEGMENT + TAG)];
        assert_eq!(open(cut, 4096, &key(1), b"obj"), Err(StreamError::Unsealable));
        // Two segments swapped.
        let mut swapped = sealed.clone();
        let (a, b) = (HEADER..HEADER + SEGMENT + TAG, HEADER + SEGMENT + TAG..HEADER + 2 * (SEGMENT + TAG));
        let first = sealed[a.clone()].to_vec();
        swapped.copy_within(b.clone(), a.start);
        swapped[b].copy_from_slice(&first);
        assert_eq!(open(&swapped, 4096, &key(1), b"obj"), Err(StreamError::Unsealable));
    }

    #[test]
    fn the_key_travels_to_the_edge_and_back_intact() {
        let sealed = seal(b"content", 3);
        let moved = DataKey::from_transport(key(1).to_transport().expose()).unwrap();
        assert_eq!(open(&sealed, 5, &moved, b"obj").unwrap(), b"content");
        assert!(DataKey::from_transport("short").is_err());
        assert!(!format!("{:?}", key(1)).contains("AQEB"), "Debug shows nothing of the key");
    }

    #[test]
    fn more_or_fewer_bytes_than_declared_are_refused() {
        let mut s = Sealer::new(&key(1), b"obj", [0; PREFIX], 10).unwrap();
        assert!(s.push(&[0; 8]).is_ok());
        assert_eq!(s.push(&[0; 3]), Err(StreamError::Length { declared: 10, got: 11 }));
        let mut s = Sealer::new(&key(1), b"obj", [0; PREFIX], 10).unwrap();
        s.push(&[0; 9]).unwrap();
        assert_eq!(s.finish(), Err(StreamError::Length { declared: 10, got: 9 }));
        assert!(!format!("{:?}", Sealer::new(&key(1), b"obj", [0; PREFIX], 1).unwrap()).contains("cipher"));
    }
}
