//! Scripted fake trackers on loopback (HTTP and UDP), well-behaved or hostile, that
//! record what they were asked.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;

/// A peer list shared with a running fake tracker, so a simulation can change it.
#[derive(Clone, Default)]
pub struct SharedPeers(pub Arc<Mutex<Vec<SocketAddr>>>);

impl std::fmt::Debug for SharedPeers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedPeers({})", self.0.lock().len())
    }
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
    /// Compact responses listing whatever `SharedPeers` holds at the moment.
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
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHttpTracker {
    /// Starts on `addr` (port 0 picks one).
    pub fn start(addr: SocketAddr, behaviour: HttpBehaviour) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (r, b, st) = (Arc::clone(&r), behaviour.clone(), Arc::clone(&st));
                std::thread::spawn(move || {
                    let _ = serve_http(stream, &b, &r, addr, &st);
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    /// The announce URL.
    pub fn url(&self) -> String {
        format!("http://{}/announce", self.addr)
    }
}

impl Drop for FakeHttpTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn compact(peers: &[SocketAddr]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in peers {
        if let SocketAddr::V4(v4) = p {
            out.extend_from_slice(&v4.ip().octets());
            out.extend_from_slice(&v4.port().to_be_bytes());
        }
    }
    out
}

fn serve_http(
    mut s: TcpStream,
    b: &HttpBehaviour,
    requests: &Mutex<Vec<String>>,
    me: SocketAddr,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
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
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
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
            let p = compact(&shared.0.lock());
            let mut body = format!("d8:intervali1e5:peers{}:", p.len()).into_bytes();
            body.extend_from_slice(&p);
            body.push(b'e');
            (200, body)
        }
        HttpBehaviour::Normal { counts, .. } if target.starts_with("/scrape") => {
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
            (200, body)
        }
        HttpBehaviour::Normal {
            peers,
            counts,
            interval,
        } => {
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
            (200, body)
        }
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&body)
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
        match escaped {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    out
}

/// How a fake UDP tracker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpBehaviour {
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
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeUdpTracker {
    /// Starts on `addr` (port 0 picks one).
    pub fn start(addr: SocketAddr, behaviour: UdpBehaviour) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(addr)?;
        let addr = socket.local_addr()?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        let packets = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st) = (Arc::clone(&packets), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if n < 16 {
                    continue;
                }
                let action = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
                let txid = [buf[12], buf[13], buf[14], buf[15]];
                p.lock().push((action, n));
                let reply = udp_reply(&behaviour, action, txid, &buf[..n]);
                let _ = socket.send_to(&reply, from);
            }
        });
        Ok(Self {
            addr,
            packets,
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
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn udp_reply(b: &UdpBehaviour, action: u32, txid: [u8; 4], request: &[u8]) -> Vec<u8> {
    let head = |a: u32, tx: [u8; 4]| {
        let mut v = a.to_be_bytes().to_vec();
        v.extend_from_slice(&tx);
        v
    };
    match b {
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
    #[test]
    fn percent_decoding() {
        assert_eq!(super::percent_decode("a%20b%FF%2"), b"a b\xff%2".to_vec());
    }
}
