//! One visit: a blocking session with a peer over any [`Transport`], from connect (or
//! accept) to the moment its piece count is known. All protocol decisions are in
//! `crate::wire`; this file only moves bytes under deadlines and measures how long each
//! phase took.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::encryption::{self, Encryption, Incoming};
use super::outcome::Outcome;
use super::stream::{
    Crypto, PeerStream, ReadError, Transport, handshake_failure, read_exact_by, read_some_by,
};
use crate::shutdown::Shutdown;
use crate::torrent::InfoHash;
use crate::wire::extended::{self, PeerExtensions};
use crate::wire::handshake::{EXTENSION_BIT, FAST_BIT, HANDSHAKE_LEN};
use crate::wire::holepunch::{Holepunch, Kind as HolepunchKind, PunchError};
use crate::wire::mse::{CRYPTO_PLAINTEXT, CRYPTO_RC4, Torrents};
use crate::wire::{Handshake, Message, MessageDecoder, PieceState, StateKind};

/// Peers kept from PEX in one visit.
const MAX_PEX_PER_VISIT: usize = 1000;

/// Timeouts of a visit (from `[peer]`).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP connect.
    pub connect: Duration,
    /// Peer's handshake after connecting.
    pub handshake: Duration,
    /// Longest silence between messages.
    pub silence: Duration,
    /// How long a visit goes on after the first piece-state message (the state window):
    /// a downloading peer sends haves without pause, so waiting for quiet would hold
    /// the worker to the cap.
    pub state_window: Duration,
    /// Longest visit.
    pub cap: Duration,
    /// How long past its first piece-state message a visit may stay for a crossing of
    /// T that the peer's rate in this visit says is that close (the minimum revisit
    /// interval: the crossing is witnessed inside the visit instead of by a revisit the
    /// finisher may not wait for); zero (also when the minimum revisit is the fixed
    /// delay, the old cadence): never past the state window.
    pub watch: Duration,
    /// How long past the handshake a visit stays for the first PEX message of a peer
    /// that announced both ut_pex and ut_holepunch (a relay candidate: the peers its
    /// PEX flags holepunch can be reached through it), when btda speaks uTP; zero:
    /// never (the engine sets it for first visits only).
    pub pex_wait: Duration,
}

/// What btda says about itself in a visit.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    /// Our peer id (one per run).
    pub peer_id: [u8; 20],
    /// Our listen port, sent in the extended handshake (0: none).
    pub listen_port: u16,
    /// `v` in the extended handshake.
    pub version: &'a str,
    /// Cap on message length from the configuration.
    pub max_message: u32,
    /// Source address of outgoing connections (None: the system chooses).
    pub source_ip: Option<std::net::IpAddr>,
    /// Whether and when to speak MSE/PE.
    pub encryption: Encryption,
    /// Which transports outgoing connections use.
    pub transport: TransportChoice,
    /// The uTP socket, when uTP is used.
    pub utp: Option<&'a crate::utp::UtpSocket>,
}

/// Which transports outgoing visits use (`peer.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// TCP only.
    Tcp,
    /// uTP only.
    Utp,
    /// TCP first; uTP when TCP is refused (the host answered, the port did not): a
    /// timeout is not retried over uTP, so an address that never answers still costs
    /// one dial.
    Both,
}

/// Least time a uTP dial after a TCP refusal waits for its answer: one lost SYN is sent
/// again after uTP's initial 1 s timeout.
const UTP_AFTER_REFUSAL: Duration = Duration::from_millis(1_500);

/// Opens the connection a visit runs on, as `me.transport` says.
fn dial(
    addr: SocketAddr,
    timeout: Duration,
    me: &Identity<'_>,
    stop: &Shutdown,
) -> io::Result<Box<dyn Transport>> {
    let tcp = || super::tcp::connect(addr, timeout, me.source_ip, stop);
    match (me.transport, me.utp) {
        (TransportChoice::Utp, Some(utp)) => Ok(Box::new(utp.connect(addr, timeout)?)),
        (TransportChoice::Both, Some(utp)) => match (Instant::now(), tcp()) {
            (_, Ok(s)) => Ok(Box::new(s)),
            // uTP after a refusal; if it does not answer either, the visit ends as the
            // TCP refusal it was (a closed port stays "refused", not a timeout). The
            // refusal took about a round trip: the uTP SYN's answer (or its
            // retransmission's, 1 s later) is given a few of them, not the whole
            // connect timeout.
            (asked, Err(e))
                if e.kind() == io::ErrorKind::ConnectionRefused && !stop.requested() =>
            {
                let rtt = asked.elapsed();
                let wait = timeout.min((rtt * 4).max(UTP_AFTER_REFUSAL));
                match utp.connect(addr, wait) {
                    Ok(s) => Ok(Box::new(s)),
                    Err(_) => Err(e),
                }
            }
            (_, Err(e)) => Err(e),
        },
        _ => Ok(Box::new(tcp()?)),
    }
}

