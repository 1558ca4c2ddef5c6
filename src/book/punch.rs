//! What btda knows for hole punching (BEP 55), in memory only. [`PunchBook`]: which
//! relays can introduce it to which peers and which peers were last reached by a punch
//! (read when a job is handed out, under the peer queue's lock). [`PunchTraffic`]: the
//! rendezvous sessions open per relay and the punches under way (so the target's own
//! connection, the punch's other half, is recognised when it arrives) — polled by
//! punching workers, so it has a lock of its own rather than the queue's.
//!
//! Every table is bounded: relays per target ([`RELAYS_PER_TARGET`]), sessions per
//! relay ([`SESSIONS_PER_RELAY`]), relay records ([`MAX_RELAYS`]), punch windows
//! ([`MAX_WINDOWS`]).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Relays kept per target (the latest that named it).
pub(crate) const RELAYS_PER_TARGET: usize = 4;
/// Rendezvous sessions open at once with one relay.
pub(crate) const SESSIONS_PER_RELAY: u8 = 2;
/// Least time between two rendezvous sessions opened with one relay.
pub(crate) const RELAY_SPACING: Duration = Duration::from_millis(200);
/// Relays whose sessions and pacing are tracked at once.
const MAX_RELAYS: usize = 65_536;
/// Punches under way at once (at most one per worker in practice).
const MAX_WINDOWS: usize = 65_536;
/// How long after a relay's `connect` a connection from the target counts as the
/// punch's other half.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct RelayUse {
    open: u8,
    next: Instant,
}

/// Relays per peer and punched peers (see the module).
#[derive(Debug, Default)]
pub(crate) struct PunchBook {
    relays: HashMap<u32, Vec<SocketAddr>>,
    punched: HashSet<u32>,
}

/// Relay sessions and punches under way (see the module).
#[derive(Debug, Default)]
pub(crate) struct PunchTraffic {
    sessions: HashMap<SocketAddr, RelayUse>,
    /// Punches under way per target IP: when the relay's `connect` came, and whether
    /// a connection from that IP arrived since.
    windows: HashMap<IpAddr, (Instant, bool)>,
}

impl PunchBook {
    /// `relay` named peer `id` with the holepunch flag.
    pub(crate) fn relay_named(&mut self, id: u32, relay: SocketAddr) {
        let list = self.relays.entry(id).or_default();
        list.retain(|r| *r != relay);
        list.insert(0, relay);
        list.truncate(RELAYS_PER_TARGET);
    }

    /// `relay` cannot introduce btda to `id` (no support, unreachable, refused).
    pub(crate) fn forget_relay(&mut self, id: u32, relay: SocketAddr) {
        if let Some(list) = self.relays.get_mut(&id) {
            list.retain(|r| *r != relay);
            if list.is_empty() {
                self.relays.remove(&id);
            }
        }
    }

    /// The relay to ask for `id` (the latest that named it) and whether `id` is
    /// punched first.
    pub(crate) fn for_job(&self, id: u32) -> (Option<SocketAddr>, bool) {
        let relay = self.relays.get(&id).and_then(|l| l.first().copied());
        (relay, relay.is_some() && self.punched.contains(&id))
    }

    /// Whether `id` was reached by its last punch.
    pub(crate) fn set_punched(&mut self, id: u32, reached: bool) {
        if reached {
            self.punched.insert(id);
        } else {
            self.punched.remove(&id);
        }
    }
}

impl PunchTraffic {
    /// Takes a session slot at `relay` if one is free and the relay's pacing allows.
    pub(crate) fn take_slot(&mut self, relay: SocketAddr, now: Instant) -> bool {
        if self.sessions.len() >= MAX_RELAYS {
            self.sessions.retain(|_, u| u.open > 0 || u.next > now);
            if self.sessions.len() >= MAX_RELAYS {
                return false;
            }
        }
        let u = self
            .sessions
            .entry(relay)
            .or_insert(RelayUse { open: 0, next: now });
        if u.open >= SESSIONS_PER_RELAY || u.next > now {
            return false;
        }
        u.open += 1;
        u.next = now + RELAY_SPACING;
        true
    }

    /// Gives a session slot back.
    pub(crate) fn release_slot(&mut self, relay: SocketAddr) {
        if let Some(u) = self.sessions.get_mut(&relay) {
            u.open = u.open.saturating_sub(1);
        }
    }

    /// A relay's `connect` for a target at `ip` came.
    pub(crate) fn window_open(&mut self, ip: IpAddr, now: Instant) {
        if self.windows.len() >= MAX_WINDOWS {
            self.windows
                .retain(|_, (at, _)| now.duration_since(*at) < WINDOW);
        }
        if self.windows.len() < MAX_WINDOWS {
            self.windows.insert(ip, (now, false));
        }
    }

    /// A connection from `ip` arrived: true (and remembered) when a punch towards it
    /// is under way.
    pub(crate) fn window_hit(&mut self, ip: IpAddr) -> bool {
        match self.windows.get_mut(&ip) {
            Some((at, hit)) if at.elapsed() < WINDOW => {
                *hit = true;
                true
            }
            _ => false,
        }
    }

    /// Whether a connection from `ip` arrived since the punch towards it began.
    pub(crate) fn window_seen(&self, ip: IpAddr) -> bool {
        self.windows.get(&ip).is_some_and(|(_, hit)| *hit)
    }

    /// The punch towards `ip` is over: whether a connection from it arrived.
    pub(crate) fn window_close(&mut self, ip: IpAddr) -> bool {
        self.windows.remove(&ip).is_some_and(|(_, hit)| hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, n], 6881))
    }

    #[test]
    fn relays_are_kept_latest_first_and_bounded() {
        let mut b = PunchBook::default();
        assert_eq!(b.for_job(1), (None, false));
        for n in 1..=6 {
            b.relay_named(1, addr(n));
        }
        b.relay_named(1, addr(3));
        assert_eq!(b.relays[&1].len(), RELAYS_PER_TARGET);
        assert_eq!(b.for_job(1), (Some(addr(3)), false));
        b.set_punched(1, true);
        assert_eq!(b.for_job(1), (Some(addr(3)), true));
        b.forget_relay(1, addr(3));
        assert_eq!(b.for_job(1).0, Some(addr(6)));
        for n in [6, 5, 4] {
            b.forget_relay(1, addr(n));
        }
        assert_eq!(b.for_job(1), (None, false), "no relay: never punched first");
    }

    #[test]
    fn sessions_per_relay_are_bounded_and_paced() {
        let mut b = PunchTraffic::default();
        let t0 = Instant::now();
        let r = addr(9);
        assert!(b.take_slot(r, t0));
        assert!(!b.take_slot(r, t0), "paced");
        let t1 = t0 + RELAY_SPACING;
        assert!(b.take_slot(r, t1));
        let t2 = t1 + RELAY_SPACING;
        assert!(!b.take_slot(r, t2), "two open already");
        b.release_slot(r);
        assert!(b.take_slot(r, t2));
        assert!(b.take_slot(addr(10), t2), "another relay has its own slots");
    }

    #[test]
    fn a_connection_in_during_a_punch_is_its_other_half() {
        let mut b = PunchTraffic::default();
        let ip = addr(4).ip();
        assert!(!b.window_hit(ip), "no punch under way");
        b.window_open(ip, Instant::now());
        assert!(!b.window_seen(ip));
        assert!(b.window_hit(ip));
        assert!(b.window_seen(ip));
        assert!(b.window_close(ip));
        assert!(!b.window_close(ip), "closed once");
        b.window_open(ip, Instant::now());
        assert!(!b.window_close(ip), "nothing came in");
    }
}
