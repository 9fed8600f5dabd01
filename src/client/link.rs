//! The client's message link: a network connection (RawSocket or WebSocket over TCP, TLS or a
//! Unix socket, JSON or MessagePack) or, in-process, a router's local transport. The session
//! code sees only [`LinkReader`] and [`LinkWriter`].

use bytes::Bytes;

use super::sync::Mailbox;
use super::transport::{self, Reader, Tls, Writer};
use super::url::Endpoint;
use super::Error;
use crate::codec::{Message, Serializer};
use crate::net::inproc::LocalTransport;
use std::rc::Rc;

/// What the writer task sends.
// Pongs are rare; boxing every message to shrink them would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Out {
    /// A WAMP message.
    Msg(Message),
    /// The answer to a transport ping.
    Pong(Bytes),
}

/// The receiving half of a link.
#[cfg_attr(not(feature = "router"), allow(dead_code))]
pub(crate) enum LinkReader {
    Net(Reader),
    /// In-process: messages as values, no serialization.
    Local(Rc<LocalTransport>),
}

/// The sending half of a link.
#[cfg_attr(not(feature = "router"), allow(dead_code))]
pub(crate) enum LinkWriter {
    Net(Writer),
    /// In-process; messages that could not be handed over (the router closed) make the next
    /// flush fail.
    Local(Rc<LocalTransport>, bool),
}

/// Opens an in-process link to the router behind `connector`.
#[cfg(feature = "router")]
pub(crate) fn open_local(
    connector: &crate::shard::LocalConnector,
) -> Result<(LinkReader, LinkWriter), Error> {
    let t = Rc::new(
        connector
            .connect()
            .map_err(|e| Error::Transport(e.to_string()))?,
    );
    Ok((LinkReader::Local(t.clone()), LinkWriter::Local(t, false)))
}

/// Opens a network link to `ep` (no WAMP yet).
pub(crate) async fn open(
    rt: super::rt::Rt,
    ep: &Endpoint,
    ser: Serializer,
    tls: Option<&Tls>,
) -> Result<(LinkReader, LinkWriter), Error> {
    let (r, w) = transport::connect_on(rt, ep, ser, tls).await?;
    Ok((LinkReader::Net(r), LinkWriter::Net(w)))
}

impl LinkReader {
    /// The next message; `Ok(None)` when the peer closed the link. Transport pings are
    /// answered through `out`. Cancel-safe: dropping the future loses nothing.
    pub(crate) async fn next(
        &mut self,
        out: Option<&Mailbox<Out>>,
    ) -> Result<Option<Message>, Error> {
        match self {
            LinkReader::Net(r) => loop {
                if let Some(frame) = r.buffered_frame()? {
                    return Ok(Some(
                        crate::codec::decode(r.ser, &frame)
                            .map_err(|e| Error::Protocol(e.to_string()))?,
                    ));
                }
                if let Some(out) = out {
                    for p in r.take_pings() {
                        out.push(Out::Pong(p));
                    }
                }
                if r.is_closed() || !r.fill().await? {
                    return Ok(None);
                }
            },
            LinkReader::Local(t) => Ok(t.recv().await),
        }
    }
}

impl LinkWriter {
    /// Queues `item` for the next [`LinkWriter::flush`].
    pub(crate) fn push(&mut self, item: Out) {
        match (self, item) {
            (LinkWriter::Net(w), Out::Msg(m)) => w.push(&m),
            (LinkWriter::Net(w), Out::Pong(p)) => w.pong(&p),
            (LinkWriter::Local(t, failed), Out::Msg(m)) => {
                if t.send(m).is_err() {
                    *failed = true;
                }
            }
            (LinkWriter::Local(..), Out::Pong(_)) => {}
        }
    }

    /// Writes everything queued.
    pub(crate) async fn flush(&mut self) -> Result<(), Error> {
        match self {
            LinkWriter::Net(w) => w.flush().await.map(|_| ()).map_err(Error::from),
            LinkWriter::Local(_, true) => Err(Error::Transport("the router closed".into())),
            LinkWriter::Local(_, false) => Ok(()),
        }
    }

    /// Sends one message now (used while joining).
    pub(crate) async fn send(&mut self, m: Message) -> Result<(), Error> {
        self.push(Out::Msg(m));
        self.flush().await
    }

    /// Closes the link (TLS close_notify / TCP FIN).
    pub(crate) async fn close(&mut self) {
        match self {
            LinkWriter::Net(w) => w.close().await,
            LinkWriter::Local(t, _) => t.close(),
        }
    }
}