/// Everything measured in one visit; becomes a `visit` row.
#[derive(Debug, Clone, PartialEq)]
pub struct VisitReport {
    /// How it ended.
    pub outcome: Outcome,
    /// TCP connect time (outgoing only).
    pub connect_ms: Option<u32>,
    /// Time from connected to the peer's handshake.
    pub handshake_ms: Option<u32>,
    /// Whole visit.
    pub duration_ms: u32,
    /// Pieces known at the end (None if the handshake failed).
    pub pieces: Option<u32>,
    /// Pieces known right after the first valid piece-state message (the visit's first
    /// observation), and when it came, ms after the visit started.
    pub first_state: Option<(u32, u32)>,
    /// Which message set the piece state.
    pub state: Option<StateKind>,
    /// Messages received after the handshake.
    pub messages: u32,
    /// Longest time between two messages (or handshake and first message).
    pub max_gap_ms: Option<u32>,
    /// Piece-state messages ignored as invalid.
    pub invalid: u32,
    /// The peer's id from its handshake.
    pub peer_id: Option<[u8; 20]>,
    /// What the peer said in its extended handshake.
    pub extensions: Option<PeerExtensions>,
    /// Peers received through ut_pex.
    pub pex: Vec<crate::wire::extended::PexPeer>,
    /// How the connection was set up (MSE or not, and what the peer selected).
    pub crypto: Crypto,
    /// Plaintext was tried first in this visit and the peer closed or reset during the
    /// handshake; the visit went on with MSE.
    pub fallback: bool,
    /// What carried the connection (`tcp`, `utp`), once one was made.
    pub transport: Option<&'static str>,
    /// `direct`, or `holepunch` for a connection made after a relay's `connect`.
    pub via: &'static str,
    /// How an incoming MSE handshake ended (None: not an incoming MSE connection).
    pub incoming_mse: Option<Incoming>,
}

impl VisitReport {
    /// A report with an outcome and nothing measured or seen.
    pub(crate) fn bare(outcome: Outcome) -> Self {
        Self {
            outcome,
            connect_ms: None,
            handshake_ms: None,
            duration_ms: 0,
            pieces: None,
            first_state: None,
            state: None,
            messages: 0,
            max_gap_ms: None,
            invalid: 0,
            peer_id: None,
            extensions: None,
            pex: Vec::new(),
            crypto: Crypto::None,
            fallback: false,
            incoming_mse: None,
            transport: None,
            via: "direct",
        }
    }

    fn failed(outcome: Outcome, start: Instant) -> Self {
        Self {
            duration_ms: ms_since(start),
            ..Self::bare(outcome)
        }
    }
}

fn ms_since(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_millis()).unwrap_or(u32::MAX)
}

fn ms_between(from: Instant, to: Instant) -> u32 {
    u32::try_from(to.saturating_duration_since(from).as_millis()).unwrap_or(u32::MAX)
}

/// An outgoing connection whose handshakes are done: the one connection path of visits
/// and metadata fetches.
pub(super) struct Opened {
    /// The connection.
    pub stream: PeerStream,
    /// The peer's handshake.
    pub theirs: Handshake,
    /// TCP connect time.
    pub connect_ms: u32,
    /// Time from connected to the peer's handshake.
    pub handshake_ms: u32,
    /// Reached with MSE after the peer refused plaintext.
    pub fallback: bool,
}

/// Why an outgoing connection did not get as far as both handshakes, and the phase
/// times measured until then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct NotOpened {
    /// How it ended.
    pub outcome: Outcome,
    /// Connect time, if it connected.
    pub connect_ms: Option<u32>,
    /// Time to the peer's handshake, if one came.
    pub handshake_ms: Option<u32>,
}

/// How one connection attempt begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempt {
    /// A plain BitTorrent handshake.
    Plain,
    /// MSE offering these methods, our handshake as its initial payload.
    Mse(u32),
}

/// Whether an attempt that ended like this was refused for speaking plaintext: the peer
/// closed or reset the connection during the handshake (what clients that require
/// encryption do), after the connect succeeded.
fn refused_plaintext(e: &NotOpened) -> bool {
    e.connect_ms.is_some() && matches!(e.outcome, Outcome::ClosedInHandshake | Outcome::Reset)
}

/// Whether an MSE attempt failed in a way a plaintext attempt might not.
fn refused_mse(e: &NotOpened) -> bool {
    e.connect_ms.is_some()
        && matches!(
            e.outcome,
            Outcome::ClosedInHandshake
                | Outcome::Reset
                | Outcome::WrongProtocol
                | Outcome::HandshakeTimeout
        )
}

