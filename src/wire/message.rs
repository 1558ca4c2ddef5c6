//! Peer wire messages (BEP 3, BEP 6 fast extension, BEP 5 PORT, BEP 10 extended) and a
//! sans-IO decoder: feed it bytes as they arrive, take whole messages out.
//!
//! Lengths are checked before anything is buffered: a peer that announces a message
//! longer than the cap is cut off with [`WireError::TooLong`] instead of making btda
//! wait for (or allocate) gigabytes.

/// A message on the wire. Payloads btda never needs (piece data) are not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Length 0.
    KeepAlive,
    /// id 0.
    Choke,
    /// id 1.
    Unchoke,
    /// id 2.
    Interested,
    /// id 3.
    NotInterested,
    /// id 4: the sender now has this piece.
    Have(u32),
    /// id 5: the sender's pieces, one bit each, high bit first.
    Bitfield(Vec<u8>),
    /// id 6.
    Request {
        /// Piece.
        index: u32,
        /// Offset.
        begin: u32,
        /// Bytes.
        length: u32,
    },
    /// id 7 (data dropped; only its size is kept).
    Piece {
        /// Piece.
        index: u32,
        /// Offset.
        begin: u32,
        /// Bytes of data that followed.
        data_len: u32,
    },
    /// id 8.
    Cancel {
        /// Piece.
        index: u32,
        /// Offset.
        begin: u32,
        /// Bytes.
        length: u32,
    },
    /// id 9: the sender's DHT port (BEP 5).
    Port(u16),
    /// id 13 (BEP 6).
    Suggest(u32),
    /// id 14 (BEP 6): the sender has every piece.
    HaveAll,
    /// id 15 (BEP 6): the sender has no piece.
    HaveNone,
    /// id 16 (BEP 6).
    Reject {
        /// Piece.
        index: u32,
        /// Offset.
        begin: u32,
        /// Bytes.
        length: u32,
    },
    /// id 17 (BEP 6).
    AllowedFast(u32),
    /// id 20 (BEP 10): extended message `id` (0 = extended handshake).
    Extended {
        /// Extended message id as the receiver assigned it.
        id: u8,
        /// Bencoded payload.
        payload: Vec<u8>,
    },
    /// Any other id: skipped, not an error.
    Unknown {
        /// The id.
        id: u8,
        /// Payload length.
        len: u32,
    },
}

