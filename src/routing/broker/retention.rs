//! The broker's side of event retention: stamping a `retain` publication, keeping the ones
//! other shards send, and answering `get_retained` after SUBSCRIBED. The store and the reasons
//! for where retained events live are in [`crate::routing::retained`].

use std::sync::Arc;

use crate::codec::uri::MatchPolicy;
use crate::codec::{Id, Message, Publish};

use super::super::filter::receives;
use super::super::peer::Publication;
use super::super::realm::Ctx;
use super::super::retained::{RetainedEvent, Stamp};
use super::{event_details, Broker, Subscriber};

impl Broker {
    /// `p` as this shard's newest retained event (detached payload, stamp, size).
    pub(super) fn stamp_retained(
        &mut self,
        p: &Publication,
        ctx: &mut Ctx<'_>,
    ) -> Arc<RetainedEvent> {
        let kept = Publication {
            payload: p.payload.detached(),
            ..p.clone()
        };
        let size = crate::codec::encode(
            crate::codec::Serializer::MsgPack,
            &Message::Publish(Box::new(Publish {
                request: 0,
                options: kept.options.clone(),
                topic: kept.topic.clone(),
                payload: kept.payload.clone(),
            })),
        )
        .len();
        self.retain_seq += 1;
        Arc::new(RetainedEvent {
            stamp: Stamp {
                at: ctx.now,
                shard: ctx.shard,
                seq: self.retain_seq,
            },
            publication: Arc::new(kept),
            size,
        })
    }

    /// From the publisher's shard: a retained event for this shard's replica (no local
    /// subscription matched when it was published).
    pub(crate) fn on_retain(&mut self, event: Arc<RetainedEvent>, ctx: &mut Ctx<'_>) {
        self.retained.put(event, ctx.config.retention);
    }

    /// From the publisher's shard: a retained publication for local subscribers. Kept and
    /// delivered in one step, so a local subscription gets it either live (active now) or as
    /// the retained event when it becomes active, never both, never neither.
    pub(crate) fn on_publish_retained(&mut self, event: Arc<RetainedEvent>, ctx: &mut Ctx<'_>) {
        self.deliver_local(&event.publication, ctx);
        self.retained.put(event, ctx.config.retention);
    }

    /// The retained events of `(policy, topic)` the new subscriber `s` of subscription `id`
    /// would have received, as EVENTs with `retained = true`, after its SUBSCRIBED.
    pub(super) fn send_retained(
        &self,
        s: &Subscriber,
        id: Id,
        (policy, topic): (MatchPolicy, &str),
        ctx: &mut Ctx<'_>,
    ) {
        for kept in self.retained.matching(policy, topic) {
            // The most recent one this subscriber would have received, if any.
            let Some(ev) = kept
                .iter()
                .find(|e| receives(&e.publication, s, ctx.config.publish_filter.as_ref()))
            else {
                continue;
            };
            let p = &ev.publication;
            let mut details = event_details(p, policy);
            details.retained = Some(true);
            ctx.send(
                s.session,
                Message::Event(Box::new(crate::codec::Event {
                    subscription: id,
                    publication: p.id,
                    details,
                    payload: p.payload.clone(),
                })),
            );
        }
    }

    /// Retained events in this shard's replica.
    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    /// The publication IDs of this shard's retained events, sorted (replicas compare equal).
    pub fn retained_publications(&self) -> Vec<Id> {
        self.retained.publications()
    }
}
