//! One uTP connection as a sans-IO state machine (BEP 29): packets and the time go in,
//! packets to send and in-order bytes come out; the driver owns the socket and the
//! clock. Connection ids and sequence/ack numbers as BEP 29's connection setup says,
//! in-order delivery with a bounded reorder buffer, ACKs with a selective ACK when a
//! packet is missing, retransmission of the oldest unacked packet on timeout (the
//! timeout from the measured RTT, doubled on each consecutive timeout, given up after
//! a bound), fast retransmit on three duplicate ACKs or three packets selectively
//! acked past it, a FIN that waits for the packets before it, RESET.
//!
//! Congestion control is deliberately minimal: a window in packets that starts at
//! [`Settings::window_packets`], halves on loss and falls to one packet on timeout,
//! and grows by one packet per window acked — no LEDBAT delay target. A visit moves a
//! handshake, a bitfield and a few messages (a few KiB), never payload: it never
//! competes for a link long enough for delay-based control to matter, and the peer's
//! advertised window is always respected.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::packet::{Packet, PacketType};

/// Tunables of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Largest payload per packet, bytes (fits any path's MTU over UDP and IPv6).
    pub mss: usize,
    /// Packets in flight at first (and the most after growth is `4 ×` this).
    pub window_packets: usize,
    /// Bytes we buffer for the reader (in order and out of order); advertised as
    /// `wnd_size` minus what is buffered.
    pub recv_window: u32,
    /// Retransmissions of one packet before the connection is given up.
    pub max_retransmits: u32,
    /// Timeout before any RTT sample (BEP 29: 1 s).
    pub initial_timeout: Duration,
    /// Lowest timeout (BEP 29: 500 ms).
    pub min_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mss: 1_200,
            window_packets: 16,
            recv_window: 1 << 20,
            max_retransmits: 6,
            initial_timeout: Duration::from_secs(1),
            min_timeout: Duration::from_millis(500),
        }
    }
}

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// We sent a SYN and wait for its STATE.
    SynSent,
    /// We answered a SYN; the initiator has not sent anything since.
    SynReceived,
    /// Both sides may send.
    Connected,
    /// Our FIN is sent; we still receive.
    FinSent,
    /// The other side sent RESET.
    Reset,
    /// A packet went unacknowledged through every retransmission.
    TimedOut,
}

/// A packet we sent and that is not acknowledged yet.
#[derive(Debug, Clone)]
struct Sent {
    packet: Packet,
    sent_at: Instant,
    transmissions: u32,
    /// Selectively acknowledged (kept until the cumulative ACK passes it).
    sacked: bool,
}

/// The longest a doubled timeout grows (the visit's own deadlines end a hopeless
/// connection long before).
const MAX_TIMEOUT: Duration = Duration::from_secs(16);

/// Packets a reorder buffer holds beyond the next expected one.
const REORDER_SPAN: u16 = 256;

/// `a` comes before `b` in sequence space (wrapping).
fn before(a: u16, b: u16) -> bool {
    let d = b.wrapping_sub(a);
    d != 0 && d < 0x8000
}

/// A uTP connection (see the module).
#[derive(Debug)]
pub struct Connection {
    settings: Settings,
    state: State,
    recv_id: u16,
    send_id: u16,
    /// Sequence number of our next packet.
    seq_nr: u16,
    /// Last sequence number received in order from the peer.
    ack_nr: u16,
    unacked: VecDeque<Sent>,
    pending: VecDeque<u8>,
    fin_queued: bool,
    peer_window: u32,
    window_packets: usize,
    acked_in_window: usize,
    srtt: Option<(f64, f64)>,
    timeout: Duration,
    timer: Instant,
    dup_acks: u32,
    /// The `ack_nr` of the peer's previous packet (a repeat is a duplicate ACK).
    last_ack: u16,
    /// The packet last fast-retransmitted (once per loss, not once per ACK).
    fast_resent: Option<u16>,
    readable: VecDeque<u8>,
    reorder: BTreeMap<u16, Packet>,
    eof: Option<u16>,
    fin_received: bool,
    epoch: Instant,
    reply_micro: u32,
}

