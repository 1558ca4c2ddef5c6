//! Scripted fake peers on loopback that behave like real clients do (and like broken or
//! hostile ones), for tests, benchmarks and the simulated swarm.
//!
//! Each fake peer listens on its own address (use distinct 127.x.y.z addresses to
//! simulate many hosts), answers every connection with its [`Behaviour`], and counts the
//! connections it served. Its piece count can be changed while it runs, so a test can
//! make a leecher progress between visits.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::peer::stream::{PeerStream, ReadError, Transport, read_some_by};
use crate::shutdown::Shutdown;
use crate::torrent::InfoHash;
use crate::wire::extended;
use crate::wire::handshake::{EXTENSION_BIT, FAST_BIT, HANDSHAKE_LEN};
use crate::wire::{Handshake, Message};

/// What a fake peer does after accepting a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Handshake with the fast bit, then `have_all` (libtorrent and qBittorrent seeders).
    HaveAll,
    /// Handshake, then a bitfield of its current pieces (first N set), then silence.
    Bitfield,
    /// Bitfield, then after `delay_ms` a second, fuller bitfield of `later` pieces.
    ResendBitfield {
        /// Pieces in the second bitfield.
        later: u32,
        /// Delay before it, ms.
        delay_ms: u64,
    },
    /// Bitfield of its current pieces, silence for `delay_ms`, then `count` haves at once.
    BatchedHaves {
        /// Haves sent after the silence.
        count: u32,
        /// Silence before them, ms.
        delay_ms: u64,
    },
    /// Handshake and nothing else (BEP 3 lets a peer with no pieces skip the bitfield).
    NoBitfield,
    /// Waits `delay_ms` before its handshake (a slow but live peer), then `have_all`.
    SlowHandshake {
        /// Delay before the handshake, ms.
        delay_ms: u64,
    },
    /// Accepts and never sends a byte.
    Silent,
    /// Sends its handshake and closes.
    CloseAfterHandshake,
    /// Answers with another info-hash.
    OtherInfoHash,
    /// Handshake, then a length prefix of about 4 GB.
    HugeMessage,
    /// A bitfield of the wrong length, then valid haves for its pieces.
    BadBitfieldThenHaves,
    /// A downloading client: a bitfield of its pieces, then a have every `every_ms`
    /// (the next missing piece, a repeat once it has all) for as long as the
    /// connection stays open. Such a peer never falls quiet.
    StreamingHaves {
        /// Time between haves, ms.
        every_ms: u64,
    },
    /// Serves this `info` dictionary over ut_metadata, then a full bitfield.
    Metadata {
        /// The raw info dictionary.
        info: Vec<u8>,
    },
    /// Bitfield plus an extended handshake and a ut_pex message naming `peers`.
    Pex {
        /// Peers in the `added` lists.
        peers: Vec<SocketAddr>,
    },
}

