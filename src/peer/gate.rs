//! Who gets an incoming handler. Anyone on the internet can open connections to btda's
//! listen port; without a gate, one address that opens connections and falls silent
//! holds every handler for the handshake deadline and real peers are turned away. The
//! gate keeps, per IP, the connections still in their handshake and all open ones, and
//! decides on each arrival:
//!
//! 1. an IP with `per_ip_handshakes` connections in their handshake, or with
//!    `per_ip_open` connections open (no IP can be more peers than
//!    `peer.max_peers_per_ip`), is refused: the flood ends at its own address;
//! 2. while handlers are free, the arrival is admitted;
//! 3. when every handler is taken, the oldest connection still in its handshake of
//!    the IP holding the most such connections is shed (the caller closes it, which
//!    frees its handler at once) — if that IP holds at least two more of them than
//!    the arrival's own IP (shedding then evens the two out; a pool full of one
//!    handshake per address sheds nobody); otherwise the arrival is refused. So the address that floods loses its
//!    connections, not the newest arrival.
//!
//! The gate is bookkeeping only (no sockets): the caller gives each connection a
//! handle (a clone of its stream) that the gate hands back when it is to be shed.

use std::collections::HashMap;
use std::net::IpAddr;

/// The gate's limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Incoming handlers (connections handled at once).
    pub capacity: usize,
    /// Connections in their handshake at once from one IP.
    pub per_ip_handshakes: usize,
    /// Connections open at once from one IP.
    pub per_ip_open: usize,
}

/// A connection's ticket: give it back to [`Gate::handshaken`] and [`Gate::end`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ticket {
    ip: IpAddr,
    id: u64,
}

/// Why an arrival was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Its IP already holds its share of connections.
    PerIp,
    /// Every handler is taken and no address holds more handshakes than its own.
    Busy,
}

/// What the gate decided about an arrival.
#[derive(Debug)]
pub(super) enum Admission<H> {
    /// Handle it; if `shed` is given, close that connection (its handler ends).
    Admitted {
        /// The new connection's ticket.
        ticket: Ticket,
        /// A connection to close to make room.
        shed: Option<H>,
    },
    /// Close it at once.
    Refused(Refused),
}

#[derive(Debug)]
struct Entry<H> {
    id: u64,
    handshaking: bool,
    /// Already chosen to be shed (its handler has not ended yet).
    shed: bool,
    handle: Option<H>,
}

/// The admission state of the incoming connections (see the module).
#[derive(Debug)]
pub(super) struct Gate<H> {
    limits: Limits,
    by_ip: HashMap<IpAddr, Vec<Entry<H>>>,
    /// Connections admitted and not shed (each has or will get a handler).
    live: usize,
    next_id: u64,
}

