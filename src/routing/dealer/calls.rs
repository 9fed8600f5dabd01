//! Calls: the caller's shard (CALL, CANCEL, timeouts, RESULT/ERROR back to the caller) and
//! the callee's shard (INVOCATION, YIELD, callee ERROR, INTERRUPT).
//!
//! ```text
//! caller ─CALL→ [caller shard C] ─Invoke→ [callee shard K] ─INVOCATION→ callee
//! caller ←RESULT/ERROR─ [C] ←CallResult/CallError─ [K] ←YIELD/ERROR─ callee
//! ```
//!
//! C and K may be the same shard; the same messages then go through the local queue.
//!
//! Decisions where the spec leaves room:
//!
//! - CANCEL without `mode` is `kill` (the codec's default); with a callee that did not announce
//!   call canceling every mode degrades to `skip`, as the spec says.
//! - Dealer-enforced timeouts (spec: "killnowait if the callee supports cancellation, else
//!   skip") restart with each progressive result (spec: "between results"). They keep running
//!   after a `kill` cancel, so a callee that never answers cannot pin a caller forever.
//! - A progressive YIELD for a caller that did not ask for progress (or a callee we never told
//!   it could) is dropped; the final YIELD still ends the call, so the caller is answered.
//! - YIELD / ERROR for an invocation ID this callee was never given is a protocol violation
//!   (spec: "YIELD message with invalid INVOCATION.Request"); for an ID it was given but that is
//!   no longer pending (canceled, timed out, caller gone) it is discarded, as the spec requires.
//! - A continuation CALL (progressive invocations) for a request the caller has finished is
//!   discarded during a grace period; a CALL reusing the request ID of a running
//!   non-progressive call is a protocol violation (the spec's pseudocode).
//! - An Invoke reaching a callee that left or unregistered meanwhile answers
//!   `wamp.error.no_such_procedure` (what a single-threaded dealer would have said a moment
//!   later); a callee leaving mid-call answers `wamp.error.canceled` (URI reference spelling).
//! - Progressive call results for a callee that announced `progressive_call_results` but not
//!   `call_canceling` (autobahn-js 22.11, wampy 8): by default it gets `receive_progress`
//!   anyway, since without it those clients' progressive procedures do not work at all. What
//!   canceling would be needed for is handled without it: a caller that leaves, cancels or
//!   times out makes the invocation "issued but not pending", so the callee's further
//!   progressive and final YIELDs are discarded (no INTERRUPT is sent to it). With
//!   `RoutingConfig::strict_progressive_results` the spec's rule applies: no canceling, no
//!   progressive results (the caller then gets only the final result).
//! - Call rerouting: a callee's `wamp.error.unavailable` is acted on whether or not the callee
//!   announced `call_reroute` (the URI is reserved, so it can mean nothing else). The caller's
//!   shard reroutes, with its replica of the registration table: the registration is looked up
//!   again by procedure and the policy picks among the callees not tried yet (`pick_other`);
//!   none left, `single`, or a call that cannot move (a progressive call invocation, or
//!   progressive results already forwarded) answers `wamp.error.no_available_callee`. The call
//!   timeout keeps running across reroutes. A rerouted Invoke that reaches a callee which left
//!   meanwhile (its `no_such_procedure`) goes on to the next callee; a first Invoke in that
//!   situation still answers `no_such_procedure`, as before.
//!   To reroute, the caller's shard keeps the CALL (its encoded payload is shared, not copied)
//!   only when the registration has more than one callee and is not `single`.

use std::time::Duration;

use crate::codec::uri::{self, MatchPolicy};
use crate::codec::{
    code, Call, CallResult, Cancel, CancelMode, Id, IdField, Interrupt, InterruptOptions,
    Invocation as InvocationMsg, InvocationDetails, InvokePolicy, Message, Payload, ResultDetails,
    Yield,
};

use super::super::peer::{CallRef, CalleeRef, GoneReason, Invoke, PeerMsg};
use super::super::realm::{errors, Ctx, RoutingConfig};
use super::super::session::{self, SessionRef};
use super::{fail_invoke, Dealer, Invocation, OutCall, Queued, Registration, Reroute};
use crate::routing::ids::SessionId;

/// The largest per-caller set of pending requests kept once empty (see `end_call`): sets
/// grow to 3, 7, 14, 28, 56, 112 … requests, so this keeps those of up to 56 (about 600 bytes
/// per session that once had that many calls in flight, until it leaves).
const KEPT_CALL_SET_CAPACITY: usize = 64;

