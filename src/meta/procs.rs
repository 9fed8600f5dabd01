//! The meta procedures: argument checking and the answers computed on the caller's shard.

use crate::codec::uri::{validate_uri, MatchPolicy, UriCheck};
use crate::codec::{self, Call, Dict, Id, Message, Options, Payload, PublishOptions, Uri, Value};
use crate::routing::broker::{Broker, SubscriptionInfo};
use crate::routing::dealer::{Dealer, Registration};
use crate::routing::realm::errors;
use crate::routing::Action;
use crate::shard::conn::SessionHandle;
use crate::shard::Shard;

use super::{
    scatter, KillTarget, Kind, Query, Table, Testament, MAX_TESTAMENTS, MAX_TESTAMENT_BYTES,
};

pub(super) const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";

/// RESULT with positional `args` (none when empty) to a local caller.
pub(super) fn reply(shard: &Shard, realm: &Uri, caller: Id, request: Id, args: Vec<Value>) {
    let payload = if args.is_empty() {
        Payload::Empty
    } else {
        Payload::args(args)
    };
    let msg = Message::Result(codec::CallResult {
        request,
        details: Default::default(),
        payload,
    });
    shard.apply_actions(realm, vec![Action::Send { to: caller, msg }]);
    shard.flush_mesh();
}

/// ERROR for a CALL to a local caller.
pub(super) fn reply_error(
    shard: &Shard,
    realm: &Uri,
    caller: Id,
    request: Id,
    error: &str,
    text: Option<&str>,
) {
    let msg = Message::Error(codec::Error {
        request_type: codec::code::CALL,
        request,
        details: Dict::new(),
        error: Uri::from(error),
        payload: text.map_or(Payload::Empty, |t| Payload::args(vec![Value::from(t)])),
    });
    shard.apply_actions(realm, vec![Action::Send { to: caller, msg }]);
    shard.flush_mesh();
}

/// A failed argument check: the error URI and an explanation.
type Fail = (&'static str, String);

fn bad(text: impl Into<String>) -> Fail {
    (INVALID_ARGUMENT, text.into())
}

fn arg_id(args: &[Value], i: usize, name: &str) -> Result<Id, Fail> {
    match args.get(i) {
        Some(Value::UInt(v)) => Ok(*v),
        _ => Err(bad(format!("argument {} `{name}` must be an ID", i + 1))),
    }
}

fn arg_str<'a>(args: &'a [Value], i: usize, name: &str) -> Result<&'a str, Fail> {
    match args.get(i) {
        Some(Value::Str(s)) => Ok(s),
        _ => Err(bad(format!("argument {} `{name}` must be a string", i + 1))),
    }
}

