//! Fetching a magnet link's metadata from one peer (BEP 9 over BEP 10): handshake with
//! the extension bit, read the peer's `metadata_size`, request 16 KiB pieces a few at a
//! time, check sizes, and verify the SHA-1 against the info-hash.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::outcome::Outcome;
use super::stream::{ReadError, read_some_by};
use super::visit::{Identity, Timeouts, open_outgoing};
use crate::shutdown::Shutdown;
use crate::torrent::InfoHash;
use crate::wire::extended::{self, OUR_UT_METADATA};
use crate::wire::handshake::EXTENSION_BIT;
use crate::wire::metadata::{self, Assembler, MetadataMessage};
use crate::wire::{Message, MessageDecoder};

/// Requests in flight at once.
const OUTSTANDING: usize = 4;

/// Why a peer could not give the metadata (the next peer is tried). Up to the
/// extended handshake the reasons are a visit's [`Outcome`]s, from the same connection
/// path; after it, what can go wrong with BEP 9 itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// Connecting, the handshake or the connection failed, named as a visit would be.
    #[error("{}", .0.as_str())]
    Connection(Outcome),
    /// The peer does not offer the metadata (no extension protocol, no `ut_metadata`
    /// or `metadata_size`, a rejected piece).
    #[error("metadata not offered: {0}")]
    NotOffered(String),
    /// The peer's metadata messages were malformed, unrequested, too large, or did not
    /// hash to the info-hash.
    #[error("bad metadata: {0}")]
    Invalid(String),
    /// The peer went silent, or the fetch took longer than its budget.
    #[error("timeout")]
    Timeout,
}

fn invalid(e: impl std::fmt::Display) -> FetchError {
    FetchError::Invalid(e.to_string())
}

fn broken(e: &std::io::Error) -> FetchError {
    FetchError::Connection(Outcome::of_handshake_error(e))
}

/// Fetches the raw `info` dictionary of `info_hash` from the peer at `addr`, giving up
/// after `budget`. Metadata larger than `max_size` is refused before any piece is asked.
pub(crate) fn fetch_metadata(
    addr: SocketAddr,
    info_hash: InfoHash,
    me: &Identity<'_>,
    t: &Timeouts,
    max_size: u64,
    budget: Duration,
    stop: &Shutdown,
) -> Result<Vec<u8>, FetchError> {
    let start = Instant::now();
    // The same connection path as a visit, with the same outcome names.
    let opened = open_outgoing(addr, info_hash, me, t, stop)
        .map_err(|e| FetchError::Connection(e.outcome))?;
    let (mut s, hs) = (opened.stream, opened.theirs);
    if !hs.supports(EXTENSION_BIT) {
        return Err(FetchError::NotOffered("no extension protocol".into()));
    }
    let hello = Message::Extended {
        id: 0,
        payload: extended::our_handshake(me.listen_port, me.version),
    };
    s.write_all(&hello.encode()).map_err(|e| broken(&e))?;

    let mut decoder = MessageDecoder::new(64 * 1024);
    let mut buf = vec![0u8; 32 * 1024];
    let mut their_id: Option<u8> = None;
    let mut assembler: Option<Assembler> = None;
    let mut requested: Vec<u32> = Vec::new();
    let mut last = Instant::now();
    loop {
        let deadline = (start + budget).min(last + t.silence);
        match read_some_by(&mut s, &mut buf, deadline, stop) {
            Ok(n) => {
                decoder.feed(&buf[..n]);
                last = Instant::now();
            }
            Err(ReadError::Timeout) => return Err(FetchError::Timeout),
            Err(ReadError::Stopped) => return Err(FetchError::Connection(Outcome::Interrupted)),
            Err(ReadError::Closed) => {
                return Err(FetchError::Connection(Outcome::ClosedAfterHandshake));
            }
            Err(ReadError::Io(e)) => return Err(broken(&e)),
        }
        while let Some(msg) = decoder.next_message().map_err(invalid)? {
            let Message::Extended { id, payload } = msg else {
                continue;
            };
            if id == 0 {
                let ext = extended::parse_handshake(&payload).map_err(invalid)?;
                let (Some(mid), Some(size)) = (ext.ut_metadata, ext.metadata_size) else {
                    return Err(FetchError::NotOffered(
                        "no ut_metadata or metadata_size".into(),
                    ));
                };
                their_id = Some(mid);
                assembler = Some(Assembler::new(size, max_size).map_err(invalid)?);
            } else if id == OUR_UT_METADATA {
                let a = assembler
                    .as_mut()
                    .ok_or_else(|| invalid("data before the handshake"))?;
                match metadata::parse(&payload).map_err(invalid)? {
                    MetadataMessage::Data {
                        piece,
                        total_size,
                        data,
                    } => {
                        if !requested.contains(&piece) {
                            return Err(invalid(format!("unrequested piece {piece}")));
                        }
                        a.add(piece, total_size, data).map_err(invalid)?;
                        requested.retain(|&p| p != piece);
                    }
                    MetadataMessage::Reject(piece) => {
                        return Err(FetchError::NotOffered(format!("piece {piece} rejected")));
                    }
                    MetadataMessage::Request(_) => {} // btda has no metadata to give
                }
                if let Some(done) = a.finish(&info_hash) {
                    return done.map_err(invalid);
                }
            }
            // Keep a few requests in flight.
            if let (Some(mid), Some(a)) = (their_id, assembler.as_ref()) {
                let next: Vec<u32> = a
                    .missing()
                    .filter(|p| !requested.contains(p))
                    .take(OUTSTANDING.saturating_sub(requested.len()))
                    .collect();
                for p in next {
                    let m = Message::Extended {
                        id: mid,
                        payload: metadata::request(p),
                    };
                    s.write_all(&m.encode()).map_err(|e| broken(&e))?;
                    requested.push(p);
                }
            }
        }
    }
}

/// A whole `.torrent` file around fetched `info` bytes, with the magnet's trackers
/// (keys in sorted order, so the file is canonical bencode).
pub fn torrent_file(info: &[u8], trackers: &[String]) -> Vec<u8> {
    let mut out = b"d".to_vec();
    if let Some(first) = trackers.first() {
        out.extend_from_slice(format!("8:announce{}:{first}", first.len()).as_bytes());
        out.extend_from_slice(b"13:announce-listl");
        for t in trackers {
            out.extend_from_slice(format!("l{}:{t}e", t.len()).as_bytes());
        }
        out.push(b'e');
    }
    out.extend_from_slice(b"4:info");
    out.extend_from_slice(info);
    out.push(b'e');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn torrent_file_keeps_the_info_bytes_and_trackers() {
        let info = b"d6:lengthi40000e4:name1:x12:piece lengthi32768e6:pieces40:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaae";
        let file = super::torrent_file(
            info,
            &[
                "udp://127.0.0.1:1".into(),
                "http://127.0.0.2/announce".into(),
            ],
        );
        let m = crate::torrent::metainfo::parse(&file).unwrap();
        assert_eq!(m.info_hash, crate::torrent::InfoHash::of_info_bytes(info));
        assert_eq!(
            m.trackers,
            vec!["udp://127.0.0.1:1", "http://127.0.0.2/announce"]
        );
        assert_eq!(m.pieces_count, 2);
    }
}
