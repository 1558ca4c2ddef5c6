//! Message Stream Encryption (MSE/PE), the obfuscation handshake that libtorrent,
//! Transmission, qBittorrent and Vuze speak, as two sans-IO state machines: the
//! [`Initiator`] (the side that connected) and the [`Responder`] (the side that
//! accepted). Each is fed the bytes that arrived and appends what must be sent; neither
//! touches a socket, so both are tested with byte fixtures and against each other in
//! memory.
//!
//! The exchange (Vuze's "Message Stream Encryption" specification):
//! 1. A→B `Ya`, `PadA`
//! 2. B→A `Yb`, `PadB`
//! 3. A→B `HASH("req1", S)`, `HASH("req2", SKEY) xor HASH("req3", S)`,
//!    `RC4(VC, crypto_provide, len(PadC), PadC, len(IA))`, `RC4(IA)`
//! 4. B→A `RC4(VC, crypto_select, len(PadD), PadD)`, then the payload stream.
//!
//! `Y = 2^X mod P` (768-bit `P`), `S` the Diffie-Hellman secret (96 bytes, big-endian),
//! `SKEY` the info-hash, the keystreams RC4 keyed with `HASH("keyA", S, SKEY)` (A's
//! sending side) and `HASH("keyB", S, SKEY)` (B's), each with its first 1,024 bytes
//! discarded. Every bound is checked before bytes are kept: a public key plus padding is
//! at most 608 bytes, the responder must see `HASH("req1", S)` within the first 628 bytes
//! and the initiator the encrypted `VC` within the first 616, paddings are at most 512.

use num_bigint::BigUint;
use rc4::{KeyInit, StreamCipher};

use crate::torrent::InfoHash;

/// The specification's 768-bit prime.
const PRIME: [u8; KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x3A, 0x36, 0x21, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, 0x05, 0x63,
];
/// Length of a public key and of the secret, bytes.
pub(crate) const KEY_LEN: usize = 96;
/// Longest padding of each step.
pub(crate) const MAX_PAD: usize = 512;
/// The verification constant.
const VC: [u8; 8] = [0; 8];
/// Keystream bytes thrown away after keying RC4.
const DISCARD: usize = 1024;
/// The responder gives up when `HASH("req1", S)` has not ended within this many bytes.
const REQ1_WITHIN: usize = KEY_LEN + MAX_PAD + 20;
/// The initiator gives up when the encrypted `VC` has not ended within this many bytes.
const VC_WITHIN: usize = KEY_LEN + MAX_PAD + 8;

/// `crypto_provide` / `crypto_select` bit: the payload continues in plaintext.
pub const CRYPTO_PLAINTEXT: u32 = 0x01;
/// `crypto_provide` / `crypto_select` bit: the payload continues in RC4.
pub const CRYPTO_RC4: u32 = 0x02;

/// Why an MSE handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The peer's public key is 0, 1, `P - 1` or not below `P`.
    #[error("the peer's public key is out of range")]
    BadPublicKey,
    /// The synchronisation pattern did not arrive within the specification's limit.
    #[error("no synchronisation pattern within {0} bytes")]
    NoSync(usize),
    /// The `req2` hash names no torrent btda analyses.
    #[error("the peer asked for a torrent btda does not analyse")]
    UnknownTorrent,
    /// The decrypted verification constant was not zero (wrong key or garbage).
    #[error("wrong verification constant")]
    BadVc,
    /// A padding length above 512.
    #[error("padding of {0} bytes (at most 512)")]
    PadTooLong(usize),
    /// `crypto_provide` offers nothing this side accepts.
    #[error("crypto_provide {0:#x} offers no method we accept")]
    NothingAcceptable(u32),
    /// `crypto_select` is not exactly one of the offered methods.
    #[error("crypto_select {select:#x} was not offered ({offered:#x})")]
    BadSelect {
        /// What the peer chose.
        select: u32,
        /// What we offered.
        offered: u32,
    },
}

/// One direction's RC4 keystream, keyed and with its first 1,024 bytes discarded.
pub struct Keystream(rc4::Rc4<rc4::consts::U20>);