/// `filter_authroles|list[string]`, optional.
fn arg_roles(args: &[Value]) -> Result<Option<Vec<String>>, Fail> {
    match args.first() {
        None | Some(Value::Null) => Ok(None),
        Some(Value::List(l)) => l
            .iter()
            .map(|v| match v {
                Value::Str(s) => Ok(s.clone()),
                _ => Err(bad("filter_authroles must be a list of strings")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad("filter_authroles must be a list of strings")),
    }
}

/// `options|dict` with `match`, optional (lookup).
fn arg_match(args: &[Value], i: usize) -> Result<MatchPolicy, Fail> {
    let Some(Value::Dict(d)) = args.get(i) else {
        return match args.get(i) {
            None | Some(Value::Null) => Ok(MatchPolicy::Exact),
            Some(_) => Err(bad("options must be a dict")),
        };
    };
    match d.get("match") {
        None | Some(Value::Null) => Ok(MatchPolicy::Exact),
        Some(Value::Str(s)) => match s.as_str() {
            "exact" => Ok(MatchPolicy::Exact),
            "prefix" => Ok(MatchPolicy::Prefix),
            "wildcard" => Ok(MatchPolicy::Wildcard),
            _ => Err(bad("match must be \"exact\", \"prefix\" or \"wildcard\"")),
        },
        Some(_) => Err(bad("match must be a string")),
    }
}

/// `reason` and `message` keyword arguments of the kill procedures.
fn kill_kwargs(kwargs: &Dict) -> Result<(String, String), Fail> {
    let reason = match kwargs.get("reason") {
        None | Some(Value::Null) => "wamp.close.killed".to_owned(),
        Some(Value::Str(s)) if !s.is_empty() && validate_uri(s, UriCheck::Loose).is_ok() => {
            s.clone()
        }
        Some(_) => {
            return Err((
                errors::INVALID_URI,
                "reason must be a valid, non-empty URI".into(),
            ))
        }
    };
    let message = match kwargs.get("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::Str(s)) => s.clone(),
        Some(_) => return Err(bad("message must be a string")),
    };
    Ok((reason, message))
}

/// `scope` keyword argument of the testament procedures.
fn scope(kwargs: &Dict) -> Result<bool, Fail> {
    match kwargs.get("scope") {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Str(s)) if s == "destroyed" => Ok(false),
        Some(Value::Str(s)) if s == "detached" => Ok(true),
        Some(_) => Err(bad("scope must be \"destroyed\" or \"detached\"")),
    }
}

fn ids(v: impl IntoIterator<Item = Id>) -> Value {
    Value::List(v.into_iter().map(Value::UInt).collect())
}

fn id_or_null(v: Option<Id>) -> Value {
    v.map_or(Value::Null, Value::UInt)
}

/// `SubscriptionDetails`.
pub(super) fn subscription_details(shard: &Shard, broker: &Broker, s: &SubscriptionInfo) -> Dict {
    let mut d = Dict::new();
    d.insert("id".into(), Value::UInt(s.id));
    d.insert(
        "created".into(),
        Value::Str(shard.meta.created((Table::Subscription, s.id), |(t, id)| {
            t != Table::Subscription || broker.subscription(id).is_some()
        })),
    );
    d.insert("uri".into(), Value::Str(s.pattern.to_string()));
    d.insert("match".into(), Value::Str(s.policy.as_str().into()));
    d
}

/// `RegistrationDetails`.
pub(super) fn registration_details(shard: &Shard, dealer: &Dealer, r: &Registration) -> Dict {
    let mut d = Dict::new();
    d.insert("id".into(), Value::UInt(r.id));
    d.insert(
        "created".into(),
        Value::Str(shard.meta.created((Table::Registration, r.id), |(t, id)| {
            t != Table::Registration || dealer.registration(id).is_some()
        })),
    );
    d.insert("uri".into(), Value::Str(r.procedure.to_string()));
    d.insert("match".into(), Value::Str(r.policy.as_str().into()));
    d.insert("invoke".into(), Value::Str(r.invoke.as_str().into()));
    d
}

/// Lists of IDs by match policy (`wamp.subscription.list`, `wamp.registration.list`).
fn by_policy(items: impl Iterator<Item = (MatchPolicy, Id)>) -> Value {
    let mut exact = Vec::new();
    let mut prefix = Vec::new();
    let mut wildcard = Vec::new();
    for (p, id) in items {
        match p {
            MatchPolicy::Exact => exact.push(id),
            MatchPolicy::Prefix => prefix.push(id),
            MatchPolicy::Wildcard => wildcard.push(id),
        }
    }
    let mut d = Dict::new();
    d.insert("exact".into(), ids(exact));
    d.insert("prefix".into(), ids(prefix));
    d.insert("wildcard".into(), ids(wildcard));
    Value::Dict(d)
}

/// What a procedure produced: answered now, or left to a scatter-gather.
enum Done {
    Now(Vec<Value>),
    Later,
}

/// Handles a CALL to one of [`super::PROCEDURES`].
pub(super) fn call(shard: &Shard, h: &SessionHandle, realm: &Uri, c: Call) {
    let caller = h.id;
    let request = c.request;
    match dispatch(shard, h, realm, &c) {
        Ok(Done::Now(args)) => reply(shard, realm, caller, request, args),
        Ok(Done::Later) => {}
        Err((uri, text)) => reply_error(shard, realm, caller, request, uri, Some(&text)),
    }
}

fn dispatch(shard: &Shard, h: &SessionHandle, realm: &Uri, c: &Call) -> Result<Done, Fail> {
    let args = c
        .payload
        .args_values()
        .map_err(|e| bad(e.to_string()))?
        .unwrap_or_default();
    let kwargs = c
        .payload
        .kwargs_values()
        .map_err(|e| bad(e.to_string()))?
        .unwrap_or_default();
    let (caller, request) = (h.id, c.request);
    let gather = |kind: Kind, query: Query| -> Result<Done, Fail> {
        scatter(shard, realm, caller, request, kind, query);
        Ok(Done::Later)
    };
    match c.procedure.as_ref() {
        "wamp.session.count" => gather(
            Kind::Count,
            Query::Sessions {
                filter: arg_roles(&args)?,
            },
        ),
        "wamp.session.list" => gather(
            Kind::List,
            Query::Sessions {
                filter: arg_roles(&args)?,
            },
        ),
        "wamp.session.get" => gather(
            Kind::Get,
            Query::Get {
                session: arg_id(&args, 0, "session")?,
            },
        ),
        "wamp.session.kill" => {
            let target = arg_id(&args, 0, "session")?;
            let (reason, message) = kill_kwargs(&kwargs)?;
            if target == caller {
                return Err((
                    errors::NO_SUCH_SESSION,
                    "a session cannot kill itself".into(),
                ));
            }
            gather(
                Kind::Kill,
                Query::Kill {
                    target: KillTarget::Session(target),
                    exclude: caller,
                    reason,
                    message,
                },
            )
        }
        "wamp.session.kill_by_authid"
        | "wamp.session.kill_by_authrole"
        | "wamp.session.kill_all" => {
            let (kind, target) = match c.procedure.as_ref() {
                "wamp.session.kill_by_authid" => (
                    Kind::KillList,
                    KillTarget::Authid(arg_str(&args, 0, "authid")?.to_owned()),
                ),
                "wamp.session.kill_by_authrole" => (
                    Kind::KillCount,
                    KillTarget::Authrole(arg_str(&args, 0, "authrole")?.to_owned()),
                ),
                _ => (Kind::KillCount, KillTarget::All),
            };
            let (reason, message) = kill_kwargs(&kwargs)?;
            gather(
                kind,
                Query::Kill {
                    target,
                    exclude: caller,
                    reason,
                    message,
                },
            )
        }
        "wamp.session.add_testament" => add_testament(shard, h, &args, &kwargs),
        "wamp.session.flush_testaments" => {
            let detached = scope(&kwargs)?;
            let mut all = shard.meta.testaments.borrow_mut();
            let mut n = 0;
            if let Some(t) = all.get_mut(&caller) {
                let bucket = if detached {
                    &mut t.detached
                } else {
                    &mut t.destroyed
                };
                n = bucket.len();
                let freed: usize = bucket.drain(..).map(|t| t.size).sum();
                t.bytes = t.bytes.saturating_sub(freed);
                if t.detached.is_empty() && t.destroyed.is_empty() {
                    all.remove(&caller);
                }
            }
            Ok(Done::Now(vec![Value::UInt(n as u64)]))
        }
        p if p.starts_with("wamp.subscription.") => subscription(shard, realm, p, &args, gather),
        p => registration(shard, realm, p, &args),
    }
}

fn add_testament(
    shard: &Shard,
    h: &SessionHandle,
    args: &[Value],
    kwargs: &Dict,
) -> Result<Done, Fail> {
    let topic = arg_str(args, 0, "topic")?;
    if topic.is_empty() || validate_uri(topic, UriCheck::Loose).is_err() {
        return Err((errors::INVALID_URI, format!("invalid topic URI {topic:?}")));
    }
    let event_args = match args.get(1) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::List(l)) => l.clone(),
        Some(_) => return Err(bad("argument 2 `args` must be a list")),
    };
    let event_kwargs = match args.get(2) {
        None | Some(Value::Null) => Dict::new(),
        Some(Value::Dict(d)) => d.clone(),
        Some(_) => return Err(bad("argument 3 `kwargs` must be a dict")),
    };
    let mut options = match kwargs.get("publish_options") {
        None | Some(Value::Null) => PublishOptions::default(),
        Some(Value::Dict(d)) => PublishOptions::from_dict(d.clone())
            .map_err(|e| bad(format!("publish_options: {e}")))?,
        Some(_) => return Err(bad("publish_options must be a dict")),
    };
    // The router publishes testaments: there is nothing to acknowledge nor disclose.
    options.acknowledge = None;
    options.disclose_me = None;
    let detached = scope(kwargs)?;
    let payload = if event_kwargs.is_empty() {
        Payload::args(event_args)
    } else {
        Payload::args_kwargs(event_args, event_kwargs)
    };
    let size = codec::encode(
        h.serializer,
        &Message::Publish(codec::Publish {
            request: 0,
            options: options.clone(),
            topic: Uri::from(topic),
            payload: payload.clone(),
        }),
    )
    .len();
    let mut all = shard.meta.testaments.borrow_mut();
    let t = all.entry(h.id).or_default();
    if t.detached.len() + t.destroyed.len() >= MAX_TESTAMENTS
        || t.bytes.saturating_add(size) > MAX_TESTAMENT_BYTES
    {
        let text = format!(
            "a session may hold {MAX_TESTAMENTS} testaments of {MAX_TESTAMENT_BYTES} bytes in all"
        );
        if t.detached.is_empty() && t.destroyed.is_empty() {
            all.remove(&h.id);
        }
        return Err((errors::LIMIT_EXCEEDED, text));
    }
    t.bytes += size;
    let testament = Testament {
        topic: Uri::from(topic),
        payload,
        options,
        size,
    };
    if detached {
        t.detached.push(testament);
    } else {
        t.destroyed.push(testament);
    }
    Ok(Done::Now(Vec::new()))
}