impl Connection {
    fn new(settings: Settings, recv_id: u16, send_id: u16, now: Instant) -> Self {
        Self {
            settings,
            state: State::SynSent,
            recv_id,
            send_id,
            seq_nr: 1,
            ack_nr: 0,
            unacked: VecDeque::new(),
            pending: VecDeque::new(),
            fin_queued: false,
            peer_window: settings.recv_window,
            window_packets: settings.window_packets.max(1),
            acked_in_window: 0,
            srtt: None,
            timeout: settings.initial_timeout,
            timer: now,
            dup_acks: 0,
            last_ack: 0,
            fast_resent: None,
            readable: VecDeque::new(),
            reorder: BTreeMap::new(),
            eof: None,
            fin_received: false,
            epoch: now,
            reply_micro: 0,
        }
    }

    /// Opens a connection that receives on `recv_id` (a random id the driver chose,
    /// not in use): returns it and the SYN to send.
    pub fn connect(recv_id: u16, settings: Settings, now: Instant) -> (Self, Packet) {
        let mut c = Self::new(settings, recv_id, recv_id.wrapping_add(1), now);
        let mut syn = c.packet(PacketType::Syn, now);
        syn.conn_id = recv_id; // the SYN alone names the initiator's receive id
        c.seq_nr = c.seq_nr.wrapping_add(1);
        c.track(syn.clone(), now);
        (c, syn)
    }

    /// Answers a SYN with our first sequence number `own_seq` (random): returns the
    /// connection and the STATE to send. As in libutp and libtorrent, the STATE does
    /// not use up its sequence number: our first DATA carries `own_seq` too, and the
    /// initiator takes `seq_nr - 1` of this STATE as the last one it received.
    pub fn accept(syn: &Packet, own_seq: u16, settings: Settings, now: Instant) -> (Self, Packet) {
        let mut c = Self::new(settings, syn.conn_id.wrapping_add(1), syn.conn_id, now);
        c.state = State::SynReceived;
        c.seq_nr = own_seq;
        c.ack_nr = syn.seq_nr;
        c.peer_window = syn.wnd_size;
        let state = c.packet(PacketType::State, now);
        (c, state)
    }

    /// The id the peer's packets carry.
    pub fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// Where the connection stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the peer's FIN arrived and every byte before it was read.
    pub fn is_eof(&self) -> bool {
        self.fin_received && self.readable.is_empty()
    }

    /// Whether everything we sent (FIN included) is acknowledged.
    pub fn all_acked(&self) -> bool {
        self.unacked.is_empty() && self.pending.is_empty()
    }

    /// When [`Self::on_tick`] must be called next (None: nothing in flight).
    pub fn deadline(&self) -> Option<Instant> {
        (!self.unacked.is_empty()).then(|| self.timer + self.timeout)
    }

    fn open(&self) -> bool {
        matches!(self.state, State::SynReceived | State::Connected)
    }

    fn buffered(&self) -> usize {
        self.readable.len()
            + self
                .reorder
                .values()
                .map(|p| p.payload.len())
                .sum::<usize>()
    }

    fn packet(&self, kind: PacketType, now: Instant) -> Packet {
        let mut p = Packet::new(kind, self.send_id, self.seq_nr, self.ack_nr);
        p.timestamp_us = micros(self.epoch, now);
        p.timestamp_diff_us = self.reply_micro;
        let free = (self.settings.recv_window as usize).saturating_sub(self.buffered());
        p.wnd_size = u32::try_from(free).unwrap_or(u32::MAX);
        p
    }

    fn track(&mut self, packet: Packet, now: Instant) {
        self.timer = now;
        self.unacked.push_back(Sent {
            packet,
            sent_at: now,
            transmissions: 1,
            sacked: false,
        });
    }

