//! Due times and visit states of every peer, with no knowledge of what a visit found
//! beyond "reached, finished or failed": the peer book ([`crate::book`]) keeps that.
//!
//! Min-heaps of due times with lazy deletion (a popped entry whose due time no longer
//! matches the peer's state is stale and skipped), and one slot per peer with its state,
//! attempts, failures in a row, whether it was ever reached, and when a source last
//! listed it. Addresses that never answered a SYN wait in a heap of their own: peers
//! are handed out in due-time order from both, but visits to silent addresses under way
//! are capped ([`Policy::silent_slots`]), so that dead addresses cannot hold every
//! worker while revisits of live peers and first contacts of fresh ones wait.
//!
//! Peers are dense `u32` ids (the peer book's index), so the slots are a `Vec` and a
//! heap entry is 8 bytes; times are kept as [`Tick`]s of 10 ms since the scheduler
//! started (a `u32` lasts 497 days). A million tracked peers cost about 28 MB here
//! instead of ~150 MB with `Instant`s and a map keyed by address.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

use super::policy::{Next, Policy, Reason};
use crate::histogram::Histogram;

/// What became of a peer reported by a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Not known before (or back after its cool-down): scheduled now.
    New,
    /// Already known (counted as a duplicate).
    Duplicate,
    /// Dropped recently; ignored until its cool-down ends.
    CoolingDown,
    /// One of btda's own addresses: never queued.
    Ours,
    /// Not a globally routable address (or port 0), from a source that may not name one.
    NotGlobal,
    /// Its IP already is the most peers allowed per torrent (`peer.max_peers_per_ip`).
    Crowded,
    /// Its source already named the most peers kept per torrent from one source
    /// (`peer.max_peers_per_source`).
    SourceFull,
}

/// Where a peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Due at this time.
    Waiting(Instant),
    /// A visit is under way.
    InFlight,
    /// Known but not visited actively (incoming peer without a listen port, or a
    /// torrent whose metadata is pending).
    Parked,
    /// At or above T, or merged into another address of the same client.
    Finished,
    /// Failed at every backoff step; ignored until this time.
    Dropped(Instant),
    /// btda itself: never visited.
    Ours,
}

/// Whether btda ever got an answer from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Not tried yet.
    Unknown,
    /// Tried, never answered a SYN (connect timeouts or refusals only).
    Never,
    /// Answered a SYN at least once (a connection was made) but no visit succeeded.
    Answered,
    /// Answered at least once.
    Reached,
}

/// How a visit ended, as far as scheduling cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The peer answered; `complete` if it is at or above T (not visited again) or
    /// its address was merged into another one that is visited instead.
    Reached {
        /// Nothing more to learn at this address.
        complete: bool,
        /// When its own rate predicts it passes T, from now (None: no measured rate).
        eta: Option<Duration>,
    },
    /// No connection: the connect timed out, was refused or unreachable.
    Failed,
    /// The connection was made, but the handshake failed, timed out or was reset: a
    /// live peer, retried after the short transient step the first time.
    Transient,
    /// A failure on btda's side: retried without counting against the peer.
    Retry,
    /// The address is btda's own.
    Ours,
}

/// A time as 10 ms steps since the scheduler's start.
type Tick = u32;

/// Length of one [`Tick`] in milliseconds.
const TICK_MS: u64 = 10;

/// [`State`] without its time, which the slot keeps as a [`Tick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Waiting,
    /// A first contact due but held back for the dial budget, in the backlog (its `at`:
    /// since when).
    Held,
    InFlight,
    Parked,
    Finished,
    Dropped,
    Ours,
}

/// The heaps a waiting peer can be in ([`Scheduler::earliest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heap {
    Main,
    Deferred,
    Silent,
}

/// One peer's scheduling record: 20 bytes.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Due time (`Waiting`) or end of the cool-down (`Dropped`).
    at: Tick,
    /// When its first visit became due (listed, or back after a cool-down): the wait
    /// for a first visit counts from here, across deferrals by the dial budget.
    first_due: Tick,
    /// When a source last listed the peer.
    listed: Tick,
    attempts: u16,
    tag: Tag,
    failures_in_row: u8,
    reach: Reach,
    /// Why the next (or current) visit happens.
    why: Reason,
    /// The visit under way is to a silent address (counted against the silent slots).
    silent_flight: bool,
    /// A peer named it in PEX before btda reached it: it is in the swarm and connected
    /// to someone now (see [`Scheduler::vouch`]).
    vouched: bool,
}

impl Slot {
    fn new(tag: Tag, at: Tick, now: Tick) -> Self {
        Self {
            at,
            first_due: at,
            listed: now,
            attempts: 0,
            tag,
            failures_in_row: 0,
            reach: Reach::Unknown,
            why: Reason::First,
            silent_flight: false,
            vouched: false,
        }
    }

    fn is(&self, tag: Tag) -> bool {
        self.tag == tag
    }

    fn set(&mut self, tag: Tag, at: Tick) {
        self.tag = tag;
        self.at = at;
    }
}

/// Counts by state (walks every slot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Peers known.
    pub known: u64,
    /// Waiting peers whose due time has passed.
    pub due: u64,
    /// Visits under way.
    pub in_flight: u64,
    /// Peers finished.
    pub finished: u64,
    /// Peers dropped.
    pub dropped: u64,
    /// Peers reached at least once.
    pub reached: u64,
}

/// What [`Scheduler::pop_due`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Popped<K> {
    /// Visit this peer now; `attempt` counts from 1.
    Visit(K, u32),
    /// Nothing due; the earliest due time, if any.
    Wait(Option<Instant>),
}

/// How long a peer that is busy (another connection with it open) waits.
pub(crate) const BUSY_DELAY: Duration = Duration::from_secs(1);

/// A peer's id: its index in the peer book, dense from 0.
pub(crate) type Key = u32;

/// The scheduler for peers keyed by dense ids.
#[derive(Debug)]
pub struct Scheduler {
    /// Due times of every waiting peer but silent addresses.
    heap: BinaryHeap<Reverse<(Tick, Key)>>,
    /// Due times of waiting addresses that never answered a SYN (`Reach::Never`).
    silent: BinaryHeap<Reverse<(Tick, Key)>>,
    /// Silent addresses deferred by the dial budget to a slot reserved for them: due
    /// at that slot, handed out as soon as a silent slot is free (see [`Self::defer`]).
    deferred: BinaryHeap<Reverse<(Tick, Key)>>,
    /// Visits to silent addresses under way.
    silent_in_flight: u32,
    /// First contacts held back while the dial budget is booked ahead, newest on top:
    /// handed out newest first once it has room (see [`Self::hold`]).
    backlog: Vec<Key>,
    /// Held first contacts that a peer named in PEX (see [`Self::vouch`]), in the order
    /// they were named: handed out before those of `backlog`, oldest first.
    vouched: VecDeque<Key>,
    /// Retries of addresses that answered but failed (a reset, a close, a handshake
    /// timeout), held back while the dial budget is booked: handed out after the held
    /// first contacts, oldest first (see [`Self::hold`]).
    held_retries: VecDeque<Key>,
    slots: Vec<Option<Slot>>,
    start: Instant,
    policy: Policy,
    in_flight: u64,
    /// How long fresh peers waited for their first visit after they were due, ms.
    first_wait: Histogram,
    /// How late reached peers were revisited after their due time, ms.
    revisit_late: Histogram,
}