fn subscription(
    shard: &Shard,
    realm: &Uri,
    p: &str,
    args: &[Value],
    mut gather: impl FnMut(Kind, Query) -> Result<Done, Fail>,
) -> Result<Done, Fail> {
    let realms = shard.realms.borrow();
    let Some(broker) = realms.get(realm).map(|r| r.broker()) else {
        return Err((errors::NO_SUCH_SUBSCRIPTION, "no such realm".into()));
    };
    let no_such = || {
        (
            errors::NO_SUCH_SUBSCRIPTION,
            "no subscription with this ID".to_owned(),
        )
    };
    match p {
        "wamp.subscription.list" => Ok(Done::Now(vec![by_policy(
            broker.subscriptions().into_iter().map(|s| (s.policy, s.id)),
        )])),
        "wamp.subscription.lookup" => {
            let topic = arg_str(args, 0, "topic")?;
            let policy = arg_match(args, 1)?;
            Ok(Done::Now(vec![id_or_null(broker.lookup(policy, topic))]))
        }
        "wamp.subscription.match" => {
            let topic = arg_str(args, 0, "topic")?;
            let m = broker.matching(topic);
            Ok(Done::Now(vec![if m.is_empty() {
                Value::Null
            } else {
                ids(m)
            }]))
        }
        "wamp.subscription.get" => {
            let id = arg_id(args, 0, "subscription")?;
            let info = broker.subscription(id).ok_or_else(no_such)?;
            Ok(Done::Now(vec![Value::Dict(subscription_details(
                shard, broker, &info,
            ))]))
        }
        "wamp.subscription.list_subscribers" | "wamp.subscription.count_subscribers" => {
            let subscription = arg_id(args, 0, "subscription")?;
            broker.subscription(subscription).ok_or_else(no_such)?;
            drop(realms);
            let kind = if p == "wamp.subscription.list_subscribers" {
                Kind::Subscribers
            } else {
                Kind::CountSubscribers
            };
            gather(kind, Query::Subscribers { subscription })
        }
        _ => Err(bad("unknown subscription meta procedure")),
    }
}

