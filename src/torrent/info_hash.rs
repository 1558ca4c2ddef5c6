//! The 20-byte BitTorrent v1 info-hash and its text forms.

use std::fmt;

/// SHA-1 of a torrent's bencoded `info` dictionary: the identity of a v1 swarm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

/// Why a text form of an info-hash was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("info-hash must be 40 hex or 32 base32 characters, got {0:?}")]
pub struct BadInfoHash(pub String);

impl InfoHash {
    /// Hashes the raw bytes of an `info` dictionary exactly as they appear in the file.
    pub fn of_info_bytes(info: &[u8]) -> Self {
        Self(sha1_smol::Sha1::from(info).digest().bytes())
    }

    /// Parses the 40-character hex form or the 32-character base32 form used in magnet
    /// links (case-insensitive for both).
    pub fn parse(text: &str) -> Result<Self, BadInfoHash> {
        let bad = || BadInfoHash(text.to_string());
        let decoded = match text.len() {
            40 => data_encoding::HEXLOWER_PERMISSIVE.decode(text.as_bytes()),
            32 => data_encoding::BASE32.decode(text.to_ascii_uppercase().as_bytes()),
            _ => return Err(bad()),
        }
        .map_err(|_| bad())?;
        let bytes: [u8; 20] = decoded.try_into().map_err(|_| bad())?;
        Ok(Self(bytes))
    }

    /// Lower-case hex, the form stored in the database.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_base32_agree() {
        let hex = InfoHash::parse("16A2086EB3764BACF638FCCB111805517AA2006C").unwrap();
        let b32 = InfoHash::parse(&data_encoding::BASE32.encode(&hex.0)).unwrap();
        let b32_lower =
            InfoHash::parse(&data_encoding::BASE32.encode(&hex.0).to_lowercase()).unwrap();
        assert_eq!(hex, b32);
        assert_eq!(hex, b32_lower);
        assert_eq!(hex.to_hex(), "16a2086eb3764bacf638fccb111805517aa2006c");
    }

    #[test]
    fn sha1_of_known_bytes() {
        // SHA-1("abc") from FIPS 180-1.
        assert_eq!(
            InfoHash::of_info_bytes(b"abc").to_hex(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn refuses_wrong_lengths_and_alphabets() {
        assert!(InfoHash::parse("abc").is_err());
        assert!(InfoHash::parse(&"g".repeat(40)).is_err());
        assert!(InfoHash::parse(&"1".repeat(32)).is_err()); // '1' is not base32
    }
}