/// How late peers were handed out: whether btda keeps up with its swarm.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Lateness {
    /// 99th percentile of the wait of fresh peers for their first visit, ms.
    pub first_wait_p99_ms: Option<u64>,
    /// The longest such wait (upper end of its bucket), ms.
    pub first_wait_max_ms: Option<u64>,
    /// 99th percentile of how late revisits of reached peers came, ms.
    pub revisit_late_p99_ms: Option<u64>,
    /// Share of those revisits within a tenth of the revisit delay of their due time.
    pub revisits_on_time: Option<f64>,
}

impl Scheduler {
    /// An empty scheduler whose clock starts now.
    pub fn new(policy: Policy) -> Self {
        Self::starting(policy, Instant::now())
    }

    /// An empty scheduler whose clock starts at `start` (no time given to it may be
    /// earlier).
    pub fn starting(policy: Policy, start: Instant) -> Self {
        Self {
            heap: BinaryHeap::new(),
            silent: BinaryHeap::new(),
            deferred: BinaryHeap::new(),
            silent_in_flight: 0,
            backlog: Vec::new(),
            vouched: VecDeque::new(),
            held_retries: VecDeque::new(),
            slots: Vec::new(),
            start,
            policy,
            in_flight: 0,
            first_wait: Histogram::default(),
            revisit_late: Histogram::default(),
        }
    }

    /// `t` in ticks (rounded down; earlier than the start is 0, later than 497 days the
    /// last tick).
    fn tick(&self, t: Instant) -> Tick {
        let ms = t.saturating_duration_since(self.start).as_millis() / u128::from(TICK_MS);
        Tick::try_from(ms).unwrap_or(Tick::MAX)
    }

    /// The instant of tick `t`.
    fn instant(&self, t: Tick) -> Instant {
        self.start + Duration::from_millis(u64::from(t) * TICK_MS)
    }

    /// `now + d` in ticks.
    fn tick_after(&self, now: Tick, d: Duration) -> Tick {
        let steps = d.as_millis().div_ceil(u128::from(TICK_MS));
        now.saturating_add(Tick::try_from(steps).unwrap_or(Tick::MAX))
    }

    fn slot(&self, k: Key) -> Option<&Slot> {
        self.slots.get(k as usize).and_then(Option::as_ref)
    }

    fn slot_mut(&mut self, k: Key) -> Option<&mut Slot> {
        self.slots.get_mut(k as usize).and_then(Option::as_mut)
    }

    /// The slot of `k`, created with `fresh` when unknown.
    fn slot_or_insert(&mut self, k: Key, fresh: Slot) -> (&mut Slot, bool) {
        let i = k as usize;
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        let created = self.slots[i].is_none();
        (self.slots[i].get_or_insert(fresh), created)
    }

    /// A source lists `k`: new peers are due now (`active`) or parked; a dropped peer
    /// whose cool-down has passed is tried again. Every listing is remembered, so a peer
    /// that was reached before is not dropped while a source still lists it.
    pub fn add(&mut self, k: Key, now: Instant, active: bool) -> Added {
        let now = self.tick(now);
        let tag = if active { Tag::Waiting } else { Tag::Parked };
        let (s, created) = self.slot_or_insert(k, Slot::new(tag, now, now));
        if created {
            if active {
                self.heap.push(Reverse((now, k)));
            }
            return Added::New;
        }
        s.listed = now;
        match s.tag {
            Tag::Ours => Added::Ours,
            Tag::Dropped if now < s.at => Added::CoolingDown,
            Tag::Dropped => {
                s.set(tag, now);
                s.first_due = now;
                s.failures_in_row = 0;
                s.why = Reason::First;
                if active {
                    self.queue(now, k);
                }
                Added::New
            }
            _ => Added::Duplicate,
        }
    }

    /// The state of `k`.
    pub fn state(&self, k: Key) -> Option<State> {
        self.slot(k).map(|s| match s.tag {
            Tag::Waiting | Tag::Held => State::Waiting(self.instant(s.at)),
            Tag::InFlight => State::InFlight,
            Tag::Parked => State::Parked,
            Tag::Finished => State::Finished,
            Tag::Dropped => State::Dropped(self.instant(s.at)),
            Tag::Ours => State::Ours,
        })
    }

    /// Whether `k` was ever reached.
    pub fn reach(&self, k: Key) -> Option<Reach> {
        self.slot(k).map(|s| s.reach)
    }

    /// The attempt whose timeouts the visit of `k` under way gets (its `attempt`-th):
    /// an address that never answered keeps the first attempt's measured timeouts on
    /// every retry (the measured connect timeout already is twice the 99th percentile
    /// of connects that succeeded; at a campaign's size, doubled timeouts on the last
    /// retry of 600,000 dead addresses held every worker for minutes).
    pub fn timeout_attempt(&self, k: Key, attempt: u32) -> u32 {
        match self.slot(k) {
            Some(s) if s.reach == Reach::Never => 1,
            _ => attempt,
        }
    }

    /// Why `k`'s next visit (or the one under way) happens.
    pub fn reason(&self, k: Key) -> Option<Reason> {
        self.slot(k).map(|s| s.why)
    }

    /// Puts waiting `k` due at `due` into its heap: the silent one when it never
    /// answered a SYN.
    fn queue(&mut self, due: Tick, k: Key) {
        let silent = self.slot(k).is_some_and(|s| s.reach == Reach::Never);
        let heap = if silent {
            &mut self.silent
        } else {
            &mut self.heap
        };
        heap.push(Reverse((due, k)));
    }

    /// The earliest entry of the heaps that may hand out now, and its heap: silent
    /// addresses only while a silent slot is free, those without a reserved dial slot
    /// only while the dial budget has room too (every dial to a silent address takes
    /// a slot of it).
    fn earliest(&self, budget_room: bool) -> Option<((Tick, Key), Heap)> {
        let slot_free = self.silent_in_flight < self.policy.silent_slots;
        let top = |heap: &BinaryHeap<Reverse<(Tick, Key)>>, open: bool, which: Heap| {
            heap.peek().filter(|_| open).map(|&Reverse(e)| (e, which))
        };
        [
            top(&self.heap, true, Heap::Main),
            top(&self.deferred, slot_free, Heap::Deferred),
            top(&self.silent, slot_free && budget_room, Heap::Silent),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|&(e, _)| e)
    }