impl Dealer {
    // ---- caller side -----------------------------------------------------------------------

    /// `[CALL, Request|id, Options|dict, Procedure|uri, Arguments|list, ArgumentsKw|dict]`
    pub(crate) fn call(&mut self, caller: &SessionRef, msg: Box<Call>, ctx: &mut Ctx<'_>) {
        let key = (caller.id, msg.request);
        let progress = msg.options.progress == Some(true);
        if let Some(out) = self.calls.get_mut(&key) {
            if out.killed {
                return; // canceled: the callee's answer is on its way
            }
            if !out.streaming {
                ctx.protocol_violation(
                    caller.id,
                    format!("CALL request ID {} is already in use", msg.request),
                );
                return;
            }
            // Continuation of a progressive call invocation: options are frozen, only
            // `progress` counts.
            out.streaming = progress;
            let (shard, call) = (out.callee_shard, call_ref(key, out));
            ctx.peer(
                shard,
                PeerMsg::InvokeMore {
                    call,
                    progress,
                    payload: msg.payload,
                },
            );
            return;
        }
        if let Some(until) = self.finished_streams.get(&key) {
            if *until > ctx.now {
                return; // late continuation of a finished progressive call (spec: discard)
            }
            self.finished_streams.remove(&key);
        }
        if progress && !caller.features.caller_progressive_call_invocations {
            ctx.protocol_violation(
                caller.id,
                "CALL with progress=true without announcing progressive_call_invocations",
            );
            return;
        }
        let o = &msg.options;
        let ppt = match session::payload_passthru(
            &o.ppt_scheme,
            [&o.ppt_serializer, &o.ppt_cipher, &o.ppt_keyid],
            caller.features.caller_payload_passthru,
        ) {
            Ok(ppt) => ppt,
            Err(text) => return ctx.protocol_violation(caller.id, text),
        };
        let fail = |this: &mut Self, ctx: &mut Ctx<'_>, error: &str, text: Option<&str>| {
            if progress {
                this.remember_stream(key, ctx);
            }
            ctx.error_msg(caller.id, code::CALL, msg.request, error, text);
        };
        let pending = self.calls_of.get(&caller.id).map_or(0, |s| s.len());
        if pending >= ctx.config.max_pending_calls_per_session {
            return fail(
                self,
                ctx,
                errors::LIMIT_EXCEEDED,
                Some("too many pending calls for this session"),
            );
        }
        let picked = self.pick(&msg.procedure, ctx);
        // A procedure equal to an exact registration's URI passed this very check when it was
        // registered (same rules, realm-wide): only a call matched by a pattern, or by
        // nothing, is checked here.
        let checked = matches!(&picked, Some((reg, _)) if reg.policy == MatchPolicy::Exact);
        if !checked && uri::validate_uri(&msg.procedure, ctx.config.uri_check).is_err() {
            return fail(self, ctx, errors::INVALID_URI, None);
        }
        let Some((reg, callee)) = picked else {
            return fail(self, ctx, errors::NO_SUCH_PROCEDURE, None);
        };
        if progress && !callee.features.callee_progressive_call_invocations {
            return fail(
                self,
                ctx,
                errors::FEATURE_NOT_SUPPORTED,
                Some("the callee does not support progressive call invocations"),
            );
        }
        if ppt && !callee.features.callee_payload_passthru {
            return fail(
                self,
                ctx,
                errors::FEATURE_NOT_SUPPORTED,
                Some("the callee does not support payload passthru mode"),
            );
        }

        let routed = Routed::new(caller, &msg, reg, &callee, ctx.config);
        let registration = reg.id;
        // Kept for a reroute only where one is possible.
        let reroute = (!progress && reg.invoke != InvokePolicy::Single && reg.callees.len() > 1)
            .then(|| {
                Box::new(Reroute {
                    caller: caller.clone(),
                    call: (*msg).clone(),
                    tried: vec![callee.session],
                })
            });

