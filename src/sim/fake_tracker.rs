//! Scripted fake trackers on loopback (HTTP and UDP), well-behaved or hostile, that
//! record what they were asked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::shutdown::Shutdown;
use std::time::Duration;

use parking_lot::Mutex;

/// What a simulated swarm looks like to its tracker at the moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwarmView {
    /// Peers present (listed in announce responses).
    pub peers: Vec<SocketAddr>,
    /// Present peers with every piece.
    pub seeders: u32,
    /// Present peers without.
    pub leechers: u32,
    /// Completions so far.
    pub downloaded: u32,
    /// Where the next announce's listing starts in `peers`.
    pub next: usize,
}

/// Peers a tracker lists when the announce does not say `numwant` (BEP 3's default).
pub const DEFAULT_NUMWANT: usize = 50;

/// Peers a UDP answer lists at most, so that it fits in one datagram.
const UDP_MAX_LISTED: usize = 1_000;

/// One answer a fake tracker gave: its kind and the figures in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Served {
    /// `announce`, `stopped` (an announce with that event) or `scrape`.
    pub kind: &'static str,
    /// Seeders reported.
    pub seeders: u32,
    /// Leechers reported.
    pub leechers: u32,
    /// Completed downloads reported (scrape only; 0 in announces that lack it).
    pub downloaded: u32,
    /// Peers listed.
    pub peers: u32,
}

/// A swarm view shared with a running fake tracker, so a simulation can change it.
#[derive(Clone, Default)]
pub struct SharedPeers(pub Arc<Mutex<SwarmView>>);

impl std::fmt::Debug for SharedPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedPeers({})", self.0.lock().peers.len())
    }
}

impl SharedPeers {
    /// The view for one announce asking for `want` peers: as a real tracker returns a
    /// subset of a large swarm, each announce lists the next `want` peers (wrapping
    /// around), so repeated announces see the whole swarm; a swarm that fits is listed
    /// whole.
    pub fn listing(&self, want: usize) -> SwarmView {
        let mut view = self.0.lock();
        let n = view.peers.len();
        let mut out = SwarmView {
            peers: Vec::new(),
            ..*view
        };
        if n <= want {
            out.peers.clone_from(&view.peers);
            return out;
        }
        let start = view.next % n;
        out.peers = view
            .peers
            .iter()
            .cycle()
            .skip(start)
            .take(want)
            .copied()
            .collect();
        view.next = (start + want) % n;
        out
    }
}

/// `numwant` of an HTTP announce's query.
fn query_numwant(target: &str) -> usize {
    target
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("numwant="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_NUMWANT)
}

impl PartialEq for SharedPeers {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedPeers {}

/// How a fake HTTP tracker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpBehaviour {
    /// Compact responses and scrapes from whatever `SharedPeers` holds at the moment;
    /// each answer is recorded in `served`.
    Dynamic(SharedPeers),
    /// A valid compact response with these peers and counts, and a scrape.
    Normal {
        /// Peers returned.
        peers: Vec<SocketAddr>,
        /// `complete`, `incomplete`, `downloaded`.
        counts: (u32, u32, u32),
        /// `interval` and, if any, `min interval`.
        interval: (u64, Option<u64>),
    },
    /// Announces with `min interval` (and `interval`) of this many seconds and no peers;
    /// scrapes with BEP 48 `flags.min_request_interval` when given.
    Paced {
        /// `interval` and `min interval` of announces, s.
        min_interval: u64,
        /// `min_request_interval` of scrapes, s.
        scrape_min_request_interval: Option<u64>,
    },
    /// This exact body with status 200.
    Body(Vec<u8>),
    /// A status line other than 200.
    Status(u16),
    /// A redirect to its own URL, forever.
    RedirectLoop,
    /// Accepts and never answers.
    Silent,
    /// A body of this many bytes (announced by Content-Length).
    Huge(usize),
}