/// Connects to `addr` (from our source address), sends our handshake for `info_hash`
/// and reads the peer's, under the connect and handshake timeouts, plaintext or MSE as
/// `me.encryption` says (with `fallback`, a peer that refuses plaintext is asked again
/// with MSE at once). A peer that answers with our own peer id is [`Outcome::Myself`];
/// one for another torrent is [`Outcome::InfoHashMismatch`].
pub(super) fn open_outgoing(
    addr: SocketAddr,
    info_hash: InfoHash,
    me: &Identity<'_>,
    t: &Timeouts,
    stop: &Shutdown,
) -> Result<Opened, NotOpened> {
    let both = CRYPTO_RC4 | CRYPTO_PLAINTEXT;
    let attempt = |how| attempt(addr, info_hash, me, t, stop, how);
    match me.encryption {
        Encryption::Plaintext => attempt(Attempt::Plain),
        Encryption::Require => attempt(Attempt::Mse(CRYPTO_RC4)),
        Encryption::Prefer => match attempt(Attempt::Mse(both)) {
            Err(e) if refused_mse(&e) && !stop.requested() => attempt(Attempt::Plain),
            other => other,
        },
        Encryption::Fallback => match attempt(Attempt::Plain) {
            Err(e) if refused_plaintext(&e) && !stop.requested() => {
                let mut retried = attempt(Attempt::Mse(both));
                if let Ok(o) = &mut retried {
                    o.fallback = true;
                }
                retried
            }
            other => other,
        },
    }
}

/// One connection attempt: connect, plaintext or MSE, both BitTorrent handshakes.
fn attempt(
    addr: SocketAddr,
    info_hash: InfoHash,
    me: &Identity<'_>,
    t: &Timeouts,
    stop: &Shutdown,
    how: Attempt,
) -> Result<Opened, NotOpened> {
    let start = Instant::now();
    let tcp = dial(addr, t.connect, me, stop).map_err(|e| NotOpened {
        outcome: if e.kind() == io::ErrorKind::Interrupted && stop.requested() {
            Outcome::Interrupted
        } else {
            Outcome::of_connect_error(&e)
        },
        connect_ms: None,
        handshake_ms: None,
    })?;
    let connect_ms = ms_since(start);
    let fail = |outcome| NotOpened {
        outcome,
        connect_ms: Some(connect_ms),
        handshake_ms: None,
    };
    let connected = Instant::now();
    let deadline = connected + t.handshake;
    let _ = tcp.set_write_timeout(Some(t.handshake));
    let ours = Handshake::ours(info_hash, me.peer_id).encode();
    let mut stream = match how {
        Attempt::Plain => {
            let mut s = PeerStream::plain_boxed(tcp, Vec::new());
            s.write_all(&ours)
                .map_err(|e| fail(Outcome::of_handshake_error(&e)))?;
            s
        }
        Attempt::Mse(provide) => {
            encryption::initiate(tcp, info_hash, provide, &ours, deadline, stop).map_err(fail)?
        }
    };
    let mut raw = [0u8; HANDSHAKE_LEN];
    read_exact_by(&mut stream, &mut raw, deadline, stop).map_err(|e| fail(handshake_failure(e)))?;
    let handshake_ms = ms_since(connected);
    let after = |outcome| NotOpened {
        outcome,
        connect_ms: Some(connect_ms),
        handshake_ms: Some(handshake_ms),
    };
    let theirs = Handshake::parse(&raw).map_err(|_| after(Outcome::WrongProtocol))?;
    if theirs.peer_id == me.peer_id {
        return Err(after(Outcome::Myself)); // a tracker or the DHT listed our own address
    }
    if theirs.info_hash != info_hash {
        return Err(after(Outcome::InfoHashMismatch));
    }
    Ok(Opened {
        stream,
        theirs,
        connect_ms,
        handshake_ms,
        fallback: false,
    })
}

/// Visits `addr` for `info_hash`: connect, handshake, read the piece state.
pub(super) fn visit_outgoing(
    addr: SocketAddr,
    info_hash: InfoHash,
    (pieces, threshold): (u32, u32),
    me: &Identity<'_>,
    t: &Timeouts,
    stop: &Shutdown,
) -> VisitReport {
    let start = Instant::now();
    let mut opened = match open_outgoing(addr, info_hash, me, t, stop) {
        Ok(o) => o,
        Err(e) => {
            let mut report = VisitReport::failed(e.outcome, start);
            report.connect_ms = e.connect_ms;
            report.handshake_ms = e.handshake_ms;
            return report;
        }
    };
    let mut report = VisitReport::failed(Outcome::Ok, start);
    report.connect_ms = Some(opened.connect_ms);
    report.handshake_ms = Some(opened.handshake_ms);
    report.crypto = opened.stream.crypto();
    report.fallback = opened.fallback;
    report.transport = Some(opened.stream.name());
    let theirs = opened.theirs;
    let ctx = Ctx { me, t, stop };
    let pieces = Pieces {
        count: pieces,
        threshold: Some(threshold),
    };
    exchange(&mut opened.stream, &theirs, pieces, ctx, start, &mut report);
    report
}

/// Looks up a torrent by the info-hash an incoming peer asked for: its pieces count.
pub(super) trait TorrentLookup {
    /// Pieces of the torrent with this info-hash, if btda analyses it.
    fn pieces_of(&self, info_hash: &InfoHash) -> Option<u32>;

    /// T in pieces of that torrent (a visit may stay for a crossing about to happen).
    fn threshold_of(&self, info_hash: &InfoHash) -> Option<u32>;