impl Keystream {
    /// RC4 keyed with `HASH(label, S, SKEY)`.
    fn new(label: &[u8], secret: &[u8; KEY_LEN], skey: &InfoHash) -> Self {
        let key = sha1(&[label, secret, &skey.0]);
        let mut rc4 = rc4::Rc4::new(&key.into());
        let mut discard = [0u8; DISCARD];
        rc4.apply_keystream(&mut discard);
        Self(rc4)
    }

    /// Encrypts or decrypts `buf` in place.
    pub fn apply(&mut self, buf: &mut [u8]) {
        self.0.apply_keystream(buf);
    }
}

impl std::fmt::Debug for Keystream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keystream")
    }
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut h = sha1_smol::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.digest().bytes()
}

fn to_key_bytes(n: &BigUint) -> [u8; KEY_LEN] {
    let raw = n.to_bytes_be();
    let mut out = [0u8; KEY_LEN];
    out[KEY_LEN - raw.len()..].copy_from_slice(&raw);
    out
}

/// A Diffie-Hellman key pair: a 160-bit private exponent and `2^x mod P`.
pub(crate) struct KeyPair {
    private: BigUint,
    /// The public key as sent (96 bytes, big-endian).
    pub public: [u8; KEY_LEN],
}

impl KeyPair {
    /// A key pair from a private exponent (tests use fixed ones).
    pub(crate) fn from_private(private: &[u8]) -> Self {
        let private = BigUint::from_bytes_be(private);
        let public = BigUint::from(2u32).modpow(&private, &BigUint::from_bytes_be(&PRIME));
        Self {
            private,
            public: to_key_bytes(&public),
        }
    }

    /// A fresh random key pair (160-bit exponent, as the specification recommends).
    pub(crate) fn random() -> Self {
        Self::from_private(&rand::random::<[u8; 20]>())
    }

    /// The shared secret `S` with the peer's public key.
    pub(crate) fn secret(&self, theirs: &[u8]) -> Result<[u8; KEY_LEN], MseError> {
        let p = BigUint::from_bytes_be(&PRIME);
        let y = BigUint::from_bytes_be(theirs);
        let one = BigUint::from(1u32);
        if y <= one || y >= &p - &one {
            return Err(MseError::BadPublicKey);
        }
        Ok(to_key_bytes(&y.modpow(&self.private, &p)))
    }
}

/// `HASH("req2", info_hash)`: how an initiator names its torrent, and how a responder
/// recognises it.
pub fn req2(info_hash: &InfoHash) -> [u8; 20] {
    sha1(&[b"req2", &info_hash.0])
}

/// Random padding of a random length up to 512 bytes (`PadA`, `PadB`).
fn random_pad() -> Vec<u8> {
    let len = rand::random_range(0..=MAX_PAD);
    (0..len).map(|_| rand::random::<u8>()).collect()
}

/// Zeroed padding of a random length up to 512 bytes (`PadC`, `PadD`; zeroed as the
/// specification asks for padding-only use).
fn zero_pad() -> Vec<u8> {
    vec![0; rand::random_range(0..=MAX_PAD)]
}

/// The result of a completed handshake.
#[derive(Debug)]
pub struct Established {
    /// The torrent (`SKEY`).
    pub info_hash: InfoHash,
    /// The method the responder chose: [`CRYPTO_RC4`] or [`CRYPTO_PLAINTEXT`].
    pub select: u32,
    /// The keystreams for the rest of the connection (sending, receiving); `None` when
    /// plaintext was selected.
    pub keystreams: Option<(Keystream, Keystream)>,
    /// Payload that arrived with the handshake, already decrypted (for a responder:
    /// the initiator's `IA` first).
    pub received: Vec<u8>,
}

/// Whether a handshake is complete after a feed.
#[derive(Debug)]
pub enum Progress {
    /// More bytes are needed.
    Continue,
    /// Done.
    Done(Box<Established>),
}

