//! The blocking uTP driver: one UDP socket owned by one thread, which feeds every
//! datagram to its connection's state machine ([`super::Connection`]), answers SYNs
//! when it accepts, fires retransmission timers, and wakes the threads waiting on a
//! connection. Worker threads hold [`UtpStream`]s: blocking reads with the timeout
//! set, writes that queue and send at once — a [`Transport`] like TCP, so a visit runs
//! over uTP without a line of visit logic changed.
//!
//! Datagrams that are not uTP are KRPC when the DHT node shares the port (as in real
//! clients, told apart by the first byte: a bencoded dictionary starts with `d`, a uTP
//! header with its type and version 1): [`UtpSocket::krpc_port`] hands them to the DHT
//! node through a bounded queue, and the node sends on a clone of the socket. Without
//! a DHT node on the port they are counted and dropped.
//!
//! For the simulator, a socket can behave like a host behind a NAT's filter
//! ([`UtpSocket::bind_filtered`]): datagrams from an address it has not sent to are
//! dropped unseen, so it is reached only after it dialled out to that address (which
//! is what a hole punch makes it do).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::conn::{Connection, Settings, State};
use super::packet::{Packet, PacketType, looks_like_utp};
use crate::peer::stream::Transport;
use crate::shutdown::Shutdown;

/// Connections one socket keeps at once; a SYN beyond it is answered with RESET.
pub const MAX_CONNECTIONS: usize = 4_096;
/// Accepted connections waiting for [`UtpSocket::accept`].
const BACKLOG: usize = 128;
/// How long the driver's receive waits before it looks at timers and the stop flag.
const TICK: Duration = Duration::from_millis(10);
/// How long a closed stream's connection is kept to deliver its FIN.
const LINGER: Duration = Duration::from_secs(10);

type Key = (SocketAddr, u16);

struct Slot {
    conn: Connection,
    /// Dropped by its stream at this time: removed once its FIN is acked or `LINGER`
    /// passed.
    closed_at: Option<Instant>,
}

struct Inner {
    udp: UdpSocket,
    conns: Mutex<HashMap<Key, Slot>>,
    changed: Condvar,
    backlog: Mutex<VecDeque<Key>>,
    accepting: bool,
    settings: Settings,
    stop: Shutdown,
    /// Set when the socket is dropped: its thread ends (the run's stop flag is not
    /// touched).
    closed: AtomicBool,
    /// Datagrams that were not uTP (or not a packet btda accepts).
    foreign: AtomicU64,
    /// NAT-like filter (simulation): the addresses this socket has sent to; datagrams
    /// from any other address are dropped.
    filter: Option<Mutex<HashSet<SocketAddr>>>,
    /// Where non-uTP datagrams go when the DHT node shares the port.
    krpc: Mutex<Option<std::sync::mpsc::SyncSender<Datagram>>>,
}

/// A datagram and its sender.
pub type Datagram = (Vec<u8>, SocketAddr);

/// KRPC datagrams queued for the DHT node at most (beyond: dropped, as a full socket
/// buffer would).
const KRPC_QUEUE: usize = 1_024;

/// The DHT node's share of a uTP socket's port: the KRPC datagrams the driver received,
/// and a handle of the socket to send its own.
#[derive(Debug)]
pub struct KrpcPort {
    /// Sends (a clone of the uTP socket).
    pub socket: UdpSocket,
    /// Receives: (datagram, sender).
    pub datagrams: std::sync::mpsc::Receiver<Datagram>,
}

/// Addresses a filtering socket remembers (the simulator's NAT table); beyond it the
/// oldest are not forgotten, new ones are not let in: the table stays bounded.
const FILTER_TABLE: usize = 4_096;

impl Inner {
    fn send(&self, to: SocketAddr, packets: Vec<Packet>) {
        if let Some(seen) = &self.filter {
            let mut seen = seen.lock();
            if seen.len() < FILTER_TABLE {
                seen.insert(to);
            }
        }
        for p in packets {
            let _ = self.udp.send_to(&p.encode(), to);
        }
    }

