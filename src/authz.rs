//! Authorization: who may call, register, publish and subscribe to which URIs.
//!
//! Three sources decide, in this order, for a message from an established session:
//!
//! 1. An embedder's [`Authorizer`] installed on [`crate::RouterConfig::authorizer`]:
//!    its answer is final; `None` means "no opinion".
//! 2. The realm's static rules ([`RealmPolicy`], from `[[realm.role]]`): a realm without roles
//!    and without a dynamic authorizer allows everything (the router's historical behaviour).
//!    Once a realm has roles, everything is denied by default: a session of a `trusted` role
//!    may do anything; any other configured role may do what its best-matching permission
//!    allows (exact beats prefix beats wildcard; the longest prefix wins).
//! 3. The realm's dynamic authorizer (`realm.authorizer = "procedure.uri"`), for sessions whose
//!    role has no `[[realm.role]]` table: a WAMP procedure the router calls with
//!    `(session details, uri, action)`; its result (`true`/`false`, or `{allow, disclose,
//!    cache}`) is cached per shard in an [`AuthzCache`] (TTL and size bounded). Only a trusted
//!    role may register that procedure; a timeout or an error denies (fail closed).
//!
//! A denied request is answered with `wamp.error.not_authorized`.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a session asks to do with a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthzAction {
    Call,
    Register,
    Publish,
    Subscribe,
}

impl AuthzAction {
    /// The action's name, as given to a dynamic authorizer.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthzAction::Call => "call",
            AuthzAction::Register => "register",
            AuthzAction::Publish => "publish",
            AuthzAction::Subscribe => "subscribe",
        }
    }
}

/// The permission fields are config values (`[[realm.role.permission]]`); re-exported here.
pub use crate::config::{Allow, Disclose, UriMatch};

/// The rule side of [`Allow`] (the struct itself is a config value).
impl Allow {
    /// Whether `action` is allowed.
    pub fn permits(&self, action: AuthzAction) -> bool {
        match action {
            AuthzAction::Call => self.call,
            AuthzAction::Register => self.register,
            AuthzAction::Publish => self.publish,
            AuthzAction::Subscribe => self.subscribe,
        }
    }
}

/// One rule of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permission {
    pub uri: String,
    pub matching: UriMatch,
    pub allow: Allow,
    pub disclose: Disclose,
}

impl Permission {
    /// How well the rule matches `uri`: `None` if not at all, higher is more specific.
    fn score(&self, uri: &str) -> Option<(u8, usize)> {
        match self.matching {
            UriMatch::Exact => (uri == self.uri).then_some((3, self.uri.len())),
            UriMatch::Prefix => uri.starts_with(&self.uri).then_some((2, self.uri.len())),
            UriMatch::Wildcard => {
                let mut pat = self.uri.split('.');
                let mut got = uri.split('.');
                let mut fixed = 0;
                loop {
                    match (pat.next(), got.next()) {
                        (None, None) => return Some((1, fixed)),
                        (Some(p), Some(g)) => {
                            if !p.is_empty() {
                                if p != g {
                                    return None;
                                }
                                fixed += 1;
                            }
                        }
                        _ => return None,
                    }
                }
            }
        }
    }
}

/// A role of a realm (`[[realm.role]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    /// May do anything (and register the realm's dynamic authorizer).
    pub trusted: bool,
    /// The trust level given to this role's calls and publications.
    pub trustlevel: Option<u64>,
    pub permissions: Vec<Permission>,
}

impl Role {
    /// The role a `[[realm.role]]` section describes.
    pub fn from_section(r: &crate::config::RoleSection) -> Role {
        Role {
            name: r.name.clone(),
            trusted: r.trusted,
            trustlevel: r.trustlevel,
            permissions: r
                .permissions
                .iter()
                .map(|p| Permission {
                    uri: p.uri.clone(),
                    matching: p.matching,
                    allow: p.allow,
                    disclose: p.disclose,
                })
                .collect(),
        }
    }
}

/// The outcome of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    /// Force disclosure of the caller (for a call) or publisher (for a publish).
    pub disclose: bool,
}