fn take(buf: &mut Vec<u8>, n: usize) -> Option<Vec<u8>> {
    (buf.len() >= n).then(|| buf.drain(..n).collect())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn be16(b: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([b[0], b[1]]))
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

enum InitState {
    /// Waiting for `Yb`.
    PublicKey,
    /// Searching for the encrypted `VC`.
    Sync {
        recv: Keystream,
        send: Keystream,
        encrypted_vc: [u8; 8],
    },
    /// Reading `crypto_select` and `len(PadD)`.
    Select {
        recv: Keystream,
        send: Keystream,
    },
    /// Skipping `PadD`.
    PadD {
        recv: Keystream,
        send: Keystream,
        select: u32,
        left: usize,
    },
    Failed,
}

/// The side that connected.
pub struct Initiator {
    keys: KeyPair,
    info_hash: InfoHash,
    provide: u32,
    initial: Vec<u8>,
    buf: Vec<u8>,
    /// Bytes received since the connection started (for the synchronisation limit).
    seen: usize,
    state: InitState,
}

impl Initiator {
    /// Starts a handshake for `info_hash` offering `provide` (a mask of
    /// [`CRYPTO_RC4`] and [`CRYPTO_PLAINTEXT`]), with `initial` (the BitTorrent
    /// handshake) as `IA`. Returns the machine and step 1 to send.
    pub fn new(info_hash: InfoHash, provide: u32, initial: &[u8]) -> (Self, Vec<u8>) {
        Self::with_keys(KeyPair::random(), info_hash, provide, initial, random_pad())
    }

    /// As [`Self::new`] with a given key pair and `PadA` (for fixtures).
    pub(crate) fn with_keys(
        keys: KeyPair,
        info_hash: InfoHash,
        provide: u32,
        initial: &[u8],
        pad: Vec<u8>,
    ) -> (Self, Vec<u8>) {
        let mut first = keys.public.to_vec();
        first.extend_from_slice(&pad[..pad.len().min(MAX_PAD)]);
        let this = Self {
            keys,
            info_hash,
            provide,
            initial: initial[..initial.len().min(usize::from(u16::MAX))].to_vec(),
            buf: Vec::new(),
            seen: 0,
            state: InitState::PublicKey,
        };
        (this, first)
    }

    /// Feeds received bytes; appends what must be sent to `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<Progress, MseError> {
        self.seen += data.len();
        self.buf.extend_from_slice(data);
        let state = std::mem::replace(&mut self.state, InitState::Failed);
        let (next, progress) = self.step(state, out)?;
        self.state = next;
        Ok(progress)
    }

    fn step(
        &mut self,
        mut state: InitState,
        out: &mut Vec<u8>,
    ) -> Result<(InitState, Progress), MseError> {
        loop {
            state = match state {
                InitState::PublicKey => {
                    if self.buf.len() < KEY_LEN {
                        return Ok((InitState::PublicKey, Progress::Continue));
                    }
                    let secret = self.keys.secret(&self.buf[..KEY_LEN])?;
                    self.buf.drain(..KEY_LEN);
                    let mut send = Keystream::new(b"keyA", &secret, &self.info_hash);
                    let mut recv = Keystream::new(b"keyB", &secret, &self.info_hash);
                    out.extend_from_slice(&sha1(&[b"req1", &secret]));
                    let req3 = sha1(&[b"req3", &secret]);
                    let mut skey = req2(&self.info_hash);
                    skey.iter_mut().zip(req3).for_each(|(a, b)| *a ^= b);
                    out.extend_from_slice(&skey);
                    let pad = zero_pad();
                    let mut tail = VC.to_vec();
                    tail.extend_from_slice(&self.provide.to_be_bytes());
                    tail.extend_from_slice(&(pad.len() as u16).to_be_bytes());
                    tail.extend_from_slice(&pad);
                    tail.extend_from_slice(&(self.initial.len() as u16).to_be_bytes());
                    tail.extend_from_slice(&self.initial);
                    send.apply(&mut tail);
                    out.extend_from_slice(&tail);
                    let mut encrypted_vc = VC;
                    recv.apply(&mut encrypted_vc);
                    InitState::Sync {
                        recv,
                        send,
                        encrypted_vc,
                    }
                }
                InitState::Sync {
                    recv,
                    send,
                    encrypted_vc,
                } => {
                    // Bytes of PadB and beyond seen so far, within the limit.
                    let window = self.buf.len().min(VC_WITHIN.saturating_sub(KEY_LEN));
                    match find(&self.buf[..window], &encrypted_vc) {
                        Some(at) => {
                            self.buf.drain(..at + VC.len());
                            InitState::Select { recv, send }
                        }
                        None if self.seen >= VC_WITHIN => {
                            return Err(MseError::NoSync(VC_WITHIN));
                        }
                        None => {
                            let state = InitState::Sync {
                                recv,
                                send,
                                encrypted_vc,
                            };
                            return Ok((state, Progress::Continue));
                        }
                    }
                }
                InitState::Select { mut recv, send } => {
                    let Some(mut head) = take(&mut self.buf, 6) else {
                        return Ok((InitState::Select { recv, send }, Progress::Continue));
                    };
                    recv.apply(&mut head);
                    let select = be32(&head);
                    let pad = be16(&head[4..]);
                    if select.count_ones() != 1 || select & self.provide == 0 {
                        return Err(MseError::BadSelect {
                            select,
                            offered: self.provide,
                        });
                    }
                    if pad > MAX_PAD {
                        return Err(MseError::PadTooLong(pad));
                    }
                    InitState::PadD {
                        recv,
                        send,
                        select,
                        left: pad,
                    }
                }
                InitState::PadD {
                    mut recv,
                    send,
                    select,
                    left,
                } => {
                    let Some(mut pad) = take(&mut self.buf, left) else {
                        let state = InitState::PadD {
                            recv,
                            send,
                            select,
                            left,
                        };
                        return Ok((state, Progress::Continue));
                    };
                    recv.apply(&mut pad);
                    let mut received = std::mem::take(&mut self.buf);
                    let keystreams = if select == CRYPTO_RC4 {
                        recv.apply(&mut received);
                        Some((send, recv))
                    } else {
                        None
                    };
                    let done = Established {
                        info_hash: self.info_hash,
                        select,
                        keystreams,
                        received,
                    };
                    return Ok((InitState::Failed, Progress::Done(Box::new(done))));
                }
                InitState::Failed => return Err(MseError::BadVc),
            };
        }
    }
}