    /// Takes the next due peer for which `busy` is false and marks it in flight; a busy
    /// one is put back [`BUSY_DELAY`] later. Peers come in due-time order; a silent
    /// address only while fewer than [`Policy::silent_slots`] of them are in flight and
    /// the dial budget has room (`budget_room`: booked at most a second ahead). While
    /// first contacts are held back for the budget (the backlog) and it has room, the
    /// backlog's newest comes after the due peers of the main heap and before silent
    /// addresses.
    pub(crate) fn pop_due(
        &mut self,
        now: Instant,
        budget_room: bool,
        mut busy: impl FnMut(Key) -> bool,
    ) -> Popped<Key> {
        let now_tick = self.tick(now);
        let later = self.tick_after(now_tick, BUSY_DELAY);
        loop {
            let main_due = self
                .heap
                .peek()
                .is_some_and(|&Reverse((due, _))| due <= now_tick);
            if budget_room && !main_due && self.holds() {
                if let Some(k) = self.pop_backlog() {
                    if busy(k) {
                        if let Some(s) = self.slot_mut(k) {
                            s.set(Tag::Waiting, later);
                        }
                        self.queue(later, k);
                        continue;
                    }
                    return Popped::Visit(k, self.start_visit(k));
                }
                continue;
            }
            // Silent addresses wait while fresh ones are held back: a budget slot goes to
            // an address never tried before one that never answered.
            let silent_room = budget_room && !self.holds();
            let Some(((due, k), which)) = self.earliest(silent_room) else {
                return Popped::Wait(None);
            };
            if due > now_tick {
                return Popped::Wait(Some(self.instant(due)));
            }
            match which {
                Heap::Main => self.heap.pop(),
                Heap::Deferred => self.deferred.pop(),
                Heap::Silent => self.silent.pop(),
            };
            let due_at = self.instant(due);
            let Some(s) = self.slots.get_mut(k as usize).and_then(Option::as_mut) else {
                continue;
            };
            if !(s.is(Tag::Waiting) && s.at == due) {
                continue; // stale heap entry
            }
            if busy(k) {
                s.at = later;
                self.queue(later, k);
                continue;
            }
            if s.reach == Reach::Reached {
                let waited = u32::try_from(now.saturating_duration_since(due_at).as_millis())
                    .unwrap_or(u32::MAX);
                self.revisit_late.record(waited);
            }
            return Popped::Visit(k, self.start_visit(k));
        }
    }

    /// The oldest entry still held of the vouched backlog, else the newest of the
    /// backlog, else the oldest held retry (entries may be stale: reached by an incoming
    /// visit, finished, or handed out from another backlog meanwhile).
    fn pop_backlog(&mut self) -> Option<Key> {
        let held = |slots: &[Option<Slot>], k: Key| {
            slots
                .get(k as usize)
                .and_then(Option::as_ref)
                .is_some_and(|s| s.is(Tag::Held))
        };
        while let Some(k) = self.vouched.pop_front() {
            if held(&self.slots, k) {
                return Some(k);
            }
        }
        while let Some(k) = self.backlog.pop() {
            if held(&self.slots, k) {
                return Some(k);
            }
        }
        while let Some(k) = self.held_retries.pop_front() {
            if held(&self.slots, k) {
                return Some(k);
            }
        }
        None
    }

    /// Whether first contacts (or retries of addresses that answered) are held back for
    /// the dial budget.
    fn holds(&self) -> bool {
        !self.backlog.is_empty() || !self.vouched.is_empty() || !self.held_retries.is_empty()
    }

    /// A peer named `k` in PEX. Unless btda has tried it already, it goes before the
    /// other held first contacts (now if it is held, else whenever it is), in the order
    /// peers were named: a PEX `added` entry is a peer the sender is connected to, so
    /// the address is alive, where a tracker or the DHT list the gone with the present
    /// (in 2015, 63 % of first contacts never answered a SYN). Named peers are all in
    /// the swarm now, so the one named first goes first: newest first, the ones named
    /// early sank under the many named later (in the million round, peers that arrived
    /// 22 s in were first visited four minutes later, after they had crossed). Its dial
    /// still takes a slot of the dial budget like every first contact, so a peer naming
    /// addresses cannot make btda dial more, only sooner. An address that failed and
    /// waits for its retry is retried the same way: it is a client now (the million
    /// round: peers the DHT listed before they had started failed their first two
    /// dials, and their next retry came five minutes later, after they had crossed).
    /// Once per failure: a peer naming a dead address again and again only brings its
    /// retries forward, then it is dropped as before.
    /// Returns whether `k` joined the named ones held back now (a worker should look).
    pub(crate) fn vouch(&mut self, k: Key, now: Instant) -> bool {
        let now = self.tick(now);
        let Some(s) = self.slot_mut(k) else {
            return false;
        };
        if s.vouched || s.reach == Reach::Reached {
            return false;
        }
        s.vouched = true;
        if s.reach != Reach::Unknown && s.is(Tag::Waiting) {
            s.set(Tag::Held, now); // its entry in its heap is stale now
        }
        if s.is(Tag::Held) {
            self.vouched.push_back(k);
            return true;
        }
        false
    }

    /// Marks `k` in flight; returns its attempt number.
    fn start_visit(&mut self, k: Key) -> u32 {
        let Some(s) = self.slots.get_mut(k as usize).and_then(Option::as_mut) else {
            return 1;
        };
        s.tag = Tag::InFlight;
        s.attempts = s.attempts.saturating_add(1);
        s.silent_flight = s.reach == Reach::Never;
        let (attempts, silent) = (s.attempts, s.silent_flight);
        self.silent_in_flight += u32::from(silent);
        self.in_flight += 1;
        u32::from(attempts)
    }

    /// Puts `k`, just handed out by [`Self::pop_due`], on top of the backlog without
    /// counting the attempt: the dial budget is booked too far ahead for it. Held first
    /// contacts go out newest first as the budget frees up: when more addresses arrive
    /// than the budget dials (a campaign's start: a million listed within a minute, the
    /// dead ones mostly listed first), a peer that was listed a moment ago is in the
    /// swarm now and likely early in its download, which only a first visit below T can
    /// confirm; in due order it would wait behind every older address (in the million
    /// round, eight minutes). A retry of an address that answered but failed (`k`
    /// answered before) waits behind every held first contact, oldest first: a budget
    /// slot goes to an address never tried before one that was tried and refused a
    /// visit, as it goes before a silent one (newest first among the first contacts,
    /// such retries went before every first contact listed early). Only the retries
    /// held here: one due while the budget has room goes when due — holding those as
    /// well for the whole first sweep cost the million round three points of its
    /// confirmations (busy peers and peers listed before they ran were retried after
    /// they had crossed and left).
    pub(crate) fn hold(&mut self, k: Key, now: Instant) {
        let now_tick = self.tick(now);
        if self.unpop(k, Tag::Held, now_tick) {
            match self.slot(k) {
                Some(s) if s.vouched => self.vouched.push_back(k),
                Some(s) if s.reach == Reach::Answered => self.held_retries.push_back(k),
                _ => self.backlog.push(k),
            }
        }
    }

