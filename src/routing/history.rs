//! Event history (advanced profile, `pubsub_event_history.md`): the last events of the
//! subscriptions a realm's `[[realm.history]]` rules name, read back with the meta procedure
//! `wamp.subscription.get_events`.
//!
//! **What a rule keeps.** A rule names one subscription, `(match policy, topic or pattern)`, as
//! the spec's example does: an exact subscription on `com.log.auth` and a prefix subscription
//! on `com.log` keep their own histories, each of the publications that matched *it*. A rule
//! records from the realm's start whether or not anyone subscribes (the spec's "dummy
//! subscription"), so the history is there when the first subscriber asks; its subscription ID
//! is the one a SUBSCRIBE with that topic and policy gets (or `wamp.subscription.lookup`
//! finds). Bounds: `limit` events, `max_bytes` (payload, topic and options as received), and
//! optionally `max_age`; the oldest go first. History is transient: a restart loses it.
//!
//! **What is not kept** (the spec's security rules). A publication with `exclude` or
//! `eligible` (session-ID lists, meaningless after those sessions are gone) or with
//! `exclude_<key>` / `eligible_<key>` lists over other session details (ephemeral attributes)
//! is not stored at all. `exclude_authid` / `eligible_authid` / `exclude_authrole` /
//! `eligible_authrole` are stored and applied to each reader's authid and authrole, and so is
//! the embedder's publish filter, with the reader as the subscriber. `exclude_me` concerns live
//! delivery only: the publisher may read its own events.
//!
//! **Where history lives.** One store per rule, on the *home shard* of the rule's
//! `(policy, pattern)` (as for the subscription's ID, see [`super::ids::home_shard`]), so the
//! bounds are the memory used whatever the shard count. The publisher's shard matches the
//! topic against the realm's rules (static, on every shard), stamps the publication with its
//! wall-clock time and sends it to each matching rule's home ([`PeerMsg::History`]; kept at once
//! when the home is the publisher's shard). The home keeps each rule's events in order of that
//! time: an event from another shard can arrive after a later one (its publisher saw the
//! acknowledgement and a second publisher, told of it, published again), and takes its place
//! by time. One publisher's events keep publish order (a FIFO channel per pair of shards, and
//! each shard's clock is monotonic); events stamped the same microsecond keep arrival order. A
//! `get_events` call goes from the caller's shard to the home and back (a one-shard gather of
//! [`super::meta`]).
//!
//! [`PeerMsg::History`]: super::PeerMsg::History

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::codec::uri::MatchPolicy;
use crate::codec::{Dict, Id, Options, Payload, Uri, Value};
use crate::util::time::{parse_rfc3339, rfc3339_micros};

use super::broker::Subscriber;
use super::filter::SharedPublishFilter;
use super::matcher::UriIndex;
use super::peer::Publication;

/// One `[[realm.history]]` rule: the subscription whose events are kept, and the bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRule {
    /// The subscription's topic (exact) or pattern (prefix, wildcard).
    pub uri: Uri,
    pub policy: MatchPolicy,
    /// Events kept at most (the oldest go first).
    pub limit: usize,
    /// Bytes kept at most (payload, topic and options of each event).
    pub max_bytes: usize,
    /// Events older than this are not kept (nor returned).
    pub max_age: Option<Duration>,
}

/// A realm's history rules and the index the publisher's shard matches topics against.
#[derive(Debug, Default)]
pub struct HistoryRules {
    rules: Vec<HistoryRule>,
    index: UriIndex<usize>,
}

impl HistoryRules {
    /// The rules of one realm. `Err((i, message))`: rule `i` repeats an earlier rule's
    /// subscription or has a zero bound.
    pub fn new(rules: Vec<HistoryRule>) -> Result<HistoryRules, (usize, String)> {
        let mut index = UriIndex::new();
        for (i, r) in rules.iter().enumerate() {
            if r.limit == 0 || r.max_bytes == 0 {
                return Err((i, "limit and max_bytes must be positive".into()));
            }
            if index.insert(r.policy, &r.uri, i).is_some() {
                return Err((
                    i,
                    format!(
                        "a second rule for the {} subscription {:?}",
                        r.policy.as_str(),
                        &*r.uri
                    ),
                ));
            }
        }
        Ok(HistoryRules { rules, index })
    }

    /// No rules: nothing is recorded (the publish path tests this first).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rules(&self) -> &[HistoryRule] {
        &self.rules
    }

    pub fn rule(&self, i: usize) -> Option<&HistoryRule> {
        self.rules.get(i)
    }

    /// The rule of subscription `(policy, uri)`, if it keeps history.
    pub fn find(&self, policy: MatchPolicy, uri: &str) -> Option<usize> {
        self.index.get(policy, uri).copied()
    }

    /// Calls `f` with each rule whose subscription matches `topic`.
    pub fn for_each_match(&self, topic: &str, mut f: impl FnMut(usize, &HistoryRule)) {
        self.index.for_each_match(topic, |_, i| {
            if let Some(r) = self.rules.get(*i) {
                f(*i, r)
            }
        });
    }
}