/// The info-hashes a responder accepts, by their `req2` hash.
#[derive(Debug, Default, Clone)]
pub struct Torrents {
    by_req2: std::collections::HashMap<[u8; 20], InfoHash>,
}

impl Torrents {
    /// The torrents btda analyses.
    pub fn new(hashes: impl IntoIterator<Item = InfoHash>) -> Self {
        Self {
            by_req2: hashes.into_iter().map(|h| (req2(&h), h)).collect(),
        }
    }

    fn find(&self, req2: &[u8; 20]) -> Option<InfoHash> {
        self.by_req2.get(req2).copied()
    }
}

#[derive(Clone, Copy)]
enum InitialStep {
    PadC(usize),
    Length,
    Ia(usize),
}

enum RespState {
    /// Waiting for `Ya`.
    PublicKey,
    /// Searching for `HASH("req1", S)`.
    Sync {
        secret: [u8; KEY_LEN],
    },
    /// Reading the obfuscated `req2` hash.
    Skey {
        secret: [u8; KEY_LEN],
    },
    /// Reading `VC`, `crypto_provide`, `len(PadC)`.
    Provide {
        recv: Keystream,
        send: Keystream,
        info_hash: InfoHash,
    },
    /// Skipping `PadC` (`left` bytes), then reading `len(IA)`, then `IA`.
    Initial {
        recv: Keystream,
        send: Keystream,
        info_hash: InfoHash,
        provide: u32,
        step: InitialStep,
    },
    Failed,
}

/// The side that accepted the connection.
pub struct Responder {
    keys: KeyPair,
    accept: u32,
    buf: Vec<u8>,
    seen: usize,
    state: RespState,
}