impl Decision {
    pub const ALLOW: Decision = Decision {
        allow: true,
        disclose: false,
    };
    pub const DENY: Decision = Decision {
        allow: false,
        disclose: false,
    };
}

/// The session asking, as an [`Authorizer`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct SessionInfo<'a> {
    pub session: u64,
    pub realm: &'a str,
    pub authid: &'a str,
    pub authrole: &'a str,
}

/// An authorizer an embedder installs on the router
/// ([`crate::RouterConfig::authorizer`]). It runs on the shard's thread for every
/// CALL, REGISTER, PUBLISH and SUBSCRIBE, so it must be quick and must not block.
///
/// Return `Some(decision)` to decide, `None` to leave the decision to the realm's configured
/// rules.
///
/// ```
/// use switchyard::authz::{Authorizer, AuthzAction, Decision, SessionInfo};
/// struct ReadOnlyGuests;
/// impl Authorizer for ReadOnlyGuests {
///     fn authorize(&self, s: &SessionInfo<'_>, _uri: &str, a: AuthzAction) -> Option<Decision> {
///         (s.authrole == "guest").then(|| Decision {
///             allow: a == AuthzAction::Subscribe,
///             disclose: false,
///         })
///     }
/// }
/// ```
pub trait Authorizer: Send + Sync {
    fn authorize(
        &self,
        session: &SessionInfo<'_>,
        uri: &str,
        action: AuthzAction,
    ) -> Option<Decision>;
}

/// An installed [`Authorizer`] (`Debug` for the config structs).
#[derive(Clone)]
pub struct SharedAuthorizer(pub Arc<dyn Authorizer>);

impl std::fmt::Debug for SharedAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedAuthorizer(..)")
    }
}

/// What the static rules say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Decided(Decision),
    /// Ask the realm's dynamic authorizer.
    Dynamic,
}

/// A realm's authorization rules (`[[realm.role]]`, `realm.authorizer`).
#[derive(Debug, Default, Clone)]
pub struct RealmPolicy {
    roles: HashMap<String, CompiledRole>,
    /// The dynamic authorizer's procedure URI.
    pub authorizer: Option<String>,
    /// Procedures only a trusted role may register (the dynamic authenticators).
    protected: Vec<String>,
}

/// A role's rules indexed for the check: exact rules by URI, prefix rules longest first,
/// wildcard rules (consulted only when neither matches).
#[derive(Debug, Clone)]
struct CompiledRole {
    trusted: bool,
    trustlevel: Option<u64>,
    exact: HashMap<String, Permission>,
    prefix: Vec<Permission>,
    wildcard: Vec<Permission>,
}

impl CompiledRole {
    fn new(r: Role) -> CompiledRole {
        let mut c = CompiledRole {
            trusted: r.trusted,
            trustlevel: r.trustlevel,
            exact: HashMap::new(),
            prefix: Vec::new(),
            wildcard: Vec::new(),
        };
        for p in r.permissions {
            match p.matching {
                UriMatch::Exact => {
                    c.exact.entry(p.uri.clone()).or_insert(p);
                }
                UriMatch::Prefix => c.prefix.push(p),
                UriMatch::Wildcard => c.wildcard.push(p),
            }
        }
        // Stable: among equally long prefixes the first configured wins.
        c.prefix.sort_by_key(|p| std::cmp::Reverse(p.uri.len()));
        c
    }

    /// The most specific rule matching `uri`.
    fn best(&self, uri: &str) -> Option<&Permission> {
        if let Some(p) = self.exact.get(uri) {
            return Some(p);
        }
        if let Some(p) = self.prefix.iter().find(|p| uri.starts_with(&p.uri)) {
            return Some(p);
        }
        let mut best: Option<(usize, &Permission)> = None;
        for p in &self.wildcard {
            if let Some((_, fixed)) = p.score(uri) {
                if best.is_none_or(|(b, _)| fixed > b) {
                    best = Some((fixed, p));
                }
            }
        }
        best.map(|(_, p)| p)
    }
}

/// A rule set that cannot be used: `key` names the field, `index` the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub index: usize,
    pub key: &'static str,
    pub message: String,
}

