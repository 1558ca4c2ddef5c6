//! The uTP packet (BEP 29), sans-IO: the 20-byte header, the linked list of extension
//! headers (selective ACK kept, unknown ones skipped), and the payload. Every length
//! read from the wire is checked against what is there, and the extension chain is
//! bounded, so a hostile datagram costs a bounded parse and never a panic.
//!
//! ```text
//! 0       4       8               16              24              32
//! +-------+-------+---------------+---------------+---------------+
//! | type  | ver   | extension     | connection_id                 |
//! | timestamp_microseconds                                        |
//! | timestamp_difference_microseconds                             |
//! | wnd_size                                                      |
//! | seq_nr                        | ack_nr                        |
//! ```
//! All fields big-endian.

/// Length of the fixed header.
pub const HEADER_LEN: usize = 20;
/// The protocol version BEP 29 describes.
pub const VERSION: u8 = 1;
/// Extension headers one packet may carry before it is refused (real packets carry
/// one at most: the selective ACK).
pub const MAX_EXTENSIONS: usize = 8;
/// Extension type of the selective ACK.
const EXT_SACK: u8 = 1;

/// What a packet does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `ST_DATA` (0): carries payload.
    Data,
    /// `ST_FIN` (1): the last packet of the sender.
    Fin,
    /// `ST_STATE` (2): an ACK without payload (does not advance `seq_nr`).
    State,
    /// `ST_RESET` (3): the connection is gone.
    Reset,
    /// `ST_SYN` (4): opens a connection.
    Syn,
}

impl PacketType {
    fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            0 => Self::Data,
            1 => Self::Fin,
            2 => Self::State,
            3 => Self::Reset,
            4 => Self::Syn,
            _ => return None,
        })
    }

    fn nibble(self) -> u8 {
        match self {
            Self::Data => 0,
            Self::Fin => 1,
            Self::State => 2,
            Self::Reset => 3,
            Self::Syn => 4,
        }
    }
}

/// A uTP packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Its type.
    pub kind: PacketType,
    /// The connection id (the receiver's: see BEP 29's connection setup).
    pub conn_id: u16,
    /// Sender's clock when sent, microseconds (wraps).
    pub timestamp_us: u32,
    /// The sender's latest one-way delay sample from us, microseconds.
    pub timestamp_diff_us: u32,
    /// The sender's advertised receive window, bytes.
    pub wnd_size: u32,
    /// Sequence number of this packet.
    pub seq_nr: u16,
    /// Last sequence number the sender received from us.
    pub ack_nr: u16,
    /// Selective ACK bitmask (a multiple of 4 bytes), if present: bit `i` (least
    /// significant bit first within each byte) acknowledges `ack_nr + 2 + i`.
    pub sack: Option<Vec<u8>>,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Why a datagram is not a uTP packet btda accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the header, or an extension runs past the end.
    #[error("truncated uTP packet")]
    Truncated,
    /// Not version 1.
    #[error("uTP version {0}")]
    Version(u8),
    /// A type above 4.
    #[error("uTP packet type {0}")]
    Type(u8),
    /// A selective ACK whose length is not a positive multiple of 4.
    #[error("selective ACK of {0} bytes")]
    SackLength(usize),
    /// More extension headers than [`MAX_EXTENSIONS`].
    #[error("more than {MAX_EXTENSIONS} extension headers")]
    TooManyExtensions,
}