    /// An ACK (STATE) for what we received, with a selective ACK when packets after a
    /// gap are held.
    fn ack(&self, now: Instant) -> Packet {
        let mut p = self.packet(PacketType::State, now);
        if !self.reorder.is_empty() {
            let held: Vec<u16> = self.reorder.keys().copied().collect();
            p.sack = Some(Packet::sack_mask(self.ack_nr, &held, 8));
        }
        p
    }

    /// Queues `data` to send; returns the packets the windows allow now.
    pub fn send(&mut self, data: &[u8], now: Instant) -> Vec<Packet> {
        if self.fin_queued
            || !matches!(
                self.state,
                State::SynSent | State::SynReceived | State::Connected
            )
        {
            return Vec::new();
        }
        self.pending.extend(data);
        self.fill(now)
    }

    /// Closes our direction once everything queued is sent: a FIN follows the data.
    pub fn close(&mut self, now: Instant) -> Vec<Packet> {
        self.fin_queued = true;
        self.fill(now)
    }

    /// Ends the connection at once from our side: state `Reset`, nothing more sent
    /// or retransmitted; returns the RESET to send.
    pub fn abort(&mut self, now: Instant) -> Packet {
        self.state = State::Reset;
        self.unacked.clear();
        self.pending.clear();
        self.packet(PacketType::Reset, now)
    }

