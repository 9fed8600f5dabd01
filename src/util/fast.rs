//! Hash maps for the routing tables' integer keys (session, request, subscription and
//! registration IDs) and for the exact-match URI index: foldhash instead of the standard
//! library's SipHash, which cost ~7 % of the RPC path (`bench/FINDINGS.md`). The integer keys
//! are router-chosen or validated IDs; the URIs are peer-chosen but validated, and every map is
//! per shard and bounded by the session limits (subscriptions and registrations per session,
//! sessions per shard). foldhash's per-process random seed keeps a peer from predicting
//! collisions; it is not a keyed cryptographic hash, so a peer that could observe the timing of
//! many lookups might in principle learn enough to aim collisions, which the limits bound.

/// A `HashMap` with foldhash (create with `default()`).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` with foldhash (create with `default()`).
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
