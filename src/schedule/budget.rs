//! The dial budget: how fast btda may dial addresses that never answered it. Trackers,
//! the DHT and PEX name addresses that nobody vouches for; a hostile source can name
//! someone else's network by the thousand and turn btda into a reflector that sends
//! SYNs there. Reached peers are revisited freely; every other dial (first contacts and
//! retries of addresses that never answered) takes a slot from two budgets:
//!
//! - all such dials: `per_sec` a second, `5 × per_sec` at once;
//! - the dials into one /24 (IPv4) or /48 (IPv6): `per_network_per_sec` a second,
//!   [`NETWORK_BURST`] at once (one sweep of a /24, then a trickle).
//!
//! A dial over budget is not dropped: it gets the next free slot of both budgets (a
//! reservation, so each deferred peer waits once, in order) and the caller schedules
//! it then — unless the global budget is booked more than [`BOOK_AHEAD`] ahead (it
//! has no room): then nothing is reserved, and the caller holds a first contact back
//! (handed out newest first when the budget has room again) or defers a retry. The
//! budgets are generic cell rate algorithms (GCRA): one instant per budget, so a
//! network costs 16 bytes while it has reservations and nothing after.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Dials at once into one network before its rate applies: one sweep of a /24.
pub(super) const NETWORK_BURST: u32 = 256;
/// How far ahead the global budget is booked before dials are held back instead of
/// reserved: a second of slots.
const BOOK_AHEAD: Duration = Duration::from_secs(1);
/// Networks remembered before the idle ones (no reservation ahead) are forgotten.
const PRUNE_AT: usize = 65_536;

/// One rate with a burst, as a GCRA: `tat` is the theoretical arrival time of the
/// next dial; a dial may go when `tat - tolerance <= now`.
#[derive(Debug, Clone, Copy)]
struct Rate {
    interval: Duration,
    tolerance: Duration,
}

impl Rate {
    /// `per_sec` a second, `burst` at once; `None` when `per_sec` is 0 (no limit).
    fn new(per_sec: u32, burst: u32) -> Option<Self> {
        (per_sec > 0).then(|| {
            let interval = Duration::from_secs(1) / per_sec;
            Self {
                interval,
                tolerance: interval * burst.saturating_sub(1),
            }
        })
    }

    /// When a dial asked for at `now` may go, with `tat` advanced past it.
    fn reserve(&self, tat: &mut Instant, now: Instant) -> Instant {
        let at = self.next_slot(*tat, now);
        *tat = (*tat).max(now) + self.interval;
        at
    }

    /// When a dial asked for at `now` could go, reserving nothing.
    fn next_slot(&self, tat: Instant, now: Instant) -> Instant {
        let t = tat.max(now);
        t.checked_sub(self.tolerance).map_or(now, |a| a.max(now))
    }
}

/// The two budgets (see the module).
#[derive(Debug)]
pub struct DialBudget {
    global: Option<(Rate, Instant)>,
    network: Option<Rate>,
    networks: HashMap<u64, Instant>,
    deferred: u64,
    longest: Duration,
}

impl DialBudget {
    /// `per_sec` dials a second over all networks and `per_network_per_sec` into one
    /// /24 (/48); 0 turns a budget off.
    pub fn new(per_sec: u32, per_network_per_sec: u32, now: Instant) -> Self {
        Self {
            global: Rate::new(per_sec, per_sec.saturating_mul(5)).map(|r| (r, now)),
            network: Rate::new(per_network_per_sec, NETWORK_BURST),
            networks: HashMap::new(),
            deferred: 0,
            longest: Duration::ZERO,
        }
    }

    /// No limits.
    pub(crate) fn unlimited() -> Self {
        Self::new(0, 0, Instant::now())
    }

    /// Takes a slot for a dial to `ip` asked for at `now`: the time it may go (`now`,
    /// or the next free slot of both budgets, which is then reserved for it).
    pub(crate) fn reserve(&mut self, ip: IpAddr, now: Instant) -> Instant {
        let mut at = now;
        if let Some((rate, tat)) = &mut self.global {
            at = at.max(rate.reserve(tat, now));
        }
        if let Some(rate) = self.network {
            if self.networks.len() >= PRUNE_AT {
                self.networks.retain(|_, tat| *tat > now);
            }
            let tat = self.networks.entry(network_key(&ip)).or_insert(now);
            at = at.max(rate.reserve(tat, now));
        }
        if at > now {
            self.deferred += 1;
            self.longest = self.longest.max(at - now);
        }
        at
    }