/// Whether `datagram` looks like uTP rather than KRPC (a bencoded dictionary starts
/// with `d`, 0x64, whose type nibble 6 no uTP packet has): how one UDP socket serves
/// both the DHT and uTP, as real clients do.
pub fn looks_like_utp(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER_LEN
        && datagram[0] & 0x0f == VERSION
        && PacketType::from_nibble(datagram[0] >> 4).is_some()
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl Packet {
    /// A packet of `kind` without extensions or payload (fields zero but for these).
    pub fn new(kind: PacketType, conn_id: u16, seq_nr: u16, ack_nr: u16) -> Self {
        Self {
            kind,
            conn_id,
            timestamp_us: 0,
            timestamp_diff_us: 0,
            wnd_size: 0,
            seq_nr,
            ack_nr,
            sack: None,
            payload: Vec::new(),
        }
    }

    /// Parses one datagram.
    pub fn decode(b: &[u8]) -> Result<Self, PacketError> {
        if b.len() < HEADER_LEN {
            return Err(PacketError::Truncated);
        }
        let version = b[0] & 0x0f;
        if version != VERSION {
            return Err(PacketError::Version(version));
        }
        let kind = PacketType::from_nibble(b[0] >> 4).ok_or(PacketError::Type(b[0] >> 4))?;
        let mut next = b[1];
        let mut at = HEADER_LEN;
        let mut sack = None;
        let mut seen = 0;
        while next != 0 {
            seen += 1;
            if seen > MAX_EXTENSIONS {
                return Err(PacketError::TooManyExtensions);
            }
            let head = b.get(at..at + 2).ok_or(PacketError::Truncated)?;
            let (this, len) = (next, usize::from(head[1]));
            next = head[0];
            let body = b.get(at + 2..at + 2 + len).ok_or(PacketError::Truncated)?;
            if this == EXT_SACK {
                if len == 0 || len % 4 != 0 {
                    return Err(PacketError::SackLength(len));
                }
                sack = Some(body.to_vec());
            }
            at += 2 + len;
        }
        Ok(Self {
            kind,
            conn_id: u16_at(b, 2),
            timestamp_us: u32_at(b, 4),
            timestamp_diff_us: u32_at(b, 8),
            wnd_size: u32_at(b, 12),
            seq_nr: u16_at(b, 16),
            ack_nr: u16_at(b, 18),
            sack,
            payload: b[at..].to_vec(),
        })
    }

    /// The datagram. A selective ACK longer than 252 bytes is cut to 252 (the length
    /// byte's largest multiple of 4); an empty or ragged one is padded to 4-byte words.
    pub fn encode(&self) -> Vec<u8> {
        let sack = self.sack.as_ref().map(|m| {
            let mut m = m.clone();
            m.truncate(252);
            let words = m.len().div_ceil(4).max(1);
            m.resize(words * 4, 0);
            m
        });
        let mut out = Vec::with_capacity(HEADER_LEN + 2 + 252 + self.payload.len());
        out.push((self.kind.nibble() << 4) | VERSION);
        out.push(if sack.is_some() { EXT_SACK } else { 0 });
        out.extend_from_slice(&self.conn_id.to_be_bytes());
        out.extend_from_slice(&self.timestamp_us.to_be_bytes());
        out.extend_from_slice(&self.timestamp_diff_us.to_be_bytes());
        out.extend_from_slice(&self.wnd_size.to_be_bytes());
        out.extend_from_slice(&self.seq_nr.to_be_bytes());
        out.extend_from_slice(&self.ack_nr.to_be_bytes());
        if let Some(m) = sack {
            out.push(0); // no further extension
            out.push(u8::try_from(m.len()).unwrap_or(252));
            out.extend_from_slice(&m);
        }
        out.extend_from_slice(&self.payload);
        out
    }

    /// The sequence numbers its selective ACK acknowledges, in order.
    pub fn sacked(&self) -> Vec<u16> {
        let Some(mask) = &self.sack else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (byte_index, byte) in mask.iter().enumerate() {
            for bit in 0..8u16 {
                if byte & (1 << bit) != 0 {
                    let offset = u16::try_from(byte_index).unwrap_or(u16::MAX) * 8 + bit;
                    out.push(self.ack_nr.wrapping_add(2).wrapping_add(offset));
                }
            }
        }
        out
    }

    /// A selective ACK mask for the packets received after a gap: `received` holds
    /// sequence numbers, those in `ack_nr + 2 ..` within 32 × `words` set their bit.
    pub fn sack_mask(ack_nr: u16, received: &[u16], words: usize) -> Vec<u8> {
        let mut mask = vec![0u8; words.clamp(1, 63) * 4];
        for &seq in received {
            let offset = usize::from(seq.wrapping_sub(ack_nr).wrapping_sub(2));
            if offset < mask.len() * 8 {
                mask[offset / 8] |= 1 << (offset % 8);
            }
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN as BEP 29 lays it out, byte by byte: type 4, version 1, no extension,
    /// connection id 0x1234, timestamp 0x01020304, no delay sample yet, a 1 MiB window,
    /// seq_nr 1, ack_nr 0.
    const SYN: [u8; 20] = [
        0x41, 0x00, 0x12, 0x34, // type|ver, extension, connection_id
        0x01, 0x02, 0x03, 0x04, // timestamp_microseconds
        0x00, 0x00, 0x00, 0x00, // timestamp_difference_microseconds
        0x00, 0x10, 0x00, 0x00, // wnd_size
        0x00, 0x01, 0x00, 0x00, // seq_nr, ack_nr
    ];

    #[test]
    fn a_syn_decodes_field_by_field_and_encodes_back() {
        let p = Packet::decode(&SYN).unwrap();
        assert_eq!(p.kind, PacketType::Syn);
        assert_eq!(p.conn_id, 0x1234);
        assert_eq!(p.timestamp_us, 0x0102_0304);
        assert_eq!(p.timestamp_diff_us, 0);
        assert_eq!(p.wnd_size, 1 << 20);
        assert_eq!((p.seq_nr, p.ack_nr), (1, 0));
        assert_eq!((p.sack.as_ref(), p.payload.len()), (None, 0));
        assert_eq!(p.encode(), SYN);
        assert!(looks_like_utp(&SYN));
    }

    #[test]
    fn a_state_with_a_selective_ack_names_the_packets_after_the_gap() {
        // ST_STATE acking 10; SACK of 4 bytes: bits 0 and 2 of the first byte (12 and
        // 14), the lowest bit of the second byte (20); then a payload-free end.
        let mut b = vec![0x21, 0x01, 0x00, 0x07];
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&[0x00, 0x05, 0x00, 0x0a]); // seq 5, ack 10
        b.extend_from_slice(&[0x00, 0x04, 0b0000_0101, 0b0000_0001, 0x00, 0x00]);
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.kind, PacketType::State);
        assert_eq!(p.sacked(), vec![12, 14, 20]);
        assert_eq!(p.encode(), b);
        assert_eq!(
            Packet::sack_mask(10, &[12, 14, 20], 1),
            vec![0b0000_0101, 0b0000_0001, 0, 0]
        );
    }

    #[test]
    fn unknown_extensions_are_skipped_and_the_payload_follows() {
        // DATA with an unknown extension 7 of 3 bytes, then a SACK of 4, then payload.
        let mut b = vec![0x01, 0x07, 0xbe, 0xef];
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&[0x00, 0x02, 0x00, 0x01]);
        b.extend_from_slice(&[0x01, 0x03, 0xaa, 0xbb, 0xcc]); // next = SACK, len 3
        b.extend_from_slice(&[0x00, 0x04, 0xff, 0x00, 0x00, 0x00]);
        b.extend_from_slice(b"\x13BitTorrent protocol");
        let p = Packet::decode(&b).unwrap();
        assert_eq!(p.kind, PacketType::Data);
        assert_eq!(p.conn_id, 0xbeef);
        assert_eq!(p.sacked(), (3..11).collect::<Vec<u16>>());
        assert_eq!(p.payload, b"\x13BitTorrent protocol");
    }

    #[test]
    fn hostile_or_foreign_datagrams_are_refused_with_their_reason() {
        assert_eq!(Packet::decode(&SYN[..19]), Err(PacketError::Truncated));
        let mut v2 = SYN;
        v2[0] = 0x42;
        assert_eq!(Packet::decode(&v2), Err(PacketError::Version(2)));
        let mut t5 = SYN;
        t5[0] = 0x51;
        assert_eq!(Packet::decode(&t5), Err(PacketError::Type(5)));
        // An extension that claims more bytes than there are.
        let mut long = SYN.to_vec();
        long[1] = 1;
        long.extend_from_slice(&[0x00, 0x08, 0xff]);
        assert_eq!(Packet::decode(&long), Err(PacketError::Truncated));
        // A selective ACK of 3 bytes.
        let mut ragged = SYN.to_vec();
        ragged[1] = 1;
        ragged.extend_from_slice(&[0x00, 0x03, 1, 2, 3]);
        assert_eq!(Packet::decode(&ragged), Err(PacketError::SackLength(3)));
        // An endless chain of empty unknown extensions.
        let mut chain = SYN.to_vec();
        chain[1] = 9;
        for _ in 0..20 {
            chain.extend_from_slice(&[9, 0]);
        }
        assert_eq!(Packet::decode(&chain), Err(PacketError::TooManyExtensions));
        // KRPC on the same socket is told apart by its first byte.
        let krpc = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        assert!(!looks_like_utp(krpc));
        assert!(Packet::decode(krpc).is_err());
    }

    #[test]
    fn sequence_numbers_wrap_in_selective_acks() {
        let mut p = Packet::new(PacketType::State, 1, 1, 65_534);
        p.sack = Some(Packet::sack_mask(65_534, &[0, 1], 1));
        let back = Packet::decode(&p.encode()).unwrap();
        assert_eq!(back.sacked(), vec![0, 1]);
    }
}
