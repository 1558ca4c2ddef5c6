//! The blocking side of MSE/PE: drives [`crate::wire::mse`]'s state machines over a
//! peer connection (any [`Transport`]) under the handshake deadline, and turns the
//! result into a [`PeerStream`]. Nothing here parses bytes.

use std::io::{self, Write};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::outcome::Outcome;
use super::stream::{PeerStream, Transport, handshake_failure, read_some_by};

use crate::shutdown::Shutdown;
use crate::torrent::InfoHash;
use crate::wire::mse::{Initiator, MseError, Progress, Responder, Torrents};

/// Whether btda speaks MSE/PE (`peer.encryption`). Incoming connections are accepted
/// plaintext and encrypted alike, except with `plaintext`, which never speaks MSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// Never encrypt: peers that require encryption stay invisible.
    Plaintext,
    /// Plaintext first; a peer that closes or resets the connection during the
    /// handshake is asked again at once, in the same visit, with MSE.
    Fallback,
    /// MSE first (offering RC4 and plaintext); plaintext when the peer does not
    /// answer MSE.
    Prefer,
    /// MSE with RC4 only.
    Require,
}

/// How an incoming MSE handshake ended, for the `statistic` counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// Established: the visit goes on.
    Accepted,
    /// The peer asked for a torrent btda does not analyse.
    UnknownTorrent,
    /// Not a valid MSE handshake (garbage, no synchronisation, wrong constant, nothing
    /// acceptable offered), or the peer went away during it.
    Malformed,
}

fn failed(e: &io::Error) -> Outcome {
    Outcome::of_handshake_error(e)
}

/// Reads what is there (at most one buffer) before `deadline`; `Err` is the outcome.
fn read_some(
    conn: &mut dyn Transport,
    buf: &mut [u8],
    deadline: Instant,
    stop: &Shutdown,
) -> Result<usize, Outcome> {
    read_some_by(conn, buf, deadline, stop).map_err(handshake_failure)
}

/// Encrypts an outgoing connection for `info_hash`, offering `provide`, with `initial`
/// (our BitTorrent handshake) as the initial payload. A peer that does not answer like
/// MSE is [`Outcome::WrongProtocol`].
pub fn initiate(
    conn: impl Transport + 'static,
    info_hash: InfoHash,
    provide: u32,
    initial: &[u8],
    deadline: Instant,
    stop: &Shutdown,
) -> Result<PeerStream, Outcome> {
    let mut tcp: Box<dyn Transport> = Box::new(conn);
    let (mut machine, first) = Initiator::new(info_hash, provide, initial);
    tcp.write_all(&first).map_err(|e| failed(&e))?;
    let mut buf = [0u8; 1024];
    let mut out = Vec::new();
    loop {
        let n = read_some(tcp.as_mut(), &mut buf, deadline, stop)?;
        let progress = machine
            .feed(&buf[..n], &mut out)
            .map_err(|_| Outcome::WrongProtocol)?;
        if !out.is_empty() {
            tcp.write_all(&out).map_err(|e| failed(&e))?;
            out.clear();
        }
        if let Progress::Done(done) = progress {
            return Ok(PeerStream::encrypted(tcp, *done));
        }
    }
}

/// Answers an incoming MSE handshake whose first bytes, `first`, were already read;
/// `torrents` are those btda analyses, `accept` the methods it takes.
pub fn respond(
    mut tcp: Box<dyn Transport>,
    first: &[u8],
    torrents: &Torrents,
    accept: u32,
    deadline: Instant,
    stop: &Shutdown,
) -> Result<PeerStream, (Outcome, Incoming)> {
    let (mut machine, hello) = Responder::new(accept);
    let malformed = |o| (o, Incoming::Malformed);
    tcp.write_all(&hello).map_err(|e| malformed(failed(&e)))?;
    let mut out = Vec::new();
    let mut feed = |data: &[u8], out: &mut Vec<u8>| match machine.feed(data, torrents, out) {
        Ok(p) => Ok(p),
        Err(MseError::UnknownTorrent) => Err((Outcome::UnknownInfoHash, Incoming::UnknownTorrent)),
        Err(_) => Err(malformed(Outcome::WrongProtocol)),
    };
    let mut progress = feed(first, &mut out)?;
    let mut buf = [0u8; 1024];
    loop {
        if !out.is_empty() {
            tcp.write_all(&out).map_err(|e| malformed(failed(&e)))?;
            out.clear();
        }
        if let Progress::Done(done) = progress {
            return Ok(PeerStream::encrypted(tcp, *done));
        }
        let n = read_some(tcp.as_mut(), &mut buf, deadline, stop).map_err(malformed)?;
        progress = feed(&buf[..n], &mut out)?;
    }
}