/// Whether a publication may be kept at all (see the module docs).
pub fn storable(p: &Publication) -> bool {
    p.options.exclude.is_none() && p.options.eligible.is_none() && p.filter.is_empty()
}

/// Bytes an event counts against `max_bytes`.
pub fn event_size(p: &Publication) -> usize {
    use crate::codec::Options as _;
    // Options are counted by entry: a fair, cheap estimate of their encoded size.
    p.topic.len() + p.payload.encoded_len_hint() + 32 * p.options.len() + 16
}

/// One kept event.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Wall-clock time on the publisher's shard, microseconds since the epoch.
    pub at_us: i64,
    /// When the home shard kept it (for `max_age`).
    pub at: Instant,
    /// With a payload detached from the frame it came in.
    pub publication: Arc<Publication>,
    pub size: usize,
}

#[derive(Debug, Default)]
struct Log {
    events: VecDeque<Stored>,
    bytes: usize,
}

/// The histories of the rules whose home is this shard.
#[derive(Debug, Default)]
pub struct HistoryStore {
    logs: HashMap<usize, Log>,
}

impl HistoryStore {
    /// Keeps `ev` for rule `i` in publication-time order, then drops the oldest events beyond
    /// the rule's bounds. An event larger than `max_bytes` alone is not kept.
    pub fn record(&mut self, i: usize, rule: &HistoryRule, ev: Stored) {
        if ev.size > rule.max_bytes {
            return;
        }
        let now = ev.at;
        let log = self.logs.entry(i).or_default();
        log.bytes += ev.size;
        // In publication-time order: an event from another shard may arrive after a later
        // one published here (or on a third shard). Each shard's clock is monotonic, so one
        // publisher's events keep their order; equal times keep their arrival order. Almost
        // always the place is the end.
        let at = ev.at_us;
        let pos = log
            .events
            .iter()
            .rposition(|e| e.at_us <= at)
            .map_or(0, |p| p + 1);
        log.events.insert(pos, ev);
        let expired = |e: &Stored| rule.max_age.is_some_and(|a| e.at + a < now);
        while log.events.len() > rule.limit
            || log.bytes > rule.max_bytes
            || log.events.front().is_some_and(expired)
        {
            let Some(old) = log.events.pop_front() else {
                break;
            };
            log.bytes -= old.size;
        }
    }

    /// Events kept for rule `i`.
    pub fn len(&self, i: usize) -> usize {
        self.logs.get(&i).map_or(0, |l| l.events.len())
    }

    /// Bytes kept for rule `i`.
    pub fn bytes(&self, i: usize) -> usize {
        self.logs.get(&i).map_or(0, |l| l.bytes)
    }

    /// Events kept over all rules.
    pub fn total(&self) -> usize {
        self.logs.values().map(|l| l.events.len()).sum()
    }

    /// The answer to `get_events` for `reader` on subscription `subscription` (rule `i`): the
    /// `Event` objects of the spec, or the text of a `wamp.error.invalid_argument`.
    #[allow(clippy::too_many_arguments)]
    pub fn query(
        &self,
        i: usize,
        rule: &HistoryRule,
        subscription: Id,
        q: &EventsQuery,
        reader: &Subscriber,
        embedder: Option<&SharedPublishFilter>,
        now: Instant,
    ) -> Result<Vec<Value>, String> {
        let Some(log) = self.logs.get(&i) else {
            return match q.publication_bound() {
                Some(id) => Err(not_found(id)),
                None => Ok(Vec::new()),
            };
        };
        let cutoff = rule.max_age.and_then(|a| now.checked_sub(a));
        let seen: Vec<&Stored> = log
            .events
            .iter()
            .filter(|e| cutoff.is_none_or(|c| e.at >= c))
            .filter(|e| visible(&e.publication, reader, embedder))
            .collect();
        // The `*_publication` bounds are positions in the stored order (IDs are not ordered),
        // among the events this reader may see (others are not revealed, not even by position).
        let pos = |id: Id| {
            seen.iter()
                .position(|e| e.publication.id == id)
                .ok_or_else(|| not_found(id))
        };
        let (mut lo, mut hi) = (0, seen.len());
        if let Some(id) = q.from_publication {
            lo = lo.max(pos(id)?);
        }
        if let Some(id) = q.after_publication {
            lo = lo.max(pos(id)? + 1);
        }
        if let Some(id) = q.before_publication {
            hi = hi.min(pos(id)?);
        }
        if let Some(id) = q.until_publication {
            hi = hi.min(pos(id)? + 1);
        }
        let picked = seen.get(lo..hi).unwrap_or_default().iter().filter(|e| {
            let t = e.at_us;
            q.topic.as_ref().is_none_or(|tp| *tp == e.publication.topic)
                && q.from_time.is_none_or(|x| t >= x)
                && q.after_time.is_none_or(|x| t > x)
                && q.before_time.is_none_or(|x| t < x)
                && q.until_time.is_none_or(|x| t <= x)
        });
        let limit = q.limit.unwrap_or(usize::MAX);
        let out = if q.reverse {
            picked
                .rev()
                .take(limit)
                .map(|e| event(e, rule, subscription))
                .collect()
        } else {
            picked
                .take(limit)
                .map(|e| event(e, rule, subscription))
                .collect()
        };
        Ok(out)
    }
}