    /// Takes back the hand-out of `k` (in flight from [`Self::pop_due`]) as if it had
    /// not happened: no attempt counted, no silent slot held; `k` is now `tag` at `at`.
    /// False when `k` was not in flight.
    fn unpop(&mut self, k: Key, tag: Tag, at: Tick) -> bool {
        self.release_silent(k);
        let Some(s) = self.slots.get_mut(k as usize).and_then(Option::as_mut) else {
            return false;
        };
        if !s.is(Tag::InFlight) {
            return false;
        }
        s.attempts = s.attempts.saturating_sub(1);
        s.set(tag, at);
        self.in_flight = self.in_flight.saturating_sub(1);
        true
    }

    /// Whether peers wait that only go out while the dial budget has room (held first
    /// contacts, silent addresses): a worker must look again when it has.
    pub(crate) fn waits_for_budget(&self) -> bool {
        self.holds() || !self.silent.is_empty()
    }

    /// `k`, handed out by [`Self::pop_due`], really goes out now (the dial budget had a
    /// slot for it): a first visit's wait since it became due is measured here, so a
    /// deferral by the budget counts as waiting.
    pub(crate) fn dispatched(&mut self, k: Key, now: Instant) {
        let Some(s) = self.slot(k) else { return };
        if s.attempts == 1 && s.is(Tag::InFlight) {
            let since = self.instant(s.first_due);
            let waited =
                u32::try_from(now.saturating_duration_since(since).as_millis()).unwrap_or(u32::MAX);
            self.first_wait.record(waited);
        }
    }

    /// Ends the silent-slot claim of `k`'s visit under way, if it had one.
    fn release_silent(&mut self, k: Key) -> bool {
        let Some(s) = self.slots.get_mut(k as usize).and_then(Option::as_mut) else {
            return false;
        };
        let had = std::mem::take(&mut s.silent_flight);
        self.silent_in_flight = self.silent_in_flight.saturating_sub(u32::from(had));
        had
    }

    /// Puts `k`, just handed out by [`Self::pop_due`], back to wait until `at` without
    /// counting the attempt (the dial budget had no slot before then; its slot at `at`
    /// is reserved). A silent address waits in a heap of its own for deferred ones,
    /// served from `at` as soon as a silent slot is free: back in the silent heap it
    /// came after every silent address due before `at`, each of which took a slot in
    /// turn when popped, so the reserved slots passed unused while the due pile lasted
    /// (the million round: no silent address retried in its last three minutes, with
    /// 786,000 due).
    pub(crate) fn defer(&mut self, k: Key, at: Instant) {
        let due = self.tick(at);
        if self.unpop(k, Tag::Waiting, due) {
            if self.slot(k).is_some_and(|s| s.reach == Reach::Never) {
                self.deferred.push(Reverse((due, k)));
            } else {
                self.heap.push(Reverse((due, k)));
            }
        }
    }

    /// How late peers were handed out so far.
    pub fn lateness(&self) -> Lateness {
        let tenth = u64::try_from(self.policy.revisit_delay.as_millis() / 10).unwrap_or(u64::MAX);
        Lateness {
            first_wait_p99_ms: self.first_wait.quantile(0.99),
            first_wait_max_ms: self.first_wait.quantile(1.0),
            revisit_late_p99_ms: self.revisit_late.quantile(0.99),
            revisits_on_time: self.revisit_late.share_at_most(tenth),
        }
    }

    /// Whether any entry is in the heap (a worker may watch the next due time).
    pub(crate) fn has_pending(&self) -> bool {
        !self.heap.is_empty()
            || !self.silent.is_empty()
            || !self.deferred.is_empty()
            || self.holds()
    }

    /// Schedules `k` after a visit handed out by [`Self::pop_due`]; true when it got a
    /// new due time or freed a silent slot that waiting silent addresses can use (a
    /// waiting worker may need to look again).
    pub fn finish(&mut self, k: Key, ended: Ended, now: Instant) -> bool {
        let freed =
            self.release_silent(k) && (!self.silent.is_empty() || !self.deferred.is_empty());
        self.finish_scheduled(k, ended, now) || freed
    }

    /// [`Self::finish`] but for the silent slot.
    fn finish_scheduled(&mut self, k: Key, ended: Ended, now: Instant) -> bool {
        self.in_flight = self.in_flight.saturating_sub(1);
        let now_tick = self.tick(now);
        let policy = &self.policy;
        let Some(s) = self.slots.get_mut(k as usize).and_then(Option::as_mut) else {
            return false;
        };
        let next = match ended {
            Ended::Reached { complete, eta } => {
                s.failures_in_row = 0;
                let first = s.reach != Reach::Reached;
                s.reach = Reach::Reached;
                let (next, why) = policy.after_success(complete, eta, first);
                s.why = why;
                next
            }
            Ended::Failed | Ended::Transient => {
                s.failures_in_row = s.failures_in_row.saturating_add(1);
                // Named in PEX again after this, it goes first again (see `vouch`).
                s.vouched = false;
                if ended == Ended::Transient && s.reach != Reach::Reached {
                    s.reach = Reach::Answered;
                } else if s.reach == Reach::Unknown {
                    s.reach = Reach::Never;
                }
                s.why = Reason::Retry;
                let since_listed =
                    Duration::from_millis(u64::from(now_tick.saturating_sub(s.listed)) * TICK_MS);
                let listed = since_listed < policy.cooldown;
                policy.after_failure(
                    u32::from(s.failures_in_row),
                    s.reach == Reach::Reached && listed,
                    ended == Ended::Transient,
                    s.reach == Reach::Never,
                )
            }
            Ended::Retry => {
                s.attempts = s.attempts.saturating_sub(1);
                Next::After(
                    policy
                        .backoff
                        .first()
                        .copied()
                        .unwrap_or(policy.revisit_delay),
                )
            }
            Ended::Ours => {
                s.tag = Tag::Ours;
                return false;
            }
        };
        match next {
            Next::After(delay) => {
                let due = self.tick_after(now_tick, delay);
                let Some(s) = self.slot_mut(k) else {
                    return false;
                };
                s.set(Tag::Waiting, due);
                self.queue(due, k);
                return true;
            }
            Next::Finished => s.tag = Tag::Finished,
            Next::Drop => {
                let until = self.tick_after(now_tick, self.policy.cooldown);
                if let Some(s) = self.slot_mut(k) {
                    s.set(Tag::Dropped, until);
                }
            }
        }
        false
    }