    /// The torrents an incoming MSE handshake may ask for; `None` refuses MSE.
    fn encrypted(&self) -> Option<&Torrents>;
}

/// Handles an accepted connection, plaintext or MSE (told apart by the first 20
/// bytes). An info-hash btda does not analyse is refused right after the first 48
/// handshake bytes (or the MSE `req2` hash), without waiting for anything else.
/// `handshaken` is called the moment the peer's whole handshake has arrived (the
/// incoming gate stops counting the connection as one in its handshake).
pub(super) fn visit_incoming(
    conn: Box<dyn Transport>,
    torrents: &dyn TorrentLookup,
    me: &Identity<'_>,
    t: &Timeouts,
    stop: &Shutdown,
    handshaken: &mut dyn FnMut(),
) -> (Option<InfoHash>, VisitReport) {
    let start = Instant::now();
    let deadline = start + t.handshake;
    let _ = conn.set_write_timeout(Some(t.handshake));
    let transport = conn.name();
    let mut plain = PeerStream::plain_boxed(conn, Vec::new());
    let mut prefix = [0u8; 20];
    if let Err(e) = read_exact_by(&mut plain, &mut prefix, deadline, stop) {
        return (None, VisitReport::failed(handshake_failure(e), start));
    }
    let plaintext = Handshake::check_prefix(&prefix).is_ok();
    let mut stream = match (plaintext, torrents.encrypted()) {
        (true, _) => PeerStream::plain_boxed(plain.into_transport(), prefix.to_vec()),
        (false, None) => return (None, VisitReport::failed(Outcome::WrongProtocol, start)),
        (false, Some(known)) => {
            let both = CRYPTO_RC4 | CRYPTO_PLAINTEXT;
            match encryption::respond(plain.into_transport(), &prefix, known, both, deadline, stop)
            {
                Ok(s) => s,
                Err((outcome, how)) => {
                    let mut report = VisitReport::failed(outcome, start);
                    report.incoming_mse = Some(how);
                    return (None, report);
                }
            }
        }
    };
    let crypto = stream.crypto();
    let mut head = [0u8; 48];
    if let Err(e) = read_exact_by(&mut stream, &mut head, deadline, stop) {
        let mut report = VisitReport::failed(handshake_failure(e), start);
        report.crypto = crypto;
        return (None, report);
    }
    let Ok((_, info_hash)) = Handshake::parse_head(&head) else {
        return (None, VisitReport::failed(Outcome::WrongProtocol, start));
    };
    let Some(pieces) = torrents.pieces_of(&info_hash) else {
        return (
            Some(info_hash),
            VisitReport::failed(Outcome::UnknownInfoHash, start),
        );
    };
    let mut report = VisitReport::failed(Outcome::Ok, start);
    report.crypto = crypto;
    report.transport = Some(transport);
    if crypto != Crypto::None {
        report.incoming_mse = Some(Incoming::Accepted);
    }
    if let Err(e) = stream.write_all(&Handshake::ours(info_hash, me.peer_id).encode()) {
        report.outcome = Outcome::of_handshake_error(&e);
        return (Some(info_hash), report);
    }
    let mut rest = [0u8; 20];
    if let Err(e) = read_exact_by(&mut stream, &mut rest, start + t.handshake, stop) {
        report.outcome = handshake_failure(e);
        report.duration_ms = ms_since(start);
        return (Some(info_hash), report);
    }
    report.handshake_ms = Some(ms_since(start));
    let mut full = [0u8; HANDSHAKE_LEN];
    full[..48].copy_from_slice(&head);
    full[48..].copy_from_slice(&rest);
    let Ok(hs) = Handshake::parse(&full) else {
        report.outcome = Outcome::WrongProtocol;
        return (Some(info_hash), report);
    };
    handshaken();
    if hs.peer_id == me.peer_id {
        report.outcome = Outcome::Myself;
        report.duration_ms = ms_since(start);
        return (Some(info_hash), report);
    }
    let pieces = Pieces {
        count: pieces,
        threshold: torrents.threshold_of(&info_hash),
    };
    exchange(
        &mut stream,
        &hs,
        pieces,
        Ctx { me, t, stop },
        start,
        &mut report,
    );
    (Some(info_hash), report)
}

/// How a relay answered a rendezvous (BEP 55).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum RelayAnswer {
    /// `connect`: open uTP to this endpoint now (the target does the same to us).
    Connect(SocketAddr),
    /// An error message: the relay cannot introduce us.
    Refused(PunchError),
    /// The relay does not announce ut_holepunch (or the extension protocol).
    NoSupport,
    /// No session, or no answer in time: how the session ended.
    NoAnswer(Outcome),
}

/// A rendezvous session with a relay: its answer and the peers its PEX named meanwhile.
#[derive(Debug)]
pub(super) struct RelaySession {
    /// The answer.
    pub answer: RelayAnswer,
    /// PEX the relay sent during the session.
    pub pex: Vec<extended::PexPeer>,
    /// Whether a rendezvous was sent.
    pub sent: bool,
}

