//! Simulated peers behind NAT, and the relay that can introduce btda to them (BEP 55),
//! on loopback.
//!
//! A [`NatPeer`] has no TCP listener (a TCP dial is refused, as at a NAT router with
//! no forwarding) and a uTP socket behind a NAT-like filter
//! ([`UtpSocket::bind_filtered`]): datagrams from an address it has not sent to are
//! dropped, so a uTP dial times out. It is reached only after it dialled out: when
//! its relay passes it a `connect`, it opens uTP to the initiator (as libtorrent does),
//! does the BitTorrent handshake and shows its pieces; after that, the initiator's own
//! uTP gets through the filter as well.
//!
//! A [`Relay`] is a uTP-only seeder announcing ut_pex and ut_holepunch; its PEX names
//! its NAT peers (flags uTP | holepunch) and it answers a rendezvous for one of them
//! with `connect` to both ends, for anyone else with `NotConnected`.
//!
//! Each peer downloads on a line from `start_pieces` at `pieces_per_sec` and goes
//! offline `linger` after it finished (it leaves; a peer that is offline answers
//! nothing). One thread per peer and per open connection: for tens of peers in tests
//! and the demo, not for scale.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::peer::stream::Transport;
use crate::shutdown::Shutdown;
use crate::torrent::InfoHash;
use crate::utp::{Settings, UtpSocket, UtpStream};
use crate::wire::extended::{self, PEX_HOLEPUNCH, PEX_UTP};
use crate::wire::handshake::HANDSHAKE_LEN;
use crate::wire::holepunch::{Holepunch, Kind, PunchError};
use crate::wire::{Handshake, Message, MessageDecoder};

/// How one simulated NAT peer downloads.
#[derive(Debug, Clone, Copy)]
pub struct NatPlan {
    /// Pieces at the start.
    pub start_pieces: u32,
    /// Download rate.
    pub pieces_per_sec: f64,
    /// How long it stays online after it finished (then it answers nothing).
    pub linger: Duration,
}

/// What the test or the demo knows about a NAT peer.
#[derive(Debug, Clone, Copy)]
pub struct NatTruth {
    /// Its address (the one its relay's PEX gives).
    pub addr: SocketAddr,
    /// When it finishes, from the start of the group (None: never).
    pub finishes_after: Option<Duration>,
}

struct Shared {
    info_hash: InfoHash,
    pieces: u32,
    start: Instant,
    stop: Shutdown,
}

impl Shared {
    fn pieces_at(&self, plan: &NatPlan) -> u32 {
        let grown = plan.pieces_per_sec * self.start.elapsed().as_secs_f64();
        (f64::from(plan.start_pieces) + grown).min(f64::from(self.pieces)) as u32
    }

    fn finishes_after(&self, plan: &NatPlan) -> Option<Duration> {
        let left = f64::from(self.pieces.saturating_sub(plan.start_pieces));
        if left == 0.0 {
            return Some(Duration::ZERO);
        }
        (plan.pieces_per_sec > 0.0).then(|| Duration::from_secs_f64(left / plan.pieces_per_sec))
    }

    fn online(&self, plan: &NatPlan) -> bool {
        self.finishes_after(plan)
            .is_none_or(|f| self.start.elapsed() < f + plan.linger)
    }
}

/// One NAT peer's thread and its command channel.
struct NatPeer {
    addr: SocketAddr,
    connect_to: mpsc::Sender<SocketAddr>,
}

