//! A bounded set of record ids, least recently used forgotten first. Ids are held as keyed
//! 64-bit hashes (about 60 bytes an entry instead of about 150 for the text): a random key per
//! set means nobody can aim for a collision, and by chance one (a new record taken for one
//! already stored) is about one in 10^14 at 100,000 ids.

use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;

use lru::LruCache;

#[derive(Debug)]
pub struct IdSet {
    ids: LruCache<u64, ()>,
    hasher: RandomState,
}

impl IdSet {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        IdSet { ids: LruCache::new(capacity), hasher: RandomState::new() }
    }

    /// Whether `id` is held, without making it more recent.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(&self.hasher.hash_one(id))
    }

    /// Whether `id` is held, making it the most recent if so.
    pub fn touch(&mut self, id: &str) -> bool {
        self.ids.get(&self.hasher.hash_one(id)).is_some()
    }

    /// Forgets `id` (a record refused for a reason of ours, to be taken when offered again).
    pub fn forget(&mut self, id: &str) {
        self.ids.pop(&self.hasher.hash_one(id));
    }

    /// Adds `id` (or makes it the most recent).
    pub fn put(&mut self, id: &str) {
        self.ids.put(self.hasher.hash_one(id), ());
    }
}

#[cfg(test)]
mod tests {
    use super::IdSet;

    #[test]
    fn holds_the_most_recent_ids() {
        let mut set = IdSet::new(2);
        set.put("a");
        set.put("b");
        assert!(set.touch("a"));
        set.put("c");
        assert!(set.contains("a") && set.contains("c"));
        assert!(!set.contains("b"), "the least recently used went first");
        assert!(!set.touch("b"));
    }
}