impl RealmPolicy {
    /// Builds the rules; role names must be unique and not empty.
    pub fn new(roles: Vec<Role>, authorizer: Option<String>) -> Result<Self, PolicyError> {
        let mut map = HashMap::with_capacity(roles.len());
        for (index, r) in roles.into_iter().enumerate() {
            let err = |key, message: String| PolicyError {
                index,
                key,
                message,
            };
            if r.name.is_empty() {
                return Err(err("name", "must not be empty".into()));
            }
            for p in &r.permissions {
                if p.uri.is_empty() && p.matching != UriMatch::Prefix {
                    return Err(err(
                        "permission.uri",
                        "must not be empty (use match = \"prefix\" with uri = \"\" for all)".into(),
                    ));
                }
            }
            if map.contains_key(&r.name) {
                return Err(err("name", format!("duplicate role {:?}", r.name)));
            }
            map.insert(r.name.clone(), CompiledRole::new(r));
        }
        if authorizer.as_deref().is_some_and(str::is_empty) {
            return Err(PolicyError {
                index: 0,
                key: "authorizer",
                message: "must not be empty".into(),
            });
        }
        Ok(RealmPolicy {
            roles: map,
            authorizer,
            protected: Vec::new(),
        })
    }

    /// Reserves `procedures` (the dynamic authenticators) for trusted roles, once the realm
    /// enforces rules.
    pub fn protecting(mut self, procedures: Vec<String>) -> Self {
        self.protected = procedures;
        self
    }

    /// Whether the realm enforces nothing (no roles, no dynamic authorizer).
    pub fn is_open(&self) -> bool {
        self.roles.is_empty() && self.authorizer.is_none()
    }

    /// The trust level configured for `authrole` (`[[realm.role]] trustlevel`).
    pub fn trustlevel(&self, authrole: &str) -> Option<u64> {
        self.roles.get(authrole).and_then(|r| r.trustlevel)
    }

    /// Whether `authrole` is a trusted role of this realm.
    pub fn is_trusted(&self, authrole: &str) -> bool {
        self.roles.get(authrole).is_some_and(|r| r.trusted)
    }

    /// The static verdict for `authrole` doing `action` on `uri`.
    pub fn check(&self, authrole: &str, uri: &str, action: AuthzAction) -> Verdict {
        let role = self.roles.get(authrole);
        if role.is_some_and(|r| r.trusted) {
            return Verdict::Decided(Decision::ALLOW);
        }
        // Only a trusted session may serve the authorizer or an authenticator (even in a realm
        // that otherwise enforces nothing).
        if action == AuthzAction::Register
            && (self.authorizer.as_deref() == Some(uri) || self.protected.iter().any(|p| p == uri))
        {
            return Verdict::Decided(Decision::DENY);
        }
        if self.is_open() {
            return Verdict::Decided(Decision::ALLOW);
        }
        let Some(role) = role else {
            return if self.authorizer.is_some() {
                Verdict::Dynamic
            } else {
                Verdict::Decided(Decision::DENY)
            };
        };
        Verdict::Decided(match role.best(uri) {
            Some(p) if p.allow.permits(action) => Decision {
                allow: true,
                disclose: match action {
                    AuthzAction::Call => p.disclose.caller,
                    AuthzAction::Publish => p.disclose.publisher,
                    _ => false,
                },
            },
            _ => Decision::DENY,
        })
    }
}

/// A shard's cache of dynamic decisions: per (authid, authrole, action, uri), each entry lives
/// `ttl`, and at most `capacity` are kept (least recently used evicted).
pub struct AuthzCache {
    ttl: Duration,
    capacity: usize,
    map: HashMap<Rc<str>, CacheEntry>,
    /// Use order, oldest first; an entry whose `tick` is stale is skipped.
    order: VecDeque<(Rc<str>, u64)>,
    tick: u64,
    key: String,
}

struct CacheEntry {
    key: Rc<str>,
    decision: Decision,
    expires: Instant,
    tick: u64,
}

impl AuthzCache {
    pub fn new(ttl: Duration, capacity: usize) -> AuthzCache {
        AuthzCache {
            ttl,
            capacity,
            map: HashMap::new(),
            order: VecDeque::new(),
            tick: 0,
            key: String::new(),
        }
    }