        let timeout_ms = msg.options.timeout.unwrap_or(0);
        let timeout =
            (timeout_ms > 0 && !routed.callee_times_out).then(|| Duration::from_millis(timeout_ms));
        // A timeout too large for the clock is no timeout at all.
        let deadline = timeout.and_then(|t| ctx.now.checked_add(t));
        if let Some(d) = deadline {
            self.timers.insert((d, caller.id, msg.request));
        }
        self.calls.insert(
            key,
            OutCall {
                callee: callee.session,
                callee_shard: callee.shard,
                registration,
                callee_cancels: callee.features.callee_call_canceling,
                receive_progress: msg.options.receive_progress == Some(true),
                started: ctx.now,
                timeout,
                deadline,
                streaming: progress,
                was_streaming: progress,
                killed: false,
                caller_ppt: caller.features.caller_payload_passthru,
                reroute,
            },
        );
        self.calls_of
            .entry(caller.id)
            .or_default()
            .insert(msg.request);
        ctx.peer(
            callee.shard,
            PeerMsg::Invoke(Invoke {
                caller: caller.id,
                caller_shard: ctx.shard,
                request: msg.request,
                callee: callee.session,
                invocation: Box::new(InvocationMsg {
                    request: 0,
                    registration,
                    details: routed.details,
                    payload: msg.payload,
                }),
                forward_progress: routed.forward_progress,
                streaming: progress,
            }),
        );
    }

    /// Whether the call was rerouted at least once (a `no_such_procedure` then comes from a
    /// callee that left after this shard's replica chose it, and the reroute goes on).
    fn is_rerouted(&self, key: (SessionId, Id)) -> bool {
        self.calls
            .get(&key)
            .and_then(|c| c.reroute.as_ref())
            .is_some_and(|r| r.tried.len() > 1)
    }

    /// The callee answered `wamp.error.unavailable`: send the call to another callee, or answer
    /// `wamp.error.no_available_callee` when none is left (spec `rpc_call_rerouting.md`).
    /// Returns `false` when the error is to be forwarded as it is (a killed call).
    fn reroute(&mut self, key: (SessionId, Id), ctx: &mut Ctx<'_>) -> bool {
        let Some(out) = self.calls.get_mut(&key) else {
            return true; // canceled / timed out / caller gone: discard
        };
        if out.killed {
            return false;
        }
        let Some(mut rr) = out.reroute.take() else {
            self.finish(key, ctx);
            ctx.error_msg(
                key.0,
                code::CALL,
                key.1,
                errors::NO_AVAILABLE_CALLEE,
                Some("the callee is unavailable and the call cannot be rerouted"),
            );
            return true;
        };
        let Some((reg, callee)) = self.pick_other(&rr.call.procedure, &rr.tried, ctx) else {
            self.finish(key, ctx);
            ctx.error_msg(
                key.0,
                code::CALL,
                key.1,
                errors::NO_AVAILABLE_CALLEE,
                Some("every callee is unavailable"),
            );
            return true;
        };
        let routed = Routed::new(&rr.caller, &rr.call, reg, &callee, ctx.config);
        let registration = reg.id;
        rr.tried.push(callee.session);
        let invoke = Invoke {
            caller: key.0,
            caller_shard: ctx.shard,
            request: key.1,
            callee: callee.session,
            invocation: Box::new(InvocationMsg {
                request: 0,
                registration,
                details: routed.details,
                payload: rr.call.payload.clone(),
            }),
            forward_progress: routed.forward_progress,
            streaming: false,
        };
        if let Some(out) = self.calls.get_mut(&key) {
            out.callee = callee.session;
            out.callee_shard = callee.shard;
            out.registration = registration;
            out.callee_cancels = callee.features.callee_call_canceling;
            out.reroute = Some(rr);
        }
        ctx.peer(callee.shard, PeerMsg::Invoke(invoke));
        true
    }

    /// `[CANCEL, CALL.Request|id, Options|dict]`
    pub(crate) fn cancel(&mut self, caller: &SessionRef, msg: Cancel, ctx: &mut Ctx<'_>) {
        let key = (caller.id, msg.request);
        let Some(out) = self.calls.get_mut(&key) else {
            return; // already answered: nothing to cancel
        };
        let mut mode = msg.options.mode.unwrap_or(CancelMode::Kill);
        if !out.callee_cancels {
            mode = CancelMode::Skip;
        }
        match mode {
            CancelMode::Kill => {
                if !out.killed {
                    out.killed = true;
                    out.streaming = false;
                    let (shard, call) = (out.callee_shard, call_ref(key, out));
                    ctx.peer(shard, PeerMsg::Interrupt { call });
                }
            }
            CancelMode::Skip | CancelMode::KillNoWait => {
                let interrupt = (mode == CancelMode::KillNoWait).then_some(GoneReason::Canceled);
                self.abandon(key, interrupt, ctx);
                ctx.error(caller.id, code::CALL, msg.request, errors::CANCELED);
            }
        }
    }

    /// Fires due timeouts.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_>) {
        while let Some(&(at, caller, request)) = self.timers.first() {
            if at > ctx.now {
                break;
            }
            self.timers.pop_first();
            let due = self
                .calls
                .get(&(caller, request))
                .is_some_and(|c| c.deadline == Some(at));
            if !due {
                continue;
            }
            let interrupt = Some(GoneReason::Timeout);
            self.abandon((caller, request), interrupt, ctx);
            ctx.error(caller, code::CALL, request, errors::TIMEOUT);
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<std::time::Instant> {
        self.timers.first().map(|(at, _, _)| *at)
    }

    /// The caller side of a leaving session: INTERRUPT (killnowait) what it was waiting for.
    pub(super) fn caller_left(&mut self, session: SessionId, ctx: &mut Ctx<'_>) {
        let Some(requests) = self.calls_of.remove(&session) else {
            return;
        };
        for request in requests {
            self.abandon((session, request), Some(GoneReason::CallerLeft), ctx);
        }
        self.finished_streams.retain(|(s, _), _| *s != session);
    }

    /// Ends a call on the caller's side without an answer from the callee, and tells the
    /// callee's shard to forget the invocation (INTERRUPTing it when `interrupt` and the callee
    /// supports it).
    fn abandon(&mut self, key: (SessionId, Id), interrupt: Option<GoneReason>, ctx: &mut Ctx<'_>) {
        // A caller that left is answered nothing: its call is not timed.
        let answered = interrupt != Some(GoneReason::CallerLeft);
        let Some(out) = self.end_call(key, answered, ctx) else {
            return;
        };
        ctx.peer(
            out.callee_shard,
            PeerMsg::CallGone {
                call: call_ref(key, &out),
                interrupt: interrupt.filter(|_| out.callee_cancels),
            },
        );
    }

    /// Removes a call from the caller-side tables; the caller is being answered (the call's
    /// time goes to the latency histogram).
    pub(super) fn finish(&mut self, key: (SessionId, Id), ctx: &mut Ctx<'_>) -> Option<OutCall> {
        self.end_call(key, true, ctx)
    }

    fn end_call(
        &mut self,
        key: (SessionId, Id),
        answered: bool,
        ctx: &mut Ctx<'_>,
    ) -> Option<OutCall> {
        let out = self.calls.remove(&key)?;
        // Bounded for an embedder that never takes them (the shard takes them after every
        // handler, so a handler would have to answer this many calls at once).
        if answered && self.call_times.len() < super::CALL_TIMES_MAX {
            self.call_times
                .push(ctx.now.saturating_duration_since(out.started));
        }
        if let Some(d) = out.deadline {
            self.timers.remove(&(d, key.0, key.1));
        }
        if let Some(set) = self.calls_of.get_mut(&key.0) {
            set.remove(&key.1);
            // An emptied set stays for the caller's next call (dropping it cost a fresh
            // allocation and up to four rehashes per refill with 16 calls in flight) unless it
            // grew large; it goes with its session (`caller_left`).
            if set.is_empty() && set.capacity() > KEPT_CALL_SET_CAPACITY {
                self.calls_of.remove(&key.0);
            }
        }
        if out.was_streaming {
            self.remember_stream(key, ctx);
        }
        Some(out)
    }

    fn remember_stream(&mut self, key: (SessionId, Id), ctx: &Ctx<'_>) {
        let now = ctx.now;
        if self.finished_streams.len() >= 1024 {
            self.finished_streams.retain(|_, until| *until > now);
        }
        let until = now.checked_add(ctx.config.progressive_grace).unwrap_or(now);
        self.finished_streams.insert(key, until);
    }

    // ---- callee side -----------------------------------------------------------------------

    /// `[YIELD, INVOCATION.Request|id, Options|dict, Arguments|list, ArgumentsKw|dict]`
    pub(crate) fn yield_(&mut self, callee: &SessionRef, msg: Yield, ctx: &mut Ctx<'_>) {
        let Some(inv) = self.answered(callee.id, msg.request, "YIELD", ctx) else {
            return;
        };
        let progress = msg.options.progress == Some(true);
        let o = msg.options;
        if let Err(text) = session::payload_passthru(
            &o.ppt_scheme,
            [&o.ppt_serializer, &o.ppt_cipher, &o.ppt_keyid],
            callee.features.callee_payload_passthru,
        ) {
            return ctx.protocol_violation(callee.id, text);
        }
        let details = ResultDetails {
            progress: progress.then_some(true),
            ppt_scheme: o.ppt_scheme,
            ppt_serializer: o.ppt_serializer,
            ppt_cipher: o.ppt_cipher,
            ppt_keyid: o.ppt_keyid,
            ..ResultDetails::default()
        };
        if progress {
            if inv.forward_progress {
                let (caller, request, shard) = (inv.caller, inv.request, inv.caller_shard);
                let result = Box::new(CallResult {
                    request,
                    details,
                    payload: msg.payload,
                });
                ctx.peer(shard, PeerMsg::CallResult { caller, result });
            }
            return;
        }
        let inv = self.end_invocation(callee.id, msg.request);
        if let Some(inv) = inv {
            let result = Box::new(CallResult {
                request: inv.request,
                details,
                payload: msg.payload,
            });
            ctx.peer(
                inv.caller_shard,
                PeerMsg::CallResult {
                    caller: inv.caller,
                    result,
                },
            );
        }
    }

    /// `[ERROR, INVOCATION, INVOCATION.Request|id, Details|dict, Error|uri, …]` from a callee.
    pub(crate) fn callee_error(
        &mut self,
        callee: &SessionRef,
        mut msg: Box<crate::codec::Error>,
        ctx: &mut Ctx<'_>,
    ) {
        if self
            .answered(callee.id, msg.request, "ERROR", ctx)
            .is_none()
        {
            return;
        }
        if let Some(inv) = self.end_invocation(callee.id, msg.request) {
            // The callee's ERROR becomes the caller's, in the same allocation.
            msg.request_type = code::CALL;
            msg.request = inv.request;
            ctx.peer(
                inv.caller_shard,
                PeerMsg::CallError {
                    caller: inv.caller,
                    error: msg,
                },
            );
        }
    }

    /// The pending invocation a callee answers; `None` if it is to be ignored (or the callee
    /// was aborted for answering an ID it was never given).
    fn answered(
        &mut self,
        callee: SessionId,
        request: Id,
        what: &str,
        ctx: &mut Ctx<'_>,
    ) -> Option<&Invocation> {
        let issued = self.callees.get(&callee).map_or(0, |s| s.last_invocation);
        if request > issued || request == 0 {
            ctx.protocol_violation(
                callee,
                format!("{what} for invocation {request}, which was never issued"),
            );
            return None;
        }
        // Issued but not pending: canceled, timed out, caller gone. The spec: discard.
        self.callees.get(&callee)?.invocations.get(&request)
    }

    fn end_invocation(&mut self, callee: SessionId, request: Id) -> Option<Invocation> {
        let inv = self
            .callees
            .get_mut(&callee)?
            .invocations
            .remove(&request)?;
        self.by_call.remove(&(inv.caller, inv.request));
        Some(inv)
    }

    /// Delivers (or queues) an invocation to a local callee.
    pub(crate) fn on_invoke(&mut self, invoke: Invoke, ctx: &mut Ctx<'_>) {
        let Some(state) = self.callees.get_mut(&invoke.callee) else {
            return fail_invoke(&invoke, errors::NO_SUCH_PROCEDURE, "callee left", ctx);
        };
        let Some(reg) = state.regs.get_mut(&invoke.invocation.registration) else {
            return fail_invoke(
                &invoke,
                errors::NO_SUCH_PROCEDURE,
                "callee unregistered",
                ctx,
            );
        };
        if !reg.active {
            reg.queued.push(Queued::Invoke(Box::new(invoke)));
            return;
        }
        state.last_invocation += 1;
        let id = state.last_invocation;
        let Invoke {
            caller,
            caller_shard,
            request,
            callee,
            mut invocation,
            forward_progress,
            streaming,
        } = invoke;
        invocation.request = id;
        self.by_call.insert((caller, request), (callee, id));
        state.invocations.insert(
            id,
            Invocation {
                caller,
                caller_shard,
                request,
                registration: invocation.registration,
                forward_progress,
                streaming: streaming.then(|| Box::new(invocation.details.clone())),
            },
        );
        ctx.send(callee, Message::Invocation(invocation));
    }

    /// A progressive-invocation chunk: INVOCATION with the same ID and the initial details.
    pub(crate) fn on_more(
        &mut self,
        call: CallRef,
        progress: bool,
        payload: Payload,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(&(callee, id)) = self.by_call.get(&(call.caller, call.request)) else {
            // Still queued behind REGISTERED: queue behind it, in order.
            if let Some(reg) = self.queue_of(&call) {
                let queued_invoke = reg.queued.iter().any(|q| {
                    matches!(q, Queued::Invoke(i) if i.caller == call.caller && i.request == call.request)
                });
                if queued_invoke {
                    reg.queued.push(Queued::More {
                        call,
                        progress,
                        payload,
                    });
                }
            }
            return; // otherwise completed meanwhile: discard (spec)
        };
        let Some(inv) = self
            .callees
            .get_mut(&callee)
            .and_then(|s| s.invocations.get_mut(&id))
        else {
            return;
        };
        // The last chunk takes the initial details; the others repeat a copy.
        let details = if progress {
            inv.streaming.as_deref().cloned()
        } else {
            inv.streaming.take().map(|d| *d)
        };
        let Some(mut details) = details else {
            return;
        };
        details.progress = progress.then_some(true);
        ctx.send(
            callee,
            Message::Invocation(Box::new(InvocationMsg {
                request: id,
                registration: inv.registration,
                details,
                payload,
            })),
        );
    }

    /// The queue of the (pending) local registration a call went to.
    fn queue_of(&mut self, call: &CallRef) -> Option<&mut super::LocalRegistration> {
        self.callees
            .get_mut(&call.callee)?
            .regs
            .get_mut(&call.registration)
            .filter(|r| !r.active)
    }

    /// Removes a call still queued behind REGISTERED; returns its Invoke.
    fn unqueue(&mut self, call: &CallRef) -> Option<Invoke> {
        let reg = self.queue_of(call)?;
        let mut found = None;
        let mut kept = Vec::with_capacity(reg.queued.len());
        for q in reg.queued.drain(..) {
            match q {
                Queued::Invoke(i) if i.caller == call.caller && i.request == call.request => {
                    found = Some(*i)
                }
                Queued::More { call: c, .. }
                    if c.caller == call.caller && c.request == call.request => {}
                other => kept.push(other),
            }
        }
        reg.queued = kept;
        found
    }

    fn interrupt(request: Id, mode: CancelMode, why: GoneReason) -> Message {
        Message::Interrupt(Interrupt {
            request,
            options: InterruptOptions {
                mode: Some(mode),
                reason: Some(why.reason_uri().to_owned()),
                ..InterruptOptions::default()
            },
        })
    }

    // ---- peer messages about calls (dispatched by `RealmShard`) -----------------------------

    /// Callee side, cancel mode `kill`: INTERRUPT, keep waiting for the callee's answer.
    pub(crate) fn on_interrupt(&mut self, call: CallRef, ctx: &mut Ctx<'_>) {
        if let Some(&(callee, id)) = self.by_call.get(&(call.caller, call.request)) {
            let msg = Self::interrupt(id, CancelMode::Kill, GoneReason::Canceled);
            ctx.send(callee, msg);
        } else if let Some(invoke) = self.unqueue(&call) {
            // The callee never saw it: answer the kill as the callee would.
            fail_invoke(&invoke, errors::CANCELED, "canceled", ctx);
        }
    }

    /// Callee side: the caller no longer waits; forget the invocation (INTERRUPT if asked).
    pub(crate) fn on_call_gone(
        &mut self,
        call: CallRef,
        interrupt: Option<GoneReason>,
        ctx: &mut Ctx<'_>,
    ) {
        let Some((callee, id)) = self.by_call.get(&(call.caller, call.request)).copied() else {
            self.unqueue(&call);
            return;
        };
        self.end_invocation(callee, id);
        let cancels = self
            .callees
            .get(&callee)
            .is_some_and(|s| s.features.callee_call_canceling);
        if let (Some(why), true) = (interrupt, cancels) {
            let msg = Self::interrupt(id, CancelMode::KillNoWait, why);
            ctx.send(callee, msg);
        }
    }

    /// Caller side: a progressive or final result.
    pub(crate) fn on_call_result(
        &mut self,
        caller: SessionId,
        result: Box<CallResult>,
        ctx: &mut Ctx<'_>,
    ) {
        let request = result.request;
        let key = (caller, request);
        let progress = result.details.progress == Some(true);
        if result.details.ppt_scheme.is_some()
            && self.calls.get(&key).is_some_and(|o| !o.caller_ppt)
        {
            // A passthru payload the caller did not announce it can read: the call fails
            // (the spec's `feature_not_supported`; told to the caller, whose call it ends,
            // since an ERROR for a YIELD is not a message a callee can be sent). Later
            // results of the callee find no call and are dropped.
            if self.finish(key, ctx).is_some() {
                ctx.error_msg(
                    caller,
                    code::CALL,
                    request,
                    errors::FEATURE_NOT_SUPPORTED,
                    Some("the callee answered in payload passthru mode, which this caller did not announce"),
                );
            }
            return;
        }
        if progress {
            let Some(out) = self.calls.get_mut(&key) else {
                return;
            };
            if !out.receive_progress {
                return;
            }
            // The caller has seen part of this callee's answer: no other callee may take over.
            out.reroute = None;
            let next = out.timeout.and_then(|t| ctx.now.checked_add(t));
            if let (Some(new), Some(old)) = (next, out.deadline) {
                out.deadline = Some(new);
                self.timers.remove(&(old, caller, request));
                self.timers.insert((new, caller, request));
            }
        } else if self.finish(key, ctx).is_none() {
            return; // canceled / timed out / caller gone: discard
        }
        ctx.send(caller, Message::Result(result));
    }

    /// Caller side: the call failed.
    pub(crate) fn on_call_error(
        &mut self,
        caller: SessionId,
        error: Box<crate::codec::Error>,
        ctx: &mut Ctx<'_>,
    ) {
        let key = (caller, error.request);
        let reroute = error.error.as_str() == errors::UNAVAILABLE
            || (error.error.as_str() == errors::NO_SUCH_PROCEDURE && self.is_rerouted(key));
        if reroute && self.reroute(key, ctx) {
            return;
        }
        if self.finish(key, ctx).is_none() {
            return;
        }
        ctx.send(caller, Message::Error(error));
    }
}

