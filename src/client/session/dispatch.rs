//! Dispatching: what the background task does with each message the router sends.

use std::cell::Cell;
use std::rc::Rc;

use super::{error_message, parts, payload, wamp_error, EventFn, Inner, InvState, Kind};
use crate::client::sync::{Mailbox, Signal};
use crate::client::{Event, Invocation};
use crate::codec::{self, code, Dict, Id, Message, Uri, Value};

impl Inner {
    /// Handles one message; `Some(reason)` ends the connection.
    pub(super) fn dispatch(self: &Rc<Self>, m: Message, generation: u64) -> Option<String> {
        match m {
            Message::Result(r) => {
                let mut st = self.st.borrow_mut();
                let progress = r.details.progress == Some(true);
                let p = if progress {
                    // Only a call that asked for progressive results gets them; anything
                    // else would queue without bound (or keep a finished request pending).
                    match st.pending.get(&r.request) {
                        Some(p) if matches!(p.kind, Kind::Call { progress: true }) => {
                            Some(p.tx.clone())
                        }
                        Some(_) => {
                            tracing::debug!("dropping an unasked-for progressive RESULT");
                            None
                        }
                        None => None,
                    }
                } else {
                    st.pending.remove(&r.request).map(|p| p.tx)
                };
                drop(st);
                if let Some(tx) = p {
                    tx.push(Ok(Message::Result(r)));
                }
            }
            Message::Error(e) => {
                if e.request_type == code::INVOCATION {
                    return None;
                }
                let p = self.st.borrow_mut().pending.remove(&e.request);
                if let Some(p) = p {
                    match p.kind {
                        Kind::Register(key) => {
                            self.st.borrow_mut().regs.remove(&key);
                        }
                        Kind::Subscribe(key) => {
                            self.st.borrow_mut().subs.remove(&key);
                        }
                        Kind::Plain | Kind::Call { .. } => {}
                    }
                    p.tx.push(Err(wamp_error(*e)));
                }
            }
            Message::Registered(r) => {
                let mut st = self.st.borrow_mut();
                if let Some(p) = st.pending.remove(&r.request) {
                    if let Kind::Register(key) = p.kind {
                        if let Some(e) = st.regs.get_mut(&key) {
                            e.router_id = Some(r.registration);
                            e.confirmed = true;
                            st.reg_ids.insert(r.registration, key);
                        }
                    }
                    drop(st);
                    p.tx.push(Ok(Message::Registered(r)));
                }
            }
            Message::Subscribed(s) => {
                let mut st = self.st.borrow_mut();
                if let Some(p) = st.pending.remove(&s.request) {
                    if let Kind::Subscribe(key) = p.kind {
                        if let Some(e) = st.subs.get_mut(&key) {
                            e.router_id = Some(s.subscription);
                            e.confirmed = true;
                            let keys = st.sub_ids.entry(s.subscription).or_default();
                            if !keys.contains(&key) {
                                keys.push(key);
                            }
                        }
                    }
                    drop(st);
                    p.tx.push(Ok(Message::Subscribed(s)));
                }
            }
            Message::Unregistered(u) => {
                if u.request == 0 {
                    // Revoked by the router.
                    let id = u
                        .details
                        .as_ref()
                        .and_then(|d| d.get("registration"))
                        .and_then(Value::as_id);
                    let mut st = self.st.borrow_mut();
                    if let Some(key) = id.and_then(|id| st.reg_ids.remove(&id)) {
                        st.regs.remove(&key);
                    }
                } else {
                    self.reply_plain(u.request, Message::Unregistered(u));
                }
            }
            Message::Unsubscribed(u) => {
                if u.request == 0 {
                    let id = u
                        .details
                        .as_ref()
                        .and_then(|d| d.get("subscription"))
                        .and_then(Value::as_id);
                    let mut st = self.st.borrow_mut();
                    if let Some(keys) = id.and_then(|id| st.sub_ids.remove(&id)) {
                        for k in keys {
                            st.subs.remove(&k);
                        }
                    }
                } else {
                    self.reply_plain(u.request, Message::Unsubscribed(u));
                }
            }
            Message::Published(p) => self.reply_plain(p.request, Message::Published(p)),
            Message::Event(ev) => self.on_event(ev),
            Message::Invocation(inv) => return self.on_invocation(inv, generation),
            Message::Interrupt(i) => {
                let inv = self.st.borrow().invocations.get(&i.request).cloned();
                if let Some(inv) = inv {
                    if inv.finished.get() {
                        self.st.borrow_mut().invocations.remove(&i.request);
                    }
                    inv.interrupted
                        .set(Some(i.options.mode.unwrap_or(codec::CancelMode::Kill)));
                    inv.interrupt.set();
                }
            }
            Message::Goodbye(g) => {
                let leaving = self.st.borrow().leaving;
                if !leaving {
                    self.send_in(
                        generation,
                        Message::Goodbye(codec::Goodbye {
                            details: Dict::new(),
                            reason: Uri::from("wamp.close.goodbye_and_out"),
                        }),
                    );
                }
                return Some(format!("router said goodbye: {}", g.reason));
            }
            Message::Abort(a) => return Some(format!("router aborted: {}", a.reason)),
            other => {
                // E.g. a second WELCOME, or a message only a router receives: the session is
                // unusable; tell the router why before closing (the writer drains it).
                let reason = format!("unexpected {} from the router", other.name());
                self.abort_violation(generation, &reason);
                return Some(format!("protocol: {reason}"));
            }
        }
        None
    }