    fn make_key(&mut self, s: &SessionInfo<'_>, uri: &str, action: AuthzAction) {
        self.key.clear();
        for part in [s.authid, "\0", s.authrole, "\0", action.as_str(), "\0", uri] {
            self.key.push_str(part);
        }
    }

    /// A live cached decision.
    pub fn get(
        &mut self,
        s: &SessionInfo<'_>,
        uri: &str,
        action: AuthzAction,
        now: Instant,
    ) -> Option<Decision> {
        self.make_key(s, uri, action);
        let e = self.map.get_mut(self.key.as_str())?;
        if e.expires <= now {
            self.map.remove(self.key.as_str());
            return None;
        }
        let d = e.decision;
        // Approximate LRU: an entry among the most recent half of the use records stays where
        // it is (it cannot be evicted before that many other uses), which spares the hot path
        // a record per hit.
        if self.tick - e.tick >= (self.capacity as u64 / 2).max(1) {
            self.tick += 1;
            e.tick = self.tick;
            self.order.push_back((e.key.clone(), self.tick));
            self.compact();
        }
        Some(d)
    }

    /// Caches a decision (nothing when the capacity or the TTL is 0).
    pub fn insert(
        &mut self,
        s: &SessionInfo<'_>,
        uri: &str,
        action: AuthzAction,
        decision: Decision,
        now: Instant,
    ) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        self.make_key(s, uri, action);
        let key: Rc<str> = Rc::from(self.key.as_str());
        while self.map.len() >= self.capacity && !self.map.contains_key(&key) {
            let Some((k, t)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&k).is_some_and(|e| e.tick == t) {
                self.map.remove(&k);
            }
        }
        self.tick += 1;
        self.map.insert(
            key.clone(),
            CacheEntry {
                key: key.clone(),
                decision,
                expires: now + self.ttl,
                tick: self.tick,
            },
        );
        self.order.push_back((key, self.tick));
        self.compact();
    }

    /// Drops stale use records once they outnumber the entries.
    fn compact(&mut self) {
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(k, t)| map.get(k).is_some_and(|e| e.tick == *t));
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(uri: &str, m: UriMatch, allow: Allow) -> Permission {
        Permission {
            uri: uri.into(),
            matching: m,
            allow,
            disclose: Disclose::default(),
        }
    }

    const CALL: Allow = Allow {
        call: true,
        register: false,
        publish: false,
        subscribe: false,
    };

    fn policy() -> RealmPolicy {
        RealmPolicy::new(
            vec![
                Role {
                    name: "admin".into(),
                    trusted: true,
                    trustlevel: None,
                    permissions: vec![],
                },
                Role {
                    name: "user".into(),
                    trusted: false,
                    trustlevel: None,
                    permissions: vec![
                        perm("com.app.", UriMatch::Prefix, CALL),
                        perm("com.app.secret", UriMatch::Exact, Allow::default()),
                        perm(
                            "com..feed",
                            UriMatch::Wildcard,
                            Allow {
                                subscribe: true,
                                ..Allow::default()
                            },
                        ),
                    ],
                },
            ],
            None,
        )
        .unwrap()
    }

    fn allowed(p: &RealmPolicy, role: &str, uri: &str, a: AuthzAction) -> bool {
        p.check(role, uri, a) == Verdict::Decided(Decision::ALLOW)
    }

    #[test]
    fn static_rules() {
        let p = policy();
        assert!(allowed(&p, "user", "com.app.add", AuthzAction::Call));
        assert!(!allowed(&p, "user", "com.app.add", AuthzAction::Register));
        assert!(!allowed(&p, "user", "com.app.secret", AuthzAction::Call));
        assert!(allowed(&p, "user", "com.x.feed", AuthzAction::Subscribe));
        assert!(!allowed(&p, "user", "com.x.y.feed", AuthzAction::Subscribe));
        assert!(!allowed(&p, "nobody", "com.app.add", AuthzAction::Call));
        assert!(allowed(&p, "admin", "any.thing", AuthzAction::Register));
        assert!(RealmPolicy::default().is_open());
        assert!(allowed(
            &RealmPolicy::default(),
            "x",
            "a",
            AuthzAction::Publish
        ));
    }

    #[test]
    fn authenticators_are_reserved_for_trusted_roles_even_in_open_realms() {
        let p = RealmPolicy::default().protecting(vec!["auth.login".into()]);
        assert!(p.is_open());
        assert!(allowed(
            &p,
            "anonymous",
            "auth.other",
            AuthzAction::Register
        ));
        assert!(!allowed(
            &p,
            "anonymous",
            "auth.login",
            AuthzAction::Register
        ));
        assert!(allowed(&p, "anonymous", "auth.login", AuthzAction::Call));
    }

    #[test]
    fn unknown_roles_go_to_the_dynamic_authorizer() {
        let p = RealmPolicy::new(vec![], Some("auth.me".into())).unwrap();
        assert_eq!(p.check("user", "a.b", AuthzAction::Call), Verdict::Dynamic);
        // Nobody untrusted registers the authorizer.
        assert_eq!(
            p.check("user", "auth.me", AuthzAction::Register),
            Verdict::Decided(Decision::DENY)
        );
    }

    #[test]
    fn cache_expires_and_evicts() {
        let mut c = AuthzCache::new(Duration::from_millis(100), 2);
        let s = |id| SessionInfo {
            session: 1,
            realm: "r",
            authid: id,
            authrole: "user",
        };
        let t0 = Instant::now();
        c.insert(&s("a"), "u", AuthzAction::Call, Decision::ALLOW, t0);
        assert_eq!(
            c.get(&s("a"), "u", AuthzAction::Call, t0),
            Some(Decision::ALLOW)
        );
        assert_eq!(c.get(&s("a"), "u", AuthzAction::Publish, t0), None);
        assert_eq!(c.get(&s("b"), "u", AuthzAction::Call, t0), None);
        let later = t0 + Duration::from_millis(100);
        assert_eq!(c.get(&s("a"), "u", AuthzAction::Call, later), None);
        // LRU: "a" used after "b", so "b" goes when "c" arrives.
        c.insert(&s("a"), "u", AuthzAction::Call, Decision::DENY, t0);
        c.insert(&s("b"), "u", AuthzAction::Call, Decision::DENY, t0);
        assert!(c.get(&s("a"), "u", AuthzAction::Call, t0).is_some());
        c.insert(&s("c"), "u", AuthzAction::Call, Decision::DENY, t0);
        assert_eq!(c.len(), 2);
        assert!(c.get(&s("b"), "u", AuthzAction::Call, t0).is_none());
        assert!(c.get(&s("a"), "u", AuthzAction::Call, t0).is_some());
        for i in 0..1000 {
            c.get(&s("a"), "u", AuthzAction::Call, t0);
            c.insert(
                &s("c"),
                &i.to_string(),
                AuthzAction::Call,
                Decision::DENY,
                t0,
            );
        }
        assert!(c.order.len() <= 2 * c.len() + 65);
    }

    struct OnlyGuests;
    impl Authorizer for OnlyGuests {
        fn authorize(&self, s: &SessionInfo<'_>, uri: &str, a: AuthzAction) -> Option<Decision> {
            (s.authrole == "guest").then_some(Decision {
                allow: a == AuthzAction::Subscribe && uri.starts_with("pub."),
                disclose: false,
            })
        }
    }

    #[test]
    fn trait_object_decides_or_abstains() {
        let a: Arc<dyn Authorizer> = Arc::new(OnlyGuests);
        let g = SessionInfo {
            session: 1,
            realm: "r",
            authid: "x",
            authrole: "guest",
        };
        let allow = a.authorize(&g, "pub.news", AuthzAction::Subscribe);
        assert_eq!(allow, Some(Decision::ALLOW));
        let deny = a.authorize(&g, "pub.news", AuthzAction::Publish);
        assert_eq!(deny, Some(Decision::DENY));
        let other = SessionInfo {
            authrole: "user",
            ..g
        };
        assert_eq!(a.authorize(&other, "pub.news", AuthzAction::Publish), None);
    }
}