    /// After an incoming visit of `k` (known or just added parked): a complete peer is
    /// finished; one that can be dialled is (re)visited at its predicted crossing or
    /// after the revisit delay, as after an outgoing visit — a waiting peer is moved
    /// earlier when the prediction says so. Returns true when it was scheduled.
    pub(crate) fn after_incoming(
        &mut self,
        k: Key,
        complete: bool,
        dialable: bool,
        eta: Option<Duration>,
        now: Instant,
    ) -> bool {
        let first = self.slot(k).is_none_or(|s| s.reach != Reach::Reached);
        let (next, why) = self.policy.after_success(complete, eta, first);
        let due = match next {
            Next::After(d) => self.tick_after(self.tick(now), d),
            Next::Finished | Next::Drop => 0,
        };
        let Some(s) = self.slot_mut(k) else {
            return false;
        };
        // A silent address waiting for a retry sits in the silent heap, which is served
        // only while the dial budget has room: reached now, it moves to the main heap.
        let was_silent = s.reach == Reach::Never;
        s.reach = Reach::Reached;
        match s.tag {
            Tag::Waiting | Tag::Held | Tag::Parked | Tag::Dropped if complete => {
                s.tag = Tag::Finished;
                false
            }
            Tag::Held | Tag::Parked | Tag::Dropped if dialable => {
                s.set(Tag::Waiting, due);
                s.why = why;
                s.failures_in_row = 0;
                self.heap.push(Reverse((due, k)));
                true
            }
            Tag::Waiting if dialable && (due < s.at || was_silent) => {
                if due < s.at {
                    s.set(Tag::Waiting, due);
                    s.why = why;
                }
                let at = s.at;
                self.heap.push(Reverse((at, k)));
                true
            }
            _ => false,
        }
    }

    /// Marks `k` finished (merged into another address, or complete).
    pub(crate) fn set_finished(&mut self, k: Key) {
        if let Some(s) = self.slot_mut(k)
            && !s.is(Tag::InFlight)
        {
            s.tag = Tag::Finished;
        }
    }

    /// Marks `k` as btda's own address (adding it if unknown): never visited.
    pub(crate) fn set_ours(&mut self, k: Key, now: Instant) {
        let now = self.tick(now);
        let (slot, _) = self.slot_or_insert(k, Slot::new(Tag::Ours, now, now));
        if !slot.is(Tag::InFlight) {
            slot.tag = Tag::Ours;
        }
    }