    fn receive(&self, buf: &mut [u8]) {
        let Ok((n, from)) = self.udp.recv_from(buf) else {
            return;
        };
        if let Some(seen) = &self.filter
            && !seen.lock().contains(&from)
        {
            return; // dropped unseen, as a NAT's filter does
        }
        let datagram = &buf[..n];
        let Some(Ok(packet)) = looks_like_utp(datagram).then(|| Packet::decode(datagram)) else {
            let handed = !looks_like_utp(datagram)
                && self
                    .krpc
                    .lock()
                    .as_ref()
                    .is_some_and(|tx| tx.try_send((datagram.to_vec(), from)).is_ok());
            if !handed {
                self.foreign.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let now = Instant::now();
        let mut conns = self.conns.lock();
        if packet.kind == PacketType::Syn {
            let key = (from, packet.conn_id.wrapping_add(1));
            if let Some(slot) = conns.get_mut(&key) {
                let out = slot.conn.on_packet(&packet, now);
                self.send(from, out);
                return;
            }
            let mut backlog = self.backlog.lock();
            if !self.accepting || conns.len() >= MAX_CONNECTIONS || backlog.len() >= BACKLOG {
                let reset = Packet::new(PacketType::Reset, packet.conn_id, 0, packet.seq_nr);
                self.send(from, vec![reset]);
                return;
            }
            let (conn, state) = Connection::accept(&packet, rand::random(), self.settings, now);
            conns.insert(
                key,
                Slot {
                    conn,
                    closed_at: None,
                },
            );
            backlog.push_back(key);
            self.send(from, vec![state]);
            self.changed.notify_all();
            return;
        }
        if let Some(slot) = conns.get_mut(&(from, packet.conn_id)) {
            let out = slot.conn.on_packet(&packet, now);
            self.send(from, out);
            self.changed.notify_all();
        } else if packet.kind != PacketType::Reset {
            // No such connection: tell the peer (BEP 29's RESET), never anything more.
            let reset = Packet::new(PacketType::Reset, packet.conn_id, 0, packet.seq_nr);
            self.send(from, vec![reset]);
        }
    }

    /// Fires due timers and forgets connections that are over.
    fn tick(&self) {
        let now = Instant::now();
        let mut conns = self.conns.lock();
        let mut woke = false;
        conns.retain(|(peer, _), slot| {
            if slot.conn.deadline().is_some_and(|d| d <= now) {
                let out = slot.conn.on_tick(now);
                self.send(*peer, out);
                woke = true;
            }
            let over = matches!(slot.conn.state(), State::Reset | State::TimedOut);
            let lingered = slot
                .closed_at
                .is_some_and(|at| slot.conn.all_acked() || now.duration_since(at) > LINGER);
            !(lingered || (over && slot.closed_at.is_some()))
        });
        if woke {
            self.changed.notify_all();
        }
    }

    fn run(&self) {
        let mut buf = vec![0u8; 64 * 1024];
        while !self.stop.requested() && !self.closed.load(Ordering::Relaxed) {
            self.receive(&mut buf);
            self.tick();
        }
        self.changed.notify_all();
    }
}

/// A UDP socket speaking uTP (see the module).
pub struct UtpSocket {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl UtpSocket {
    /// Binds `addr`; with `accepting`, incoming SYNs open connections for
    /// [`Self::accept`], else they are answered with RESET.
    pub fn bind(
        addr: SocketAddr,
        accepting: bool,
        settings: Settings,
        stop: Shutdown,
    ) -> io::Result<Self> {
        Self::bind_with(addr, accepting, settings, stop, false)
    }

    /// [`Self::bind`] (accepting) behind a simulated NAT filter: only addresses this
    /// socket has sent to get through (see the module).
    pub fn bind_filtered(addr: SocketAddr, settings: Settings, stop: Shutdown) -> io::Result<Self> {
        Self::bind_with(addr, true, settings, stop, true)
    }

    fn bind_with(
        addr: SocketAddr,
        accepting: bool,
        settings: Settings,
        stop: Shutdown,
        filtered: bool,
    ) -> io::Result<Self> {
        let udp = UdpSocket::bind(addr)?;
        udp.set_read_timeout(Some(TICK))?;
        let inner = Arc::new(Inner {
            udp,
            conns: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            backlog: Mutex::new(VecDeque::new()),
            accepting,
            settings,
            stop,
            closed: AtomicBool::new(false),
            foreign: AtomicU64::new(0),
            filter: filtered.then(|| Mutex::new(HashSet::new())),
            krpc: Mutex::new(None),
        });
        let driver = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name("utp".into())
            .spawn(move || driver.run())?;
        Ok(Self {
            inner,
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.udp.local_addr()
    }

    /// Datagrams received that were not uTP.
    pub fn foreign(&self) -> u64 {
        self.inner.foreign.load(Ordering::Relaxed)
    }

    /// Shares this socket's port with a DHT node: from now on non-uTP datagrams go to
    /// the returned port's queue (see the module).
    pub fn krpc_port(&self) -> io::Result<KrpcPort> {
        let socket = self.inner.udp.try_clone()?;
        let (tx, rx) = std::sync::mpsc::sync_channel(KRPC_QUEUE);
        *self.inner.krpc.lock() = Some(tx);
        Ok(KrpcPort {
            socket,
            datagrams: rx,
        })
    }

    /// Opens a connection to `peer` within `timeout` (SYN, and its STATE back).
    pub fn connect(&self, peer: SocketAddr, timeout: Duration) -> io::Result<UtpStream> {
        let deadline = Instant::now() + timeout;
        let mut conns = self.inner.conns.lock();
        if self.inner.stop.requested() {
            return Err(io::ErrorKind::Interrupted.into());
        }
        if conns.len() >= MAX_CONNECTIONS {
            return Err(io::Error::other("too many uTP connections"));
        }
        let key = loop {
            let id: u16 = rand::random();
            // The peer answers on id + 1 too: keep both free for this peer.
            if !conns.contains_key(&(peer, id)) && !conns.contains_key(&(peer, id.wrapping_add(1)))
            {
                break (peer, id);
            }
        };
        let (conn, syn) = Connection::connect(key.1, self.inner.settings, Instant::now());
        conns.insert(
            key,
            Slot {
                conn,
                closed_at: None,
            },
        );
        self.inner.send(peer, vec![syn]);
        loop {
            let state = conns.get(&key).map(|s| s.conn.state());
            match state {
                Some(State::Connected) => return Ok(UtpStream::new(&self.inner, key)),
                Some(State::SynSent) => {}
                Some(State::Reset) => {
                    conns.remove(&key);
                    return Err(io::ErrorKind::ConnectionRefused.into());
                }
                _ => {
                    conns.remove(&key);
                    return Err(io::ErrorKind::TimedOut.into());
                }
            }
            if self.inner.stop.requested() || Instant::now() >= deadline {
                conns.remove(&key);
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.inner
                .changed
                .wait_until(&mut conns, deadline.min(Instant::now() + TICK));
        }
    }

    /// The next accepted connection, waiting at most `timeout`.
    pub fn accept(&self, timeout: Duration) -> Option<UtpStream> {
        let deadline = Instant::now() + timeout;
        let mut conns = self.inner.conns.lock();
        loop {
            if let Some(key) = self.inner.backlog.lock().pop_front() {
                return Some(UtpStream::new(&self.inner, key));
            }
            if self.inner.stop.requested() || Instant::now() >= deadline {
                return None;
            }
            self.inner.changed.wait_until(&mut conns, deadline);
        }
    }
}

impl std::fmt::Debug for UtpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpSocket")
            .field("local", &self.inner.udp.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl Drop for UtpSocket {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One uTP connection as a blocking byte stream (see the module).
pub struct UtpStream {
    inner: Arc<Inner>,
    key: Key,
    read_timeout: Mutex<Option<Duration>>,
}

impl UtpStream {
    fn new(inner: &Arc<Inner>, key: Key) -> Self {
        Self {
            inner: Arc::clone(inner),
            key,
            read_timeout: Mutex::new(None),
        }
    }
}

/// Ends a [`UtpStream`] from another thread (the incoming gate sheds connections with
/// it): its reads fail at once with `ConnectionReset`, the peer gets a RESET.
#[derive(Clone)]
pub struct UtpCloser {
    inner: Arc<Inner>,
    key: Key,
}

impl UtpCloser {
    /// Resets the connection.
    pub fn close(&self) {
        let mut conns = self.inner.conns.lock();
        if let Some(slot) = conns.get_mut(&self.key) {
            let reset = slot.conn.abort(Instant::now());
            self.inner.send(self.key.0, vec![reset]);
        }
        drop(conns);
        self.inner.changed.notify_all();
    }
}

impl std::fmt::Debug for UtpCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UtpCloser")
            .field("peer", &self.key.0)
            .finish()
    }
}

impl UtpStream {
    /// A handle that resets this connection from another thread.
    pub fn closer(&self) -> UtpCloser {
        UtpCloser {
            inner: Arc::clone(&self.inner),
            key: self.key,
        }
    }
}

impl Read for UtpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let wait = *self.read_timeout.lock();
        let deadline = wait.map(|w| Instant::now() + w);
        let mut conns = self.inner.conns.lock();
        loop {
            let Some(slot) = conns.get_mut(&self.key) else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            let n = slot.conn.read(buf);
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if slot.conn.is_eof() {
                return Ok(0);
            }
            match slot.conn.state() {
                State::Reset => return Err(io::ErrorKind::ConnectionReset.into()),
                State::TimedOut => return Err(io::ErrorKind::TimedOut.into()),
                _ => {}
            }
            if self.inner.stop.requested() {
                return Err(io::ErrorKind::Interrupted.into());
            }
            match deadline {
                Some(d) if Instant::now() >= d => return Err(io::ErrorKind::WouldBlock.into()),
                Some(d) => {
                    self.inner.changed.wait_until(&mut conns, d);
                }
                None => self.inner.changed.wait(&mut conns),
            }
        }
    }
}

impl Write for UtpStream {
    /// Queues all of `buf` and sends what the windows allow at once (the rest goes out
    /// as ACKs open the window).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut conns = self.inner.conns.lock();
        let Some(slot) = conns.get_mut(&self.key) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        match slot.conn.state() {
            State::Reset => return Err(io::ErrorKind::ConnectionReset.into()),
            State::TimedOut => return Err(io::ErrorKind::TimedOut.into()),
            _ => {}
        }
        let out = slot.conn.send(buf, Instant::now());
        self.inner.send(self.key.0, out);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for UtpStream {
    /// Sends the FIN after the queued data; the driver keeps the connection until the
    /// FIN is acknowledged (at most `LINGER`).
    fn drop(&mut self) {
        let mut conns = self.inner.conns.lock();
        if let Some(slot) = conns.get_mut(&self.key) {
            let out = slot.conn.close(Instant::now());
            slot.closed_at = Some(Instant::now());
            self.inner.send(self.key.0, out);
        }
    }
}

impl Transport for UtpStream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        *self.read_timeout.lock() = t;
        Ok(())
    }

    fn set_write_timeout(&self, _: Option<Duration>) -> io::Result<()> {
        Ok(()) // writes never block: they queue
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.key.0)
    }

    fn name(&self) -> &'static str {
        "utp"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(n: u8) -> (UtpSocket, UtpSocket, Shutdown) {
        let stop = Shutdown::new();
        let a = UtpSocket::bind(
            SocketAddr::from(([127, 78, n, 1], 0)),
            false,
            Settings::default(),
            stop.clone(),
        )
        .unwrap();
        let b = UtpSocket::bind(
            SocketAddr::from(([127, 78, n, 2], 0)),
            true,
            Settings::default(),
            stop.clone(),
        )
        .unwrap();
        (a, b, stop)
    }

    #[test]
    fn a_stream_over_loopback_carries_bytes_both_ways_and_ends_with_eof() {
        let (a, b, _stop) = pair(1);
        let to = b.local_addr().unwrap();
        let mut out = a.connect(to, Duration::from_secs(2)).unwrap();
        let mut inc = b.accept(Duration::from_secs(2)).expect("accepted");
        assert_eq!(inc.peer_addr().unwrap(), a.local_addr().unwrap());
        out.write_all(b"hello over utp").unwrap();
        inc.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = [0u8; 14];
        inc.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello over utp");
        let big: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        inc.write_all(&big).unwrap();
        out.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut back = vec![0u8; big.len()];
        out.read_exact(&mut back).unwrap();
        assert_eq!(back, big);
        drop(out);
        let mut rest = Vec::new();
        inc.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "EOF after the FIN");
    }

    #[test]
    fn a_socket_that_does_not_accept_resets_and_reads_time_out() {
        let (a, b, _stop) = pair(2);
        // a does not accept: b's connect is refused at once.
        let err = b
            .connect(a.local_addr().unwrap(), Duration::from_secs(2))
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some(io::ErrorKind::ConnectionRefused));
        // A read with a timeout and nothing sent: WouldBlock after it.
        let mut out = a
            .connect(b.local_addr().unwrap(), Duration::from_secs(2))
            .unwrap();
        out.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(
            out.read(&mut buf).err().map(|e| e.kind()),
            Some(io::ErrorKind::WouldBlock)
        );
        // Garbage and KRPC on the port are counted, not parsed as uTP.
        let probe = UdpSocket::bind("127.78.2.3:0").unwrap();
        probe
            .send_to(
                b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
                b.local_addr().unwrap(),
            )
            .unwrap();
        assert!(crate::sim::eventually(Duration::from_secs(2), || b
            .foreign()
            == 1));
    }
}
