//! Event retention (advanced profile, `pubsub_event_retention.md`): the latest retained event
//! of each topic, kept by every shard of the realm.
//!
//! **Where retained events live.** Every shard keeps a replica of the realm's retained events.
//! The *publisher's* shard stamps a `retain` publication ([`Stamp`]: its time, its shard, a
//! per-shard sequence), keeps it, and sends it to every other shard: together with the
//! publication to a shard with interest ([`PeerMsg::PublishRetained`](super::PeerMsg::PublishRetained), which that shard
//! delivers and keeps in one step), alone to the others ([`PeerMsg::Retain`](super::PeerMsg::Retain)). A subscriber
//! asking `get_retained` is answered from its own shard's replica, right after its SUBSCRIBED,
//! with no round trip.
//!
//! **Why from the publisher's shard, in one message, not via a home shard.** A subscription on
//! shard S becomes active only after every shard acknowledged S's interest. If the publisher's
//! shard P had acknowledged it before publishing, P sends `PublishRetained` to S: S delivers it
//! live if the subscription is active then, and otherwise keeps it, so it is in the replica
//! when the subscription activates. If P had not, P's `Retain` precedes its later ack on the
//! FIFO channel P → S, so again the replica holds it before SUBSCRIBED. Either way a new
//! subscriber gets the event exactly once, live or retained. (Two separate messages, or a home
//! shard in between, would leave a window where an ack from a third shard activates the
//! subscription between "delivered" and "kept": the harness test
//! `exactly_once_under_random_interleavings` found it.)
//!
//! **Why every replica agrees.** Updates of one topic may come from several shards in different
//! orders, so a replica keeps, per topic, the event with the greatest [`Stamp`]
//! ("most recent", last writer wins), not the last one to arrive. The bounds
//! ([`RetentionLimits`]) are applied the same way: the store is the newest events by stamp that
//! fit, so an event older than everything kept is refused when the store is full, and the
//! oldest goes first otherwise. With the same updates, every replica holds the same events.
//! The events are shared (`Arc`) between the replicas of one process, so the bound is also the
//! memory used, not multiplied by the shard count.
//!
//! A retained event stays until a newer one of its topic replaces it or the bounds push it out;
//! its publisher leaving does not remove it. `retain` on a topic where the publication is
//! refused (bad URI, not authorized, unreadable filter lists) retains nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::codec::uri::MatchPolicy;
use crate::codec::Uri;

use super::ids::ShardId;
use super::matcher::UriIndex;
use super::peer::Publication;

/// The order of retained events: the publisher's shard's time, then its shard ID, then its
/// sequence number (so two events of one shard at the same instant keep their order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    pub at: Instant,
    pub shard: ShardId,
    pub seq: u64,
}

/// A retained publication as it crosses shards ([`PeerMsg::Retain`](super::PeerMsg::Retain),
/// [`PeerMsg::PublishRetained`](super::PeerMsg::PublishRetained)).
#[derive(Debug, Clone)]
pub struct RetainedEvent {
    pub stamp: Stamp,
    /// Its payload is detached from the frame it came in (see `Payload::detached`).
    pub publication: Arc<Publication>,
    /// Encoded size (topic, options, payload) counted against the byte bound.
    pub size: usize,
}

/// Bounds of one realm's retained events (`router.max_retained_events`,
/// `router.max_retained_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionLimits {
    /// 0: retention is off.
    pub max_events: usize,
    pub max_bytes: usize,
}

impl RetentionLimits {
    pub fn enabled(&self) -> bool {
        self.max_events > 0 && self.max_bytes > 0
    }
}

/// One shard's replica of a realm's retained events. See the module docs.
#[derive(Debug, Default)]
pub struct RetainedStore {
    by_topic: HashMap<Uri, Arc<RetainedEvent>>,
    /// The same events, oldest first (what goes when the store is full).
    by_age: BTreeMap<Stamp, Uri>,
    bytes: usize,
}

impl RetainedStore {
    /// Keeps `ev` if it is the newest of its topic and fits (evicting the oldest events).
    /// The outcome depends only on the set of events put, not on their order.
    pub fn put(&mut self, ev: Arc<RetainedEvent>, limits: RetentionLimits) {
        if !limits.enabled() || ev.size > limits.max_bytes {
            return;
        }
        let topic = ev.publication.topic.clone();
        if let Some(old) = self.by_topic.get(&topic) {
            if old.stamp >= ev.stamp {
                return;
            }
            let old = old.clone();
            self.remove(&old);
        }
        while self.by_topic.len() + 1 > limits.max_events
            || self.bytes.saturating_add(ev.size) > limits.max_bytes
        {
            let Some((&oldest, _)) = self.by_age.first_key_value() else {
                return;
            };
            if oldest > ev.stamp {
                return; // older than everything kept: the newest that fit stay
            }
            let Some(victim) = self
                .by_age
                .get(&oldest)
                .and_then(|t| self.by_topic.get(t))
                .cloned()
            else {
                self.by_age.remove(&oldest);
                continue;
            };
            self.remove(&victim);
        }
        self.bytes += ev.size;
        self.by_age.insert(ev.stamp, topic.clone());
        self.by_topic.insert(topic, ev);
    }

