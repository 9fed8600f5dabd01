//! The broker's side of event history: recording publications for the realm's history rules
//! and answering `wamp.subscription.get_events` on a rule's home shard. The store and where
//! histories live are in [`crate::routing::history`].

use std::sync::Arc;

use crate::codec::{Id, Value};

use super::super::history::{self, EventsQuery, Stored};
use super::super::peer::{PeerMsg, Publication};
use super::super::realm::Ctx;
use super::{Broker, Subscriber};

impl Broker {
    /// On the publisher's shard, after routing: `p` for each history rule its topic matches,
    /// kept here or sent to the rule's home shard.
    pub(super) fn record_history(&mut self, p: &Arc<Publication>, ctx: &mut Ctx<'_>) {
        if !history::storable(p) {
            return;
        }
        let rules = ctx.config.history.clone();
        let mut kept: Option<(Arc<Publication>, i64, usize)> = None;
        rules.for_each_match(&p.topic, |i, rule| {
            let (publication, at_us, size) = kept
                .get_or_insert_with(|| {
                    // Detached once: a stored payload must not pin the frame it came in.
                    let own = Arc::new(Publication {
                        payload: p.payload.detached(),
                        ..(**p).clone()
                    });
                    let size = history::event_size(&own);
                    (own, ctx.wall_micros(), size)
                })
                .clone();
            let home = ctx.home(rule.policy, &rule.uri);
            if home == ctx.shard {
                let at = ctx.now;
                self.history.record(
                    i,
                    rule,
                    Stored {
                        at_us,
                        at,
                        publication,
                        size,
                    },
                );
            } else {
                ctx.peer(
                    home,
                    PeerMsg::History {
                        rule: i,
                        at_us,
                        publication,
                    },
                );
            }
        });
    }

    /// On a rule's home shard: a publication recorded by the publisher's shard.
    pub(crate) fn on_history(
        &mut self,
        rule: usize,
        at_us: i64,
        publication: Arc<Publication>,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(r) = ctx.config.history.rule(rule) else {
            return;
        };
        let size = history::event_size(&publication);
        self.history.record(
            rule,
            r,
            Stored {
                at_us,
                at: ctx.now,
                publication,
                size,
            },
        );
    }

    /// On a rule's home shard: the events of `subscription` (rule `rule`) `reader` may see.
    pub(crate) fn history_events(
        &self,
        rule: usize,
        subscription: Id,
        query: &EventsQuery,
        reader: &Subscriber,
        ctx: &Ctx<'_>,
    ) -> Result<Vec<Value>, String> {
        let Some(r) = ctx.config.history.rule(rule) else {
            return Err("event history is not enabled for this subscription".into());
        };
        self.history.query(
            rule,
            r,
            subscription,
            query,
            reader,
            ctx.config.publish_filter.as_ref(),
            ctx.now,
        )
    }

    /// Events kept for history rule `rule` on this shard (tests, metrics).
    pub fn history_len(&self, rule: usize) -> usize {
        self.history.len(rule)
    }

    /// Bytes kept for history rule `rule` on this shard.
    pub fn history_bytes(&self, rule: usize) -> usize {
        self.history.bytes(rule)
    }

    /// Events kept over all history rules on this shard.
    pub fn history_total(&self) -> usize {
        self.history.total()
    }
}