/// Protocol violations that end a visit as `protocol_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A length prefix over the cap.
    #[error("message of {len} bytes announced, over the cap of {max}")]
    TooLong {
        /// Announced length.
        len: u32,
        /// The cap.
        max: u32,
    },
    /// A known message id with a payload of the wrong size.
    #[error("message id {id} with a payload of {len} bytes")]
    BadLength {
        /// Message id.
        id: u8,
        /// Payload length.
        len: usize,
    },
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Message {
    /// Parses one message from its id and payload (the length prefix already removed).
    pub fn parse(id: u8, payload: &[u8]) -> Result<Self, WireError> {
        let len = payload.len();
        let want = |n: usize| {
            if len == n {
                Ok(())
            } else {
                Err(WireError::BadLength { id, len })
            }
        };
        let triple = |p: &[u8]| (be32(&p[0..4]), be32(&p[4..8]), be32(&p[8..12]));
        Ok(match id {
            0 => want(0).map(|()| Self::Choke)?,
            1 => want(0).map(|()| Self::Unchoke)?,
            2 => want(0).map(|()| Self::Interested)?,
            3 => want(0).map(|()| Self::NotInterested)?,
            4 => want(4).map(|()| Self::Have(be32(payload)))?,
            5 => Self::Bitfield(payload.to_vec()),
            6 | 8 | 16 => {
                want(12)?;
                let (index, begin, length) = triple(payload);
                match id {
                    6 => Self::Request {
                        index,
                        begin,
                        length,
                    },
                    8 => Self::Cancel {
                        index,
                        begin,
                        length,
                    },
                    _ => Self::Reject {
                        index,
                        begin,
                        length,
                    },
                }
            }
            7 => {
                if len < 8 {
                    return Err(WireError::BadLength { id, len });
                }
                Self::Piece {
                    index: be32(&payload[0..4]),
                    begin: be32(&payload[4..8]),
                    data_len: (len - 8) as u32,
                }
            }
            9 => want(2).map(|()| Self::Port(u16::from_be_bytes([payload[0], payload[1]])))?,
            13 => want(4).map(|()| Self::Suggest(be32(payload)))?,
            14 => want(0).map(|()| Self::HaveAll)?,
            15 => want(0).map(|()| Self::HaveNone)?,
            17 => want(4).map(|()| Self::AllowedFast(be32(payload)))?,
            20 => {
                if len < 1 {
                    return Err(WireError::BadLength { id, len });
                }
                Self::Extended {
                    id: payload[0],
                    payload: payload[1..].to_vec(),
                }
            }
            _ => Self::Unknown {
                id,
                len: len as u32,
            },
        })
    }

    /// The message with its length prefix, ready to send. (`Piece` is sent without data
    /// and `Unknown` as an empty message of its id: btda never sends either.)
    pub fn encode(&self) -> Vec<u8> {
        let (id, payload): (Option<u8>, Vec<u8>) = match self {
            Self::KeepAlive => (None, vec![]),
            Self::Choke => (Some(0), vec![]),
            Self::Unchoke => (Some(1), vec![]),
            Self::Interested => (Some(2), vec![]),
            Self::NotInterested => (Some(3), vec![]),
            Self::Have(i) => (Some(4), i.to_be_bytes().to_vec()),
            Self::Bitfield(bits) => (Some(5), bits.clone()),
            Self::Request {
                index,
                begin,
                length,
            } => (Some(6), triple(*index, *begin, *length)),
            Self::Piece { index, begin, .. } => (Some(7), triple(*index, *begin, 0)[..8].to_vec()),
            Self::Cancel {
                index,
                begin,
                length,
            } => (Some(8), triple(*index, *begin, *length)),
            Self::Port(p) => (Some(9), p.to_be_bytes().to_vec()),
            Self::Suggest(i) => (Some(13), i.to_be_bytes().to_vec()),
            Self::HaveAll => (Some(14), vec![]),
            Self::HaveNone => (Some(15), vec![]),
            Self::Reject {
                index,
                begin,
                length,
            } => (Some(16), triple(*index, *begin, *length)),
            Self::AllowedFast(i) => (Some(17), i.to_be_bytes().to_vec()),
            Self::Extended { id, payload } => {
                let mut p = Vec::with_capacity(payload.len() + 1);
                p.push(*id);
                p.extend_from_slice(payload);
                (Some(20), p)
            }
            Self::Unknown { id, .. } => (Some(*id), vec![]),
        };
        let len = payload.len() + usize::from(id.is_some());
        let mut out = Vec::with_capacity(4 + len);
        out.extend_from_slice(&(len as u32).to_be_bytes());
        out.extend(id);
        out.extend_from_slice(&payload);
        out
    }
}

fn triple(a: u32, b: u32, c: u32) -> Vec<u8> {
    [a, b, c].iter().flat_map(|x| x.to_be_bytes()).collect()
}

/// Collects bytes from a connection and yields whole messages.
#[derive(Debug)]
pub struct MessageDecoder {
    buf: Vec<u8>,
    start: usize,
    max_len: u32,
}

