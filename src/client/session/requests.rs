//! Sending: requests to the router (register, subscribe, publish, leave) and their replies.

use std::rc::Rc;

use super::{
    payload, EventFn, Inner, InvokeFn, Kind, Pending, RegEntry, ReplyBox, SubEntry, LEAVE_TIMEOUT,
};
use crate::client::link::Out;
use crate::client::sync::Mailbox;
use crate::client::Error;
use crate::codec::{
    self, Dict, Id, Message, PublishOptions, RegisterOptions, SubscribeOptions, Uri, Value,
    WelcomeDetails,
};

impl Inner {
    /// Queues `m` on the connection of `generation`; errors if that connection is gone.
    pub(crate) fn send_checked(&self, generation: u64, m: Message) -> Result<(), Error> {
        let st = self.st.borrow();
        match &st.conn {
            Some(c) if c.generation == generation => {
                if c.out.push(Out::Msg(m)) {
                    Ok(())
                } else {
                    Err(Error::Transport("connection lost".into()))
                }
            }
            _ if st.closed => Err(Error::Closed),
            _ => Err(Error::Transport("connection lost".into())),
        }
    }

    /// Like [`Inner::send_checked`], ignoring a lost connection (its peer state is gone too).
    pub(crate) fn send_in(&self, generation: u64, m: Message) {
        let _ = self.send_checked(generation, m);
    }

    /// Allocates a request ID, registers its reply box and sends `build(request)`.
    pub(crate) fn request(
        &self,
        kind: Kind,
        build: impl FnOnce(Id) -> Message,
    ) -> Result<(Id, u64, ReplyBox), Error> {
        let mut st = self.st.borrow_mut();
        if st.closed {
            return Err(Error::Closed);
        }
        let Some(conn) = &st.conn else {
            return Err(Error::Transport("not connected".into()));
        };
        let (out, generation) = (conn.out.clone(), conn.generation);
        let mut request = st.next_request;
        while st.pending.contains_key(&request) {
            request = request % codec::MAX_ID + 1;
        }
        st.next_request = request % codec::MAX_ID + 1;
        let tx: ReplyBox = Rc::new(Mailbox::new());
        st.pending.insert(
            request,
            Pending {
                tx: tx.clone(),
                kind,
            },
        );
        if !out.push(Out::Msg(build(request))) {
            st.pending.remove(&request);
            return Err(Error::Transport("connection lost".into()));
        }
        Ok((request, generation, tx))
    }

    /// The reply to `request`; if this future is dropped first, the request is forgotten
    /// (its pending entry would otherwise stay until the connection ends).
    pub(super) async fn wait_reply(
        &self,
        request: Id,
        generation: u64,
        rx: &Mailbox<Result<Message, Error>>,
    ) -> Result<Message, Error> {
        let forget = OnDrop(Some(|| self.forget(request, generation)));
        let r = reply(rx).await;
        forget.disarm();
        r
    }

    /// Drops a pending request of the connection `generation` (its reply, if any, is
    /// ignored); a no-op once that connection is gone, as request IDs restart with each
    /// session and the ID may be another request's by now.
    pub(crate) fn forget(&self, request: Id, generation: u64) {
        let mut st = self.st.borrow_mut();
        if st.generation == generation {
            st.pending.remove(&request);
        }
    }

    pub(crate) fn session_id(&self) -> Option<Id> {
        self.st.borrow().conn.as_ref().map(|c| c.session)
    }

    pub(crate) fn welcome_details(&self) -> Option<WelcomeDetails> {
        self.st.borrow().conn.as_ref().map(|c| c.welcome.clone())
    }

    fn new_key(&self) -> u64 {
        let mut st = self.st.borrow_mut();
        let k = st.next_key;
        st.next_key += 1;
        k
    }

    pub(crate) async fn register(
        &self,
        procedure: Uri,
        opts: RegisterOptions,
        handler: InvokeFn,
    ) -> Result<(Id, u64), Error> {
        let key = self.new_key();
        self.st.borrow_mut().regs.insert(
            key,
            RegEntry {
                procedure: procedure.clone(),
                opts: opts.clone(),
                handler,
                router_id: None,
                confirmed: false,
            },
        );
        // If this future is dropped before the answer, the entry goes too (else a handler
        // nobody can unregister would stay, and be restored after reconnects).
        let entry = OnDrop(Some(|| {
            self.st.borrow_mut().regs.remove(&key);
        }));
        let sent = self.request(Kind::Register(key), |request| {
            Message::Register(codec::Register {
                request,
                options: opts,
                procedure,
            })
        });
        let result = match sent {
            Ok((request, generation, rx)) => self.wait_reply(request, generation, &rx).await,
            Err(e) => Err(e),
        };
        entry.disarm();
        match result {
            Ok(Message::Registered(r)) => Ok((r.registration, key)),
            Ok(other) => {
                self.st.borrow_mut().regs.remove(&key);
                Err(Error::Protocol(format!(
                    "{} in answer to REGISTER",
                    other.name()
                )))
            }
            Err(e) => {
                self.st.borrow_mut().regs.remove(&key);
                Err(e)
            }
        }
    }