/// A relay and its NAT peers (see the module). Dropping it stops every thread.
pub struct NatGroup {
    truth: Vec<NatTruth>,
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl NatGroup {
    /// Starts a relay at `relay` (UDP, uTP) and one NAT peer per plan at `addrs`, for
    /// a torrent of `pieces` pieces.
    pub fn start(
        info_hash: InfoHash,
        pieces: u32,
        relay: SocketAddr,
        peers: &[(SocketAddr, NatPlan)],
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            info_hash,
            pieces,
            start: Instant::now(),
            stop: Shutdown::new(),
        });
        let mut threads = Vec::new();
        let mut nat_peers = Vec::new();
        let mut truth = Vec::new();
        for (n, (addr, plan)) in peers.iter().enumerate() {
            let socket = UtpSocket::bind_filtered(*addr, Settings::default(), shared.stop.clone())?;
            let (tx, rx) = mpsc::channel();
            let (s, plan) = (Arc::clone(&shared), *plan);
            let id = peer_id(b"-SN0001-", n);
            threads.push(std::thread::spawn(move || {
                nat_peer(&socket, &rx, &s, plan, id);
            }));
            nat_peers.push(NatPeer {
                addr: *addr,
                connect_to: tx,
            });
            truth.push(NatTruth {
                addr: *addr,
                finishes_after: shared.finishes_after(&plan),
            });
        }
        let socket = UtpSocket::bind(relay, true, Settings::default(), shared.stop.clone())?;
        let s = Arc::clone(&shared);
        threads.push(std::thread::spawn(move || {
            relay_loop(&socket, &s, &nat_peers);
        }));
        Ok(Self {
            truth,
            shared,
            threads,
        })
    }

    /// Each NAT peer's address and schedule.
    pub fn truth(&self) -> &[NatTruth] {
        &self.truth
    }
}