/// A fake HTTP tracker; `requests` holds each request's path and query.
pub struct FakeHttpTracker {
    /// Its address.
    pub addr: SocketAddr,
    /// Request targets received (path?query).
    pub requests: Arc<Mutex<Vec<String>>>,
    /// Answers given by a `Dynamic` tracker.
    pub served: Arc<Mutex<Vec<Served>>>,
    scheme: &'static str,
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

/// TLS for a fake tracker: a `rustls` server configuration.
#[cfg(feature = "https")]
pub type Tls = Arc<rustls::ServerConfig>;
/// Without the `https` feature there is no TLS.
#[cfg(not(feature = "https"))]
pub type Tls = std::convert::Infallible;

/// A TLS server configuration from a PEM certificate chain and a PEM key, for
/// an HTTPS fake tracker.
#[cfg(feature = "https")]
pub fn tls_config(chain_pem: &std::path::Path, key_pem: &std::path::Path) -> Result<Tls, String> {
    let chain = crate::tracker::tls::load_roots(chain_pem)?
        .into_iter()
        .map(rustls::pki_types::CertificateDer::from)
        .collect();
    use rustls::pki_types::pem::PemObject;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key_pem)
        .map_err(|e| format!("{}: {e}", key_pem.display()))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

impl FakeHttpTracker {
    /// Starts on `addr` (port 0 picks one).
    pub fn start(addr: SocketAddr, behaviour: HttpBehaviour) -> std::io::Result<Self> {
        Self::start_with(addr, behaviour, None)
    }

    /// Starts an HTTPS tracker on `addr` with `tls`; [`Self::url`] then says `https`.
    #[cfg(feature = "https")]
    pub fn start_tls(
        addr: SocketAddr,
        behaviour: HttpBehaviour,
        tls: Tls,
    ) -> std::io::Result<Self> {
        Self::start_with(addr, behaviour, Some(tls))
    }

    fn start_with(
        addr: SocketAddr,
        behaviour: HttpBehaviour,
        tls: Option<Tls>,
    ) -> std::io::Result<Self> {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(Mutex::new(Vec::new()));
        let stop = Shutdown::new();
        let (r, sv, st) = (Arc::clone(&requests), Arc::clone(&served), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.requested() {
                    break;
                }
                let Ok(stream) = stream else { continue };
                #[cfg_attr(not(feature = "https"), allow(clippy::clone_on_copy))]
                let (r, sv, b, st, tls) = (
                    Arc::clone(&r),
                    Arc::clone(&sv),
                    behaviour.clone(),
                    st.clone(),
                    tls.clone(),
                );
                std::thread::spawn(move || {
                    if stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .is_err()
                    {
                        return;
                    }
                    let _ = match tls {
                        None => serve_http(stream, &b, (&r, &sv), addr, &st),
                        #[cfg(feature = "https")]
                        Some(tls) => rustls::ServerConnection::new(tls)
                            .map_err(std::io::Error::other)
                            .and_then(|c| {
                                let s = rustls::StreamOwned::new(c, stream);
                                serve_http(s, &b, (&r, &sv), addr, &st)
                            }),
                        #[cfg(not(feature = "https"))]
                        Some(never) => match never {},
                    };
                });
            }
        });
        Ok(Self {
            addr,
            scheme,
            requests,
            served,
            stop,
            thread: Some(thread),
        })
    }

    /// The announce URL.
    pub fn url(&self) -> String {
        format!("{}://{}/announce", self.scheme, self.addr)
    }
}