    /// When the global budget has its next free slot, from `now` (`now` when free now
    /// or unlimited); nothing is reserved.
    pub(crate) fn global_free_at(&self, now: Instant) -> Instant {
        self.global
            .as_ref()
            .map_or(now, |(rate, tat)| rate.next_slot(*tat, now))
    }

    /// When the global budget has room again: is booked at most [`BOOK_AHEAD`] ahead
    /// (`now` when it has room now).
    pub(crate) fn room_at(&self, now: Instant) -> Instant {
        self.global_free_at(now)
            .checked_sub(BOOK_AHEAD)
            .map_or(now, |t| t.max(now))
    }

    /// Whether the global budget has room now (see [`Self::room_at`]).
    pub(crate) fn has_room(&self, now: Instant) -> bool {
        self.room_at(now) <= now
    }

    /// Counts a dial held back without a reservation (see `PeerQueue::next_job`).
    pub(crate) fn count_held(&mut self) {
        self.deferred += 1;
    }

    /// Dials deferred so far, and the longest deferral.
    pub(crate) fn deferred(&self) -> (u64, Duration) {
        (self.deferred, self.longest)
    }
}

/// The /24 of an IPv4 address or the /48 of an IPv6 one, as one number (IPv4-mapped
/// IPv6 addresses count as IPv4).
fn network_key(ip: &IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => (1 << 63) | u64::from(u32::from(*v4) >> 8),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_key(&IpAddr::V4(v4)),
            None => (u128::from(*v6) >> 80) as u64,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_network_gets_its_burst_then_its_rate_in_reserved_slots() {
        let t0 = Instant::now();
        let mut b = DialBudget::new(0, 10, t0);
        for n in 0..NETWORK_BURST {
            let at = b.reserve(ip(&format!("203.0.113.{}", n % 256)), t0);
            assert_eq!(at, t0, "dial {n} is within the burst");
        }
        // Then one every 100 ms, each reserved: the 10th waits a second.
        let slots: Vec<Duration> = (0..10)
            .map(|_| b.reserve(ip("203.0.113.7"), t0) - t0)
            .collect();
        assert_eq!(slots[0], Duration::from_millis(100));
        assert_eq!(slots[9], Duration::from_millis(1000));
        // Another /24 is not affected; the same /24 later has a slot again.
        assert_eq!(b.reserve(ip("203.0.114.1"), t0), t0);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.reserve(ip("203.0.113.1"), later), later);
        assert_eq!(b.deferred(), (10, Duration::from_millis(1000)));
    }

    #[test]
    fn the_global_budget_spreads_dials_over_every_network() {
        let t0 = Instant::now();
        let mut b = DialBudget::new(100, 0, t0);
        let mut last = t0;
        for n in 0..1_000u32 {
            let addr = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + (n << 8)));
            last = b.reserve(addr, t0);
        }
        // 500 at once, then 100 a second: the 1,000th at 5 s.
        assert_eq!(last - t0, Duration::from_secs(5));
        assert_eq!(DialBudget::unlimited().reserve(ip("10.0.0.1"), t0), t0);
    }

    #[test]
    fn networks_are_slash_24_and_slash_48() {
        assert_eq!(
            network_key(&ip("198.51.100.1")),
            network_key(&ip("198.51.100.254"))
        );
        assert_ne!(
            network_key(&ip("198.51.100.1")),
            network_key(&ip("198.51.101.1"))
        );
        assert_eq!(
            network_key(&ip("2001:db8:1::1")),
            network_key(&ip("2001:db8:1:ffff::9"))
        );
        assert_ne!(
            network_key(&ip("2001:db8:1::1")),
            network_key(&ip("2001:db8:2::1"))
        );
        assert_eq!(
            network_key(&ip("::ffff:198.51.100.1")),
            network_key(&ip("198.51.100.9"))
        );
    }
}
