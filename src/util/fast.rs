//! Hash maps for the routing tables' integer keys (session, request, subscription and
//! registration IDs): foldhash instead of the standard library's SipHash, which cost ~7 % of
//! the RPC path (`bench/FINDINGS.md`). The keys are router-chosen or validated IDs, and every
//! map is per shard and bounded by the session limits; foldhash's per-process random seed keeps
//! a peer from predicting collisions.

/// A `HashMap` with foldhash (create with `default()`).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with foldhash (create with `default()`).
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