impl Responder {
    /// Starts a handshake that accepts the methods in `accept` (RC4 is chosen when
    /// offered and accepted). Returns the machine and step 2 to send.
    pub fn new(accept: u32) -> (Self, Vec<u8>) {
        Self::with_keys(KeyPair::random(), accept, random_pad())
    }

    /// As [`Self::new`] with a given key pair and `PadB` (for fixtures).
    pub(crate) fn with_keys(keys: KeyPair, accept: u32, pad: Vec<u8>) -> (Self, Vec<u8>) {
        let mut first = keys.public.to_vec();
        first.extend_from_slice(&pad[..pad.len().min(MAX_PAD)]);
        let this = Self {
            keys,
            accept,
            buf: Vec::new(),
            seen: 0,
            state: RespState::PublicKey,
        };
        (this, first)
    }

    /// Feeds received bytes; appends what must be sent to `out`. `torrents` names the
    /// torrents a `req2` hash may ask for.
    pub fn feed(
        &mut self,
        data: &[u8],
        torrents: &Torrents,
        out: &mut Vec<u8>,
    ) -> Result<Progress, MseError> {
        self.seen += data.len();
        self.buf.extend_from_slice(data);
        let state = std::mem::replace(&mut self.state, RespState::Failed);
        let (next, progress) = self.step(state, torrents, out)?;
        self.state = next;
        Ok(progress)
    }

    fn step(
        &mut self,
        mut state: RespState,
        torrents: &Torrents,
        out: &mut Vec<u8>,
    ) -> Result<(RespState, Progress), MseError> {
        loop {
            state = match state {
                RespState::PublicKey => {
                    if self.buf.len() < KEY_LEN {
                        return Ok((RespState::PublicKey, Progress::Continue));
                    }
                    let secret = self.keys.secret(&self.buf[..KEY_LEN])?;
                    self.buf.drain(..KEY_LEN);
                    RespState::Sync { secret }
                }
                RespState::Sync { secret } => {
                    let req1 = sha1(&[b"req1", &secret]);
                    let window = self.buf.len().min(REQ1_WITHIN - KEY_LEN);
                    match find(&self.buf[..window], &req1) {
                        Some(at) => {
                            self.buf.drain(..at + req1.len());
                            RespState::Skey { secret }
                        }
                        None if self.seen >= REQ1_WITHIN => {
                            return Err(MseError::NoSync(REQ1_WITHIN));
                        }
                        None => return Ok((RespState::Sync { secret }, Progress::Continue)),
                    }
                }
                RespState::Skey { secret } => {
                    let Some(skey) = take(&mut self.buf, 20) else {
                        return Ok((RespState::Skey { secret }, Progress::Continue));
                    };
                    let req3 = sha1(&[b"req3", &secret]);
                    let mut wanted = [0u8; 20];
                    for (w, (a, b)) in wanted.iter_mut().zip(skey.iter().zip(req3)) {
                        *w = a ^ b;
                    }
                    let info_hash = torrents.find(&wanted).ok_or(MseError::UnknownTorrent)?;
                    RespState::Provide {
                        recv: Keystream::new(b"keyA", &secret, &info_hash),
                        send: Keystream::new(b"keyB", &secret, &info_hash),
                        info_hash,
                    }
                }
                RespState::Provide {
                    mut recv,
                    send,
                    info_hash,
                } => {
                    let Some(mut head) = take(&mut self.buf, 14) else {
                        let state = RespState::Provide {
                            recv,
                            send,
                            info_hash,
                        };
                        return Ok((state, Progress::Continue));
                    };
                    recv.apply(&mut head);
                    if head[..8] != VC {
                        return Err(MseError::BadVc);
                    }
                    let provide = be32(&head[8..]);
                    let pad = be16(&head[12..]);
                    if pad > MAX_PAD {
                        return Err(MseError::PadTooLong(pad));
                    }
                    RespState::Initial {
                        recv,
                        send,
                        info_hash,
                        provide,
                        step: InitialStep::PadC(pad),
                    }
                }
                RespState::Initial {
                    mut recv,
                    send,
                    info_hash,
                    provide,
                    step,
                } => {
                    let need = match step {
                        InitialStep::PadC(n) | InitialStep::Ia(n) => n,
                        InitialStep::Length => 2,
                    };
                    let Some(mut bytes) = take(&mut self.buf, need) else {
                        let state = RespState::Initial {
                            recv,
                            send,
                            info_hash,
                            provide,
                            step,
                        };
                        return Ok((state, Progress::Continue));
                    };
                    recv.apply(&mut bytes);
                    let step = match step {
                        InitialStep::PadC(_) => InitialStep::Length,
                        InitialStep::Length => InitialStep::Ia(be16(&bytes)),
                        InitialStep::Ia(_) => {
                            let done =
                                self.establish(recv, send, info_hash, provide, bytes, out)?;
                            return Ok((RespState::Failed, Progress::Done(Box::new(done))));
                        }
                    };
                    RespState::Initial {
                        recv,
                        send,
                        info_hash,
                        provide,
                        step,
                    }
                }
                RespState::Failed => return Err(MseError::BadVc),
            };
        }
    }

