//! Read access to the broker's tables, for the meta API and tests.

use crate::codec::uri::MatchPolicy;
use crate::codec::Id;

use super::super::ids::SessionId;
use super::{Broker, Subscriber, SubscriptionInfo};

impl Broker {
    /// Every subscription in the realm (this shard's replica of the interest table).
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        let mut out: Vec<SubscriptionInfo> = self
            .interest_by_id
            .iter()
            .filter_map(|(id, (policy, pattern))| {
                let entry = self.interest.get(*policy, pattern)?;
                Some(SubscriptionInfo {
                    id: *id,
                    policy: *policy,
                    pattern: pattern.clone(),
                    shards: entry.shards.clone(),
                    created: entry.created.clone(),
                })
            })
            .collect();
        // Cluster: the ones only other nodes have subscribers of.
        out.extend(
            self.remote_by_id
                .keys()
                .filter(|id| !self.interest_by_id.contains_key(id))
                .filter_map(|id| self.remote_subscription(*id)),
        );
        out
    }

    /// Cluster: a subscription other nodes have subscribers of (no shard of this node has).
    fn remote_subscription(&self, id: Id) -> Option<SubscriptionInfo> {
        let (policy, pattern) = self.remote_by_id.get(&id)?;
        let entry = self.remote.get(*policy, pattern)?;
        Some(SubscriptionInfo {
            id,
            policy: *policy,
            pattern: pattern.clone(),
            shards: Vec::new(),
            created: entry.created.clone(),
        })
    }

    /// One subscription by ID (this shard's replica of the interest table).
    pub fn subscription(&self, id: Id) -> Option<SubscriptionInfo> {
        let Some((policy, pattern)) = self.interest_by_id.get(&id) else {
            return self.remote_subscription(id);
        };
        let entry = self.interest.get(*policy, pattern)?;
        Some(SubscriptionInfo {
            id,
            policy: *policy,
            pattern: pattern.clone(),
            shards: entry.shards.clone(),
            created: entry.created.clone(),
        })
    }

    /// The subscription for exactly `(policy, pattern)` (`wamp.subscription.lookup`).
    pub fn lookup(&self, policy: MatchPolicy, pattern: &str) -> Option<Id> {
        self.interest
            .get(policy, pattern)
            .map(|e| e.id)
            .or_else(|| self.remote.get(policy, pattern).map(|e| e.id))
    }

    /// The subscriptions a topic matches (`wamp.subscription.match`).
    pub fn matching(&self, topic: &str) -> Vec<Id> {
        let mut out = Vec::new();
        self.interest.for_each_match(topic, |_, e| out.push(e.id));
        self.remote.for_each_match(topic, |_, e| {
            if !out.contains(&e.id) {
                out.push(e.id);
            }
        });
        out
    }

    /// This shard's subscribers of subscription `id` (active ones only).
    pub fn local_subscribers(&self, id: Id) -> &[Subscriber] {
        self.local_by_id
            .get(&id)
            .and_then(|(p, t)| self.local.get(*p, t))
            .map_or(&[], |l| l.subscribers.as_slice())
    }

    /// Whether local session `session` holds active subscription `id`.
    pub fn is_subscribed(&self, session: SessionId, id: Id) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.active.contains(&id))
    }

    /// The active subscriptions of a local session.
    pub fn subscriptions_of(&self, session: SessionId) -> Vec<Id> {
        self.sessions
            .get(&session)
            .map(|s| s.active.iter().copied().collect())
            .unwrap_or_default()
    }
}