    /// Makes every parked peer that `release` picks due now; returns how many.
    pub(crate) fn release_parked(
        &mut self,
        now: Instant,
        mut release: impl FnMut(Key) -> bool,
    ) -> usize {
        let now = self.tick(now);
        let mut released = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(s) = slot.as_mut() else { continue };
            let k = i as Key;
            if s.is(Tag::Parked) && release(k) {
                s.set(Tag::Waiting, now);
                s.first_due = now;
                s.why = Reason::First;
                released.push(k);
            }
        }
        for &k in &released {
            self.queue(now, k);
        }
        released.len()
    }

    /// Parked peers that `pick` accepts, at most `max`.
    pub(crate) fn parked(&self, max: usize, mut pick: impl FnMut(Key) -> bool) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some_and(|s| s.is(Tag::Parked)))
            .map(|(i, _)| i as Key)
            .filter(|&k| pick(k))
            .take(max)
            .collect()
    }

    /// Counts by state.
    pub fn counts(&self, now: Instant) -> StateCounts {
        let now = self.tick(now);
        let mut c = StateCounts {
            in_flight: self.in_flight,
            ..StateCounts::default()
        };
        for s in self.slots.iter().flatten() {
            c.known += 1;
            match s.tag {
                Tag::Waiting if s.at <= now => c.due += 1,
                Tag::Held => c.due += 1,
                Tag::Finished => c.finished += 1,
                Tag::Dropped => c.dropped += 1,
                _ => {}
            }
            c.reached += u64::from(s.reach == Reach::Reached);
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            revisit_delay: Duration::from_secs(180),
            min_revisit: Duration::from_secs(15),
            first_revisit: Duration::from_secs(180),
            transient_retry: Duration::from_secs(15),
            backoff: vec![Duration::from_secs(60), Duration::from_secs(300)],
            silent_retries: 2,
            silent_slots: 256,
            cooldown: Duration::from_secs(1800),
        }
    }

    /// Pops as the queue does when the dial budget has room: handed out and sent.
    fn pop(s: &mut Scheduler, now: Instant) -> Popped<u32> {
        let popped = s.pop_due(now, true, |_| false);
        if let Popped::Visit(k, _) = popped {
            s.dispatched(k, now);
        }
        popped
    }

    /// Lists first contact `k` at `at` and holds it back, as the queue does when the dial
    /// budget is booked.
    fn hold_new(s: &mut Scheduler, k: Key, at: Instant) {
        s.add(k, at, true);
        assert_eq!(s.pop_due(at, false, |_| false), Popped::Visit(k, 1));
        s.hold(k, at);
    }

    /// The next `n` peers handed out at `at` with budget room, with their attempts.
    fn pops(s: &mut Scheduler, at: Instant, n: usize) -> Vec<(Key, u32)> {
        (0..n)
            .map(|_| match pop(s, at) {
                Popped::Visit(k, attempt) => (k, attempt),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_first_visit_deferred_by_the_dial_budget_waits_from_when_it_was_due() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        s.add(1, t0, true);
        // Handed out at once, but the budget's next slot is 40 s away.
        let first = t0 + Duration::from_millis(10);
        assert_eq!(s.pop_due(first, true, |_| false), Popped::Visit(1, 1));
        s.defer(1, t0 + Duration::from_secs(40));
        assert_eq!(
            pop(&mut s, t0 + Duration::from_secs(39)),
            Popped::Wait(Some(t0 + Duration::from_secs(40)))
        );
        assert_eq!(
            pop(&mut s, t0 + Duration::from_secs(40)),
            Popped::Visit(1, 1),
            "a deferral is not an attempt"
        );
        let waited = s.lateness().first_wait_p99_ms.unwrap() as f64;
        assert!((40_000.0..=40_000.0 * 1.091).contains(&waited), "{waited}");
    }

    #[test]
    fn first_contacts_named_in_pex_go_out_before_the_other_held_ones() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        // Six first contacts listed one a second, all held: the budget is booked.
        for k in 1..=6 {
            hold_new(&mut s, k, t0 + Duration::from_secs(k.into()));
        }
        // A peer names 2 and 4 (held now); then 7, listed and held after that, and 8,
        // vouched for while still waiting in the heap (held later).
        s.vouch(2, t0);
        s.vouch(4, t0);
        let at = t0 + Duration::from_secs(10);
        s.add(7, at, true);
        s.add(8, at, true);
        s.vouch(8, at);
        for k in [7, 8] {
            assert_eq!(s.pop_due(at, false, |_| false), Popped::Visit(k, 1));
            s.hold(k, at);
        }
        let order: Vec<Key> = (0..8)
            .map(|_| match pop(&mut s, at) {
                Popped::Visit(k, 1) => k,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(order, vec![2, 4, 8, 7, 6, 5, 3, 1]);
        // A reached peer named in PEX keeps its revisit time; vouching twice, or for a
        // peer handed out, adds no second turn.
        s.finish(
            1,
            Ended::Reached {
                complete: false,
                eta: None,
            },
            at,
        );
        s.vouch(1, at);
        s.vouch(8, at);
        s.vouch(4, at);
        assert_eq!(
            s.pop_due(at, true, |_| false),
            Popped::Wait(Some(at + Duration::from_secs(180)))
        );
    }

    #[test]
    fn a_peer_seen_once_without_a_rate_is_looked_at_again_sooner() {
        let t0 = Instant::now();
        let policy = Policy {
            first_revisit: Duration::from_secs(30),
            ..policy()
        };
        let mut s = Scheduler::starting(policy, t0);
        let no_rate = Ended::Reached {
            complete: false,
            eta: None,
        };
        s.add(1, t0, true);
        assert_eq!(pop(&mut s, t0), Popped::Visit(1, 1));
        s.finish(1, no_rate, t0);
        let second = t0 + Duration::from_secs(30);
        assert_eq!(s.state(1), Some(State::Waiting(second)));
        assert_eq!(s.reason(1), Some(Reason::Fixed));
        // Still no rate after the second look: the fixed delay from then on.
        assert_eq!(pop(&mut s, second), Popped::Visit(1, 2));
        s.finish(1, no_rate, second);
        assert_eq!(
            s.state(1),
            Some(State::Waiting(second + Duration::from_secs(180)))
        );
        // A peer first seen when it connected in gets the sooner look too.
        s.add(2, t0, false);
        assert!(s.after_incoming(2, false, true, None, t0));
        assert_eq!(s.state(2), Some(State::Waiting(second)));
    }

    #[test]
    fn a_silent_address_named_in_pex_is_retried_at_once_once_per_failure() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        // Refused: its retry waits in the silent heap until 60 s.
        s.add(1, t0, true);
        assert_eq!(pop(&mut s, t0), Popped::Visit(1, 1));
        s.finish(1, Ended::Failed, t0);
        let at = t0 + Duration::from_secs(5);
        assert_eq!(
            pop(&mut s, at),
            Popped::Wait(Some(t0 + Duration::from_secs(60)))
        );
        // A peer names it: retried now, as a held first contact named in PEX would be.
        s.vouch(1, at);
        assert_eq!(pop(&mut s, at), Popped::Visit(1, 2));
        // Named twice while that retry is under way: one turn after it fails again;
        // then its retries are spent and it is dropped, named or not.
        s.vouch(1, at);
        s.vouch(1, at);
        s.finish(1, Ended::Failed, at);
        s.vouch(1, at);
        s.vouch(1, at);
        assert_eq!(pop(&mut s, at), Popped::Visit(1, 3));
        s.finish(1, Ended::Failed, at);
        assert!(
            matches!(s.state(1), Some(State::Dropped(_))),
            "{:?}",
            s.state(1)
        );
        s.vouch(1, at);
        assert!(!matches!(pop(&mut s, at), Popped::Visit(..)));
    }

    #[test]
    fn an_address_that_failed_in_its_handshake_is_retried_at_once_when_named() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        // Connected, then closed in the handshake: retried after 15 s.
        s.add(1, t0, true);
        assert_eq!(pop(&mut s, t0), Popped::Visit(1, 1));
        s.finish(1, Ended::Transient, t0);
        assert_eq!(s.reach(1), Some(Reach::Answered));
        let at = t0 + Duration::from_secs(5);
        assert!(!matches!(pop(&mut s, at), Popped::Visit(..)));
        s.vouch(1, at);
        assert_eq!(pop(&mut s, at), Popped::Visit(1, 2));
    }

    #[test]
    fn a_silent_address_that_connects_in_is_retried_as_a_reached_peer() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        // Never answered a SYN: its retry waits in the silent heap (due at 60 s).
        s.add(1, t0, true);
        assert_eq!(pop(&mut s, t0), Popped::Visit(1, 1));
        s.finish(1, Ended::Failed, t0);
        assert_eq!(s.reach(1), Some(Reach::Never));
        // It connects in (a NAT-like peer): reached, revisit at 180 s; the retry at 60 s
        // stays, and goes out even while the dial budget has no room (silent addresses
        // wait for it; reached peers do not).
        assert!(s.after_incoming(1, false, true, None, t0 + Duration::from_secs(1)));
        let at = t0 + Duration::from_secs(60);
        assert_eq!(s.pop_due(at, false, |_| false), Popped::Visit(1, 2));
        assert_eq!(s.lateness().revisits_on_time, Some(1.0));
    }

    #[test]
    fn held_first_contacts_go_out_newest_first_after_due_peers_and_before_silent_ones() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        // A silent address (failed once), due again at 60 s.
        s.add(100, t0, true);
        assert_eq!(pop(&mut s, t0), Popped::Visit(100, 1));
        s.finish(100, Ended::Failed, t0);
        // Five first contacts listed one a second, all held: the budget is booked.
        for k in 1..=5 {
            hold_new(&mut s, k, t0 + Duration::from_secs(k.into()));
        }
        assert_eq!(
            s.state(3),
            Some(State::Waiting(t0 + Duration::from_secs(3)))
        );
        let at = t0 + Duration::from_secs(70);
        assert_eq!(
            s.pop_due(at, false, |_| false),
            Popped::Wait(None),
            "no room: neither the held ones nor the due silent retry"
        );
        // Room again; a peer listed now comes first, then the held ones newest first
        // (holding is not an attempt), then the silent retry.
        s.add(6, at, true);
        assert_eq!(
            pops(&mut s, at, 7),
            vec![(6, 1), (5, 1), (4, 1), (3, 1), (2, 1), (1, 1), (100, 2)]
        );
        // The first one held waited 69 s for its visit.
        let waited = s.lateness().first_wait_max_ms.unwrap() as f64;
        assert!((69_000.0..=69_000.0 * 1.091).contains(&waited), "{waited}");
        // An incoming visit reaches a held peer: it leaves the backlog for a revisit.
        hold_new(&mut s, 7, at);
        assert!(s.after_incoming(7, false, true, None, at));
        assert_eq!(
            pop(&mut s, at),
            Popped::Wait(Some(at + Duration::from_secs(180)))
        );
    }

    #[test]
    fn held_retries_of_addresses_that_answered_go_after_held_first_contacts() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        // An address that connected and reset: a transient failure, retried at 15 s.
        s.add(50, t0, true);
        assert_eq!(pop(&mut s, t0), Popped::Visit(50, 1));
        s.finish(50, Ended::Transient, t0);
        // Three first contacts listed, all held: the budget is booked.
        for k in 1..=3 {
            hold_new(&mut s, k, t0);
        }
        // The retry comes due and is held too, after them (the newest held).
        let at = t0 + Duration::from_secs(15);
        assert_eq!(s.pop_due(at, false, |_| false), Popped::Visit(50, 2));
        s.hold(50, at);
        // Room again: the first contacts newest first, then the retry.
        assert_eq!(pops(&mut s, at, 4), vec![(3, 1), (2, 1), (1, 1), (50, 2)]);
    }

    #[test]
    fn silent_addresses_hold_at_most_their_slots_and_never_delay_others() {
        let t0 = Instant::now();
        let policy = Policy {
            silent_slots: 2,
            ..policy()
        };
        let mut s = Scheduler::starting(policy, t0);
        for k in 0..4 {
            s.add(k, t0, true);
            assert_eq!(pop(&mut s, t0), Popped::Visit(k, 1));
            s.finish(k, Ended::Failed, t0); // never answered: retried after 60 s
        }
        // A live peer revisited at 70 s and a fresh one listed at 65 s: both due after
        // the four retries.
        s.add(10, t0, true);
        assert_eq!(pop(&mut s, t0), Popped::Visit(10, 1));
        let reached = Ended::Reached {
            complete: false,
            eta: Some(Duration::from_secs(69)),
        };
        s.finish(10, reached, t0);
        let fresh_at = t0 + Duration::from_secs(65);
        s.add(11, fresh_at, true);
        let at = t0 + Duration::from_secs(100);
        // Due order: two retries, then the cap holds the other two back.
        assert_eq!(pop(&mut s, at), Popped::Visit(0, 2));
        assert_eq!(pop(&mut s, at), Popped::Visit(1, 2));
        assert_eq!(pop(&mut s, at), Popped::Visit(11, 1));
        assert!(matches!(pop(&mut s, at), Popped::Visit(10, 2)));
        assert_eq!(
            pop(&mut s, at),
            Popped::Wait(None),
            "both silent slots taken"
        );
        // A silent visit ends: its slot goes to the next silent address, and finish
        // says a waiting worker should look.
        assert!(s.finish(0, Ended::Failed, at));
        assert_eq!(pop(&mut s, at), Popped::Visit(2, 2));
        assert_eq!(pop(&mut s, at), Popped::Wait(None));
        // A deferred silent visit gives its slot back too.
        s.defer(1, at + Duration::from_secs(5));
        assert_eq!(pop(&mut s, at), Popped::Visit(3, 2));
        assert_eq!(
            pop(&mut s, at + Duration::from_secs(5)),
            Popped::Wait(None),
            "1 is due again, but the slots are taken"
        );
    }

    #[test]
    fn lateness_of_first_visits_and_revisits_is_measured() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        assert_eq!(s.lateness(), Lateness::default(), "nothing handed out yet");
        s.add(1, t0, true);
        s.add(2, t0, true);
        // Peer 1 waits 2 s for its first visit, peer 2 5 s.
        assert_eq!(
            pop(&mut s, t0 + Duration::from_secs(2)),
            Popped::Visit(1, 1)
        );
        assert_eq!(
            pop(&mut s, t0 + Duration::from_secs(5)),
            Popped::Visit(2, 1)
        );
        let done = t0 + Duration::from_secs(6);
        s.finish(
            1,
            Ended::Reached {
                complete: false,
                eta: None,
            },
            done,
        );
        s.finish(2, Ended::Failed, done);
        // Peer 1's revisit is due 180 s later and handed out 30 s late; a failed
        // peer's retry is not a revisit.
        let late = done + Duration::from_secs(210);
        assert_eq!(pop(&mut s, late), Popped::Visit(2, 2));
        assert_eq!(pop(&mut s, late), Popped::Visit(1, 2));
        let l = s.lateness();
        let first = l.first_wait_p99_ms.unwrap() as f64;
        assert!((5_000.0..=5_000.0 * 1.091).contains(&first), "{l:?}");
        let revisit = l.revisit_late_p99_ms.unwrap() as f64;
        assert!((30_000.0..=30_000.0 * 1.091).contains(&revisit), "{l:?}");
        assert_eq!(l.revisits_on_time, Some(0.0), "30 s late is beyond 18 s");
    }

    #[test]
    fn predicted_revisits_transient_retries_and_their_reasons() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut s = Scheduler::starting(policy(), t0);
        for k in 1..=3 {
            s.add(k, t0, true);
            assert_eq!(s.reason(k), Some(Reason::First));
            assert!(matches!(pop(&mut s, t0), Popped::Visit(_, 1)));
        }
        // A peer predicted to pass T in 40 s is revisited then, plus a 2 s margin.
        let eta = Some(secs(40));
        s.finish(
            1,
            Ended::Reached {
                complete: false,
                eta,
            },
            t0,
        );
        assert_eq!(s.state(1), Some(State::Waiting(t0 + secs(42))));
        assert_eq!(s.reason(1), Some(Reason::Predicted));
        // A peer that accepted the connection but failed the handshake: 15 s, then
        // the regular backoff; one that never answered: the first backoff step.
        s.finish(2, Ended::Transient, t0);
        assert_eq!(s.state(2), Some(State::Waiting(t0 + secs(15))));
        assert_eq!(s.reason(2), Some(Reason::Retry));
        s.finish(3, Ended::Failed, t0);
        assert_eq!(s.state(3), Some(State::Waiting(t0 + secs(60))));
        assert_eq!(pop(&mut s, t0 + secs(15)), Popped::Visit(2, 2));
        s.finish(2, Ended::Transient, t0 + secs(15));
        assert_eq!(s.state(2), Some(State::Waiting(t0 + secs(315))));
        // An incoming visit of a waiting peer moves its visit earlier when its rate says
        // so, never later.
        assert!(s.after_incoming(1, false, true, Some(secs(10)), t0 + secs(1)));
        assert_eq!(s.state(1), Some(State::Waiting(t0 + secs(16))));
        assert!(!s.after_incoming(1, false, true, None, t0 + secs(2)));
        assert_eq!(s.state(1), Some(State::Waiting(t0 + secs(16))));
        assert_eq!(pop(&mut s, t0 + secs(16)), Popped::Visit(1, 2));
        assert_eq!(s.reason(1), Some(Reason::Predicted));
    }

    #[test]
    fn due_order_revisits_and_finish() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        assert_eq!(s.add(1, t0, true), Added::New);
        assert_eq!(s.add(2, t0 + Duration::from_secs(1), true), Added::New);
        assert_eq!(s.add(1, t0, true), Added::Duplicate);
        assert_eq!(pop(&mut s, t0), Popped::Visit(1, 1));
        assert_eq!(
            pop(&mut s, t0),
            Popped::Wait(Some(t0 + Duration::from_secs(1)))
        );
        s.finish(
            1,
            Ended::Reached {
                complete: false,
                eta: None,
            },
            t0,
        );
        assert_eq!(
            s.state(1),
            Some(State::Waiting(t0 + Duration::from_secs(180)))
        );
        assert_eq!(
            pop(&mut s, t0 + Duration::from_secs(2)),
            Popped::Visit(2, 1)
        );
        s.finish(
            2,
            Ended::Reached {
                complete: true,
                eta: None,
            },
            t0,
        );
        assert_eq!(s.state(2), Some(State::Finished));
        assert_eq!(
            pop(&mut s, t0 + Duration::from_secs(180)),
            Popped::Visit(1, 2)
        );
        assert_eq!(s.counts(t0).in_flight, 1);
    }

    #[test]
    fn never_reached_peers_drop_and_come_back_after_the_cool_down() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        s.add(7, t0, true);
        let mut now = t0;
        for _ in 0..3 {
            let Popped::Visit(k, _) = pop(&mut s, now + Duration::from_secs(1000)) else {
                panic!("due")
            };
            now += Duration::from_secs(1000);
            s.finish(k, Ended::Failed, now);
        }
        assert_eq!(s.reach(7), Some(Reach::Never));
        assert!(matches!(s.state(7), Some(State::Dropped(_))));
        assert_eq!(
            s.add(7, now + Duration::from_secs(10), true),
            Added::CoolingDown
        );
        assert_eq!(s.add(7, now + Duration::from_secs(1801), true), Added::New);
    }

    #[test]
    fn silent_addresses_keep_the_measured_timeout_and_get_fewer_retries() {
        let t0 = Instant::now();
        let policy = Policy {
            backoff: [60, 300, 900].map(Duration::from_secs).to_vec(),
            silent_retries: 2,
            ..policy()
        };
        let mut s = Scheduler::starting(policy.clone(), t0);
        s.add(7, t0, true);
        let mut now = t0;
        let mut timeout_attempts = Vec::new();
        while let Popped::Visit(k, attempt) = pop(&mut s, now + Duration::from_secs(1000)) {
            now += Duration::from_secs(1000);
            timeout_attempts.push((attempt, s.timeout_attempt(k, attempt)));
            s.finish(k, Ended::Failed, now);
        }
        // Three attempts (two retries, not three), all at the measured timeout.
        assert_eq!(timeout_attempts, vec![(1, 1), (2, 1), (3, 1)]);
        assert!(matches!(s.state(7), Some(State::Dropped(_))));

        // An address that made a connection once is not silent: every retry of the
        // backoff, timeouts doubled per attempt.
        let mut s = Scheduler::starting(policy, t0);
        s.add(8, t0, true);
        let mut now = t0;
        let mut attempts = Vec::new();
        while let Popped::Visit(k, attempt) = pop(&mut s, now + Duration::from_secs(1000)) {
            now += Duration::from_secs(1000);
            attempts.push(s.timeout_attempt(k, attempt));
            let ended = if attempt == 1 {
                Ended::Transient
            } else {
                Ended::Failed
            };
            s.finish(k, ended, now);
        }
        assert_eq!(s.reach(8), Some(Reach::Answered));
        assert_eq!(attempts, vec![1, 2, 3, 4]);
    }

    #[test]
    fn reached_peers_are_not_dropped_while_listed() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        s.add(7, t0, true);
        assert_eq!(pop(&mut s, t0), Popped::Visit(7, 1));
        s.finish(
            7,
            Ended::Reached {
                complete: false,
                eta: None,
            },
            t0,
        );
        let mut now = t0;
        for _ in 0..6 {
            now += Duration::from_secs(400);
            s.add(7, now, true); // the tracker keeps listing it
            let Popped::Visit(k, _) = pop(&mut s, now) else {
                panic!("due at {now:?}")
            };
            s.finish(k, Ended::Failed, now);
            assert!(
                matches!(s.state(7), Some(State::Waiting(_))),
                "retried, not dropped"
            );
        }
        // No source lists it any more: after the cool-down it is dropped.
        now += Duration::from_secs(2000);
        let Popped::Visit(k, _) = pop(&mut s, now) else {
            panic!("due")
        };
        s.finish(k, Ended::Failed, now);
        assert!(matches!(s.state(7), Some(State::Dropped(_))));
    }

    #[test]
    fn busy_peers_wait_and_ours_are_never_visited() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        s.add(1, t0, true);
        assert_eq!(
            s.pop_due(t0, true, |_| true),
            Popped::Wait(Some(t0 + BUSY_DELAY))
        );
        assert_eq!(pop(&mut s, t0 + BUSY_DELAY), Popped::Visit(1, 1));
        s.finish(1, Ended::Ours, t0);
        assert_eq!(s.add(1, t0, true), Added::Ours);
        s.set_ours(2, t0);
        assert_eq!(s.add(2, t0, true), Added::Ours);
        assert_eq!(
            pop(&mut s, t0 + Duration::from_secs(999)),
            Popped::Wait(None)
        );
    }

    #[test]
    fn retries_do_not_count_and_parked_peers_are_released() {
        let t0 = Instant::now();
        let mut s = Scheduler::starting(policy(), t0);
        s.add(3, t0, false);
        assert_eq!(pop(&mut s, t0), Popped::Wait(None));
        assert_eq!(s.parked(10, |_| true), vec![3]);
        assert_eq!(s.release_parked(t0, |k| k == 3), 1);
        assert_eq!(pop(&mut s, t0), Popped::Visit(3, 1));
        s.finish(3, Ended::Retry, t0);
        assert_eq!(
            pop(&mut s, t0 + Duration::from_secs(60)),
            Popped::Visit(3, 1)
        );
        assert!(!s.after_incoming(4, false, true, None, t0), "unknown peer");
        s.add(4, t0, false);
        assert!(s.after_incoming(4, false, true, None, t0));
        s.add(5, t0, false);
        assert!(!s.after_incoming(5, true, true, None, t0));
        assert_eq!(s.state(5), Some(State::Finished));
    }
}
