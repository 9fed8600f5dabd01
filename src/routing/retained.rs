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
//! **Which events a topic keeps.** The spec asks for "the most recent retained event that
//! they would have received" and allows supplemental events "that have limited distribution".
//! So a topic keeps its newest *unrestricted* retained event (no `exclude*`/`eligible*` list;
//! `exclude_me` does not count) and the *restricted* ones newer than it, at most
//! [`MAX_PER_TOPIC`] in all; a subscriber gets the newest of them it is eligible for, or none.
//! A newer unrestricted event replaces everything older on its topic.
//!
//! **Why every replica agrees.** Updates of one topic may come from several shards in different
//! orders, so a replica orders a topic's events by [`Stamp`] ("most recent": last writer wins),
//! not by arrival. The bounds ([`RetentionLimits`]) are applied the same way: the oldest events
//! by stamp go first, so an event older than everything kept is not kept when the store is
//! full. With the same updates, every replica holds the same events (the routing fuzz test
//! checks it). The events are shared (`Arc`) between the replicas of one process, so the bound
//! is also the memory used, not multiplied by the shard count.
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

/// Retained events one topic keeps: its newest unrestricted one and the restricted ones newer
/// than it (see the module docs).
pub const MAX_PER_TOPIC: usize = 4;

impl RetainedEvent {
    /// Published with a black- or whitelist (beyond `exclude_me`): not every subscriber
    /// would have received it.
    pub fn restricted(&self) -> bool {
        let o = &self.publication.options;
        o.exclude.is_some()
            || o.exclude_authid.is_some()
            || o.exclude_authrole.is_some()
            || o.eligible.is_some()
            || o.eligible_authid.is_some()
            || o.eligible_authrole.is_some()
            || !self.publication.filter.is_empty()
    }
}

/// One shard's replica of a realm's retained events. See the module docs.
#[derive(Debug, Default)]
pub struct RetainedStore {
    /// Per topic, newest first: restricted events, then at most one unrestricted one.
    by_topic: HashMap<Uri, Vec<Arc<RetainedEvent>>>,
    /// Every event kept, oldest first (what goes when the store is full).
    by_age: BTreeMap<Stamp, Uri>,
    bytes: usize,
}

impl RetainedStore {
    /// Keeps `ev` if it is not superseded on its topic, then removes what it supersedes and
    /// the oldest events beyond the bounds (possibly `ev` itself).
    pub fn put(&mut self, ev: Arc<RetainedEvent>, limits: RetentionLimits) {
        if !limits.enabled() || ev.size > limits.max_bytes || self.by_age.contains_key(&ev.stamp) {
            return;
        }
        let topic = ev.publication.topic.clone();
        let kept = self.by_topic.entry(topic.clone()).or_default();
        // Newest first; everything after the first unrestricted event is superseded.
        let at = kept
            .iter()
            .position(|k| k.stamp < ev.stamp)
            .unwrap_or(kept.len());
        if kept[..at].iter().any(|k| !k.restricted()) {
            return;
        }
        kept.insert(at, ev.clone());
        let cut = kept
            .iter()
            .position(|k| !k.restricted())
            .map_or(kept.len(), |i| i + 1)
            .min(MAX_PER_TOPIC);
        let dropped: Vec<_> = kept.drain(cut..).collect();
        self.bytes += ev.size;
        self.by_age.insert(ev.stamp, topic);
        for d in dropped {
            self.forget(&d);
        }
        while self.by_age.len() > limits.max_events || self.bytes > limits.max_bytes {
            let Some((&oldest, t)) = self.by_age.first_key_value() else {
                break;
            };
            let victim = self
                .by_topic
                .get(t)
                .and_then(|v| v.iter().find(|k| k.stamp == oldest))
                .cloned();
            match victim {
                Some(v) => self.remove(&v),
                None => {
                    self.by_age.remove(&oldest);
                }
            }
        }
    }

    /// Removes `ev` from its topic and from the accounting.
    fn remove(&mut self, ev: &RetainedEvent) {
        if let Some(kept) = self.by_topic.get_mut(&ev.publication.topic) {
            kept.retain(|k| k.stamp != ev.stamp);
            if kept.is_empty() {
                self.by_topic.remove(&ev.publication.topic);
            }
        }
        self.forget(ev);
    }