/// Opens a session with `relay` over uTP from btda's uTP socket (the relay tells the
/// target the address it sees, and the target dials that: it must be the socket that
/// also accepts), asks it to introduce btda to `target` and waits, at most the
/// handshake timeout after the relay's extended handshake, for its `connect` or error
/// about that target. Holepunch messages about any other endpoint are ignored: a relay
/// cannot make btda dial an address btda did not ask about.
pub(super) fn rendezvous(
    relay: SocketAddr,
    target: SocketAddr,
    info_hash: InfoHash,
    me: &Identity<'_>,
    t: &Timeouts,
    stop: &Shutdown,
) -> RelaySession {
    let mut session = RelaySession {
        answer: RelayAnswer::NoAnswer(Outcome::Refused),
        pex: Vec::new(),
        sent: false,
    };
    if me.utp.is_none() {
        session.answer = RelayAnswer::NoSupport;
        return session;
    }
    let over_utp = Identity {
        transport: TransportChoice::Utp,
        ..*me
    };
    let mut opened = match open_outgoing(relay, info_hash, &over_utp, t, stop) {
        Ok(o) => o,
        Err(e) => {
            session.answer = RelayAnswer::NoAnswer(e.outcome);
            return session;
        }
    };
    if !opened.theirs.supports(EXTENSION_BIT) {
        session.answer = RelayAnswer::NoSupport;
        return session;
    }
    if let Err(outcome) = send_hello(&mut opened.stream, &opened.theirs, &over_utp) {
        session.answer = RelayAnswer::NoAnswer(outcome);
        return session;
    }
    let mut decoder = MessageDecoder::new(me.max_message.min(1 << 20));
    let mut buf = vec![0u8; 16 * 1024];
    let mut deadline = Instant::now() + t.handshake;
    session.answer = 'session: loop {
        let n = match read_some_by(&mut opened.stream, &mut buf, deadline, stop) {
            Ok(n) => n,
            Err(ReadError::Timeout | ReadError::Stopped) => {
                break RelayAnswer::NoAnswer(Outcome::HandshakeTimeout);
            }
            Err(ReadError::Closed) => break RelayAnswer::NoAnswer(Outcome::ClosedAfterHandshake),
            Err(ReadError::Io(e)) => break RelayAnswer::NoAnswer(Outcome::of_handshake_error(&e)),
        };
        decoder.feed(&buf[..n]);
        loop {
            let msg = match decoder.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(_) => break 'session RelayAnswer::NoAnswer(Outcome::ProtocolError),
            };
            match msg {
                Message::Extended { id: 0, payload } if !session.sent => {
                    let hp = extended::parse_handshake(&payload)
                        .ok()
                        .and_then(|e| e.ut_holepunch);
                    let Some(id) = hp else {
                        break 'session RelayAnswer::NoSupport;
                    };
                    let ask = Message::Extended {
                        id,
                        payload: Holepunch::rendezvous(target).encode(),
                    };
                    if opened.stream.write_all(&ask.encode()).is_err() {
                        break 'session RelayAnswer::NoAnswer(Outcome::Reset);
                    }
                    session.sent = true;
                    deadline = Instant::now() + t.handshake;
                }
                Message::Extended { id, payload } if id == extended::OUR_UT_HOLEPUNCH => {
                    match Holepunch::parse(&payload) {
                        Ok(m) if m.addr == target => match m.kind {
                            HolepunchKind::Connect => break 'session RelayAnswer::Connect(m.addr),
                            HolepunchKind::Error(e) => break 'session RelayAnswer::Refused(e),
                            HolepunchKind::Rendezvous => {} // we relay for nobody
                        },
                        _ => {} // about someone else, or malformed: ignored
                    }
                }
                Message::Extended { id, payload } if id == extended::OUR_UT_PEX => {
                    if let Ok(peers) = extended::parse_pex(&payload) {
                        let room = MAX_PEX_PER_VISIT.saturating_sub(session.pex.len());
                        session.pex.extend(peers.into_iter().take(room));
                    }
                }
                _ => {}
            }
        }
    };
    session
}

/// What a visit needs besides the connection: who we are, the timeouts, the stop flag.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    me: &'a Identity<'a>,
    t: &'a Timeouts,
    stop: &'a Shutdown,
}

/// Sends our extended handshake (to extension peers) and `have_none` (to fast-extension
/// peers) in one write.
fn send_hello(
    stream: &mut PeerStream,
    theirs: &Handshake,
    me: &Identity<'_>,
) -> Result<(), Outcome> {
    let mut hello = Vec::new();
    if theirs.supports(EXTENSION_BIT) {
        let payload = extended::our_handshake_with(me.listen_port, me.version, me.utp.is_some());
        hello.extend(Message::Extended { id: 0, payload }.encode());
    }
    if theirs.supports(FAST_BIT) {
        hello.extend(Message::HaveNone.encode());
    }
    if hello.is_empty() {
        return Ok(());
    }
    stream
        .write_all(&hello)
        .map_err(|e| match Outcome::of_handshake_error(&e) {
            Outcome::ClosedInHandshake => Outcome::ClosedAfterHandshake,
            other => other,
        })
}

