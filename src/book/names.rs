//! Client names shared between peers.
//!
//! Every peer that answers names its client three times (name and version decoded from
//! the peer id, BEP 10 `v`), yet a whole campaign meets a few hundred distinct values.
//! Kept per peer as `String`s they cost about 100 bytes of heap and 72 bytes inline in
//! each of hundreds of thousands of peers; shared, each peer holds one pointer to its
//! [`Client`], itself shared between the peers that give the same three values.
//! Values come from peers, so the tables are bounded: once one holds [`MAX_NAMES`]
//! values (or the strings [`MAX_BYTES`] of text), a new value is kept unshared —
//! correct, only not deduplicated — and a hostile peer inventing names cannot grow the
//! tables further.

use std::collections::HashSet;
use std::sync::Arc;

/// Distinct values shared at most.
const MAX_NAMES: usize = 4_096;
/// Text shared at most, bytes.
const MAX_BYTES: usize = 256 * 1024;

/// What a peer said its client is.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Client {
    /// Name decoded from the peer id.
    pub(crate) name: Option<Arc<str>>,
    /// Version decoded from the peer id.
    pub(crate) version: Option<Arc<str>>,
    /// BEP 10 `v`.
    pub(crate) v: Option<Arc<str>>,
}

/// Bounded tables of shared strings and of shared [`Client`]s.
#[derive(Debug, Default)]
pub(crate) struct Names {
    shared: HashSet<Arc<str>>,
    bytes: usize,
    clients: HashSet<Arc<Client>>,
}

impl Names {
    /// The shared copy of `value` (added to the table while it has room), else a copy
    /// of its own.
    fn get(&mut self, value: &str) -> Arc<str> {
        if let Some(found) = self.shared.get(value) {
            return Arc::clone(found);
        }
        let made: Arc<str> = Arc::from(value);
        if self.shared.len() < MAX_NAMES && self.bytes + value.len() <= MAX_BYTES {
            self.bytes += value.len();
            self.shared.insert(Arc::clone(&made));
        }
        made
    }

    /// Applies what a visit said of the client to `current`: the peer id's name and
    /// version replace the old pair (a version may go), BEP 10 `v` replaces the old
    /// one, and what the visit did not say stays. A new [`Client`] is looked up only
    /// when something changed.
    pub(crate) fn update(
        &mut self,
        current: &mut Option<Arc<Client>>,
        from_id: Option<&(String, Option<String>)>,
        v: Option<&str>,
    ) {
        if from_id.is_none() && v.is_none() {
            return;
        }
        let was = current.as_deref();
        let (name, version) = match from_id {
            Some((name, version)) => (Some(name.as_str()), version.as_deref()),
            None => (
                was.and_then(|c| c.name.as_deref()),
                was.and_then(|c| c.version.as_deref()),
            ),
        };
        let v = v.or(was.and_then(|c| c.v.as_deref()));
        let same = was.is_some_and(|c| {
            (c.name.as_deref(), c.version.as_deref(), c.v.as_deref()) == (name, version, v)
        });
        if !same {
            *current = Some(self.client(name, version, v));
        }
    }

    /// The shared [`Client`] of these three values (added to the table while it has
    /// room), else one of its own.
    fn client(
        &mut self,
        name: Option<&str>,
        version: Option<&str>,
        v: Option<&str>,
    ) -> Arc<Client> {
        let client = Client {
            name: name.map(|x| self.get(x)),
            version: version.map(|x| self.get(x)),
            v: v.map(|x| self.get(x)),
        };
        if let Some(found) = self.clients.get(&client) {
            return Arc::clone(found);
        }
        let made = Arc::new(client);
        if self.clients.len() < MAX_NAMES {
            self.clients.insert(Arc::clone(&made));
        }
        made
    }

    /// Distinct values shared.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shared.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_are_one_allocation() {
        let mut names = Names::default();
        let a = names.get("qBittorrent");
        let b = names.get(&String::from("qBittorrent"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a, "qBittorrent");
        let c = names.get("Transmission");
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(names.len(), 2);
    }

    #[test]
    fn a_full_table_keeps_new_values_unshared_and_correct() {
        let mut names = Names::default();
        for i in 0..MAX_NAMES + 10 {
            assert_eq!(&*names.get(&format!("client {i}")), format!("client {i}"));
        }
        assert_eq!(names.len(), MAX_NAMES);
        let a = names.get("late");
        let b = names.get("late");
        assert_eq!(a, b);
        assert!(!Arc::ptr_eq(&a, &b), "not shared once the table is full");
        // Values shared before it filled still are.
        assert!(Arc::ptr_eq(&names.get("client 0"), &names.get("client 0")));
    }

    #[test]
    fn equal_clients_are_one_allocation_and_the_table_is_bounded() {
        let mut names = Names::default();
        let a = names.client(Some("qBittorrent"), Some("4.6.2"), None);
        let b = names.client(Some("qBittorrent"), Some("4.6.2"), None);
        assert!(Arc::ptr_eq(&a, &b));
        let c = names.client(
            Some("qBittorrent"),
            Some("4.6.2"),
            Some("qBittorrent/4.6.2"),
        );
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(c.v.as_deref(), Some("qBittorrent/4.6.2"));
        assert!(Arc::ptr_eq(
            c.name.as_ref().unwrap(),
            a.name.as_ref().unwrap()
        ));
        for i in 0..MAX_NAMES + 10 {
            names.client(Some("x"), None, Some(&format!("x/{i}")));
        }
        assert_eq!(names.clients.len(), MAX_NAMES);
        let late = names.client(Some("late"), None, None);
        assert_eq!(late.name.as_deref(), Some("late"));
        assert!(!Arc::ptr_eq(&late, &names.client(Some("late"), None, None)));
    }

    #[test]
    fn long_values_fill_the_byte_bound_first() {
        let mut names = Names::default();
        let long = "x".repeat(MAX_BYTES / 2 + 1);
        names.get(&long);
        names.get(&format!("{long}y"));
        assert_eq!(names.len(), 1, "the second would pass {MAX_BYTES} bytes");
    }
}
