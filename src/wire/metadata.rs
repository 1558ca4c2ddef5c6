//! ut_metadata (BEP 9), sans-IO: request, data and reject messages, and the assembly of
//! the `info` dictionary from 16 KiB pieces, checked against the info-hash.

use torrust_bencode::{ben_int, ben_map};

use crate::torrent::InfoHash;
use crate::torrent::bencode::{self, Dict};

/// Size of every metadata piece but the last.
pub const PIECE: usize = 16 * 1024;

/// A ut_metadata message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataMessage {
    /// `msg_type 0`: please send this piece.
    Request(u32),
    /// `msg_type 1`: a piece, with the total size, and its bytes.
    Data {
        /// Piece index.
        piece: u32,
        /// Whole metadata size.
        total_size: u64,
        /// The bytes after the dictionary.
        data: Vec<u8>,
    },
    /// `msg_type 2`: the peer will not send this piece.
    Reject(u32),
}

/// A message btda cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad ut_metadata message: {0}")]
pub struct MetadataError(pub String);

/// Encodes a request for `piece`.
pub fn request(piece: u32) -> Vec<u8> {
    ben_map! { "msg_type" => ben_int!(0), "piece" => ben_int!(i64::from(piece)) }.encode()
}

/// Encodes a data message (for tests and the simulator).
pub fn data(piece: u32, total_size: u64, bytes: &[u8]) -> Vec<u8> {
    let mut out = ben_map! {
        "msg_type" => ben_int!(1),
        "piece" => ben_int!(i64::from(piece)),
        "total_size" => ben_int!(i64::try_from(total_size).unwrap_or(i64::MAX))
    }
    .encode();
    out.extend_from_slice(bytes);
    out
}

/// Parses a message: a bencoded dictionary, followed by the piece bytes for `Data`.
pub fn parse(payload: &[u8]) -> Result<MetadataMessage, MetadataError> {
    // The dictionary ends where bencode decoding of a prefix ends; find it by decoding
    // without the full-input rule.
    let opts = torrust_bencode::BDecodeOpt::new(4, false, false);
    let value = torrust_bencode::BencodeRef::decode(payload, opts)
        .map_err(|e| MetadataError(e.to_string()))?;
    let dict_len = value.buffer().len();
    let d = Dict::new(&value, "").map_err(|e| MetadataError(e.to_string()))?;
    let int = |k: &str| d.int(k).ok().flatten();
    let piece = int("piece")
        .and_then(|p| u32::try_from(p).ok())
        .ok_or_else(|| MetadataError("no piece".into()))?;
    match int("msg_type") {
        Some(0) => Ok(MetadataMessage::Request(piece)),
        Some(1) => {
            let total_size = int("total_size")
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| MetadataError("no total_size".into()))?;
            Ok(MetadataMessage::Data {
                piece,
                total_size,
                data: payload[dict_len..].to_vec(),
            })
        }
        Some(2) => Ok(MetadataMessage::Reject(piece)),
        other => Err(MetadataError(format!("msg_type {other:?}"))),
    }
}

/// Collects metadata pieces of a known size.
#[derive(Debug)]
pub(crate) struct Assembler {
    size: usize,
    pieces: Vec<Option<Vec<u8>>>,
}

impl Assembler {
    /// For metadata of `size` bytes, refused if zero or over `max`.
    pub(crate) fn new(size: u64, max: u64) -> Result<Self, MetadataError> {
        if size == 0 || size > max {
            return Err(MetadataError(format!(
                "metadata_size {size} outside 1..={max}"
            )));
        }
        let size = size as usize;
        Ok(Self {
            size,
            pieces: vec![None; size.div_ceil(PIECE)],
        })
    }