    /// Queues ABORT `wamp.error.protocol_violation` (before the connection is closed).
    pub(super) fn abort_violation(&self, generation: u64, message: &str) {
        let mut details = Dict::new();
        details.insert("message".into(), Value::Str(message.to_owned()));
        self.send_in(
            generation,
            Message::Abort(codec::Abort {
                details,
                reason: Uri::from("wamp.error.protocol_violation"),
            }),
        );
    }

    fn reply_plain(&self, request: Id, m: Message) {
        let p = self.st.borrow_mut().pending.remove(&request);
        if let Some(p) = p {
            p.tx.push(Ok(m));
        }
    }

    fn on_event(&self, ev: Box<codec::Event>) {
        let targets: Vec<(EventFn, Uri)> = {
            let st = self.st.borrow();
            match st.sub_ids.get(&ev.subscription) {
                None => return,
                Some(keys) => keys
                    .iter()
                    .filter_map(|k| st.subs.get(k))
                    .map(|e| (e.handler.clone(), e.topic.clone()))
                    .collect(),
            }
        };
        let (args, kwargs) = match parts(&ev.payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("dropping EVENT {}: {e}", ev.publication);
                return;
            }
        };
        for (handler, topic) in targets {
            handler(Event {
                subscription: ev.subscription,
                publication: ev.publication,
                topic: ev.details.topic.clone().unwrap_or(topic),
                args: args.clone(),
                kwargs: kwargs.clone(),
                details: ev.details.clone(),
            });
        }
    }

    /// Runs or continues an invocation; `Some(reason)` ends the connection.
    fn on_invocation(
        self: &Rc<Self>,
        inv: Box<codec::Invocation>,
        generation: u64,
    ) -> Option<String> {
        let more = inv.details.progress == Some(true);
        // A further chunk of a progressive invocation?
        let running = self.st.borrow().invocations.get(&inv.request).cloned();
        if let Some(state) = running {
            if !state.progressive || state.chunks.is_closed() {
                // The request ID of an invocation in progress, which takes no more chunks:
                // answering it would answer the first one too.
                let reason = format!("INVOCATION reuses the running request {}", inv.request);
                self.abort_violation(generation, &reason);
                return Some(format!("protocol: {reason}"));
            }
            if state.progressive && !state.chunks.is_closed() && !state.finished.get() {
                match parts(&inv.payload) {
                    Ok(p) => {
                        state.chunks.push(p);
                    }
                    Err(e) => tracing::warn!("dropping invocation chunk: {e}"),
                }
            }
            if !more {
                state.chunks.close();
                if state.finished.get() {
                    self.st.borrow_mut().invocations.remove(&inv.request);
                }
            }
            return None;
        }
        let target = {
            let st = self.st.borrow();
            st.reg_ids
                .get(&inv.registration)
                .and_then(|k| st.regs.get(k))
                .map(|e| (e.handler.clone(), e.procedure.clone()))
        };
        let Some((handler, procedure)) = target else {
            self.send_in(
                generation,
                error_message(
                    code::INVOCATION,
                    inv.request,
                    "wamp.error.no_such_registration",
                    Vec::new(),
                ),
            );
            return None;
        };
        let (args, kwargs) = match parts(&inv.payload) {
            Ok(p) => p,
            Err(e) => {
                self.send_in(
                    generation,
                    error_message(
                        code::INVOCATION,
                        inv.request,
                        "wamp.error.invalid_argument",
                        vec![Value::Str(e.to_string())],
                    ),
                );
                return None;
            }
        };
        let state = Rc::new(InvState {
            inner: self.clone(),
            request: inv.request,
            generation,
            progressive: more,
            chunks: Mailbox::new(),
            interrupted: Cell::new(None),
            interrupt: Signal::default(),
            finished: Cell::new(false),
            answered: Cell::new(false),
        });
        if !more {
            state.chunks.close();
        }
        self.st
            .borrow_mut()
            .invocations
            .insert(inv.request, state.clone());
        let invocation = Invocation {
            request: inv.request,
            registration: inv.registration,
            procedure: inv.details.procedure.clone().unwrap_or(procedure),
            args,
            kwargs,
            details: inv.details,
            state: state.clone(),
        };
        let inner = self.clone();
        let request = inv.request;
        self.rt.spawn(async move {
            let result = handler(invocation).await;
            state.answered.set(true);
            {
                let mut st = inner.st.borrow_mut();
                if st
                    .invocations
                    .get(&request)
                    .is_some_and(|s| Rc::ptr_eq(s, &state))
                {
                    if state.chunks.is_closed() {
                        st.invocations.remove(&request);
                    } else {
                        // Chunks of this call may still come: keep the request ID known
                        // until the final one, so they are not taken for new invocations.
                        state.finished.set(true);
                    }
                }
            }
            let m = match result {
                Ok(y) => Message::Yield(Box::new(codec::Yield {
                    request,
                    options: codec::YieldOptions {
                        progress: None,
                        ..y.options
                    },
                    payload: payload(y.args, y.kwargs),
                })),
                Err(e) => Message::Error(Box::new(codec::Error {
                    request_type: code::INVOCATION,
                    request,
                    details: Dict::new(),
                    error: e.error,
                    payload: payload(e.args, e.kwargs),
                })),
            };
            inner.send_in(generation, m);
        });
        None
    }
}