    /// Chooses the method, sends step 4 and hands over the keystreams and the payload
    /// received so far (`IA` first).
    fn establish(
        &mut self,
        mut recv: Keystream,
        mut send: Keystream,
        info_hash: InfoHash,
        provide: u32,
        mut initial: Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<Established, MseError> {
        let select = if provide & self.accept & CRYPTO_RC4 != 0 {
            CRYPTO_RC4
        } else if provide & self.accept & CRYPTO_PLAINTEXT != 0 {
            CRYPTO_PLAINTEXT
        } else {
            return Err(MseError::NothingAcceptable(provide));
        };
        let pad = zero_pad();
        let mut reply = VC.to_vec();
        reply.extend_from_slice(&select.to_be_bytes());
        reply.extend_from_slice(&(pad.len() as u16).to_be_bytes());
        reply.extend_from_slice(&pad);
        send.apply(&mut reply);
        out.extend_from_slice(&reply);
        let mut rest = std::mem::take(&mut self.buf);
        let keystreams = if select == CRYPTO_RC4 {
            recv.apply(&mut rest);
            Some((send, recv))
        } else {
            None
        };
        initial.extend_from_slice(&rest);
        Ok(Established {
            info_hash,
            select,
            keystreams,
            received: initial,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let text = include_str!("../../tests/fixtures/mse.txt");
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{name} in mse.txt"));
        data_encoding::HEXLOWER.decode(line.as_bytes()).unwrap()
    }

    fn hash() -> InfoHash {
        InfoHash(fixture("info_hash").try_into().unwrap())
    }

    const BOTH: u32 = CRYPTO_RC4 | CRYPTO_PLAINTEXT;

    #[test]
    fn keys_secret_and_keystreams_match_an_independent_implementation() {
        let a = KeyPair::from_private(&fixture("xa"));
        let b = KeyPair::from_private(&fixture("xb"));
        assert_eq!(a.public.to_vec(), fixture("ya"));
        assert_eq!(b.public.to_vec(), fixture("yb"));
        let s = a.secret(&b.public).unwrap();
        assert_eq!(s.to_vec(), fixture("secret"));
        assert_eq!(b.secret(&a.public).unwrap(), s);
        for (label, name) in [(b"keyA", "keystream_a"), (b"keyB", "keystream_b")] {
            let mut first = [0u8; 16];
            Keystream::new(label, &s, &hash()).apply(&mut first);
            assert_eq!(first.to_vec(), fixture(name), "{name}");
        }
    }

    #[test]
    fn the_initiators_step_three_has_the_specified_layout() {
        let keys = KeyPair::from_private(&fixture("xa"));
        let (mut a, first) = Initiator::with_keys(keys, hash(), BOTH, b"IA", Vec::new());
        assert_eq!(first, fixture("ya"));
        let mut out = Vec::new();
        let progress = a.feed(&fixture("yb"), &mut out).unwrap();
        assert!(matches!(progress, Progress::Continue));
        assert_eq!(out[..20], fixture("req1")[..]);
        assert_eq!(out[20..40], fixture("req2_xor_req3")[..]);
        let keystream = fixture("keystream_a");
        let mut plain: Vec<u8> = out[40..]
            .iter()
            .zip(&keystream)
            .map(|(c, k)| c ^ k)
            .collect();
        plain.truncate(12);
        assert_eq!(plain, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]); // VC, crypto_provide
    }

    /// Runs both machines against each other, delivering at most `chunk` bytes at a
    /// time; returns (initiator's, responder's) results.
    fn talk(
        provide: u32,
        accept: u32,
        chunk: usize,
        torrents: &Torrents,
    ) -> (Result<Established, MseError>, Result<Established, MseError>) {
        let (mut a, mut to_b) = Initiator::new(hash(), provide, b"hello, B");
        let (mut b, mut to_a) = Responder::new(accept);
        let (mut done_a, mut done_b) = (None, None);
        for _ in 0..10_000 {
            if done_a.is_some() && done_b.is_some() {
                break;
            }
            if done_b.is_none() && !to_b.is_empty() {
                let n = chunk.min(to_b.len());
                let part: Vec<u8> = to_b.drain(..n).collect();
                match b.feed(&part, torrents, &mut to_a) {
                    Ok(Progress::Done(e)) => done_b = Some(Ok(*e)),
                    Ok(Progress::Continue) => {}
                    Err(e) => done_b = Some(Err(e)),
                }
            }
            if done_a.is_none() && !to_a.is_empty() {
                let n = chunk.min(to_a.len());
                let part: Vec<u8> = to_a.drain(..n).collect();
                match a.feed(&part, &mut to_b) {
                    Ok(Progress::Done(e)) => done_a = Some(Ok(*e)),
                    Ok(Progress::Continue) => {}
                    Err(e) => done_a = Some(Err(e)),
                }
            }
            if matches!(done_b, Some(Err(_))) || matches!(done_a, Some(Err(_))) {
                break;
            }
        }
        let missing = || Err(MseError::NoSync(0));
        (
            done_a.unwrap_or_else(missing),
            done_b.unwrap_or_else(missing),
        )
    }

    #[test]
    fn both_ends_agree_on_rc4_in_any_chunking_and_the_stream_round_trips() {
        let torrents = Torrents::new([InfoHash([7; 20]), hash()]);
        for chunk in [1, 7, 96, 100_000] {
            let (a, b) = talk(BOTH, BOTH, chunk, &torrents);
            let (mut a, mut b) = (a.unwrap(), b.unwrap());
            assert_eq!((a.select, b.select), (CRYPTO_RC4, CRYPTO_RC4));
            assert_eq!(b.info_hash, hash());
            assert_eq!(b.received, b"hello, B", "IA arrives decrypted");
            let (mut a_send, mut a_recv) = a.keystreams.take().unwrap();
            let (mut b_send, mut b_recv) = b.keystreams.take().unwrap();
            let mut m = b"bitfield".to_vec();
            a_send.apply(&mut m);
            assert_ne!(m, b"bitfield");
            b_recv.apply(&mut m);
            assert_eq!(m, b"bitfield");
            let mut m = b"have 7".to_vec();
            b_send.apply(&mut m);
            a_recv.apply(&mut m);
            assert_eq!(m, b"have 7");
        }
    }

    #[test]
    fn plaintext_is_selected_only_when_it_is_all_one_side_takes() {
        let torrents = Torrents::new([hash()]);
        let (a, b) = talk(BOTH, CRYPTO_PLAINTEXT, 50, &torrents);
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.select, b.select), (CRYPTO_PLAINTEXT, CRYPTO_PLAINTEXT));
        assert!(a.keystreams.is_none() && b.keystreams.is_none());
        assert_eq!(
            b.received, b"hello, B",
            "IA is RC4 even when plaintext follows"
        );
        let (_, b) = talk(CRYPTO_PLAINTEXT, CRYPTO_RC4, 50, &torrents);
        assert_eq!(
            b.unwrap_err(),
            MseError::NothingAcceptable(CRYPTO_PLAINTEXT)
        );
    }