    /// Takes in-order bytes received (at most `buf.len()`).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.readable.len());
        for (slot, byte) in buf.iter_mut().zip(self.readable.drain(..n)) {
            *slot = byte;
        }
        n
    }

    fn fill(&mut self, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        if !self.open() {
            return out;
        }
        loop {
            let in_flight: usize = self.unacked.iter().map(|s| s.packet.payload.len()).sum();
            let window_full = self.unacked.len() >= self.window_packets
                || (in_flight > 0 && in_flight + self.settings.mss > self.peer_window as usize);
            if window_full {
                break;
            }
            if self.pending.is_empty() {
                if self.fin_queued && self.state != State::FinSent {
                    let fin = self.packet(PacketType::Fin, now);
                    self.seq_nr = self.seq_nr.wrapping_add(1);
                    self.track(fin.clone(), now);
                    self.state = State::FinSent;
                    out.push(fin);
                }
                break;
            }
            let n = self.pending.len().min(self.settings.mss);
            let mut p = self.packet(PacketType::Data, now);
            p.payload = self.pending.drain(..n).collect();
            self.seq_nr = self.seq_nr.wrapping_add(1);
            self.track(p.clone(), now);
            out.push(p);
        }
        out
    }

    /// Takes in a packet from the peer; returns what to send in answer.
    pub fn on_packet(&mut self, p: &Packet, now: Instant) -> Vec<Packet> {
        let mut out = Vec::new();
        if matches!(self.state, State::Reset | State::TimedOut) {
            return out;
        }
        if p.kind == PacketType::Syn {
            // Our STATE was lost: the initiator sends its SYN again.
            if self.state == State::SynReceived && p.conn_id.wrapping_add(1) == self.recv_id {
                let mut again = self.ack(now);
                again.seq_nr = self
                    .unacked
                    .front()
                    .map_or(self.seq_nr, |s| s.packet.seq_nr);
                out.push(again);
            }
            return out;
        }
        if p.conn_id != self.recv_id {
            return out;
        }
        if p.kind == PacketType::Reset {
            self.state = State::Reset;
            return out;
        }
        self.reply_micro = micros(self.epoch, now).wrapping_sub(p.timestamp_us);
        self.peer_window = p.wnd_size;
        self.timer = now;
        match self.state {
            // The SYN's answer: its STATE (whose seq_nr the responder's first DATA
            // carries again, so the last one received is the one before), or, if
            // that STATE was lost, its first DATA (libtorrent's rule).
            State::SynSent if matches!(p.kind, PacketType::State | PacketType::Data) => {
                if p.ack_nr != self.seq_nr.wrapping_sub(1) {
                    return out; // not the answer to our SYN
                }
                self.state = State::Connected;
                self.ack_nr = p.seq_nr.wrapping_sub(1);
            }
            State::SynSent => return out, // nothing but the SYN's answer before it
            State::SynReceived => self.state = State::Connected,
            _ => {}
        }
        self.on_ack(p, now, &mut out);
        match p.kind {
            PacketType::Data | PacketType::Fin => {
                self.on_data(p);
                out.push(self.ack(now));
            }
            _ => {}
        }
        out.extend(self.fill(now));
        out
    }

    fn on_ack(&mut self, p: &Packet, now: Instant, out: &mut Vec<Packet>) {
        let mut newly = 0;
        let mut newest: Option<Sent> = None;
        let mut clean = true;
        while let Some(front) = self.unacked.front() {
            let seq = front.packet.seq_nr;
            if seq == p.ack_nr || before(seq, p.ack_nr) {
                if let Some(s) = self.unacked.pop_front() {
                    clean &= s.transmissions == 1;
                    newest = Some(s);
                }
                newly += 1;
            } else {
                break;
            }
        }
        // One RTT sample per ACK, from the newest packet it covers, and none when it
        // also covers a retransmitted one (a cumulative ACK after a gap is late for
        // every packet behind the gap: Karn's rule, extended).
        if let Some(s) = newest.filter(|_| clean) {
            self.sample(&s, now);
        }
        let sacked = p.sacked();
        for s in &mut self.unacked {
            if !s.sacked && sacked.contains(&s.packet.seq_nr) {
                s.sacked = true;
            }
        }
        if newly > 0 {
            self.dup_acks = 0;
            self.timeout = self.rto();
            self.acked_in_window += newly;
            if self.acked_in_window >= self.window_packets {
                self.acked_in_window = 0;
                self.window_packets =
                    (self.window_packets + 1).min(self.settings.window_packets * 4);
            }
        } else if p.ack_nr == self.last_ack && !self.unacked.is_empty() {
            self.dup_acks += 1;
        }
        self.last_ack = p.ack_nr;
        let sacked_past = self.unacked.iter().filter(|s| s.sacked).count();
        let front = self.unacked.front().map(|f| (f.packet.seq_nr, f.sacked));
        if let Some((seq, false)) = front
            && (self.dup_acks >= 3 || sacked_past >= 3)
            && self.fast_resent != Some(seq)
        {
            self.dup_acks = 0;
            self.fast_resent = Some(seq);
            self.window_packets = (self.window_packets / 2).max(1);
            let ack_nr = self.ack_nr;
            if let Some(f) = self.unacked.front_mut() {
                f.transmissions += 1;
                f.sent_at = now;
                let mut again = f.packet.clone();
                again.ack_nr = ack_nr;
                out.push(again);
            }
        }
    }

    /// RTT from a packet sent once (BEP 29's smoothing).
    fn sample(&mut self, s: &Sent, now: Instant) {
        if s.transmissions != 1 {
            return;
        }
        let ms = now.saturating_duration_since(s.sent_at).as_secs_f64() * 1000.0;
        self.srtt = Some(match self.srtt {
            None => (ms, ms / 2.0),
            Some((rtt, var)) => {
                let delta = rtt - ms;
                (rtt + (ms - rtt) / 8.0, var + (delta.abs() - var) / 4.0)
            }
        });
    }

    fn rto(&self) -> Duration {
        let ms = self.srtt.map_or(
            self.settings.initial_timeout.as_secs_f64() * 1000.0,
            |(rtt, var)| rtt + 4.0 * var,
        );
        Duration::from_secs_f64(ms / 1000.0).max(self.settings.min_timeout)
    }

    fn on_data(&mut self, p: &Packet) {
        let next = self.ack_nr.wrapping_add(1);
        if p.seq_nr == next {
            self.accept_in_order(p);
            while let Some(q) = self.reorder.remove(&self.ack_nr.wrapping_add(1)) {
                self.accept_in_order(&q);
            }
        } else if before(next, p.seq_nr)
            && p.seq_nr.wrapping_sub(next) < REORDER_SPAN
            && self.buffered() + p.payload.len() <= self.settings.recv_window as usize
        {
            self.reorder.entry(p.seq_nr).or_insert_with(|| p.clone());
        }
        // Older than `next`: a duplicate; the ACK sent for it is all it needs.
    }

    fn accept_in_order(&mut self, p: &Packet) {
        self.ack_nr = p.seq_nr;
        if p.kind == PacketType::Fin {
            self.eof = Some(p.seq_nr);
            self.fin_received = true;
            self.reorder.clear();
            return;
        }
        if self.eof.is_none() {
            self.readable.extend(&p.payload);
        }
    }

    /// Time passes: retransmits the oldest unacked packet when its timeout expired
    /// (the window falls to one packet, the timeout doubles), and gives up after
    /// [`Settings::max_retransmits`].
    pub fn on_tick(&mut self, now: Instant) -> Vec<Packet> {
        let Some(deadline) = self.deadline() else {
            return Vec::new();
        };
        if now < deadline || matches!(self.state, State::Reset | State::TimedOut) {
            return Vec::new();
        }
        let max = self.settings.max_retransmits;
        let ack_nr = self.ack_nr;
        let Some(front) = self.unacked.front_mut() else {
            return Vec::new();
        };
        if front.transmissions > max {
            self.state = State::TimedOut;
            return Vec::new();
        }
        front.transmissions += 1;
        front.sent_at = now;
        let mut again = front.packet.clone();
        if again.kind != PacketType::Syn {
            again.ack_nr = ack_nr;
        }
        self.window_packets = 1;
        self.timeout = self.timeout.saturating_mul(2).min(MAX_TIMEOUT);
        self.timer = now;
        vec![again]
    }
}