fn not_found(id: Id) -> String {
    format!("publication {id} is not in this subscription's history")
}

/// Whether `reader` may see `p`: the authid/authrole lists and the embedder's filter (the
/// session-ID and other detail lists are never stored).
fn visible(p: &Publication, reader: &Subscriber, embedder: Option<&SharedPublishFilter>) -> bool {
    let o = &p.options;
    let has = |list: &Option<Vec<String>>, v: &str| list.as_ref().map(|l| l.iter().any(|x| x == v));
    has(&o.eligible_authid, &reader.authid) != Some(false)
        && has(&o.eligible_authrole, &reader.authrole) != Some(false)
        && has(&o.exclude_authid, &reader.authid) != Some(true)
        && has(&o.exclude_authrole, &reader.authrole) != Some(true)
        && embedder.is_none_or(|f| f.0.allow(p, reader))
}

/// The spec's `Event` object: `timestamp`, `subscription`, `publication`, `details` (as the
/// EVENT had them), `args` and `kwargs` when present.
fn event(e: &Stored, rule: &HistoryRule, subscription: Id) -> Value {
    let p = &e.publication;
    let mut d = Dict::new();
    d.insert("timestamp".into(), Value::Str(rfc3339_micros(e.at_us)));
    d.insert("subscription".into(), Value::UInt(subscription));
    d.insert("publication".into(), Value::UInt(p.id));
    d.insert(
        "details".into(),
        Value::Dict(super::broker::event_details(p, rule.policy).to_dict()),
    );
    match &p.payload {
        Payload::Transparent(b) => {
            d.insert("args".into(), Value::List(vec![Value::Bin(b.clone())]));
        }
        payload => {
            // The publisher's shard decoded the payload's frame; a payload that does not decode
            // as values (never routed as such) is returned without it.
            if let Ok(Some(args)) = payload.args_values() {
                d.insert("args".into(), Value::List(args));
            }
            if let Ok(Some(kwargs)) = payload.kwargs_values() {
                d.insert("kwargs".into(), Value::Dict(kwargs));
            }
        }
    }
    Value::Dict(d)
}

/// The keyword arguments of `wamp.subscription.get_events` (all optional, combined with AND).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsQuery {
    pub reverse: bool,
    pub limit: Option<usize>,
    /// Microseconds since the epoch.
    pub from_time: Option<i64>,
    pub after_time: Option<i64>,
    pub before_time: Option<i64>,
    pub until_time: Option<i64>,
    pub topic: Option<Uri>,
    pub from_publication: Option<Id>,
    pub after_publication: Option<Id>,
    pub before_publication: Option<Id>,
    pub until_publication: Option<Id>,
}

impl EventsQuery {
    /// Reads the keyword arguments; an unknown key or a value of the wrong type is an error
    /// naming it.
    pub fn from_kwargs(kwargs: &Dict) -> Result<EventsQuery, String> {
        let mut q = EventsQuery::default();
        for (k, v) in kwargs.iter() {
            if matches!(v, Value::Null) {
                continue;
            }
            let time = || match v {
                Value::Str(s) => parse_rfc3339(s)
                    .ok_or_else(|| format!("{k} must be an RFC 3339 timestamp, got {s:?}")),
                _ => Err(format!("{k} must be an RFC 3339 timestamp string")),
            };
            let id = || match v {
                Value::UInt(n) if (1..=crate::codec::MAX_ID).contains(n) => Ok(*n),
                _ => Err(format!("{k} must be a publication ID")),
            };
            match k.as_str() {
                "reverse" => match v {
                    Value::Bool(b) => q.reverse = *b,
                    _ => return Err("reverse must be a boolean".into()),
                },
                "limit" => match v {
                    Value::UInt(n) if *n > 0 => {
                        q.limit = Some(usize::try_from(*n).unwrap_or(usize::MAX))
                    }
                    _ => return Err("limit must be a positive integer".into()),
                },
                "from_time" => q.from_time = Some(time()?),
                "after_time" => q.after_time = Some(time()?),
                "before_time" => q.before_time = Some(time()?),
                "until_time" => q.until_time = Some(time()?),
                "topic" => match v {
                    Value::Str(s) if !s.is_empty() => q.topic = Some(Uri::from(s.as_str())),
                    _ => return Err("topic must be a URI".into()),
                },
                "from_publication" => q.from_publication = Some(id()?),
                "after_publication" => q.after_publication = Some(id()?),
                "before_publication" => q.before_publication = Some(id()?),
                "until_publication" => q.until_publication = Some(id()?),
                other => return Err(format!("unknown keyword argument {other:?}")),
            }
        }
        Ok(q)
    }

    fn publication_bound(&self) -> Option<Id> {
        self.from_publication
            .or(self.after_publication)
            .or(self.before_publication)
            .or(self.until_publication)
    }
}
