//! The routing table: 160 k-buckets of 8 nodes each, indexed by the highest bit in which
//! a node's id differs from ours (BEP 5).

use std::time::{Duration, Instant};

use super::krpc::{NodeId, NodeInfo};

/// Nodes per bucket.
pub(super) const K: usize = 8;
/// A node that failed this many queries in a row is replaced by the next good one.
const BAD_AFTER_FAILURES: u32 = 2;
/// A bucket untouched this long is refreshed with a lookup.
pub(super) const REFRESH_AFTER: Duration = Duration::from_secs(15 * 60);

/// XOR distance between two ids, as a big-endian number.
pub(super) fn distance(a: &NodeId, b: &NodeId) -> [u8; 20] {
    let mut d = [0u8; 20];
    for i in 0..20 {
        d[i] = a[i] ^ b[i];
    }
    d
}

/// Bucket index of `other` seen from `own`: 159 for the farthest half, 0 for the id that
/// differs only in the last bit; `None` for our own id.
pub(super) fn bucket_index(own: &NodeId, other: &NodeId) -> Option<usize> {
    let d = distance(own, other);
    let byte = d.iter().position(|&b| b != 0)?;
    Some(159 - (byte * 8 + d[byte].leading_zeros() as usize))
}

#[derive(Debug, Clone)]
struct Entry {
    node: NodeInfo,
    last_seen: Instant,
    failures: u32,
}

/// The table.
#[derive(Debug)]
pub(super) struct RoutingTable {
    own: NodeId,
    buckets: Vec<Vec<Entry>>,
    touched: Vec<Instant>,
}

impl RoutingTable {
    /// An empty table around our id.
    pub(super) fn new(own: NodeId) -> Self {
        Self {
            own,
            buckets: vec![Vec::new(); 160],
            touched: vec![Instant::now(); 160],
        }
    }

    /// Our id.
    pub(super) fn own_id(&self) -> NodeId {
        self.own
    }

    /// Records a node that answered a query of ours (only those enter: a node that
    /// merely queries us could be anyone's address). Returns whether it is in the table.
    pub(super) fn seen(&mut self, node: NodeInfo) -> bool {
        let Some(i) = bucket_index(&self.own, &node.id) else {
            return false;
        };
        let now = Instant::now();
        self.touched[i] = now;
        let bucket = &mut self.buckets[i];
        if let Some(e) = bucket.iter_mut().find(|e| e.node.id == node.id) {
            e.node.addr = node.addr;
            e.last_seen = now;
            e.failures = 0;
            return true;
        }
        let fresh = Entry {
            node,
            last_seen: now,
            failures: 0,
        };
        if bucket.len() < K {
            bucket.push(fresh);
            return true;
        }
        if let Some(bad) = bucket.iter_mut().find(|e| e.failures >= BAD_AFTER_FAILURES) {
            *bad = fresh;
            return true;
        }
        false // full of good nodes: keep the old ones (they are known to stay up)
    }

    /// A query from `node`: refreshes it if the table holds that id at that address
    /// (a node that once answered and still queries us stays good, as BEP 5 says);
    /// returns whether it could enter the table if it answered a query of ours (not
    /// held, and its bucket has room or a bad node).
    pub(super) fn queried_by(&mut self, node: NodeInfo) -> bool {
        let Some(i) = bucket_index(&self.own, &node.id) else {
            return false;
        };
        let bucket = &mut self.buckets[i];
        if let Some(e) = bucket.iter_mut().find(|e| e.node.id == node.id) {
            if e.node.addr == node.addr {
                e.last_seen = Instant::now();
            }
            return false;
        }
        bucket.len() < K || bucket.iter().any(|e| e.failures >= BAD_AFTER_FAILURES)
    }

    /// Records a query to `id` that went unanswered.
    pub(super) fn failed(&mut self, id: &NodeId) {
        if let Some(i) = bucket_index(&self.own, id)
            && let Some(e) = self.buckets[i].iter_mut().find(|e| &e.node.id == id)
        {
            e.failures += 1;
        }
    }