    /// Removes `ev` from the accounting (already out of its topic's list).
    fn forget(&mut self, ev: &RetainedEvent) {
        if self.by_age.remove(&ev.stamp).is_some() {
            self.bytes = self.bytes.saturating_sub(ev.size);
        }
    }

    /// The retained events of each topic `(policy, pattern)` matches, newest first per topic;
    /// topics in the order of their newest event, oldest first.
    pub fn matching(&self, policy: MatchPolicy, pattern: &str) -> Vec<&[Arc<RetainedEvent>]> {
        if policy == MatchPolicy::Exact {
            return self
                .by_topic
                .get(pattern)
                .map(Vec::as_slice)
                .into_iter()
                .collect();
        }
        let mut index = UriIndex::new();
        index.insert(policy, pattern, ());
        let mut out: Vec<&[Arc<RetainedEvent>]> = self
            .by_topic
            .iter()
            .filter(|(t, _)| {
                let mut hit = false;
                index.for_each_match(t, |_, _| hit = true);
                hit
            })
            .map(|(_, v)| v.as_slice())
            .filter(|v| !v.is_empty())
            .collect();
        out.sort_by_key(|v| v.first().map(|e| e.stamp));
        out
    }

    /// The publication IDs held, sorted.
    pub fn publications(&self) -> Vec<crate::codec::Id> {
        let mut ids: Vec<_> = self
            .by_topic
            .values()
            .flatten()
            .map(|e| e.publication.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Retained events held.
    pub fn len(&self) -> usize {
        self.by_age.len()
    }

    /// Whether no event is retained.
    pub fn is_empty(&self) -> bool {
        self.by_age.is_empty()
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
        restricted_ev(t0, ms, shard, topic, size, false)
    }

    fn restricted_ev(
        t0: Instant,
        ms: u64,
        shard: ShardId,
        topic: &str,
        size: usize,
        restricted: bool,
    ) -> Arc<RetainedEvent> {
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
                publisher_trustlevel: None,
                options: PublishOptions {
                    eligible: restricted.then(|| vec![1]),
                    ..Default::default()
                },
                payload: Payload::Empty,
            }),
            size,
        })
    }

    fn ids(s: &RetainedStore) -> Vec<u64> {
        s.publications()
    }

    #[test]
    fn restricted_events_supplement_the_newest_unrestricted_one() {
        let t0 = Instant::now();
        let limits = RetentionLimits {
            max_events: 100,
            max_bytes: 1000,
        };
        let events = [
            restricted_ev(t0, 1, 0, "t", 1, true), // superseded by 2
            ev(t0, 2, 1, "t", 1),
            restricted_ev(t0, 3, 0, "t", 1, true),
            restricted_ev(t0, 4, 2, "t", 1, true),
            restricted_ev(t0, 5, 1, "t", 1, true),
            restricted_ev(t0, 6, 0, "t", 1, true), // 4 kept: 6, 5, 4, 3; 2 goes
        ];
        let mut results = Vec::new();
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
                assert_eq!(s.bytes(), s.len());
                results.push(ids(&s));
            }
        }
        assert!(results.iter().all(|r| r == &results[0]), "{results:?}");
        assert_eq!(results[0], vec![3, 4, 5, 6]);

        // A newer unrestricted event replaces them all.
        let mut s = RetainedStore::default();
        for e in &events {
            s.put(e.clone(), limits);
        }
        s.put(ev(t0, 7, 0, "t", 1), limits);
        assert_eq!(ids(&s), vec![7]);
        assert_eq!(s.bytes(), 1);
        let newest_first: Vec<u64> = s.matching(MatchPolicy::Exact, "t")[0]
            .iter()
            .map(|e| e.publication.id)
            .collect();
        assert_eq!(newest_first, vec![7]);
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
        let topics = |v: Vec<&[Arc<RetainedEvent>]>| {
            v.iter()
                .map(|e| e[0].publication.topic.to_string())
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
