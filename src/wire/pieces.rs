//! What a peer has, as the visit's messages tell it (DESIGN.md, "Counting rules").
//!
//! The count at the end of a visit is the last `bitfield` (or `have_all` / `have_none`)
//! plus every valid `have` after it. A bitfield of the wrong length or with spare bits
//! set is recorded and ignored, and so is a `have` index ≥ pieces. (The 2015 tool set the
//! wrong bits for haves; here every index maps to exactly one bit.)

/// Which message last set the piece state; stored as `visit.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// No piece-state message at all.
    None,
    /// Only `have` messages.
    Haves,
    /// The last reset was a bitfield.
    Bitfield,
    /// The last reset was `have_all`.
    HaveAll,
    /// The last reset was `have_none`.
    HaveNone,
    /// Only invalid piece-state messages arrived (wrong bitfield length, spare bits,
    /// haves out of range): a contact, but no observation of the pieces.
    Invalid,
}

impl StateKind {
    /// The database value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Haves => "haves",
            Self::Bitfield => "bitfield",
            Self::HaveAll => "have_all",
            Self::HaveNone => "have_none",
            Self::Invalid => "invalid",
        }
    }
}

/// A message that could not be applied (counted, then ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PieceError {
    /// Bitfield length differs from ceil(pieces / 8).
    #[error("bitfield of {got} bytes, expected {expected}")]
    BitfieldLength {
        /// Received bytes.
        got: usize,
        /// ceil(pieces / 8).
        expected: usize,
    },
    /// Bits set past the last piece.
    #[error("bitfield has spare bits set")]
    SpareBits,
    /// `have` index ≥ pieces.
    #[error("have index {index} out of range (pieces {pieces})")]
    HaveOutOfRange {
        /// The index.
        index: u32,
        /// Pieces count.
        pieces: u32,
    },
}

/// The pieces a peer is known to have during one visit.
#[derive(Debug, Clone)]
pub struct PieceState {
    pieces: u32,
    bits: Vec<u8>,
    count: u32,
    kind: StateKind,
    invalid: u32,
}

impl PieceState {
    /// Nothing known yet, for a torrent of `pieces` pieces.
    pub fn new(pieces: u32) -> Self {
        Self {
            pieces,
            bits: Vec::new(),
            count: 0,
            kind: StateKind::None,
            invalid: 0,
        }
    }

    fn bytes_needed(&self) -> usize {
        (self.pieces as usize).div_ceil(8)
    }

    /// Replaces the state with a bitfield, if it is valid.
    pub fn bitfield(&mut self, bits: &[u8]) -> Result<(), PieceError> {
        let expected = self.bytes_needed();
        if bits.len() != expected {
            self.invalid += 1;
            return Err(PieceError::BitfieldLength {
                got: bits.len(),
                expected,
            });
        }
        let spare = (expected * 8) as u32 - self.pieces;
        if spare > 0 && bits[expected - 1] & ((1u8 << spare) - 1) != 0 {
            self.invalid += 1;
            return Err(PieceError::SpareBits);
        }
        self.bits.clear();
        self.bits.extend_from_slice(bits);
        self.count = bits.iter().map(|b| b.count_ones()).sum();
        self.kind = StateKind::Bitfield;
        Ok(())
    }

    /// The peer has every piece.
    pub fn have_all(&mut self) {
        self.bits.clear();
        self.count = self.pieces;
        self.kind = StateKind::HaveAll;
    }

    /// The peer has no piece.
    pub fn have_none(&mut self) {
        self.bits.clear();
        self.count = 0;
        self.kind = StateKind::HaveNone;
    }

    /// The peer has piece `index`.
    pub fn have(&mut self, index: u32) -> Result<(), PieceError> {
        if index >= self.pieces {
            self.invalid += 1;
            return Err(PieceError::HaveOutOfRange {
                index,
                pieces: self.pieces,
            });
        }
        if self.kind == StateKind::None {
            self.kind = StateKind::Haves;
        }
        if self.kind == StateKind::HaveAll {
            return Ok(());
        }
        if self.bits.is_empty() {
            self.bits = vec![0; self.bytes_needed()];
        }
        let (byte, mask) = ((index / 8) as usize, 0x80u8 >> (index % 8));
        if self.bits[byte] & mask == 0 {
            self.bits[byte] |= mask;
            self.count += 1;
        }
        Ok(())
    }