    /// Pieces in all.
    #[cfg(test)]
    pub(crate) fn count(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// The next piece not yet received, after `from`.
    pub(crate) fn missing(&self) -> impl Iterator<Item = u32> + '_ {
        self.pieces
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_none())
            .map(|(i, _)| i as u32)
    }

    /// Adds a piece; its length must be exactly what its index implies.
    pub(crate) fn add(
        &mut self,
        piece: u32,
        total_size: u64,
        bytes: Vec<u8>,
    ) -> Result<(), MetadataError> {
        if total_size != self.size as u64 {
            return Err(MetadataError(format!(
                "total_size {total_size}, expected {}",
                self.size
            )));
        }
        let i = piece as usize;
        let expected = if i + 1 == self.pieces.len() {
            self.size - i * PIECE
        } else {
            PIECE
        };
        match self.pieces.get_mut(i) {
            Some(slot) if bytes.len() == expected => {
                *slot = Some(bytes);
                Ok(())
            }
            Some(_) => Err(MetadataError(format!(
                "piece {piece} has {} bytes, expected {expected}",
                bytes.len()
            ))),
            None => Err(MetadataError(format!("piece {piece} out of range"))),
        }
    }

    /// The whole `info` dictionary once every piece arrived and its SHA-1 matches.
    pub(crate) fn finish(&self, info_hash: &InfoHash) -> Option<Result<Vec<u8>, MetadataError>> {
        if self.pieces.iter().any(Option::is_none) {
            return None;
        }
        let all: Vec<u8> = self.pieces.iter().flatten().flatten().copied().collect();
        Some(if InfoHash::of_info_bytes(&all) == *info_hash {
            bencode::decode(&all, bencode::MAX_DEPTH)
                .map(|_| all.clone())
                .map_err(|e| MetadataError(e.to_string()))
        } else {
            Err(MetadataError(
                "SHA-1 of the metadata does not match the info-hash".into(),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        assert_eq!(request(3), b"d8:msg_typei0e5:piecei3ee");
        assert_eq!(parse(&request(3)).unwrap(), MetadataMessage::Request(3));
        let d = data(1, 20000, b"xyz");
        assert_eq!(
            parse(&d).unwrap(),
            MetadataMessage::Data {
                piece: 1,
                total_size: 20000,
                data: b"xyz".to_vec()
            }
        );
        assert_eq!(
            parse(b"d8:msg_typei2e5:piecei0ee").unwrap(),
            MetadataMessage::Reject(0)
        );
        assert!(parse(b"d8:msg_typei9e5:piecei0ee").is_err());
        assert!(parse(b"garbage").is_err());
    }

    #[test]
    fn assembly_checks_sizes_and_hash() {
        let info: Vec<u8> = {
            let mut v = b"d6:lengthi1e4:name".to_vec();
            let name = "n".repeat(PIECE + 100);
            v.extend_from_slice(format!("{}:{name}", name.len()).as_bytes());
            v.extend_from_slice(b"12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae");
            v
        };
        let hash = InfoHash::of_info_bytes(&info);
        let size = info.len() as u64;
        assert!(Assembler::new(size, 100).is_err(), "over the cap");
        let mut a = Assembler::new(size, 1 << 20).unwrap();
        assert_eq!(a.count(), 2);
        assert!(
            a.add(0, size + 1, info[..PIECE].to_vec()).is_err(),
            "wrong total size"
        );
        assert!(
            a.add(1, size, info[PIECE..PIECE + 5].to_vec()).is_err(),
            "short last piece"
        );
        assert!(a.add(2, size, vec![]).is_err(), "out of range");
        a.add(0, size, info[..PIECE].to_vec()).unwrap();
        assert!(a.finish(&hash).is_none());
        a.add(1, size, info[PIECE..].to_vec()).unwrap();
        assert_eq!(a.finish(&hash).unwrap().unwrap(), info);
        assert!(
            a.finish(&InfoHash([0; 20])).unwrap().is_err(),
            "a wrong hash is refused"
        );
    }

    #[test]
    fn a_last_piece_of_exactly_16_kib() {
        let mut a = Assembler::new((2 * PIECE) as u64, 1 << 20).unwrap();
        assert_eq!(a.count(), 2);
        a.add(1, (2 * PIECE) as u64, vec![0; PIECE]).unwrap();
        assert_eq!(a.missing().collect::<Vec<_>>(), vec![0]);
    }
}
