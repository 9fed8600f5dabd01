//! WebSocket cookie tracking and cookie authentication (`cookie`).
//!
//! With `--ws-cookie`, a WebSocket upgrade without a known tracking cookie gets a fresh random
//! one (`Set-Cookie`, HttpOnly, SameSite=Strict, Max-Age). When a session on a connection with
//! a cookie is authenticated by another method, the cookie is bound to that identity and realm
//! in the [`CookieStore`]; a later connection carrying the cookie can then join the realm with
//! authmethod `cookie` and no CHALLENGE. The store is bounded (`--ws-cookie-max-entries`): when
//! full, the oldest entry goes (which is also the first to expire).
//!
//! The store is shared by all shards (a later connection may land on any shard): a mutex held
//! only for a map lookup or insert, never across I/O.

use super::{AuthMethod, Channel, Identity};
use crate::codec::options::HelloDetails;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Bound {
    realm: String,
    authid: String,
    authrole: String,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    /// Cookie value → what it was set for, and the identity bound to it (once authenticated).
    entries: HashMap<String, (Instant, Option<Bound>)>,
    /// Insertion order, for eviction.
    order: VecDeque<String>,
}

/// The router's cookie store (shared by every shard).
#[derive(Debug)]
pub struct CookieStore {
    pub name: String,
    pub max_age: Duration,
    pub max_entries: usize,
    inner: Mutex<Inner>,
}

impl CookieStore {
    pub fn new(name: String, max_age: Duration, max_entries: usize) -> CookieStore {
        CookieStore {
            name,
            max_age,
            max_entries: max_entries.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent in a harmful way.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of cookies tracked.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cookie to use for a WebSocket upgrade whose request carried `presented` (the value
    /// of our cookie, if any): `(value, true)` when it is known and unexpired, else a fresh
    /// value from `entropy` that is now tracked, `(value, false)` — the caller sets it.
    pub fn track(
        &self,
        presented: Option<&str>,
        entropy: &[u8; 32],
        now: Instant,
    ) -> (String, bool) {
        let mut inner = self.lock();
        if let Some(v) = presented {
            if inner.entries.get(v).is_some_and(|(exp, _)| *exp > now) {
                return (v.to_owned(), true);
            }
        }
        let value = hex::encode(entropy);
        // Every cookie lives `max_age` from its creation, so creation order is expiry order:
        // the front of the queue is the first to expire (or already expired). O(1) per cookie.
        while inner.entries.len() >= self.max_entries {
            match inner.order.pop_front() {
                Some(k) => {
                    inner.entries.remove(&k);
                }
                None => break,
            }
        }
        inner
            .entries
            .insert(value.clone(), (now + self.max_age, None));
        inner.order.push_back(value.clone());
        (value, false)
    }

    /// Binds `cookie` to an identity authenticated (by another method) on `realm`.
    pub fn bind(&self, cookie: &str, realm: &str, id: &Identity, now: Instant) {
        if id.method == AuthMethod::Cookie || id.method == AuthMethod::Anonymous {
            return;
        }
        let mut inner = self.lock();
        if let Some((exp, bound)) = inner.entries.get_mut(cookie) {
            if *exp > now {
                *bound = Some(Bound {
                    realm: realm.to_owned(),
                    authid: id.authid.clone(),
                    authrole: id.authrole.clone(),
                    expires: *exp,
                });
            }
        }
    }

    fn lookup(&self, cookie: &str, realm: &str, now: Instant) -> Option<(String, String)> {
        let inner = self.lock();
        let (_, bound) = inner.entries.get(cookie)?;
        let b = bound.as_ref()?;
        (b.realm == realm && b.expires > now).then(|| (b.authid.clone(), b.authrole.clone()))
    }
}

pub(super) fn identify(
    hello: &HelloDetails,
    channel: &Channel,
    realm: &str,
    store: &CookieStore,
) -> Option<Identity> {
    let cookie = channel.cookie.as_deref()?;
    let (authid, authrole) = store.lookup(cookie, realm, Instant::now())?;
    if hello.authid.as_deref().is_some_and(|a| a != authid) {
        return None;
    }
    Some(Identity {
        authid,
        authrole,
        method: AuthMethod::Cookie,
        authextra: None,
    })
}

impl CookieStore {
    /// The `Set-Cookie` header value for a fresh cookie (`Secure` on a TLS transport).
    pub fn set_cookie_header(&self, value: &str, secure: bool) -> String {
        format!(
            "{}={value}; Max-Age={}; HttpOnly; SameSite=Strict; Path=/{}",
            self.name,
            self.max_age.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            authid: "joe".into(),
            authrole: "user".into(),
            method: AuthMethod::Ticket,
            authextra: None,
        }
    }

    #[test]
    fn tracks_binds_and_bounds() {
        let store = CookieStore::new("cbtid".into(), Duration::from_secs(60), 2);
        let now = Instant::now();
        let (a, known) = store.track(None, &[1; 32], now);
        assert!(!known);
        assert_eq!(store.track(Some(&a), &[2; 32], now), (a.clone(), true));
        let ch = Channel {
            cookie: Some(a.clone()),
            ..Default::default()
        };
        let hello = HelloDetails::default();
        assert!(
            identify(&hello, &ch, "r", &store).is_none(),
            "not bound yet"
        );
        store.bind(&a, "r", &id(), now);
        let got = identify(&hello, &ch, "r", &store).unwrap();
        assert_eq!(
            (got.authid.as_str(), got.method),
            ("joe", AuthMethod::Cookie)
        );
        assert!(
            identify(&hello, &ch, "other", &store).is_none(),
            "realm-bound"
        );
        // Unknown cookie value: a fresh one.
        let (b, known) = store.track(Some("forged"), &[3; 32], now);
        assert!(!known && b != "forged");
        // Bounded: a third cookie evicts the oldest.
        let (_c, _) = store.track(None, &[4; 32], now);
        assert_eq!(store.len(), 2);
        assert!(identify(&hello, &ch, "r", &store).is_none(), "evicted");
        // Expiry.
        let later = now + Duration::from_secs(61);
        assert!(!store.track(Some(&b), &[5; 32], later).1);
    }
}
