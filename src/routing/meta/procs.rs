//! The meta procedures: argument checking and the answers computed on the caller's shard
//! (gathering ones are started here and finished in [`super::Gather`]).

use crate::codec::uri::{validate_uri, MatchPolicy, UriCheck};
use crate::codec::{self, Call, Dict, Id, Message, Options, Payload, PublishOptions, Uri, Value};

use super::super::broker::{Broker, Subscriber};
use super::super::dealer::{Dealer, Registration};
use super::super::history::EventsQuery;
use super::super::ids::SessionId;
use super::super::peer::{KillTarget, MetaQuery, PeerMsg};
use super::super::realm::{errors, Ctx};
use super::{
    reg_details, sub_details, testament_size, Kind, Meta, Testament, MAX_TESTAMENTS,
    MAX_TESTAMENT_BYTES,
};

pub(super) const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";

/// The procedures `Meta::call` answers.
pub const PROCEDURES: &[&str] = &[
    "wamp.session.count",
    "wamp.session.list",
    "wamp.session.get",
    "wamp.session.kill",
    "wamp.session.kill_by_authid",
    "wamp.session.kill_by_authrole",
    "wamp.session.kill_all",
    "wamp.session.add_testament",
    "wamp.session.flush_testaments",
    "wamp.subscription.list",
    "wamp.subscription.lookup",
    "wamp.subscription.match",
    "wamp.subscription.get",
    "wamp.subscription.list_subscribers",
    "wamp.subscription.count_subscribers",
    "wamp.subscription.remove_subscriber",
    "wamp.subscription.get_events",
    "wamp.registration.list",
    "wamp.registration.lookup",
    "wamp.registration.match",
    "wamp.registration.get",
    "wamp.registration.list_callees",
    "wamp.registration.count_callees",
    "wamp.registration.remove_callee",
];

/// Whether a CALL is for the meta API (the prefix test first: ordinary calls, the hot path,
/// skip the list).
pub fn is_meta_procedure(procedure: &str) -> bool {
    procedure.starts_with("wamp.") && PROCEDURES.contains(&procedure)
}

/// RESULT with positional `args` (none when empty).
pub(super) fn reply(ctx: &mut Ctx<'_>, caller: SessionId, request: Id, args: Vec<Value>) {
    let payload = if args.is_empty() {
        Payload::Empty
    } else {
        Payload::args(args)
    };
    ctx.send(
        caller,
        Message::Result(Box::new(codec::CallResult {
            request,
            details: Default::default(),
            payload,
        })),
    );
}

/// RESULT whose one positional argument is the list `items` (empty included: `get_events`
/// answers `[[]]` when nothing matched, as the spec's "empty array").
pub(super) fn reply_list(ctx: &mut Ctx<'_>, caller: SessionId, request: Id, items: Vec<Value>) {
    ctx.send(
        caller,
        Message::Result(Box::new(codec::CallResult {
            request,
            details: Default::default(),
            payload: Payload::args(vec![Value::List(items)]),
        })),
    );
}

/// ERROR for a CALL.
pub(super) fn reply_error(
    ctx: &mut Ctx<'_>,
    caller: SessionId,
    request: Id,
    error: &str,
    text: Option<&str>,
) {
    ctx.error_msg(caller, codec::code::CALL, request, error, text);
}

