//! The BEP 3 handshake: `19 "BitTorrent protocol" reserved[8] info_hash[20] peer_id[20]`.

use crate::torrent::InfoHash;

/// Length of a handshake on the wire.
pub const HANDSHAKE_LEN: usize = 68;
const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// Reserved bit of the extension protocol (BEP 10): byte 5, 0x10.
pub const EXTENSION_BIT: (usize, u8) = (5, 0x10);
/// Reserved bit of the fast extension (BEP 6): byte 7, 0x04.
pub const FAST_BIT: (usize, u8) = (7, 0x04);
/// Reserved bit of the DHT (BEP 5): byte 7, 0x01.
pub(crate) const DHT_BIT: (usize, u8) = (7, 0x01);

/// A parsed or to-be-sent handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    /// Extension bits.
    pub reserved: [u8; 8],
    /// The swarm.
    pub info_hash: InfoHash,
    /// The sender's peer id.
    pub peer_id: [u8; 20],
}

/// Why bytes were not a handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The first 20 bytes are not `19 "BitTorrent protocol"` (e.g. HTTP, encrypted MSE).
    #[error("not the BitTorrent protocol")]
    WrongProtocol,
}

impl Handshake {
    /// Our handshake: extension protocol, fast extension and DHT bits set.
    pub fn ours(info_hash: InfoHash, peer_id: [u8; 20]) -> Self {
        let mut reserved = [0u8; 8];
        for (i, bit) in [EXTENSION_BIT, FAST_BIT, DHT_BIT] {
            reserved[i] |= bit;
        }
        Self {
            reserved,
            info_hash,
            peer_id,
        }
    }

    /// The 68 bytes to send.
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0u8; HANDSHAKE_LEN];
        out[0] = 19;
        out[1..20].copy_from_slice(PROTOCOL);
        out[20..28].copy_from_slice(&self.reserved);
        out[28..48].copy_from_slice(&self.info_hash.0);
        out[48..68].copy_from_slice(&self.peer_id);
        out
    }

    /// Checks the 20-byte protocol prefix (so a connection can be refused before the
    /// rest arrives).
    pub fn check_prefix(bytes: &[u8; 20]) -> Result<(), HandshakeError> {
        if bytes[0] == 19 && &bytes[1..20] == PROTOCOL {
            Ok(())
        } else {
            Err(HandshakeError::WrongProtocol)
        }
    }

    /// Parses the first 48 bytes (protocol, reserved, info-hash). Incoming connections
    /// are matched by this before the peer id arrives.
    pub fn parse_head(bytes: &[u8; 48]) -> Result<([u8; 8], InfoHash), HandshakeError> {
        let prefix: &[u8; 20] = bytes[..20]
            .try_into()
            .map_err(|_| HandshakeError::WrongProtocol)?;
        Self::check_prefix(prefix)?;
        let mut reserved = [0u8; 8];
        reserved.copy_from_slice(&bytes[20..28]);
        let mut hash = [0u8; 20];
        hash.copy_from_slice(&bytes[28..48]);
        Ok((reserved, InfoHash(hash)))
    }

    /// Parses a whole handshake.
    pub fn parse(bytes: &[u8; HANDSHAKE_LEN]) -> Result<Self, HandshakeError> {
        let head: &[u8; 48] = bytes[..48]
            .try_into()
            .map_err(|_| HandshakeError::WrongProtocol)?;
        let (reserved, info_hash) = Self::parse_head(head)?;
        let mut peer_id = [0u8; 20];
        peer_id.copy_from_slice(&bytes[48..]);
        Ok(Self {
            reserved,
            info_hash,
            peer_id,
        })
    }

    /// Whether a reserved bit (one of the `*_BIT` constants) is set.
    pub(crate) fn supports(&self, bit: (usize, u8)) -> bool {
        self.reserved[bit.0] & bit.1 != 0
    }
}

/// A BEP 20 style peer id for this run: `-BD` + four version digits + `-` + 12 random
/// bytes (printable, so logs and other clients show it cleanly).
pub fn our_peer_id(random: [u8; 12]) -> [u8; 20] {
    let mut id = [0u8; 20];
    let (major, minor, patch) = version_digits();
    id[..8].copy_from_slice(format!("-BD{major}{minor}{patch}0-").as_bytes());
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (slot, r) in id[8..].iter_mut().zip(random) {
        *slot = ALPHABET[usize::from(r) % ALPHABET.len()];
    }
    id
}

fn version_digits() -> (char, char, char) {
    let digit = |s: &str| {
        s.parse::<u32>()
            .ok()
            .and_then(|n| char::from_digit(n.min(35), 36))
            .map_or('0', |c| c.to_ascii_uppercase())
    };
    (
        digit(env!("CARGO_PKG_VERSION_MAJOR")),
        digit(env!("CARGO_PKG_VERSION_MINOR")),
        digit(env!("CARGO_PKG_VERSION_PATCH")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bits() {
        let h = Handshake::ours(InfoHash([7; 20]), our_peer_id([200; 12]));
        let bytes = h.encode();
        assert_eq!(&bytes[..20], b"\x13BitTorrent protocol");
        assert_eq!(bytes[25], 0x10);
        assert_eq!(bytes[27], 0x05);
        let back = Handshake::parse(&bytes).unwrap();
        assert_eq!(back, h);
        assert!(back.supports(EXTENSION_BIT) && back.supports(FAST_BIT) && back.supports(DHT_BIT));
        assert!(back.peer_id.starts_with(b"-BD0100-"));
        assert!(
            back.peer_id
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        );
    }

    #[test]
    fn refuses_other_protocols() {
        let mut bytes = [0u8; HANDSHAKE_LEN];
        bytes[..16].copy_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(Handshake::parse(&bytes), Err(HandshakeError::WrongProtocol));
    }
}