impl<H> Gate<H> {
    /// An empty gate.
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            limits,
            by_ip: HashMap::new(),
            live: 0,
            next_id: 0,
        }
    }

    /// Connections of `ip` in their handshake and not shed.
    fn handshakes(&self, ip: &IpAddr) -> usize {
        self.by_ip
            .get(ip)
            .map_or(0, |v| v.iter().filter(|e| e.handshaking && !e.shed).count())
    }

    /// Decides about a connection arriving from `ip`.
    pub(super) fn arrive(&mut self, ip: IpAddr, handle: H) -> Admission<H> {
        let own = self.handshakes(&ip);
        let open = self.by_ip.get(&ip).map_or(0, Vec::len);
        if own >= self.limits.per_ip_handshakes || open >= self.limits.per_ip_open {
            return Admission::Refused(Refused::PerIp);
        }
        let mut shed = None;
        if self.live >= self.limits.capacity {
            let flooder = self
                .by_ip
                .keys()
                .map(|k| (self.handshakes(k), *k))
                .max_by_key(|&(n, _)| n)
                .filter(|&(n, _)| n > own + 1);
            let Some((_, flooder)) = flooder else {
                return Admission::Refused(Refused::Busy);
            };
            let oldest = self
                .by_ip
                .get_mut(&flooder)
                .and_then(|v| v.iter_mut().find(|e| e.handshaking && !e.shed));
            let Some(victim) = oldest else {
                return Admission::Refused(Refused::Busy);
            };
            victim.shed = true;
            shed = victim.handle.take();
            self.live -= 1;
        }
        self.next_id += 1;
        let ticket = Ticket {
            ip,
            id: self.next_id,
        };
        self.by_ip.entry(ip).or_default().push(Entry {
            id: ticket.id,
            handshaking: true,
            shed: false,
            handle: Some(handle),
        });
        self.live += 1;
        Admission::Admitted { ticket, shed }
    }

    /// The connection finished its handshake: it no longer counts as one (nor can it
    /// be shed).
    pub(super) fn handshaken(&mut self, t: Ticket) {
        if let Some(e) = self
            .by_ip
            .get_mut(&t.ip)
            .and_then(|v| v.iter_mut().find(|e| e.id == t.id))
        {
            e.handshaking = false;
            e.handle = None;
        }
    }

    /// The connection is closed and its handler free.
    pub(super) fn end(&mut self, t: Ticket) {
        let Some(v) = self.by_ip.get_mut(&t.ip) else {
            return;
        };
        if let Some(i) = v.iter().position(|e| e.id == t.id) {
            if !v[i].shed {
                self.live -= 1;
            }
            v.remove(i);
        }
        if v.is_empty() {
            self.by_ip.remove(&t.ip);
        }
    }

    /// Connections admitted and not shed.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        self.live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([127, 9, 0, n])
    }

    fn gate(capacity: usize) -> Gate<u32> {
        Gate::new(Limits {
            capacity,
            per_ip_handshakes: 4,
            per_ip_open: 10,
        })
    }

    fn admitted(a: Admission<u32>) -> (Ticket, Option<u32>) {
        match a {
            Admission::Admitted { ticket, shed } => (ticket, shed),
            Admission::Refused(r) => panic!("refused: {r:?}"),
        }
    }

    #[test]
    fn one_ip_holds_at_most_its_share_of_handshakes_and_open_connections() {
        let mut g = gate(100);
        let tickets: Vec<Ticket> = (0..4).map(|h| admitted(g.arrive(ip(1), h)).0).collect();
        assert!(matches!(
            g.arrive(ip(1), 9),
            Admission::Refused(Refused::PerIp)
        ));
        // Another address is not affected.
        admitted(g.arrive(ip(2), 10));
        // Handshakes done: room for more handshakes, up to 10 open.
        for t in &tickets {
            g.handshaken(*t);
        }
        for h in 0..6 {
            let (t, _) = admitted(g.arrive(ip(1), 20 + h));
            g.handshaken(t);
        }
        assert!(matches!(
            g.arrive(ip(1), 99),
            Admission::Refused(Refused::PerIp)
        ));
        g.end(tickets[0]);
        admitted(g.arrive(ip(1), 30));
    }

    #[test]
    fn a_full_pool_sheds_the_flooders_oldest_handshake_not_the_newcomer() {
        let mut g = gate(4);
        for h in 0..4 {
            admitted(g.arrive(ip(1), h));
        }
        assert_eq!(g.live(), 4);
        // A real peer arrives: the flooder's oldest connection (handle 0) is shed.
        let (real, shed) = admitted(g.arrive(ip(2), 100));
        assert_eq!(shed, Some(0));
        assert_eq!(g.live(), 4);
        // The flooder comes back: it holds 3 handshakes, as many as itself, so it
        // cannot shed its own; refused.
        assert!(matches!(
            g.arrive(ip(1), 4),
            Admission::Refused(Refused::Busy)
        ));
        // A second real peer sheds the flooder (3 handshakes), not the first real one
        // (1 handshake).
        let (other, shed) = admitted(g.arrive(ip(3), 200));
        assert_eq!(shed, Some(1));
        g.handshaken(real);
        g.end(other);
        assert_eq!(g.live(), 3);
    }

    #[test]
    fn with_no_flooder_the_newest_arrival_is_refused() {
        let mut g = gate(3);
        for n in 1..=3 {
            admitted(g.arrive(ip(n), u32::from(n)));
        }
        assert!(matches!(
            g.arrive(ip(4), 4),
            Admission::Refused(Refused::Busy)
        ));
        // Connections past their handshake are never shed.
        let mut g = gate(2);
        let (a, _) = admitted(g.arrive(ip(1), 1));
        let (b, _) = admitted(g.arrive(ip(1), 2));
        g.handshaken(a);
        g.handshaken(b);
        assert!(matches!(
            g.arrive(ip(2), 3),
            Admission::Refused(Refused::Busy)
        ));
        g.end(a);
        admitted(g.arrive(ip(2), 3));
    }

    #[test]
    fn ending_a_shed_connection_does_not_free_a_second_handler() {
        let mut g = gate(2);
        let (a, _) = admitted(g.arrive(ip(1), 1));
        admitted(g.arrive(ip(1), 2));
        let (_, shed) = admitted(g.arrive(ip(2), 3));
        assert_eq!(shed, Some(1));
        assert_eq!(g.live(), 2);
        g.end(a); // the shed one's handler ends
        assert_eq!(g.live(), 2);
        assert!(g.by_ip.get(&ip(1)).is_some_and(|v| v.len() == 1));
    }
}