    #[test]
    fn an_unknown_torrent_is_named() {
        let (_, b) = talk(BOTH, BOTH, 64, &Torrents::new([InfoHash([7; 20])]));
        assert_eq!(b.unwrap_err(), MseError::UnknownTorrent);
    }

    #[test]
    fn garbage_and_endless_padding_are_cut_off_at_the_limits() {
        let torrents = Torrents::new([hash()]);
        let peer = KeyPair::random();
        // Responder: a valid key, then padding that never ends.
        let (mut b, _) = Responder::new(BOTH);
        let mut out = Vec::new();
        let mut fed = peer.public.to_vec();
        fed.extend(std::iter::repeat_n(0x55, 2000));
        let mut result = Ok(Progress::Continue);
        for part in fed.chunks(10) {
            result = b.feed(part, &torrents, &mut out);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result.unwrap_err(), MseError::NoSync(628));
        // Initiator: the same from the other side.
        let (mut a, _) = Initiator::new(hash(), BOTH, b"");
        let err = a.feed(&fed, &mut out).unwrap_err();
        assert_eq!(err, MseError::NoSync(616));
        // A public key of zero (or one, or P - 1) is refused.
        let (mut b, _) = Responder::new(BOTH);
        let zero = b.feed(&[0u8; KEY_LEN], &torrents, &mut out).unwrap_err();
        assert_eq!(zero, MseError::BadPublicKey);
    }