    /// Pieces known now.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether every piece is known.
    pub(crate) fn is_complete(&self) -> bool {
        self.count == self.pieces
    }

    /// Which message set the state ([`StateKind::Invalid`] when every piece-state
    /// message was invalid).
    pub fn kind(&self) -> StateKind {
        if self.kind == StateKind::None && self.invalid > 0 {
            StateKind::Invalid
        } else {
            self.kind
        }
    }

    /// Whether any piece-state message arrived (a `have` counts).
    pub fn known(&self) -> bool {
        self.kind != StateKind::None
    }

    /// Messages that were ignored as invalid.
    pub fn invalid(&self) -> u32 {
        self.invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfield_then_haves() {
        let mut s = PieceState::new(10);
        assert_eq!(s.kind(), StateKind::None);
        s.bitfield(&[0b1010_0000, 0b0100_0000]).unwrap();
        assert_eq!(s.count(), 3);
        s.have(1).unwrap();
        s.have(1).unwrap(); // repeated have counts once
        s.have(0).unwrap(); // already set
        assert_eq!(s.count(), 4);
        assert_eq!(s.kind(), StateKind::Bitfield);
        // A later bitfield replaces everything before it.
        s.bitfield(&[0, 0b1100_0000]).unwrap();
        assert_eq!(s.count(), 2);
        assert!(!s.is_complete());
    }

    #[test]
    fn haves_set_exactly_their_bit() {
        let mut s = PieceState::new(17);
        for i in [0, 7, 8, 16] {
            s.have(i).unwrap();
        }
        assert_eq!(s.count(), 4);
        assert_eq!(s.kind(), StateKind::Haves);
        for i in 0..17 {
            s.have(i).unwrap();
        }
        assert!(s.is_complete());
    }

    #[test]
    fn invalid_messages_are_counted_and_ignored() {
        let mut s = PieceState::new(10);
        s.bitfield(&[0xff, 0xc0]).unwrap();
        assert_eq!(
            s.bitfield(&[0xff]),
            Err(PieceError::BitfieldLength {
                got: 1,
                expected: 2
            })
        );
        assert_eq!(s.bitfield(&[0xff, 0xe0]), Err(PieceError::SpareBits));
        assert_eq!(
            s.have(10),
            Err(PieceError::HaveOutOfRange {
                index: 10,
                pieces: 10
            })
        );
        assert_eq!(s.count(), 10);
        assert_eq!(s.invalid(), 3);
        assert!(s.is_complete());
    }

    #[test]
    fn only_invalid_messages_are_their_own_state() {
        let mut s = PieceState::new(10);
        assert!(s.bitfield(&[0xff, 0xff]).is_err());
        assert!(s.have(99).is_err());
        assert_eq!(
            (s.kind(), s.known(), s.count()),
            (StateKind::Invalid, false, 0)
        );
        assert_eq!(s.kind().as_str(), "invalid");
        s.have(2).unwrap();
        assert_eq!(
            (s.kind(), s.known(), s.count()),
            (StateKind::Haves, true, 1)
        );
    }

    #[test]
    fn have_all_and_have_none() {
        let mut s = PieceState::new(8);
        s.have_none();
        assert_eq!((s.count(), s.kind()), (0, StateKind::HaveNone));
        s.have(3).unwrap();
        assert_eq!(s.count(), 1);
        s.have_all();
        s.have(3).unwrap();
        assert_eq!((s.count(), s.kind().as_str()), (8, "have_all"));
        // An exact multiple of 8 has no spare bits to check.
        s.bitfield(&[0xff]).unwrap();
        assert!(s.is_complete());
    }
}