/// What a CALL becomes for one chosen callee.
struct Routed {
    details: InvocationDetails,
    /// The caller asked for progressive results and the callee can send them.
    forward_progress: bool,
    /// The callee enforces the call's timeout itself (`forward_timeout`).
    callee_times_out: bool,
}

impl Routed {
    fn new(
        caller: &SessionRef,
        msg: &Call,
        reg: &Registration,
        callee: &CalleeRef,
        config: &RoutingConfig,
    ) -> Self {
        let o = &msg.options;
        let disclose = o.disclose_me == Some(true) || reg.disclose_caller;
        let receive_progress = o.receive_progress == Some(true);
        let f = &callee.features;
        let callee_progress = f.callee_progressive_call_results
            && (f.callee_call_canceling || !config.strict_progressive_results);
        let forward_progress = receive_progress && callee_progress;
        let timeout_ms = o.timeout.unwrap_or(0);
        let callee_times_out =
            timeout_ms > 0 && reg.forward_timeout && callee.features.callee_call_timeout;
        let details = InvocationDetails {
            caller: disclose.then_some(IdField(caller.id)),
            caller_authid: disclose.then(|| caller.authid.to_string()),
            caller_authrole: disclose.then(|| caller.authrole.to_string()),
            procedure: (reg.policy != MatchPolicy::Exact).then(|| msg.procedure.clone()),
            receive_progress: forward_progress.then_some(true),
            progress: (o.progress == Some(true)).then_some(true),
            timeout: callee_times_out.then_some(timeout_ms),
            ppt_scheme: o.ppt_scheme.clone(),
            ppt_serializer: o.ppt_serializer.clone(),
            ppt_cipher: o.ppt_cipher.clone(),
            ppt_keyid: o.ppt_keyid.clone(),
            trustlevel: caller.trustlevel,
            ..InvocationDetails::default()
        };
        Routed {
            details,
            forward_progress,
            callee_times_out,
        }
    }
}

fn call_ref(key: (SessionId, Id), out: &OutCall) -> CallRef {
    CallRef {
        caller: key.0,
        request: key.1,
        callee: out.callee,
        registration: out.registration,
    }
}