/// The torrent's pieces and T (None: unknown, the visit never stays for a crossing).
#[derive(Debug, Clone, Copy)]
struct Pieces {
    count: u32,
    threshold: Option<u32>,
}

/// What the messages of one visit showed so far, and when they came.
struct Reading {
    /// Until when the visit waits for the peer's PEX (a relay candidate), if it does.
    pex_until: Option<Instant>,
    state: PieceState,
    threshold: Option<u32>,
    start: Instant,
    last: Instant,
    /// The first piece-state message: when, and the count it gave.
    first_state: Option<(Instant, u32)>,
    max_gap: Duration,
}

impl Reading {
    fn new(pieces: Pieces, start: Instant) -> Self {
        Self {
            pex_until: None,
            state: PieceState::new(pieces.count),
            threshold: pieces.threshold,
            start,
            last: Instant::now(),
            first_state: None,
            max_gap: Duration::ZERO,
        }
    }

    /// When the visit ends if nothing completes it: the state window after the first
    /// piece-state message (or later, while a crossing of T is about to happen), the
    /// silence timeout, the cap, whichever comes first.
    fn deadline(&self, t: &Timeouts) -> Instant {
        let mut deadline = (self.start + t.cap).min(self.last + t.silence);
        if let Some((first, _)) = self.first_state {
            let window = first + t.state_window;
            deadline = deadline.min(self.watch_until(t).map_or(window, |w| w.max(window)));
        }
        match self.pex_until {
            Some(until) => deadline.max(until).min(self.start + t.cap),
            None => deadline,
        }
    }

    /// Whether the visit still waits for the peer's first PEX message.
    fn waiting_for_pex(&self) -> bool {
        self.pex_until.is_some()
    }

    /// Until when the visit stays for a crossing: while the peer is below T and its
    /// rate in this visit — an upper bound, one piece more than seen — says it passes T
    /// within `t.watch` of the first piece-state message. None once it is at or above T
    /// (the visit then ends: the crossing is seen), when it made no progress here, or
    /// when the crossing is further off (a revisit will look).
    fn watch_until(&self, t: &Timeouts) -> Option<Instant> {
        let threshold = self.threshold?;
        let (first, first_count) = self.first_state?;
        let count = self.state.count();
        if t.watch.is_zero() || count >= threshold || count <= first_count {
            return None;
        }
        let span = self.last.saturating_duration_since(first).as_secs_f64();
        if span <= 0.0 {
            return None;
        }
        let rate = f64::from(count - first_count + 1) / span;
        let eta = Duration::try_from_secs_f64(f64::from(threshold - count) / rate).ok()?;
        let until = first + t.watch;
        (self.last + eta <= until).then_some(until)
    }

    /// How a visit ends when the peer closes or the read fails: with the answer if the
    /// piece state is known.
    fn ended_by_peer(&self, e: Option<&io::Error>) -> Outcome {
        match e {
            _ if self.state.known() => Outcome::Ok,
            Some(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) =>
            {
                Outcome::Reset
            }
            _ => Outcome::ClosedAfterHandshake,
        }
    }

    /// Applies one message that arrived at `arrived`; true when it completed the answer
    /// (a full set ends the visit at once).
    fn apply(
        &mut self,
        msg: Message,
        arrived: Instant,
        t: &Timeouts,
        report: &mut VisitReport,
    ) -> bool {
        report.messages += 1;
        self.max_gap = self.max_gap.max(arrived - self.last);
        self.last = arrived;
        match msg {
            Message::Bitfield(bits) => {
                let _ = self.state.bitfield(&bits); // an invalid one is counted and ignored
            }
            Message::Have(i) => {
                let _ = self.state.have(i);
            }
            Message::HaveAll => self.state.have_all(),
            Message::HaveNone => self.state.have_none(),
            Message::Extended { id: 0, payload } => {
                if let Ok(ext) = extended::parse_handshake(&payload) {
                    let relay = ext.ut_pex.is_some() && ext.ut_holepunch.is_some();
                    if relay && !t.pex_wait.is_zero() && report.pex.is_empty() {
                        self.pex_until = Some(arrived + t.pex_wait);
                    }
                    report.extensions = Some(ext);
                }
            }
            // Peers address extended messages to us by the ids *we* announced.
            Message::Extended { id, payload } if id == extended::OUR_UT_PEX => {
                self.pex_until = None;
                if let Ok(peers) = extended::parse_pex(&payload) {
                    let room = MAX_PEX_PER_VISIT.saturating_sub(report.pex.len());
                    report.pex.extend(peers.into_iter().take(room));
                }
            }
            _ => {}
        }
        if self.first_state.is_none() && self.state.known() {
            self.first_state = Some((arrived, self.state.count()));
            report.first_state = Some((self.state.count(), ms_between(self.start, arrived)));
        }
        self.state.known() && self.state.is_complete() && !self.waiting_for_pex()
    }