    fn remove(&mut self, ev: &RetainedEvent) {
        self.by_topic.remove(&ev.publication.topic);
        self.by_age.remove(&ev.stamp);
        self.bytes = self.bytes.saturating_sub(ev.size);
    }

    /// The retained events whose topic `(policy, pattern)` matches, oldest first.
    pub fn matching(&self, policy: MatchPolicy, pattern: &str) -> Vec<Arc<RetainedEvent>> {
        if policy == MatchPolicy::Exact {
            return self.by_topic.get(pattern).cloned().into_iter().collect();
        }
        let mut index = UriIndex::new();
        index.insert(policy, pattern, ());
        self.by_age
            .values()
            .filter(|t| {
                let mut hit = false;
                index.for_each_match(t, |_, _| hit = true);
                hit
            })
            .filter_map(|t| self.by_topic.get(t).cloned())
            .collect()
    }

    /// The publication IDs held, sorted.
    pub fn publications(&self) -> Vec<crate::codec::Id> {
        let mut ids: Vec<_> = self.by_topic.values().map(|e| e.publication.id).collect();
        ids.sort_unstable();
        ids
    }

    /// Retained events held.
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// Whether no event is retained.
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// Bytes counted against the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Payload, PublishOptions};
    use std::time::Duration;

    fn ev(t0: Instant, ms: u64, shard: ShardId, topic: &str, size: usize) -> Arc<RetainedEvent> {
        Arc::new(RetainedEvent {
            stamp: Stamp {
                at: t0 + Duration::from_millis(ms),
                shard,
                seq: 0,
            },
            publication: Arc::new(Publication {
                id: ms,
                topic: Uri::from(topic),
                publisher: 1,
                publisher_authid: "".into(),
                publisher_authrole: "".into(),
                publisher_attributes: Arc::default(),
                filter: Default::default(),
                options: PublishOptions::default(),
                payload: Payload::Empty,
            }),
            size,
        })
    }

    fn ids(s: &RetainedStore) -> Vec<u64> {
        let mut v: Vec<u64> = s.by_topic.values().map(|e| e.publication.id).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn newest_per_topic_and_bounds_whatever_the_order() {
        let t0 = Instant::now();
        let limits = RetentionLimits {
            max_events: 2,
            max_bytes: 100,
        };
        let events = [
            ev(t0, 1, 0, "a", 10),
            ev(t0, 2, 1, "a", 10),
            ev(t0, 3, 0, "b", 10),
            ev(t0, 4, 2, "c", 10),
            ev(t0, 5, 1, "b", 60),
            ev(t0, 6, 0, "d", 200), // bigger than the bound: never kept
        ];
        let mut results = Vec::new();
        // Every rotation and its reverse: a few different arrival orders.
        for r in 0..events.len() {
            for rev in [false, true] {
                let mut order: Vec<_> = events.iter().cycle().skip(r).take(events.len()).collect();
                if rev {
                    order.reverse();
                }
                let mut s = RetainedStore::default();
                for e in order {
                    s.put((*e).clone(), limits);
                }
                assert!(s.len() <= 2 && s.bytes() <= 100);
                results.push(ids(&s));
            }
        }
        assert!(results.iter().all(|r| r == &results[0]), "{results:?}");
        assert_eq!(results[0], vec![4, 5]);
    }

    #[test]
    fn off_keeps_nothing_and_patterns_match() {
        let t0 = Instant::now();
        let mut s = RetainedStore::default();
        let off = RetentionLimits {
            max_events: 0,
            max_bytes: 100,
        };
        s.put(ev(t0, 1, 0, "a.b", 1), off);
        assert!(s.is_empty());
        let on = RetentionLimits {
            max_events: 10,
            max_bytes: 100,
        };
        for (i, t) in ["com.x.a", "com.y.a", "com.x.b"].iter().enumerate() {
            s.put(ev(t0, i as u64, 0, t, 1), on);
        }
        let topics = |v: Vec<Arc<RetainedEvent>>| {
            v.iter()
                .map(|e| e.publication.topic.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            topics(s.matching(MatchPolicy::Prefix, "com.x")),
            vec!["com.x.a", "com.x.b"]
        );
        assert_eq!(
            topics(s.matching(MatchPolicy::Wildcard, "com..a")),
            vec!["com.x.a", "com.y.a"]
        );
        assert_eq!(
            topics(s.matching(MatchPolicy::Exact, "com.y.a")),
            vec!["com.y.a"]
        );
        assert!(s.matching(MatchPolicy::Exact, "com.z").is_empty());
    }
}