fn registration(shard: &Shard, realm: &Uri, p: &str, args: &[Value]) -> Result<Done, Fail> {
    let realms = shard.realms.borrow();
    let Some(dealer) = realms.get(realm).map(|r| r.dealer()) else {
        return Err((errors::NO_SUCH_REGISTRATION, "no such realm".into()));
    };
    let get = |args: &[Value]| -> Result<&Registration, Fail> {
        let id = arg_id(args, 0, "registration")?;
        dealer.registration(id).ok_or_else(|| {
            (
                errors::NO_SUCH_REGISTRATION,
                "no registration with this ID".to_owned(),
            )
        })
    };
    match p {
        "wamp.registration.list" => Ok(Done::Now(vec![by_policy(
            dealer.registrations().into_iter().map(|r| (r.policy, r.id)),
        )])),
        "wamp.registration.lookup" => {
            let procedure = arg_str(args, 0, "procedure")?;
            let policy = arg_match(args, 1)?;
            Ok(Done::Now(vec![id_or_null(
                dealer.lookup(policy, procedure),
            )]))
        }
        "wamp.registration.match" => {
            let procedure = arg_str(args, 0, "procedure")?;
            Ok(Done::Now(vec![id_or_null(dealer.matching(procedure))]))
        }
        "wamp.registration.get" => {
            let r = get(args)?;
            Ok(Done::Now(vec![Value::Dict(registration_details(
                shard, dealer, r,
            ))]))
        }
        "wamp.registration.list_callees" => {
            let r = get(args)?;
            Ok(Done::Now(vec![ids(r.callees.iter().map(|c| c.session))]))
        }
        "wamp.registration.count_callees" => {
            let r = get(args)?;
            Ok(Done::Now(vec![Value::UInt(r.callees.len() as u64)]))
        }
        _ => Err(bad("unknown registration meta procedure")),
    }
}
