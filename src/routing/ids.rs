//! Identifiers the routing core hands out, and where a URI's identity lives.
//!
//! - Router-scope IDs (subscription, registration) are allocated by the *home shard* of a
//!   `(realm, match policy, URI)` ([`home_shard`]) with an [`IdAllocator`]: small, sequential,
//!   strided by shard (`n * shard_count + shard + 1`) so two shards never hand out the same ID
//!   and values stay below 2^32 for a very long time (JavaScript MessagePack clients turn larger
//!   integers into BigInt). IDs are never reused within a run.
//! - Invocation request IDs are per callee session, sequential from 1, allocated by the shard
//!   that owns the callee (see `dealer`).
//! - In a cluster, every router-scope ID is offset by the node's share of the ID space
//!   ([`super::cluster::id_base`]: node ID in bits 42..53), so IDs are unique cluster-wide.
//! - Publication IDs are global-scope: random in `[1, 2^53]` ([`random_global_id`]).

use rand::Rng;

use crate::codec::uri::MatchPolicy;
use crate::codec::{Id, MAX_ID};

/// A WAMP session ID (global scope, random, unique across shards: the runtime allocates it).
pub type SessionId = Id;

/// The index of a shard (one per core), `0..shard_count`.
pub type ShardId = usize;

/// Allocates router-scope IDs on one shard: `n * shard_count + shard + 1` for `n = 0, 1, 2, …`.
#[derive(Debug, Clone)]
pub struct IdAllocator {
    /// Added to every ID: the node's share of the ID space in a cluster (0 otherwise).
    base: u64,
    shard: u64,
    stride: u64,
    next_n: u64,
}

impl IdAllocator {
    /// The allocator of `shard` among `shard_count` shards (a count of 0 is treated as 1).
    pub fn new(shard: ShardId, shard_count: usize) -> Self {
        Self::with_base(shard, shard_count, 0)
    }

    /// As [`IdAllocator::new`], every ID offset by `base` (a cluster node's
    /// [`super::cluster::id_base`]).
    pub fn with_base(shard: ShardId, shard_count: usize, base: u64) -> Self {
        let stride = shard_count.max(1) as u64;
        Self {
            base,
            shard: (shard as u64) % stride,
            stride,
            next_n: 0,
        }
    }

    /// The next ID. Saturates at 2^53 (reached after ~2^53 / shard_count allocations, i.e.
    /// never in practice); it never wraps into another shard's sequence.
    pub fn next_id(&mut self) -> Id {
        let id = self
            .next_n
            .saturating_mul(self.stride)
            .saturating_add(self.shard + 1)
            .saturating_add(self.base)
            .min(MAX_ID);
        self.next_n = self.next_n.saturating_add(1);
        id
    }
}

/// The home shard of a subscription or registration identity: FNV-1a over
/// `realm \0 policy \0 uri`, modulo the shard count. Stable across runs and platforms.
pub fn home_shard(realm: &str, policy: MatchPolicy, uri: &str, shard_count: usize) -> ShardId {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    };
    eat(realm.as_bytes());
    eat(&[0]);
    eat(policy.as_str().as_bytes());
    eat(&[0]);
    eat(uri.as_bytes());
    (h % shard_count.max(1) as u64) as ShardId
}

/// A random global-scope ID in `[1, 2^53]` (publication IDs).
pub fn random_global_id(rng: &mut impl Rng) -> Id {
    rng.gen_range(1..=MAX_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn allocator_strides_by_shard_and_never_collides() {
        let mut seen = std::collections::HashSet::new();
        for shard in 0..3 {
            let mut a = IdAllocator::new(shard, 3);
            for _ in 0..100 {
                let id = a.next_id();
                assert!((1..(1 << 32)).contains(&id));
                assert_eq!((id - 1) % 3, shard as u64);
                assert!(seen.insert(id));
            }
        }
        let mut single = IdAllocator::new(0, 1);
        assert_eq!((single.next_id(), single.next_id()), (1, 2));
    }

    #[test]
    fn home_shard_is_stable_and_in_range() {
        for n in [1, 2, 3, 7] {
            let h = home_shard("realm1", MatchPolicy::Exact, "com.a.b", n);
            assert!(h < n);
            assert_eq!(h, home_shard("realm1", MatchPolicy::Exact, "com.a.b", n));
        }
        assert_eq!(home_shard("r", MatchPolicy::Prefix, "x", 0), 0);
    }

    #[test]
    fn global_ids_in_range() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let id = random_global_id(&mut rng);
            assert!((1..=MAX_ID).contains(&id));
        }
    }
}