impl Drop for NatGroup {
    fn drop(&mut self) {
        self.shared.stop.request();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn peer_id(prefix: &[u8; 8], n: usize) -> [u8; 20] {
    let mut id = [b'0'; 20];
    id[..8].copy_from_slice(prefix);
    let digits = format!("{n:012}");
    id[8..].copy_from_slice(&digits.as_bytes()[..12]);
    id
}

/// A bitfield with the first `have` of `pieces` set.
fn bitfield(pieces: u32, have: u32) -> Message {
    let mut b = vec![0u8; (pieces as usize).div_ceil(8)];
    for i in 0..have as usize {
        b[i / 8] |= 0x80 >> (i % 8);
    }
    Message::Bitfield(b)
}

/// Reads one message (the stream has a read timeout set).
fn next_message(stream: &mut UtpStream, decoder: &mut MessageDecoder) -> Option<Message> {
    let mut buf = [0u8; 4096];
    loop {
        match decoder.next_message() {
            Ok(Some(m)) => return Some(m),
            Ok(None) => {}
            Err(_) => return None,
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => decoder.feed(&buf[..n]),
        }
    }
}

/// The handshake exchange from either side; returns the other side's.
fn handshake(stream: &mut UtpStream, shared: &Shared, id: [u8; 20]) -> Option<Handshake> {
    stream
        .write_all(&Handshake::ours(shared.info_hash, id).encode())
        .ok()?;
    let mut theirs = [0u8; HANDSHAKE_LEN];
    stream.read_exact(&mut theirs).ok()?;
    let hs = Handshake::parse(&theirs).ok()?;
    (hs.info_hash == shared.info_hash).then_some(hs)
}

/// A NAT peer's session: handshake, its pieces, then quiet until the other side
/// closes (at most a few seconds).
fn serve_nat(mut stream: UtpStream, shared: &Shared, plan: &NatPlan, id: [u8; 20]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if handshake(&mut stream, shared, id).is_none() {
        return;
    }
    let have = shared.pieces_at(plan);
    if stream
        .write_all(&bitfield(shared.pieces, have).encode())
        .is_err()
    {
        return;
    }
    let mut decoder = MessageDecoder::new(1 << 16);
    while next_message(&mut stream, &mut decoder).is_some() {}
}

fn nat_peer(
    socket: &UtpSocket,
    connects: &mpsc::Receiver<SocketAddr>,
    shared: &Arc<Shared>,
    plan: NatPlan,
    id: [u8; 20],
) {
    let mut sessions = Vec::new();
    while !shared.stop.requested() {
        if !shared.online(&plan) {
            std::thread::sleep(Duration::from_millis(50));
            while connects.try_recv().is_ok() {} // gone: nobody answers
            continue;
        }
        // A relay's `connect`: dial the initiator (this opens the filter to it).
        while let Ok(to) = connects.try_recv() {
            if let Ok(stream) = socket.connect(to, Duration::from_secs(3)) {
                let s = Arc::clone(shared);
                sessions.push(std::thread::spawn(move || serve_nat(stream, &s, &plan, id)));
            }
        }
        // Someone the filter lets through (an address this peer dialled).
        if let Some(stream) = socket.accept(Duration::from_millis(20)) {
            let s = Arc::clone(shared);
            sessions.push(std::thread::spawn(move || serve_nat(stream, &s, &plan, id)));
        }
        sessions.retain(|t| !t.is_finished());
    }
    for t in sessions {
        let _ = t.join();
    }
}

fn relay_loop(socket: &UtpSocket, shared: &Arc<Shared>, peers: &[NatPeer]) {
    let peers: Arc<Vec<(SocketAddr, mpsc::Sender<SocketAddr>)>> = Arc::new(
        peers
            .iter()
            .map(|p| (p.addr, p.connect_to.clone()))
            .collect(),
    );
    let mut sessions = Vec::new();
    while !shared.stop.requested() {
        if let Some(stream) = socket.accept(Duration::from_millis(50)) {
            let (s, p) = (Arc::clone(shared), Arc::clone(&peers));
            sessions.push(std::thread::spawn(move || relay_session(stream, &s, &p)));
        }
        sessions.retain(|t: &std::thread::JoinHandle<()>| !t.is_finished());
    }
    for t in sessions {
        let _ = t.join();
    }
}

/// One connection to the relay: a seeder whose PEX names its NAT peers, and rendezvous
/// answered (`connect` for one of them, whether or not it is still online, as a relay
/// that has not yet noticed a peer leave).
fn relay_session(
    mut stream: UtpStream,
    shared: &Shared,
    peers: &[(SocketAddr, mpsc::Sender<SocketAddr>)],
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(initiator) = stream.peer_addr() else {
        return;
    };
    if handshake(&mut stream, shared, peer_id(b"-SR0001-", 0)).is_none() {
        return;
    }
    let hello = Message::Extended {
        id: 0,
        payload: extended::our_handshake_with(0, "sim relay 1.0", true),
    };
    let mut out = hello.encode();
    out.extend(Message::HaveAll.encode());
    if stream.write_all(&out).is_err() {
        return;
    }
    let mut decoder = MessageDecoder::new(1 << 16);
    let mut their_holepunch = None;
    while let Some(msg) = next_message(&mut stream, &mut decoder) {
        let Message::Extended { id, payload } = msg else {
            continue;
        };
        if id == 0 {
            // Their extended handshake: send our PEX with their ut_pex id.
            let Ok(theirs) = extended::parse_handshake(&payload) else {
                return;
            };
            let (Some(pex_id), Some(hp_id)) = (theirs.ut_pex, theirs.ut_holepunch) else {
                continue;
            };
            let flagged: Vec<(SocketAddr, u8)> = peers
                .iter()
                .map(|(a, _)| (*a, PEX_UTP | PEX_HOLEPUNCH))
                .collect();
            let pex = Message::Extended {
                id: pex_id,
                payload: extended::build_pex_with_flags(&flagged),
            };
            if stream.write_all(&pex.encode()).is_err() {
                return;
            }
            their_holepunch = Some(hp_id);
        } else if id == extended::OUR_UT_HOLEPUNCH
            && let Some(reply_id) = their_holepunch
        {
            let Ok(Holepunch {
                kind: Kind::Rendezvous,
                addr: target,
            }) = Holepunch::parse(&payload)
            else {
                continue;
            };
            let answer = match peers.iter().find(|(a, _)| *a == target) {
                Some((_, tx)) if tx.send(initiator).is_ok() => Kind::Connect,
                _ => Kind::Error(PunchError::NotConnected),
            };
            let reply = Message::Extended {
                id: reply_id,
                payload: Holepunch {
                    kind: answer,
                    addr: target,
                }
                .encode(),
            };
            if stream.write_all(&reply.encode()).is_err() {
                return;
            }
        }
    }
}
