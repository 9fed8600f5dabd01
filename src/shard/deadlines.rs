//! The network reader's deadlines ([`ReadDeadlines`]): plain state fed with the time and what
//! the reader saw, asked for the next deadline; the reader in [`super::conn`] races that
//! deadline against its next read (no timer task per session).

use std::time::{Duration, Instant};

/// The network reader's deadlines, checked while it waits for input (no timer task per
/// session): HELLO by a time; a message complete within `frame_timeout` of its first byte
/// (so a peer dripping a frame byte by byte cannot hold a connection and its buffer forever);
/// and, optionally, some input from a joined session within `idle_timeout`, and a transport
/// ping to a joined session silent for `ping_interval`, answered (any input) within as long
/// again.
pub struct ReadDeadlines {
    hello: Instant,
    frame_timeout: Duration,
    idle_timeout: Option<Duration>,
    ping_interval: Option<Duration>,
    /// When the unanswered ping was sent; cleared by any input.
    ping_sent: Option<Instant>,
    /// When the first byte of the message still incomplete arrived (at the latest); None when
    /// no message is partly received.
    partial_since: Option<Instant>,
    /// When the last bytes arrived (or the session opened).
    last_input: Instant,
}

/// Which of the [`ReadDeadlines`] passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    Hello,
    Frame,
    Idle,
    /// Time to send a transport ping.
    Ping,
    /// The ping was not answered.
    PingTimeout,
}

impl ReadDeadlines {
    pub fn new(limits: &crate::config::Limits, now: Instant) -> Self {
        ReadDeadlines {
            hello: now + limits.hello_timeout,
            frame_timeout: limits.frame_timeout,
            idle_timeout: limits.idle_timeout,
            ping_interval: limits.ping_interval,
            ping_sent: None,
            partial_since: None,
            last_input: now,
        }
    }

    /// Bytes arrived at `now`.
    pub fn on_bytes(&mut self, now: Instant) {
        self.last_input = now;
        self.ping_sent = None;
    }

    /// A transport ping was sent at `now` ([`Expired::Ping`]); it is answered by any input.
    pub fn on_ping_sent(&mut self, now: Instant) {
        self.ping_sent = Some(now);
    }

    /// The buffered input was handled: `incomplete` if part of a message is still waiting for
    /// the rest, `completed` if at least one message was taken (what is left then belongs to
    /// a later message, whose first byte came with the last read at the latest).
    pub fn after_drain(&mut self, incomplete: bool, completed: bool) {
        self.partial_since = if !incomplete {
            None
        } else if completed || self.partial_since.is_none() {
            Some(self.last_input)
        } else {
            self.partial_since
        };
    }

    /// The earliest deadline that applies to a session that is still `awaiting_welcome` or
    /// `joined` (or neither: closing), if any.
    pub fn next(&self, awaiting_welcome: bool, joined: bool) -> Option<(Instant, Expired)> {
        let hello = awaiting_welcome.then_some((self.hello, Expired::Hello));
        let frame = self
            .partial_since
            .map(|t| (t + self.frame_timeout, Expired::Frame));
        let idle = match (joined, self.idle_timeout) {
            (true, Some(d)) => Some((self.last_input + d, Expired::Idle)),
            _ => None,
        };
        let ping = match (joined, self.ping_interval, self.ping_sent) {
            (true, Some(d), None) => Some((self.last_input + d, Expired::Ping)),
            (true, Some(d), Some(sent)) => Some((sent + d, Expired::PingTimeout)),
            _ => None,
        };
        [hello, frame, idle, ping]
            .into_iter()
            .flatten()
            .min_by_key(|(t, _)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadlines(idle: Option<Duration>, now: Instant) -> ReadDeadlines {
        let limits = crate::config::Limits {
            hello_timeout: Duration::from_secs(10),
            frame_timeout: Duration::from_secs(2),
            idle_timeout: idle,
            ..Default::default()
        };
        ReadDeadlines::new(&limits, now)
    }

    #[test]
    fn a_silent_joined_session_is_pinged_then_timed_out_unless_it_answers() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let limits = crate::config::Limits {
            ping_interval: Some(s(5)),
            ..Default::default()
        };
        let mut d = ReadDeadlines::new(&limits, t0);
        // Not before the session joined.
        assert_eq!(d.next(true, false).map(|x| x.1), Some(Expired::Hello));
        assert_eq!(d.next(false, true), Some((t0 + s(5), Expired::Ping)));
        d.on_ping_sent(t0 + s(5));
        assert_eq!(
            d.next(false, true),
            Some((t0 + s(10), Expired::PingTimeout))
        );
        // Answered (a pong is input): the next ping is due an interval after the answer.
        d.on_bytes(t0 + s(7));
        assert_eq!(d.next(false, true), Some((t0 + s(12), Expired::Ping)));
        // A closing session is not pinged.
        assert_eq!(d.next(false, false), None);
    }

    #[test]
    fn a_partial_message_is_bounded_from_its_first_byte() {
        let t0 = Instant::now();
        let mut d = deadlines(None, t0);
        assert_eq!(d.next(false, true), None);
        // First byte of a message at t0 + 1 s; more bytes of it later do not move the deadline.
        d.on_bytes(t0 + Duration::from_secs(1));
        d.after_drain(true, false);
        d.on_bytes(t0 + Duration::from_millis(2500));
        d.after_drain(true, false);
        assert_eq!(
            d.next(false, true),
            Some((t0 + Duration::from_secs(3), Expired::Frame))
        );
        // A message completed and the next one began in the same read: bounded from that read.
        d.on_bytes(t0 + Duration::from_secs(4));
        d.after_drain(true, true);
        assert_eq!(
            d.next(false, true),
            Some((t0 + Duration::from_secs(6), Expired::Frame))
        );
        d.after_drain(false, true);
        assert_eq!(d.next(false, true), None);
    }

    #[test]
    fn hello_and_idle_apply_to_their_states_only() {
        let t0 = Instant::now();
        let d = deadlines(Some(Duration::from_secs(30)), t0);
        assert_eq!(
            d.next(true, false),
            Some((t0 + Duration::from_secs(10), Expired::Hello))
        );
        assert_eq!(
            d.next(false, true),
            Some((t0 + Duration::from_secs(30), Expired::Idle))
        );
        assert_eq!(d.next(false, false), None);
        assert_eq!(deadlines(None, t0).next(false, true), None);
    }
}