    /// Writes the visit's end into `report`.
    fn finish(self, outcome: Outcome, report: &mut VisitReport) {
        report.outcome = outcome;
        report.duration_ms = ms_since(self.start);
        report.max_gap_ms = (report.messages > 0)
            .then(|| u32::try_from(self.max_gap.as_millis()).unwrap_or(u32::MAX));
        report.invalid = self.state.invalid();
        if outcome == Outcome::Ok {
            report.pieces = Some(self.state.count());
            report.state = Some(self.state.kind());
        }
    }
}

/// After both handshakes: send our hello, then read messages until the answer is known:
/// at once on a complete set, else the state window after the first piece-state message,
/// else the silence timeout, never past the cap.
fn exchange(
    stream: &mut PeerStream,
    theirs: &Handshake,
    pieces: Pieces,
    ctx: Ctx<'_>,
    start: Instant,
    report: &mut VisitReport,
) {
    report.peer_id = Some(theirs.peer_id);
    if let Err(outcome) = send_hello(stream, theirs, ctx.me) {
        report.outcome = outcome;
        report.duration_ms = ms_since(start);
        return;
    }
    // A bitfield needs ceil(pieces / 8) + 1 bytes; other messages btda reads are small.
    let needed = (pieces.count as usize).div_ceil(8) as u32 + 1;
    let mut decoder = MessageDecoder::new(ctx.me.max_message.min(needed.max(64 * 1024)));
    let mut reading = Reading::new(pieces, start);
    let mut buf = vec![0u8; 16 * 1024];
    let outcome = 'visit: loop {
        if ctx.stop.requested() {
            break if reading.state.known() {
                Outcome::Ok
            } else {
                Outcome::Interrupted
            };
        }
        let now = Instant::now();
        let deadline = reading.deadline(ctx.t);
        if now >= deadline {
            break Outcome::Ok; // the state window, silence (state none), or the cap
        }
        let n = match read_some_by(stream, &mut buf, deadline, ctx.stop) {
            Ok(n) => n,
            // The top of the loop ends the visit (deadline passed, or stop).
            Err(ReadError::Timeout | ReadError::Stopped) => continue,
            Err(ReadError::Closed) => break reading.ended_by_peer(None),
            Err(ReadError::Io(e)) => break reading.ended_by_peer(Some(&e)),
        };
        let arrived = Instant::now();
        decoder.feed(&buf[..n]);
        loop {
            match decoder.next_message() {
                Ok(Some(msg)) => {
                    if reading.apply(msg, arrived, ctx.t, report) {
                        break 'visit Outcome::Ok;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::debug!("protocol error: {e}");
                    break 'visit Outcome::ProtocolError;
                }
            }
        }
    };
    reading.finish(outcome, report);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One torrent of `.1` pieces (T = all of them), plaintext only.
    struct One(InfoHash, u32);

    impl TorrentLookup for One {
        fn pieces_of(&self, h: &InfoHash) -> Option<u32> {
            (*h == self.0).then_some(self.1)
        }

        fn threshold_of(&self, h: &InfoHash) -> Option<u32> {
            self.pieces_of(h)
        }

        fn encrypted(&self) -> Option<&Torrents> {
            None
        }
    }

    /// The peer side of a test visit: its handshake, btda's back, a bitfield of 60 of
    /// 100 pieces; returns the info-hash btda answered with.
    fn test_peer(mut theirs: impl io::Read + Write, hash: InfoHash) -> Option<InfoHash> {
        theirs
            .write_all(&Handshake::ours(hash, *b"-XX0001-pipepeer0000").encode())
            .ok()?;
        let mut hs = [0u8; HANDSHAKE_LEN];
        theirs.read_exact(&mut hs).ok()?;
        theirs.write_all(&bits(100, 60).encode()).ok()?;
        std::thread::sleep(Duration::from_millis(500));
        Handshake::parse(&hs).ok().map(|h| h.info_hash)
    }

    /// An incoming visit of `conn` with a plaintext identity and short timeouts.
    fn visit_over(
        conn: Box<dyn Transport>,
        hash: InfoHash,
    ) -> (Option<InfoHash>, VisitReport, u32) {
        let me = Identity {
            peer_id: [9; 20],
            listen_port: 0,
            version: "test",
            max_message: 1 << 20,
            source_ip: None,
            encryption: Encryption::Plaintext,
            transport: TransportChoice::Tcp,
            utp: None,
        };
        let t = Timeouts {
            connect: Duration::from_secs(1),
            handshake: Duration::from_secs(2),
            silence: Duration::from_secs(1),
            state_window: Duration::from_millis(100),
            cap: Duration::from_secs(3),
            watch: Duration::ZERO,
            pex_wait: Duration::ZERO,
        };
        let mut handshaken = 0;
        let (asked, report) = visit_incoming(
            conn,
            &One(hash, 100),
            &me,
            &t,
            &Shutdown::new(),
            &mut || handshaken += 1,
        );
        (asked, report, handshaken)
    }

    /// The visit logic needs no socket: an incoming visit over an in-memory pipe reads
    /// the handshake and the bitfield like one over TCP.
    #[test]
    fn an_incoming_visit_runs_over_any_transport() {
        let (ours, theirs) = super::super::stream::pipe::pair();
        let hash = InfoHash([3; 20]);
        let peer = std::thread::spawn(move || test_peer(theirs, hash));
        let (asked, report, handshaken) = visit_over(Box::new(ours), hash);
        assert_eq!(asked, Some(hash));
        assert_eq!(report.outcome, Outcome::Ok, "{report:?}");
        assert_eq!(report.pieces, Some(60));
        assert_eq!(handshaken, 1);
        assert_eq!(peer.join().unwrap(), Some(hash), "btda answered");
    }

    /// And over uTP on loopback: the same visit, a different transport.
    #[test]
    fn an_incoming_visit_runs_over_utp() {
        use crate::utp::{Settings, UtpSocket};
        let stop = Shutdown::new();
        let ours = UtpSocket::bind(
            SocketAddr::from(([127, 78, 9, 1], 0)),
            true,
            Settings::default(),
            stop.clone(),
        )
        .unwrap();
        let theirs = UtpSocket::bind(
            SocketAddr::from(([127, 78, 9, 2], 0)),
            false,
            Settings::default(),
            stop,
        )
        .unwrap();
        let hash = InfoHash([4; 20]);
        let to = ours.local_addr().unwrap();
        let peer = std::thread::spawn(move || {
            let mut s = theirs.connect(to, Duration::from_secs(2)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let answered = test_peer(&mut s, hash);
            drop(s);
            answered
        });
        let conn = ours
            .accept(Duration::from_secs(3))
            .expect("a uTP connection");
        assert_eq!(conn.name(), "utp");
        let (asked, report, _) = visit_over(Box::new(conn), hash);
        assert_eq!(asked, Some(hash));
        assert_eq!(report.outcome, Outcome::Ok, "{report:?}");
        assert_eq!(report.pieces, Some(60));
        assert_eq!(peer.join().unwrap(), Some(hash));
    }

    /// A bitfield of `pieces` with the first `have` set.
    fn bits(pieces: u32, have: u32) -> Message {
        let mut b = vec![0u8; (pieces as usize).div_ceil(8)];
        for i in 0..have as usize {
            b[i / 8] |= 0x80 >> (i % 8);
        }
        Message::Bitfield(b)
    }

    fn timeouts() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(1),
            handshake: Duration::from_secs(1),
            silence: Duration::from_secs(6),
            state_window: Duration::from_secs(1),
            cap: Duration::from_secs(20),
            watch: Duration::from_secs(15),
            pex_wait: Duration::ZERO,
        }
    }

    #[test]
    fn a_visit_stays_for_a_crossing_its_rate_says_is_close_and_ends_at_it() {
        let t = timeouts();
        let t0 = Instant::now();
        let pieces = Pieces {
            count: 100,
            threshold: Some(98),
        };
        let mut report = VisitReport::bare(Outcome::Ok);
        let mut r = Reading::new(pieces, t0);
        r.apply(bits(100, 90), t0, &t, &mut report);
        // No progress yet: the state window as always.
        assert_eq!(r.deadline(&t), t0 + t.state_window);
        // 5 pieces in the first second: fewer than 6 a second, 3 to go (~0.5 s): the
        // visit stays, for at most the watch span from the first state message.
        for (i, at) in (90..95).zip(1..=5) {
            r.apply(
                Message::Have(i),
                t0 + Duration::from_millis(at * 200),
                &t,
                &mut report,
            );
        }
        // (Silence still ends it: 6 s after the last message.)
        assert_eq!(r.deadline(&t), t0 + Duration::from_secs(7));
        let quiet = Timeouts {
            silence: Duration::from_secs(60),
            ..t
        };
        assert_eq!(r.deadline(&quiet), t0 + t.watch);
        let off = Timeouts {
            watch: Duration::ZERO,
            ..t
        };
        assert_eq!(r.deadline(&off), t0 + t.state_window, "watching off");
        // At T: the crossing is seen, the visit ends (its window is long past).
        for i in 95..98 {
            r.apply(
                Message::Have(i),
                t0 + Duration::from_millis(1_500),
                &t,
                &mut report,
            );
        }
        assert_eq!(r.deadline(&t), t0 + t.state_window);

        // A peer far from T at this rate: no stay.
        let mut far = Reading::new(pieces, t0);
        far.apply(bits(100, 10), t0, &t, &mut report);
        far.apply(
            Message::Have(10),
            t0 + Duration::from_secs(1),
            &t,
            &mut report,
        );
        assert_eq!(far.deadline(&t), t0 + t.state_window);
        // No threshold known, or watching off: the window.
        let mut unknown = Reading::new(
            Pieces {
                count: 100,
                threshold: None,
            },
            t0,
        );
        unknown.apply(bits(100, 96), t0, &t, &mut report);
        unknown.apply(
            Message::Have(96),
            t0 + Duration::from_millis(500),
            &t,
            &mut report,
        );
        assert_eq!(unknown.deadline(&t), t0 + t.state_window);
    }
}