/// A running fake peer.
pub struct FakePeer {
    /// Where it listens.
    pub addr: SocketAddr,
    pieces: Arc<AtomicU32>,
    served: Arc<AtomicU32>,
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl FakePeer {
    /// Starts a fake peer on `addr` (port 0 picks a free one) for a torrent of `total`
    /// pieces, of which it has `pieces` now.
    pub fn start(
        addr: SocketAddr,
        info_hash: InfoHash,
        total: u32,
        pieces: u32,
        behaviour: Behaviour,
    ) -> std::io::Result<Self> {
        Self::start_with(addr, info_hash, total, pieces, behaviour, false)
    }

    /// As [`Self::start`], but like a client set to require encryption: a plaintext
    /// handshake is closed at once, an MSE one answered with RC4 only.
    pub fn start_encrypted(
        addr: SocketAddr,
        info_hash: InfoHash,
        total: u32,
        pieces: u32,
        behaviour: Behaviour,
    ) -> std::io::Result<Self> {
        Self::start_with(addr, info_hash, total, pieces, behaviour, true)
    }

    fn start_with(
        addr: SocketAddr,
        info_hash: InfoHash,
        total: u32,
        pieces: u32,
        behaviour: Behaviour,
        require_encryption: bool,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let peer_id = fake_peer_id(&addr);
        let have = Arc::new(AtomicU32::new(pieces));
        let served = Arc::new(AtomicU32::new(0));
        let stop = Shutdown::new();
        let (h, s, st) = (Arc::clone(&have), Arc::clone(&served), stop.clone());
        let thread = std::thread::Builder::new()
            .name(format!("fake-peer-{addr}"))
            .spawn(move || {
                while !st.requested() {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let script = Script {
                                peer_id,
                                info_hash,
                                total,
                                pieces: h.load(Ordering::Relaxed),
                                behaviour: behaviour.clone(),
                            };
                            s.fetch_add(1, Ordering::Relaxed);
                            let stop = st.clone();
                            std::thread::spawn(move || {
                                let opened = if require_encryption {
                                    encrypted(stream, info_hash, &stop)
                                } else {
                                    Some(PeerStream::plain(stream, Vec::new()))
                                };
                                if let Some(s) = opened {
                                    let _ = script.serve(s, &stop);
                                }
                            });
                        }
                        Err(_) => std::thread::sleep(crate::shutdown::POLL),
                    }
                }
            })?;
        Ok(Self {
            addr,
            pieces: have,
            served,
            stop,
            thread: Some(thread),
        })
    }

    /// Sets the pieces it reports from the next connection on.
    pub fn set_pieces(&self, pieces: u32) {
        self.pieces.store(pieces, Ordering::Relaxed);
    }

    /// Connections accepted so far.
    pub fn served(&self) -> u32 {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.request();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Script {
    peer_id: [u8; 20],
    info_hash: InfoHash,
    total: u32,
    pieces: u32,
    behaviour: Behaviour,
}

/// A peer id of Transmission's style, one per fake peer (from its address), as every
/// real client has its own.
fn fake_peer_id(addr: &SocketAddr) -> [u8; 20] {
    let mut id = *b"-TR3000-000000000000";
    let digits = format!("{:012x}", {
        let mut h = sha1_smol::Sha1::new();
        h.update(addr.to_string().as_bytes());
        u64::from_be_bytes(h.digest().bytes()[..8].try_into().unwrap_or([0; 8])) >> 16
    });
    id[8..].copy_from_slice(&digits.as_bytes()[..12]);
    id
}

/// A bitfield with the first `n` of `total` pieces set.
pub fn bitfield(total: u32, n: u32) -> Vec<u8> {
    let mut bits = vec![0u8; (total as usize).div_ceil(8)];
    for i in 0..n.min(total) {
        bits[(i / 8) as usize] |= 0x80 >> (i % 8);
    }
    bits
}

/// The MSE side of a client that requires encryption: closes a plaintext handshake,
/// answers MSE with RC4 only.
fn encrypted(tcp: TcpStream, info_hash: InfoHash, stop: &Shutdown) -> Option<PeerStream> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut first = [0u8; 20];
    let mut plain = PeerStream::plain(tcp, Vec::new());
    plain.read_exact(&mut first).ok()?;
    if Handshake::check_prefix(&first).is_ok() {
        return None; // dropped: what a client that requires encryption does
    }
    let torrents = crate::wire::mse::Torrents::new([info_hash]);
    let rc4 = crate::wire::mse::CRYPTO_RC4;
    crate::peer::encryption::respond(
        plain.into_transport(),
        &first,
        &torrents,
        rc4,
        deadline,
        stop,
    )
    .ok()
}

impl Script {
    fn serve(self, mut s: PeerStream, stop: &Shutdown) -> std::io::Result<()> {
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        if self.behaviour == Behaviour::Silent {
            return hold(&mut s, stop);
        }
        let mut theirs = [0u8; HANDSHAKE_LEN];
        s.read_exact(&mut theirs)?;
        if let Behaviour::SlowHandshake { delay_ms } = self.behaviour {
            std::thread::sleep(Duration::from_millis(delay_ms));
        }
        let hash = if self.behaviour == Behaviour::OtherInfoHash {
            InfoHash([0xee; 20])
        } else {
            self.info_hash
        };
        let mut hs = Handshake::ours(hash, self.peer_id);
        hs.reserved[FAST_BIT.0] &= !FAST_BIT.1;
        if matches!(
            self.behaviour,
            Behaviour::HaveAll | Behaviour::SlowHandshake { .. }
        ) {
            hs.reserved[FAST_BIT.0] |= FAST_BIT.1;
        }
        if !matches!(
            self.behaviour,
            Behaviour::Pex { .. } | Behaviour::Metadata { .. }
        ) {
            hs.reserved[EXTENSION_BIT.0] &= !EXTENSION_BIT.1;
        }
        s.write_all(&hs.encode())?;
        let send = |s: &mut PeerStream, m: Message| s.write_all(&m.encode());
        match &self.behaviour {
            Behaviour::HaveAll | Behaviour::SlowHandshake { .. } => send(&mut s, Message::HaveAll)?,
            Behaviour::Bitfield => {
                send(&mut s, Message::Bitfield(bitfield(self.total, self.pieces)))?;
            }
            Behaviour::ResendBitfield { later, delay_ms } => {
                send(&mut s, Message::Bitfield(bitfield(self.total, self.pieces)))?;
                std::thread::sleep(Duration::from_millis(*delay_ms));
                send(&mut s, Message::Bitfield(bitfield(self.total, *later)))?;
            }
            Behaviour::BatchedHaves { count, delay_ms } => {
                send(&mut s, Message::Bitfield(bitfield(self.total, self.pieces)))?;
                std::thread::sleep(Duration::from_millis(*delay_ms));
                let batch: Vec<u8> = (self.pieces..(self.pieces + count).min(self.total))
                    .flat_map(|i| Message::Have(i).encode())
                    .collect();
                s.write_all(&batch)?;
            }
            Behaviour::NoBitfield | Behaviour::Silent | Behaviour::OtherInfoHash => {}
            Behaviour::CloseAfterHandshake => return Ok(()),
            Behaviour::HugeMessage => s.write_all(&[0xff, 0xff, 0xff, 0xf0, 5])?,
            Behaviour::BadBitfieldThenHaves => {
                send(
                    &mut s,
                    Message::Bitfield(vec![0xff; (self.total as usize).div_ceil(8) + 3]),
                )?;
                for i in 0..self.pieces {
                    send(&mut s, Message::Have(i))?;
                }
            }
            Behaviour::StreamingHaves { every_ms } => {
                send(&mut s, Message::Bitfield(bitfield(self.total, self.pieces)))?;
                // Ends when btda closes (the write fails), on stop, or after a minute.
                let rounds = 60_000 / (*every_ms).max(1);
                for next in (self.pieces..).take(rounds as usize) {
                    if stop.requested() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(*every_ms));
                    send(
                        &mut s,
                        Message::Have(next.min(self.total.saturating_sub(1))),
                    )?;
                }
                return Ok(());
            }
            Behaviour::Metadata { info } => return serve_metadata(&mut s, info, self.total, stop),
            Behaviour::Pex { peers } => {
                let hello = b"d1:md6:ut_pexi1ee1:v12:FakePeer 1.0e".to_vec();
                send(
                    &mut s,
                    Message::Extended {
                        id: 0,
                        payload: hello,
                    },
                )?;
                send(&mut s, Message::Bitfield(bitfield(self.total, self.pieces)))?;
                send(
                    &mut s,
                    Message::Extended {
                        id: extended::OUR_UT_PEX,
                        payload: extended::build_pex(peers),
                    },
                )?;
            }
        }
        hold(&mut s, stop)
    }
}