    /// The `n` known nodes closest to `target`, good ones only.
    pub(super) fn closest(&self, target: &NodeId, n: usize) -> Vec<NodeInfo> {
        let mut all: Vec<&Entry> = self
            .buckets
            .iter()
            .flatten()
            .filter(|e| e.failures < BAD_AFTER_FAILURES)
            .collect();
        all.sort_by_key(|e| distance(&e.node.id, target));
        all.into_iter().take(n).map(|e| e.node).collect()
    }

    /// Nodes in the table.
    pub(super) fn len(&self) -> usize {
        self.buckets.iter().map(Vec::len).sum()
    }

    /// Every node, for saving the table.
    pub(super) fn nodes(&self) -> Vec<NodeInfo> {
        self.buckets.iter().flatten().map(|e| e.node).collect()
    }

    /// Targets for refreshing buckets that hold nodes but were untouched for
    /// [`REFRESH_AFTER`]: an id inside each such bucket's range.
    pub(super) fn refresh_targets(&mut self, random: impl Fn() -> NodeId) -> Vec<NodeId> {
        let now = Instant::now();
        let mut targets = Vec::new();
        for i in 0..160 {
            if !self.buckets[i].is_empty() && now.duration_since(self.touched[i]) >= REFRESH_AFTER {
                targets.push(id_in_bucket(&self.own, i, random()));
                self.touched[i] = now;
            }
        }
        targets
    }
}

/// An id whose bucket index from `own` is `i`: our prefix, bit `159 - i` flipped, random
/// below it.
pub(super) fn id_in_bucket(own: &NodeId, i: usize, random: NodeId) -> NodeId {
    let bit = 159 - i; // position from the most significant bit
    let mut id = *own;
    for pos in bit..160 {
        let (byte, mask) = (pos / 8, 0x80u8 >> (pos % 8));
        if pos == bit {
            id[byte] ^= mask;
        } else {
            id[byte] = (id[byte] & !mask) | (random[byte] & mask);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn node(id: NodeId, host: u8) -> NodeInfo {
        NodeInfo {
            id,
            addr: SocketAddrV4::new(Ipv4Addr::new(127, 71, 0, host), 6881).into(),
        }
    }

    #[test]
    fn bucket_indices() {
        let own = [0u8; 20];
        let mut far = [0u8; 20];
        far[0] = 0x80;
        assert_eq!(bucket_index(&own, &far), Some(159));
        let mut near = [0u8; 20];
        near[19] = 1;
        assert_eq!(bucket_index(&own, &near), Some(0));
        assert_eq!(bucket_index(&own, &own), None);
        for i in [0, 7, 8, 100, 159] {
            assert_eq!(
                bucket_index(&own, &id_in_bucket(&own, i, [0xff; 20])),
                Some(i)
            );
        }
    }

    #[test]
    fn buckets_hold_eight_and_replace_bad_nodes() {
        let own = [0u8; 20];
        let mut t = RoutingTable::new(own);
        let ids: Vec<NodeId> = (1..=10u8)
            .map(|i| {
                let mut id = [0u8; 20];
                id[0] = 0x80 | i;
                id
            })
            .collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(t.seen(node(*id, i as u8)), i < K, "node {i}");
        }
        assert_eq!(t.len(), K);
        t.failed(&ids[0]);
        t.failed(&ids[0]);
        assert!(t.seen(node(ids[9], 9)), "a bad node makes room");
        assert!(!t.closest(&ids[0], 20).iter().any(|n| n.id == ids[0]));
    }

    #[test]
    fn closest_sorts_by_xor_distance() {
        // Ids 1..50 spread over buckets 152..157 (8 each at most) around our zero id.
        let mut t = RoutingTable::new([0; 20]);
        for i in 1..50u8 {
            t.seen(node([i; 20], i));
        }
        let got: Vec<u8> = t.closest(&[0x10; 20], 3).iter().map(|n| n.id[0]).collect();
        assert_eq!(got, vec![0x10, 0x11, 0x12]);
    }
}