/// Microseconds since `epoch`, wrapping at 2³² as the header's field does.
fn micros(epoch: Instant, now: Instant) -> u32 {
    (now.saturating_duration_since(epoch).as_micros() & 0xffff_ffff) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link between two connections that loses, duplicates, reorders and truncates
    /// datagrams, deterministically; time moves in steps of 5 ms.
    struct Link {
        seed: u32,
        queue: Vec<(Instant, bool, Vec<u8>)>,
        drop_every: u32,
        sent: u32,
    }

    impl Link {
        fn next(&mut self) -> u32 {
            self.seed ^= self.seed << 13;
            self.seed ^= self.seed >> 17;
            self.seed ^= self.seed << 5;
            self.seed
        }

        /// Sends `packets` towards B (`to_b`) or A, through the link's mischief.
        fn send(&mut self, packets: Vec<Packet>, to_b: bool, now: Instant) {
            for p in packets {
                self.sent += 1;
                if self.drop_every > 0 && self.sent.is_multiple_of(self.drop_every) {
                    continue;
                }
                let mut bytes = p.encode();
                let r = self.next();
                if r.is_multiple_of(23) {
                    bytes.truncate(r as usize % 20); // garbage: must be refused
                }
                let delay = Duration::from_millis(10 + u64::from(r % 40)); // reorders
                if r.is_multiple_of(17) {
                    self.queue.push((now + delay * 2, to_b, bytes.clone())); // duplicate
                }
                self.queue.push((now + delay, to_b, bytes));
            }
        }

        fn due(&mut self, now: Instant) -> Vec<(bool, Vec<u8>)> {
            let (due, rest): (Vec<_>, Vec<_>) = self.queue.drain(..).partition(|q| q.0 <= now);
            self.queue = rest;
            due.into_iter().map(|(_, b, d)| (b, d)).collect()
        }
    }

    fn bytes(n: usize, salt: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt))
            .collect()
    }

    /// Runs a whole exchange over a link that drops every `drop_every`-th packet (0:
    /// none): A connects, each side sends, A closes. Returns what each side read.
    fn exchange(drop_every: u32, a_sends: &[u8], b_sends: &[u8]) -> (Vec<u8>, Vec<u8>, bool) {
        let start = Instant::now();
        let mut now = start;
        let mut link = Link {
            seed: 0x1234_5678,
            queue: Vec::new(),
            drop_every,
            sent: 0,
        };
        let settings = Settings::default();
        let (mut a, syn) = Connection::connect(7, settings, now);
        link.send(vec![syn], true, now);
        let mut b: Option<Connection> = None;
        let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
        let (mut a_sent, mut b_sent, mut a_closed) = (false, false, false);
        let mut buf = [0u8; 4096];
        for _ in 0..20_000 {
            now += Duration::from_millis(5);
            for (to_b, datagram) in link.due(now) {
                let Ok(p) = Packet::decode(&datagram) else {
                    continue; // truncated: refused, as the driver does
                };
                if to_b {
                    match &mut b {
                        None if p.kind == PacketType::Syn => {
                            let (c, state) = Connection::accept(&p, 40_000, settings, now);
                            b = Some(c);
                            link.send(vec![state], false, now);
                        }
                        None => {}
                        Some(c) => {
                            let out = c.on_packet(&p, now);
                            link.send(out, false, now);
                        }
                    }
                } else {
                    let out = a.on_packet(&p, now);
                    link.send(out, true, now);
                }
            }
            let out = a.on_tick(now);
            link.send(out, true, now);
            if a.state() == State::Connected && !a_sent {
                a_sent = true;
                let out = a.send(a_sends, now);
                link.send(out, true, now);
            }
            if let Some(c) = &mut b {
                let out = c.on_tick(now);
                link.send(out, false, now);
                if c.state() == State::Connected && !b_sent {
                    b_sent = true;
                    let out = c.send(b_sends, now);
                    link.send(out, false, now);
                }
                loop {
                    let n = c.read(&mut buf);
                    if n == 0 {
                        break;
                    }
                    got_b.extend_from_slice(&buf[..n]);
                }
            }
            loop {
                let n = a.read(&mut buf);
                if n == 0 {
                    break;
                }
                got_a.extend_from_slice(&buf[..n]);
            }
            if got_a.len() == b_sends.len() && a_sent && !a_closed && a.all_acked() {
                a_closed = true;
                let out = a.close(now);
                link.send(out, true, now);
            }
            if b.as_ref().is_some_and(Connection::is_eof) && a.all_acked() {
                break;
            }
        }
        let eof = b.as_ref().is_some_and(Connection::is_eof);
        (got_a, got_b, eof)
    }

    #[test]
    fn a_clean_link_carries_both_directions_and_the_fin() {
        let (a_sends, b_sends) = (bytes(20_000, 1), bytes(5_000, 2));
        let (got_a, got_b, eof) = exchange(0, &a_sends, &b_sends);
        assert_eq!(got_b, a_sends);
        assert_eq!(got_a, b_sends);
        assert!(eof, "B saw A's FIN after every byte");
    }

    #[test]
    fn a_lossy_reordering_duplicating_link_still_delivers_every_byte_in_order() {
        let (a_sends, b_sends) = (bytes(64 * 1024, 3), bytes(16 * 1024, 4));
        for drop_every in [7, 4] {
            let (got_a, got_b, eof) = exchange(drop_every, &a_sends, &b_sends);
            assert_eq!(got_b.len(), a_sends.len(), "drop 1 in {drop_every}");
            assert_eq!(got_b, a_sends, "drop 1 in {drop_every}");
            assert_eq!(got_a, b_sends, "drop 1 in {drop_every}");
            assert!(eof, "drop 1 in {drop_every}");
        }
    }

    #[test]
    fn connection_ids_and_sequence_numbers_follow_bep_29() {
        let now = Instant::now();
        let (a, syn) = Connection::connect(100, Settings::default(), now);
        assert_eq!(
            (syn.kind, syn.conn_id, syn.seq_nr),
            (PacketType::Syn, 100, 1)
        );
        assert_eq!(a.recv_id(), 100);
        let (b, state) = Connection::accept(&syn, 5_000, Settings::default(), now);
        // B receives on 101 and sends on 100; its STATE acks the SYN.
        assert_eq!(b.recv_id(), 101);
        assert_eq!(
            (state.kind, state.conn_id, state.seq_nr, state.ack_nr),
            (PacketType::State, 100, 5_000, 1)
        );
        let mut a = a;
        assert!(a.on_packet(&state, now).is_empty());
        assert_eq!(a.state(), State::Connected);
        let data = a.send(b"hello", now);
        // A sends on 101 (its receive id + 1), seq 2; the STATE did not use up B's
        // 5000 (libutp's rule): A has received up to 4999, B's first DATA is 5000.
        assert_eq!(
            (data[0].conn_id, data[0].seq_nr, data[0].ack_nr),
            (101, 2, 4_999)
        );
        let mut b2 = Connection::accept(&syn, 5_000, Settings::default(), now).0;
        let reply = b2.send(b"hi", now);
        assert_eq!(
            reply[0].seq_nr, 5_000,
            "B's first DATA carries the STATE's seq_nr"
        );
        // A packet for another connection id is ignored; RESET ends it.
        let mut foreign = data[0].clone();
        foreign.conn_id = 999;
        let mut b = b;
        assert!(b.on_packet(&foreign, now).is_empty());
        let reset = Packet::new(PacketType::Reset, 101, 0, 0);
        b.on_packet(&reset, now);
        assert_eq!(b.state(), State::Reset);
    }

    #[test]
    fn packets_far_ahead_or_beyond_the_receive_window_are_not_kept() {
        let now = Instant::now();
        let settings = Settings {
            recv_window: 10_000,
            ..Settings::default()
        };
        let (_, syn) = Connection::connect(300, settings, now);
        let (mut b, _) = Connection::accept(&syn, 1, settings, now);
        let data = |seq: u16| {
            let mut p = Packet::new(PacketType::Data, 301, seq, 1);
            p.payload = vec![7; 1_200];
            p.wnd_size = 1 << 20;
            p
        };
        // Far ahead of the next expected (2): ignored, answered with an ACK.
        let out = b.on_packet(&data(2 + REORDER_SPAN + 5), now);
        assert_eq!(out.len(), 1);
        assert!(b.reorder.is_empty());
        // A gap at 2, then packets 3..: held up to the receive window (8 of 1,200).
        for seq in 3..40 {
            b.on_packet(&data(seq), now);
        }
        assert_eq!(b.reorder.len(), 8, "10,000 bytes of window");
        // The last ACK names the held packets in its selective ACK.
        let ack = b.on_packet(&data(3), now).pop().unwrap();
        assert_eq!(ack.ack_nr, 1);
        assert_eq!(ack.sacked(), (3..11).collect::<Vec<u16>>());
        // The gap filled: everything held is delivered in order.
        b.on_packet(&data(2), now);
        let mut buf = vec![0u8; 20_000];
        assert_eq!(b.read(&mut buf), 9 * 1_200);
    }

    #[test]
    fn a_peer_that_never_answers_times_out_after_the_retransmissions() {
        let mut now = Instant::now();
        let settings = Settings::default();
        let (mut a, _syn) = Connection::connect(1, settings, now);
        let mut resent = 0;
        let mut waits = Vec::new();
        while a.state() != State::TimedOut {
            let Some(at) = a.deadline() else { break };
            waits.push(at - now);
            now = at;
            resent += a.on_tick(now).len();
            assert!(resent <= 10, "bounded");
        }
        assert_eq!(a.state(), State::TimedOut);
        assert_eq!(resent as u32, settings.max_retransmits);
        assert_eq!(waits[0], Duration::from_secs(1));
        assert_eq!(waits[1], Duration::from_secs(2), "doubled");
    }
}