/// Our id for ut_metadata in the fake peer's extended handshake.
const FAKE_UT_METADATA: u8 = 3;

/// Answers ut_metadata requests with pieces of `info` until the other side closes.
fn serve_metadata(
    s: &mut PeerStream,
    info: &[u8],
    total: u32,
    stop: &Shutdown,
) -> std::io::Result<()> {
    use crate::wire::metadata::{self, MetadataMessage, PIECE};
    let hello = format!(
        "d1:md11:ut_metadatai{FAKE_UT_METADATA}ee13:metadata_sizei{}ee",
        info.len()
    );
    s.write_all(
        &Message::Extended {
            id: 0,
            payload: hello.into_bytes(),
        }
        .encode(),
    )?;
    s.write_all(&Message::Bitfield(bitfield(total, total)).encode())?;
    let mut decoder = crate::wire::MessageDecoder::new(1 << 20);
    let mut their_id = None;
    let mut buf = [0u8; 4096];
    loop {
        let n = match read_some_by(s, &mut buf, far_future(), stop) {
            Ok(n) => n,
            Err(e) => return ended(e),
        };
        decoder.feed(&buf[..n]);
        while let Ok(Some(msg)) = decoder.next_message() {
            match msg {
                Message::Extended { id: 0, payload } => {
                    their_id = extended::parse_handshake(&payload)
                        .ok()
                        .and_then(|e| e.ut_metadata);
                }
                Message::Extended {
                    id: FAKE_UT_METADATA,
                    payload,
                } => {
                    if let (Some(to), Ok(MetadataMessage::Request(p))) =
                        (their_id, metadata::parse(&payload))
                    {
                        let start = (p as usize * PIECE).min(info.len());
                        let end = (start + PIECE).min(info.len());
                        let reply = metadata::data(p, info.len() as u64, &info[start..end]);
                        s.write_all(
                            &Message::Extended {
                                id: to,
                                payload: reply,
                            }
                            .encode(),
                        )?;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Keeps the connection open, discarding input, until the other side closes.
fn hold(s: &mut PeerStream, stop: &Shutdown) -> std::io::Result<()> {
    let mut sink = [0u8; 4096];
    loop {
        if let Err(e) = read_some_by(s, &mut sink, far_future(), stop) {
            return ended(e);
        }
    }
}

/// A deadline that never comes: fake peers read until the other side closes or the
/// simulator stops.
fn far_future() -> std::time::Instant {
    std::time::Instant::now() + Duration::from_secs(86_400)
}

/// A fake peer's connection ended: by the other side or a stop (fine), or an error.
fn ended(e: ReadError) -> std::io::Result<()> {
    match e {
        ReadError::Io(e) => Err(e),
        ReadError::Closed | ReadError::Stopped | ReadError::Timeout => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn bitfield_sets_the_first_n_bits() {
        assert_eq!(super::bitfield(10, 9), vec![0xff, 0x80]);
        assert_eq!(super::bitfield(10, 0), vec![0, 0]);
        assert_eq!(super::bitfield(8, 99), vec![0xff]);
    }
}