impl Drop for FakeHttpTracker {
    fn drop(&mut self) {
        self.stop.request();
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// IPv4 peers in compact form (the fake trackers serve no `peers6`).
fn compact(peers: &[SocketAddr]) -> Vec<u8> {
    crate::wire::compact::encode(peers).0
}

fn serve_http(
    mut s: impl Read + Write,
    b: &HttpBehaviour,
    (requests, served): (&Mutex<Vec<String>>, &Mutex<Vec<Served>>),
    me: SocketAddr,
    stop: &Shutdown,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if s.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let target = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    requests.lock().push(target.clone());
    let (status, body): (u16, Vec<u8>) = match b {
        HttpBehaviour::Silent => {
            stop.wait(Duration::MAX);
            return Ok(());
        }
        HttpBehaviour::Status(code) => (*code, b"no".to_vec()),
        HttpBehaviour::RedirectLoop => {
            let reply = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{me}{target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            return s.write_all(reply.as_bytes());
        }
        HttpBehaviour::Body(body) => (200, body.clone()),
        HttpBehaviour::Huge(n) => (200, vec![b'x'; *n]),
        HttpBehaviour::Dynamic(shared) => {
            let scrape = target.starts_with("/scrape");
            let view = shared.listing(if scrape { 0 } else { query_numwant(&target) });
            served.lock().push(Served {
                kind: if scrape {
                    "scrape"
                } else if target.contains("event=stopped") {
                    "stopped"
                } else {
                    "announce"
                },
                seeders: view.seeders,
                leechers: view.leechers,
                downloaded: view.downloaded,
                peers: if scrape { 0 } else { view.peers.len() as u32 },
            });
            let counts = (view.seeders, view.leechers, view.downloaded);
            let body = if scrape {
                scrape_body(&target, counts)
            } else {
                announce_body(&view.peers, counts, (1, None))
            };
            (200, body)
        }
        HttpBehaviour::Normal { counts, .. } if target.starts_with("/scrape") => {
            (200, scrape_body(&target, *counts))
        }
        HttpBehaviour::Paced {
            scrape_min_request_interval,
            ..
        } if target.starts_with("/scrape") => {
            let mut body = scrape_body(&target, (1, 2, 3));
            if let Some(s) = scrape_min_request_interval {
                body.pop(); // the outer dictionary's end
                body.extend_from_slice(
                    format!("5:flagsd20:min_request_intervali{s}eee").as_bytes(),
                );
            }
            (200, body)
        }
        HttpBehaviour::Paced { min_interval, .. } => (
            200,
            announce_body(&[], (1, 2, 3), (*min_interval, Some(*min_interval))),
        ),
        HttpBehaviour::Normal {
            peers,
            counts,
            interval,
        } => (200, announce_body(peers, *counts, *interval)),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&body)
}

/// A compact announce answer: `peers`, `counts` (complete, incomplete, downloaded) and
/// `interval` (interval, min interval).
fn announce_body(
    peers: &[SocketAddr],
    counts: (u32, u32, u32),
    interval: (u64, Option<u64>),
) -> Vec<u8> {
    let p = compact(peers);
    let mut body = format!(
        "d8:completei{}e10:downloadedi{}e10:incompletei{}e8:intervali{}e",
        counts.0, counts.2, counts.1, interval.0
    )
    .into_bytes();
    if let Some(min) = interval.1 {
        body.extend_from_slice(format!("12:min intervali{min}e").as_bytes());
    }
    body.extend_from_slice(format!("5:peers{}:", p.len()).as_bytes());
    body.extend_from_slice(&p);
    body.push(b'e');
    body
}

/// A scrape answer giving `counts` (complete, incomplete, downloaded) for every
/// info-hash asked for.
fn scrape_body(target: &str, counts: (u32, u32, u32)) -> Vec<u8> {
    let mut body = b"d5:filesd".to_vec();
    for pair in target
        .split(['?', '&'])
        .filter_map(|kv| kv.strip_prefix("info_hash="))
    {
        let hash = percent_decode(pair);
        body.extend_from_slice(format!("{}:", hash.len()).as_bytes());
        body.extend_from_slice(&hash);
        body.extend_from_slice(
            format!(
                "d8:completei{}e10:downloadedi{}e10:incompletei{}ee",
                counts.0, counts.2, counts.1
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(b"ee");
    body
}

/// Decodes `%XX` escapes (the tracker side of btda's percent-encoding).
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| b.get(i + 1..i + 3))
            .flatten()
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        if let Some(v) = escaped {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// How a fake UDP tracker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpBehaviour {
    /// Connect, announce and scrape from whatever `SharedPeers` holds at the moment;
    /// each announce and scrape answer is recorded in `served`.
    Dynamic(SharedPeers),
    /// Connect, announce (these peers, seeders, leechers) and scrape (completed) work.
    Normal {
        /// Peers returned.
        peers: Vec<SocketAddr>,
        /// Seeders, leechers, completed.
        counts: (u32, u32, u32),
    },
    /// Answers every request with a 5-byte packet.
    Truncated,
    /// Answers with the wrong transaction id.
    WrongTransaction,
    /// Answers with `action = 3` and this message.
    Error(String),
}

/// A fake UDP tracker; `packets` counts requests received.
pub struct FakeUdpTracker {
    /// Its address.
    pub addr: SocketAddr,
    /// (action, bytes) of each request.
    pub packets: Arc<Mutex<Vec<(u32, usize)>>>,
    /// Announce and scrape answers given by a `Dynamic` tracker.
    pub served: Arc<Mutex<Vec<Served>>>,
    stop: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl FakeUdpTracker {
    /// Starts on `addr` (port 0 picks one).
    pub fn start(addr: SocketAddr, behaviour: UdpBehaviour) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        let addr = socket.local_addr()?;
        socket.set_read_timeout(Some(crate::shutdown::POLL))?;
        let packets = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(Mutex::new(Vec::new()));
        let stop = Shutdown::new();
        let (p, sv, st) = (Arc::clone(&packets), Arc::clone(&served), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.requested() {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if n < 16 {
                    continue;
                }
                let action = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                let txid = [buf[12], buf[13], buf[14], buf[15]];
                p.lock().push((action, n));
                let reply = udp_reply(&behaviour, action, txid, &buf[..n], &sv);
                let _ = socket.send_to(&reply, from);
            }
        });
        Ok(Self {
            addr,
            packets,
            served,
            stop,
            thread: Some(thread),
        })
    }

    /// The announce URL.
    pub fn url(&self) -> String {
        format!("udp://{}/announce", self.addr)
    }
}

impl Drop for FakeUdpTracker {
    fn drop(&mut self) {
        self.stop.request();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn udp_reply(
    b: &UdpBehaviour,
    action: u32,
    txid: [u8; 4],
    request: &[u8],
    served: &Mutex<Vec<Served>>,
) -> Vec<u8> {
    let head = |a: u32, tx: [u8; 4]| {
        let mut v = a.to_be_bytes().to_vec();
        v.extend_from_slice(&tx);
        v
    };
    match b {
        UdpBehaviour::Dynamic(shared) => {
            // numwant: bytes 92..96 of an announce, -1 for the tracker's default.
            let want = request
                .get(92..96)
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(i32::from_be_bytes)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(DEFAULT_NUMWANT)
                .min(UDP_MAX_LISTED);
            let view = shared.listing(if action == 1 { want } else { 0 });
            let stopped = request.get(80..84) == Some(&3u32.to_be_bytes()[..]);
            let kind = match action {
                1 if stopped => "stopped",
                1 => "announce",
                2 => "scrape",
                _ => "",
            };
            if !kind.is_empty() {
                served.lock().push(Served {
                    kind,
                    seeders: view.seeders,
                    leechers: view.leechers,
                    downloaded: if action == 2 { view.downloaded } else { 0 },
                    peers: if action == 1 {
                        view.peers.len() as u32
                    } else {
                        0
                    },
                });
            }
            let normal = UdpBehaviour::Normal {
                peers: view.peers,
                counts: (view.seeders, view.leechers, view.downloaded),
            };
            let mut reply = udp_reply(&normal, action, txid, request, served);
            if action == 1 && reply.len() >= 12 {
                reply[8..12].copy_from_slice(&1u32.to_be_bytes()); // interval: 1 s
            }
            reply
        }
        UdpBehaviour::Truncated => vec![0, 0, 0, 1, 0],
        UdpBehaviour::WrongTransaction => head(action, [txid[0] ^ 0xff, txid[1], txid[2], txid[3]]),
        UdpBehaviour::Error(msg) => {
            let mut v = head(3, txid);
            v.extend_from_slice(msg.as_bytes());
            v
        }
        UdpBehaviour::Normal { peers, counts } => {
            let mut v = head(action, txid);
            match action {
                0 => v.extend_from_slice(&0x1234_5678_9abc_def0u64.to_be_bytes()),
                1 => {
                    v.extend_from_slice(&1800u32.to_be_bytes());
                    v.extend_from_slice(&counts.1.to_be_bytes());
                    v.extend_from_slice(&counts.0.to_be_bytes());
                    v.extend_from_slice(&compact(peers));
                }
                2 => {
                    for _ in 0..(request.len().saturating_sub(16) / 20) {
                        v.extend_from_slice(&counts.0.to_be_bytes());
                        v.extend_from_slice(&counts.2.to_be_bytes());
                        v.extend_from_slice(&counts.1.to_be_bytes());
                    }
                }
                _ => {}
            }
            v
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_swarms_are_listed_a_window_at_a_time() {
        let shared = SharedPeers::default();
        shared.0.lock().peers = (1..=5u16)
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect();
        let ports = |v: SwarmView| v.peers.iter().map(SocketAddr::port).collect::<Vec<_>>();
        assert_eq!(ports(shared.listing(2)), [1, 2]);
        assert_eq!(ports(shared.listing(2)), [3, 4]);
        assert_eq!(ports(shared.listing(2)), [5, 1], "wraps around");
        assert_eq!(ports(shared.listing(9)), [1, 2, 3, 4, 5], "fits: all");
        assert_eq!(query_numwant("/announce?info_hash=x&numwant=7&key=1"), 7);
        assert_eq!(query_numwant("/announce?info_hash=x"), DEFAULT_NUMWANT);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%FF%2"), b"a b\xff%2".to_vec());
    }
}