    pub(crate) async fn unregister(&self, key: u64) -> Result<(), Error> {
        let router_id = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return Err(Error::Closed);
            }
            let Some(e) = st.regs.remove(&key) else {
                return Err(Error::Invalid("not registered".into()));
            };
            if let Some(id) = e.router_id {
                st.reg_ids.remove(&id);
            }
            e.router_id
        };
        let Some(registration) = router_id else {
            return Ok(()); // disconnected: forgotten
        };
        let (request, generation, rx) = self.request(Kind::Plain, |request| {
            Message::Unregister(codec::Unregister {
                request,
                registration,
            })
        })?;
        self.wait_reply(request, generation, &rx).await.map(|_| ())
    }

    pub(crate) async fn subscribe(
        &self,
        topic: Uri,
        opts: SubscribeOptions,
        handler: EventFn,
    ) -> Result<(Id, u64), Error> {
        let key = self.new_key();
        self.st.borrow_mut().subs.insert(
            key,
            SubEntry {
                topic: topic.clone(),
                opts: opts.clone(),
                handler,
                router_id: None,
                confirmed: false,
            },
        );
        let entry = OnDrop(Some(|| {
            self.st.borrow_mut().subs.remove(&key);
        }));
        let sent = self.request(Kind::Subscribe(key), |request| {
            Message::Subscribe(codec::Subscribe {
                request,
                options: opts,
                topic,
            })
        });
        let result = match sent {
            Ok((request, generation, rx)) => self.wait_reply(request, generation, &rx).await,
            Err(e) => Err(e),
        };
        entry.disarm();
        match result {
            Ok(Message::Subscribed(s)) => Ok((s.subscription, key)),
            Ok(other) => {
                self.st.borrow_mut().subs.remove(&key);
                Err(Error::Protocol(format!(
                    "{} in answer to SUBSCRIBE",
                    other.name()
                )))
            }
            Err(e) => {
                self.st.borrow_mut().subs.remove(&key);
                Err(e)
            }
        }
    }

    pub(crate) async fn unsubscribe(&self, key: u64) -> Result<(), Error> {
        let router_id = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return Err(Error::Closed);
            }
            let Some(e) = st.subs.remove(&key) else {
                return Err(Error::Invalid("not subscribed".into()));
            };
            match e.router_id {
                None => None,
                Some(id) => {
                    let last = match st.sub_ids.get_mut(&id) {
                        Some(keys) => {
                            keys.retain(|k| *k != key);
                            keys.is_empty()
                        }
                        None => true,
                    };
                    if last {
                        st.sub_ids.remove(&id);
                        Some(id)
                    } else {
                        None // another subscription of this client shares the router's
                    }
                }
            }
        };
        let Some(subscription) = router_id else {
            return Ok(());
        };
        let (request, generation, rx) = self.request(Kind::Plain, |request| {
            Message::Unsubscribe(codec::Unsubscribe {
                request,
                subscription,
            })
        })?;
        self.wait_reply(request, generation, &rx).await.map(|_| ())
    }

    pub(crate) async fn publish(
        &self,
        topic: Uri,
        args: Vec<Value>,
        kwargs: Dict,
        opts: PublishOptions,
    ) -> Result<Option<Id>, Error> {
        if opts.acknowledge != Some(true) {
            self.publish_unacked(topic, args, kwargs, opts)?;
            return Ok(None);
        }
        let (request, generation, rx) =
            self.request(Kind::Plain, publish_message(topic, args, kwargs, opts))?;
        match self.wait_reply(request, generation, &rx).await? {
            Message::Published(p) => Ok(Some(p.publication)),
            other => Err(Error::Protocol(format!(
                "{} in answer to PUBLISH",
                other.name()
            ))),
        }
    }

    /// A publish without acknowledgement: queued at once (nothing to wait for).
    pub(crate) fn publish_unacked(
        &self,
        topic: Uri,
        args: Vec<Value>,
        kwargs: Dict,
        opts: PublishOptions,
    ) -> Result<(), Error> {
        let (request, generation, _) =
            self.request(Kind::Plain, publish_message(topic, args, kwargs, opts))?;
        self.forget(request, generation);
        Ok(())
    }

    pub(crate) async fn leave(&self) -> Result<(), Error> {
        let conn = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return Err(Error::Closed);
            }
            st.leaving = true;
            st.conn.as_ref().map(|c| (c.out.clone(), c.dead.clone()))
        };
        self.stop.set();
        if let Some((out, dead)) = conn {
            out.push(Out::Msg(Message::Goodbye(codec::Goodbye {
                details: Dict::new(),
                reason: Uri::from("wamp.close.close_realm"),
            })));
            if self
                .rt
                .timeout(LEAVE_TIMEOUT, self.closed.wait())
                .await
                .is_none()
            {
                dead.set();
            }
        }
        // Bounded: the background task ends once the connection is dead or stop is set.
        let _ = self.rt.timeout(LEAVE_TIMEOUT, self.closed.wait()).await;
        Ok(())
    }
}

/// Runs its closure when dropped, unless disarmed.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// The single reply to a request.
async fn reply(rx: &Mailbox<Result<Message, Error>>) -> Result<Message, Error> {
    match rx.recv().await {
        Some(r) => r,
        None => Err(Error::Transport("connection lost".into())),
    }
}

/// PUBLISH for a request ID.
fn publish_message(
    topic: Uri,
    args: Vec<Value>,
    kwargs: Dict,
    opts: PublishOptions,
) -> impl FnOnce(Id) -> Message {
    move |request| {
        Message::Publish(Box::new(codec::Publish {
            request,
            options: opts,
            topic,
            payload: payload(args, kwargs),
        }))
    }
}