/// A failed argument check: the error URI and an explanation.
pub(super) type Fail = (&'static str, String);

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
fn kill_kwargs(kwargs: &Dict) -> Result<(Uri, String), Fail> {
    let reason = match kwargs.get("reason") {
        None | Some(Value::Null) => Uri::from("wamp.close.killed"),
        Some(Value::Str(s)) if !s.is_empty() && validate_uri(s, UriCheck::Loose).is_ok() => {
            Uri::from(s.as_str())
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

/// `wamp.registration.remove_callee(registration, callee, reason?)`; the reason may also be
/// the keyword argument `reason`.
fn remove_callee_args(args: &[Value], kwargs: &Dict) -> Result<(Id, Id, Option<String>), Fail> {
    let registration = arg_id(args, 0, "registration")?;
    let callee = arg_id(args, 1, "callee")?;
    let reason = match args.get(2).or_else(|| kwargs.get("reason")) {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) => Some(s.clone()),
        Some(_) => return Err(bad("reason must be a string")),
    };
    Ok((registration, callee, reason))
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

/// What a procedure produced: answered now, or left to a gather.
enum Done {
    Now(Vec<Value>),
    Later,
}

impl Meta {
    /// Handles a CALL to one of [`PROCEDURES`] by local session `caller` (authorized already).
    pub fn call(
        &mut self,
        caller: SessionId,
        c: Box<Call>,
        broker: &Broker,
        dealer: &Dealer,
        ctx: &mut Ctx<'_>,
    ) {
        let request = c.request;
        let testaments = matches!(
            c.procedure.as_str(),
            "wamp.session.add_testament" | "wamp.session.flush_testaments"
        );
        match self.dispatch(caller, &c, broker, dealer, ctx) {
            Ok(Done::Now(args)) => {
                if testaments {
                    self.replicate_testaments(caller, ctx);
                }
                reply(ctx, caller, request, args)
            }
            Ok(Done::Later) => {}
            Err((uri, text)) => reply_error(ctx, caller, request, uri, Some(&text)),
        }
    }

    fn dispatch(
        &mut self,
        caller: SessionId,
        c: &Call,
        broker: &Broker,
        dealer: &Dealer,
        ctx: &mut Ctx<'_>,
    ) -> Result<Done, Fail> {
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
        let request = c.request;
        let mut gather = |kind: Kind, query: MetaQuery| -> Result<Done, Fail> {
            self.gather(caller, request, kind, query, broker, ctx)?;
            Ok(Done::Later)
        };
        match c.procedure.as_ref() {
            "wamp.session.count" => gather(
                Kind::Count,
                MetaQuery::Sessions {
                    filter: arg_roles(&args)?,
                },
            ),
            "wamp.session.list" => gather(
                Kind::List,
                MetaQuery::Sessions {
                    filter: arg_roles(&args)?,
                },
            ),
            "wamp.session.get" => gather(
                Kind::Get,
                MetaQuery::Get {
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
                    MetaQuery::Kill {
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
                    MetaQuery::Kill {
                        target,
                        exclude: caller,
                        reason,
                        message,
                    },
                )
            }
            "wamp.session.add_testament" => self.add_testament(caller, &args, &kwargs),
            "wamp.session.flush_testaments" => {
                let detached = scope(&kwargs)?;
                let mut n = 0;
                if let Some(t) = self.testaments.get_mut(&caller) {
                    let bucket = if detached {
                        &mut t.detached
                    } else {
                        &mut t.destroyed
                    };
                    n = bucket.len();
                    let freed: usize = bucket.drain(..).map(|t| t.size).sum();
                    t.bytes = t.bytes.saturating_sub(freed);
                    if t.detached.is_empty() && t.destroyed.is_empty() {
                        self.testaments.remove(&caller);
                    }
                }
                Ok(Done::Now(vec![Value::UInt(n as u64)]))
            }
            "wamp.registration.remove_callee" => {
                let (registration, callee, reason) = remove_callee_args(&args, &kwargs)?;
                let shard = dealer
                    .registration(registration)
                    .ok_or_else(|| {
                        (
                            errors::NO_SUCH_REGISTRATION,
                            "no registration with this ID".to_owned(),
                        )
                    })?
                    .callees
                    .iter()
                    .find(|c| c.session == callee)
                    .ok_or_else(|| {
                        (
                            errors::NO_SUCH_SESSION,
                            "the session is not a callee of this registration".to_owned(),
                        )
                    })?
                    .shard;
                ctx.peer(
                    shard,
                    PeerMsg::RevokeCallee {
                        registration,
                        callee,
                        reason,
                    },
                );
                Ok(Done::Now(Vec::new()))
            }
            "wamp.subscription.get_events" => {
                self.get_events(caller, request, &args, &kwargs, broker, ctx)
            }
            p if p.starts_with("wamp.subscription.") => {
                subscription(broker, p, &args, &kwargs, gather)
            }
            p => registration(dealer, p, &args),
        }
    }

    /// `wamp.subscription.get_events(subscription, **filters)`: asks the home shard of the
    /// subscription's history rule (see [`crate::routing::history`]). Whether the caller may
    /// subscribe to the subscription's topic was checked with its authorization.
    fn get_events(
        &mut self,
        caller: SessionId,
        request: Id,
        args: &[Value],
        kwargs: &Dict,
        broker: &Broker,
        ctx: &mut Ctx<'_>,
    ) -> Result<Done, Fail> {
        let subscription = arg_id(args, 0, "subscription")?;
        let info = broker.subscription(subscription).ok_or_else(|| {
            (
                errors::NO_SUCH_SUBSCRIPTION,
                "no subscription with this ID".to_owned(),
            )
        })?;
        let query = EventsQuery::from_kwargs(kwargs).map_err(bad)?;
        let rules = ctx.config.history.clone();
        let (rule, home) = match rules.find(info.policy, &info.pattern) {
            Some(i) => (i, ctx.home(info.policy, &info.pattern)),
            None => {
                return Err(bad(format!(
                    "event history is not enabled for subscription {subscription}"
                )))
            }
        };
        let Some(member) = self.members.get(&caller) else {
            return Err((
                errors::NO_SUCH_SESSION,
                "not a session of this realm".into(),
            ));
        };
        let reader = Subscriber {
            session: caller,
            authid: member.sref.authid.clone(),
            authrole: member.sref.authrole.clone(),
            attributes: member.sref.attributes.clone(),
        };
        self.gather_from(
            caller,
            (request, Kind::Events),
            MetaQuery::Events {
                rule,
                subscription,
                query: Box::new(query),
                reader: Box::new(reader),
            },
            Some(home),
            broker,
            ctx,
        )?;
        Ok(Done::Later)
    }

    fn add_testament(
        &mut self,
        caller: SessionId,
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
        crate::routing::filter::DetailFilter::from_options(&options)
            .map_err(|e| bad(format!("publish_options: {e}")))?;
        // The router publishes testaments: there is nothing to acknowledge nor disclose.
        options.acknowledge = None;
        options.disclose_me = None;
        let detached = scope(kwargs)?;
        let payload = if event_kwargs.is_empty() {
            Payload::args(event_args)
        } else {
            Payload::args_kwargs(event_args, event_kwargs)
        };
        let Some(member) = self.members.get(&caller) else {
            return Err((
                errors::NO_SUCH_SESSION,
                "not a session of this realm".into(),
            ));
        };
        let mut testament = Testament {
            topic: Uri::from(topic),
            payload,
            options,
            size: 0,
        };
        testament.size = testament_size(member.details.serializer, &testament);
        let t = self.testaments.entry(caller).or_default();
        if t.detached.len() + t.destroyed.len() >= MAX_TESTAMENTS
            || t.bytes.saturating_add(testament.size) > MAX_TESTAMENT_BYTES
        {
            let text = format!(
                "a session may hold {MAX_TESTAMENTS} testaments of {MAX_TESTAMENT_BYTES} bytes in all"
            );
            if t.detached.is_empty() && t.destroyed.is_empty() {
                self.testaments.remove(&caller);
            }
            return Err((errors::LIMIT_EXCEEDED, text));
        }
        t.bytes += testament.size;
        if detached {
            t.detached.push(testament);
        } else {
            t.destroyed.push(testament);
        }
        Ok(Done::Now(Vec::new()))
    }
}

fn subscription(
    broker: &Broker,
    p: &str,
    args: &[Value],
    kwargs: &Dict,
    mut gather: impl FnMut(Kind, MetaQuery) -> Result<Done, Fail>,
) -> Result<Done, Fail> {
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
            Ok(Done::Now(vec![Value::Dict(sub_details(&info))]))
        }
        "wamp.subscription.list_subscribers" | "wamp.subscription.count_subscribers" => {
            let subscription = arg_id(args, 0, "subscription")?;
            broker.subscription(subscription).ok_or_else(no_such)?;
            let kind = if p == "wamp.subscription.list_subscribers" {
                Kind::Subscribers
            } else {
                Kind::CountSubscribers
            };
            gather(kind, MetaQuery::Subscribers { subscription })
        }
        // `(subscription|id, session|id, reason|string?)`, reason also as a keyword argument.
        "wamp.subscription.remove_subscriber" => {
            let subscription = arg_id(args, 0, "subscription")?;
            let session = arg_id(args, 1, "session")?;
            let reason = match args.get(2).or_else(|| kwargs.get("reason")) {
                None | Some(Value::Null) => None,
                Some(Value::Str(s)) => Some(s.clone()),
                Some(_) => return Err(bad("reason must be a string")),
            };
            broker.subscription(subscription).ok_or_else(no_such)?;
            gather(
                Kind::RemoveSubscriber,
                MetaQuery::RemoveSubscriber {
                    subscription,
                    session,
                    reason,
                },
            )
        }
        _ => Err(bad("unknown subscription meta procedure")),
    }
}

fn registration(dealer: &Dealer, p: &str, args: &[Value]) -> Result<Done, Fail> {
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
            Ok(Done::Now(vec![Value::Dict(reg_details(r))]))
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