impl MessageDecoder {
    /// A decoder refusing messages longer than `max_len` bytes (id + payload).
    pub fn new(max_len: u32) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            max_len,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 64 * 1024 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a whole message.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next whole message, `Ok(None)` if more bytes are needed. After an error the
    /// connection must be closed: the stream can no longer be framed.
    pub fn next_message(&mut self) -> Result<Option<Message>, WireError> {
        let avail = &self.buf[self.start..];
        if avail.len() < 4 {
            return Ok(None);
        }
        let len = be32(avail);
        if len > self.max_len {
            return Err(WireError::TooLong {
                len,
                max: self.max_len,
            });
        }
        let total = 4 + len as usize;
        if avail.len() < total {
            return Ok(None);
        }
        let msg = if len == 0 {
            Message::KeepAlive
        } else {
            Message::parse(avail[4], &avail[5..total])?
        };
        self.start += total;
        Ok(Some(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_messages() -> Vec<Message> {
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(0x0102_0304),
            Message::Bitfield(vec![0xff, 0x80]),
            Message::Request {
                index: 1,
                begin: 16384,
                length: 16384,
            },
            Message::Cancel {
                index: 1,
                begin: 0,
                length: 16384,
            },
            Message::Port(6881),
            Message::Suggest(3),
            Message::HaveAll,
            Message::HaveNone,
            Message::Reject {
                index: 2,
                begin: 0,
                length: 16384,
            },
            Message::AllowedFast(9),
            Message::Extended {
                id: 0,
                payload: b"de".to_vec(),
            },
        ]
    }

    #[test]
    fn every_message_round_trips_through_the_decoder_byte_by_byte() {
        let msgs = all_messages();
        let stream: Vec<u8> = msgs.iter().flat_map(Message::encode).collect();
        let mut d = MessageDecoder::new(1 << 20);
        let mut got = Vec::new();
        for b in stream {
            d.feed(&[b]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        assert_eq!(got, msgs);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn known_byte_fixtures() {
        assert_eq!(Message::Have(5).encode(), [0, 0, 0, 5, 4, 0, 0, 0, 5]);
        assert_eq!(Message::HaveAll.encode(), [0, 0, 0, 1, 14]);
        assert_eq!(
            Message::parse(9, &[0x1a, 0xe1]).unwrap(),
            Message::Port(6881)
        );
        assert_eq!(
            Message::parse(7, &[0, 0, 0, 1, 0, 0, 0, 0, 9, 9, 9]).unwrap(),
            Message::Piece {
                index: 1,
                begin: 0,
                data_len: 3
            }
        );
    }

    #[test]
    fn huge_lengths_are_refused_before_buffering() {
        let mut d = MessageDecoder::new(1 << 20);
        d.feed(&[0xff, 0xff, 0xff, 0xff, 5]);
        assert_eq!(
            d.next_message(),
            Err(WireError::TooLong {
                len: u32::MAX,
                max: 1 << 20
            })
        );
    }

    #[test]
    fn truncated_messages_wait_and_bad_sizes_fail() {
        let mut d = MessageDecoder::new(1 << 20);
        d.feed(&[0, 0, 0, 5, 4, 0, 0]);
        assert_eq!(d.next_message(), Ok(None));
        assert_eq!(
            Message::parse(4, &[0, 0, 1]),
            Err(WireError::BadLength { id: 4, len: 3 })
        );
        assert_eq!(
            Message::parse(14, &[1]),
            Err(WireError::BadLength { id: 14, len: 1 })
        );
        assert_eq!(
            Message::parse(6, &[0; 11]),
            Err(WireError::BadLength { id: 6, len: 11 })
        );
        assert_eq!(
            Message::parse(20, &[]),
            Err(WireError::BadLength { id: 20, len: 0 })
        );
    }

    #[test]
    fn unknown_ids_are_skipped() {
        let mut d = MessageDecoder::new(100);
        d.feed(&[0, 0, 0, 3, 99, 1, 2, 0, 0, 0, 1, 14]);
        assert_eq!(
            d.next_message(),
            Ok(Some(Message::Unknown { id: 99, len: 2 }))
        );
        assert_eq!(d.next_message(), Ok(Some(Message::HaveAll)));
    }
}