    #[test]
    fn a_wrong_verification_constant_or_unoffered_select_fails() {
        let torrents = Torrents::new([hash()]);
        // Flip one bit of the initiator's encrypted VC.
        let (mut a, first) = Initiator::new(hash(), BOTH, b"");
        let (mut b, to_a) = Responder::new(BOTH);
        let mut to_b = Vec::new();
        assert!(matches!(
            a.feed(&to_a, &mut to_b).unwrap(),
            Progress::Continue
        ));
        to_b[40] ^= 1; // first byte of RC4(VC)
        let mut fed = first;
        fed.extend_from_slice(&to_b);
        assert_eq!(
            b.feed(&fed, &torrents, &mut Vec::new()).unwrap_err(),
            MseError::BadVc
        );
        // A responder that selects a method the initiator did not offer.
        let (mut a, first) = Initiator::new(hash(), CRYPTO_RC4, b"");
        let keys = KeyPair::random();
        let secret = keys.secret(&first[..KEY_LEN]).unwrap();
        let mut send = Keystream::new(b"keyB", &secret, &hash());
        let mut reply = VC.to_vec();
        reply.extend_from_slice(&CRYPTO_PLAINTEXT.to_be_bytes());
        reply.extend_from_slice(&0u16.to_be_bytes());
        send.apply(&mut reply);
        let mut fed = keys.public.to_vec();
        fed.extend_from_slice(&reply);
        assert_eq!(
            a.feed(&fed, &mut Vec::new()).unwrap_err(),
            MseError::BadSelect {
                select: CRYPTO_PLAINTEXT,
                offered: CRYPTO_RC4
            }
        );
    }

    #[test]
    fn a_padding_length_above_the_limit_fails() {
        let (mut a, first) = Initiator::new(hash(), BOTH, b"");
        let keys = KeyPair::random();
        let secret = keys.secret(&first[..KEY_LEN]).unwrap();
        let mut send = Keystream::new(b"keyB", &secret, &hash());
        let mut reply = VC.to_vec();
        reply.extend_from_slice(&CRYPTO_RC4.to_be_bytes());
        reply.extend_from_slice(&513u16.to_be_bytes());
        send.apply(&mut reply);
        let mut fed = keys.public.to_vec();
        fed.extend_from_slice(&reply);
        assert_eq!(
            a.feed(&fed, &mut Vec::new()).unwrap_err(),
            MseError::PadTooLong(513)
        );
    }
}
