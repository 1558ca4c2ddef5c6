//! Client names shared between peers.
//!
//! Every peer that answers names its client three times (name and version decoded from
//! the peer id, BEP 10 `v`), yet a whole campaign meets a few hundred distinct values.
//! Kept per peer as `String`s they cost about 100 bytes of heap and 72 bytes inline in
//! each of hundreds of thousands of peers; shared, each peer holds three pointers.
//! Values come from peers, so the table is bounded: once it holds [`MAX_NAMES`] values
//! (or [`MAX_BYTES`] of text), a new value is kept unshared — correct, only not
//! deduplicated — and a hostile peer inventing names cannot grow the table further.

use std::collections::HashSet;
use std::sync::Arc;

/// Distinct values shared at most.
pub(crate) const MAX_NAMES: usize = 4_096;
/// Text shared at most, bytes.
pub(crate) const MAX_BYTES: usize = 256 * 1024;

/// A bounded table of shared strings.
#[derive(Debug, Default)]
pub(crate) struct Names {
    shared: HashSet<Arc<str>>,
    bytes: usize,
}

impl Names {
    /// The shared copy of `value` (added to the table while it has room), else a copy
    /// of its own.
    pub(crate) fn get(&mut self, value: &str) -> Arc<str> {
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
    fn long_values_fill_the_byte_bound_first() {
        let mut names = Names::default();
        let long = "x".repeat(MAX_BYTES / 2 + 1);
        names.get(&long);
        names.get(&format!("{long}y"));
        assert_eq!(names.len(), 1, "the second would pass {MAX_BYTES} bytes");
    }
}
