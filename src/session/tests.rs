//! Unit tests of the session state machine: the handshake, protocol violations, shutdown and
//! each static authentication method.

use super::*;
use crate::codec::{Hello, Subscribe, SubscribeOptions};

struct Realms;
impl RealmDirectory for Realms {
    fn admits_anonymous(&self, realm: &str) -> bool {
        realm == "realm1"
    }
    fn exists(&self, realm: &str) -> bool {
        realm == "realm1" || realm == "closed"
    }
}

fn hello(realm: &str) -> Message {
    Message::Hello(Box::new(Hello {
        realm: Uri::from(realm),
        details: HelloDetails::default(),
    }))
}

fn reason(out: &[SessionOutput]) -> Option<String> {
    out.iter().find_map(|o| match o {
        SessionOutput::Reply(Message::Abort(a)) => Some(a.reason.to_string()),
        SessionOutput::Reply(Message::Goodbye(g)) => Some(g.reason.to_string()),
        _ => None,
    })
}

fn session() -> Session {
    Session::new(7, Rc::new(router_roles(&[], &[])))
}

#[test]
fn hello_welcome_goodbye() {
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(hello("realm1"), &Realms, &mut out);
    assert!(matches!(&out[0], SessionOutput::Reply(Message::Welcome(w)) if w.session == 7));
    assert!(matches!(&out[1], SessionOutput::Joined { realm } if &**realm == "realm1"));
    assert_eq!(s.state, State::Established);
    out.clear();
    s.on_message(
        Message::Goodbye(Goodbye {
            details: Dict::new(),
            reason: Uri::from("wamp.close.close_realm"),
        }),
        &Realms,
        &mut out,
    );
    assert_eq!(reason(&out).as_deref(), Some("wamp.close.goodbye_and_out"));
    assert_eq!(out.last(), Some(&SessionOutput::Close));
}

#[test]
fn unknown_realm_and_bad_realm() {
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(hello("nope"), &Realms, &mut out);
    assert_eq!(reason(&out).as_deref(), Some("wamp.error.no_such_realm"));
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(hello("a..b"), &Realms, &mut out);
    assert_eq!(reason(&out).as_deref(), Some("wamp.error.invalid_uri"));
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(hello("closed"), &Realms, &mut out);
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.no_matching_auth_method")
    );
}

#[test]
fn second_hello_is_a_violation() {
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(hello("realm1"), &Realms, &mut out);
    out.clear();
    s.on_message(hello("realm1"), &Realms, &mut out);
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.protocol_violation")
    );
    assert_eq!(s.state, State::Closed);
}

#[test]
fn request_before_hello_is_a_violation() {
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(
        Message::Subscribe(Subscribe {
            request: 1,
            options: SubscribeOptions::default(),
            topic: Uri::from("a.b"),
        }),
        &Realms,
        &mut out,
    );
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.protocol_violation")
    );
}

#[test]
fn routes_requests_and_rejects_router_messages() {
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(hello("realm1"), &Realms, &mut out);
    out.clear();
    let sub = Message::Subscribe(Subscribe {
        request: 1,
        options: SubscribeOptions::default(),
        topic: Uri::from("a.b"),
    });
    s.on_message(sub.clone(), &Realms, &mut out);
    assert_eq!(out, vec![SessionOutput::Route(sub)]);
    out.clear();
    s.on_message(
        Message::Welcome(Box::new(Welcome {
            session: 1,
            details: WelcomeDetails::default(),
        })),
        &Realms,
        &mut out,
    );
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.protocol_violation")
    );
}

/// Every message a client sends that carries an ID, with the ID at 0, at 2^53 (the
/// largest valid) and, where the codec lets it through, nothing larger.
const CLIENT_ID_FRAMES: &[&str] = &[
    r#"[16,{ID},{},"a.b"]"#,
    r#"[32,{ID},{},"a.b"]"#,
    r#"[34,{ID},7]"#,
    r#"[34,7,{ID}]"#,
    r#"[48,{ID},{},"a.b"]"#,
    r#"[49,{ID},{}]"#,
    r#"[64,{ID},{},"a.b"]"#,
    r#"[66,{ID},7]"#,
    r#"[66,7,{ID}]"#,
    r#"[70,{ID},{}]"#,
    r#"[8,68,{ID},{},"a.b"]"#,
    r#"[337,{ID}]"#,
];

fn established_session() -> Session {
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(hello("realm1"), &Realms, &mut out);
    assert_eq!(s.state, State::Established);
    s
}

fn frame_with_id(template: &str, id: u64) -> Message {
    let text = template.replace("{ID}", &id.to_string());
    crate::codec::json::decode(&bytes::Bytes::from(text)).expect("test frame decodes")
}

#[test]
fn id_zero_in_any_client_message_is_a_violation() {
    for template in CLIENT_ID_FRAMES {
        let mut s = established_session();
        let mut out = Vec::new();
        s.on_message(frame_with_id(template, 0), &Realms, &mut out);
        assert_eq!(
            reason(&out).as_deref(),
            Some("wamp.error.protocol_violation"),
            "{template} with ID 0: {out:?}"
        );
        assert_eq!(out.last(), Some(&SessionOutput::Close), "{template}");
        assert_eq!(s.state, State::Closed, "{template}");
    }
}

#[test]
fn ids_one_and_two_pow_53_are_routed() {
    for id in [1, crate::codec::MAX_ID] {
        for template in CLIENT_ID_FRAMES {
            let mut s = established_session();
            let mut out = Vec::new();
            let msg = frame_with_id(template, id);
            s.on_message(msg.clone(), &Realms, &mut out);
            assert_eq!(out, vec![SessionOutput::Route(msg)], "{template} with {id}");
        }
    }
}

#[test]
fn ids_above_two_pow_53_are_refused_by_the_codec() {
    for template in CLIENT_ID_FRAMES {
        let text = template.replace("{ID}", &(crate::codec::MAX_ID + 1).to_string());
        assert!(
            crate::codec::json::decode(&bytes::Bytes::from(text)).is_err(),
            "{template}"
        );
    }
}

#[test]
fn shutdown_goodbye_waits_for_reply() {
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(hello("realm1"), &Realms, &mut out);
    out.clear();
    s.close_with_goodbye("wamp.close.system_shutdown", "", &mut out);
    assert_eq!(reason(&out).as_deref(), Some("wamp.close.system_shutdown"));
    assert_eq!(s.state, State::Closing);
    out.clear();
    s.on_message(
        Message::Goodbye(Goodbye {
            details: Dict::new(),
            reason: Uri::from("wamp.close.goodbye_and_out"),
        }),
        &Realms,
        &mut out,
    );
    assert_eq!(out, vec![SessionOutput::Close]);
}

/// A realm with the static principals of the auth tests, with and without anonymous.
struct AuthRealms {
    auth: Authenticator,
    anonymous: bool,
    entropy: std::cell::Cell<u8>,
}
impl AuthRealms {
    fn new(anonymous: bool) -> Self {
        AuthRealms {
            auth: Authenticator::new(&crate::auth::tests::principals(), [1; 32]).unwrap(),
            anonymous,
            entropy: std::cell::Cell::new(0),
        }
    }
}
impl RealmDirectory for AuthRealms {
    fn admits_anonymous(&self, realm: &str) -> bool {
        realm == "secure" && self.anonymous
    }
    fn exists(&self, realm: &str) -> bool {
        realm == "secure"
    }
    fn authenticator(&self, _realm: &str) -> Option<&Authenticator> {
        Some(&self.auth)
    }
    fn entropy(&self) -> [u8; 32] {
        // Distinct per challenge, like real randomness.
        self.entropy.set(self.entropy.get() + 1);
        [self.entropy.get(); 32]
    }
}

fn auth_hello(methods: &[&str], authid: Option<&str>, pubkey: Option<String>) -> Message {
    let mut details = HelloDetails {
        authmethods: Some(methods.iter().map(|m| (*m).to_owned()).collect()),
        authid: authid.map(str::to_owned),
        ..Default::default()
    };
    if let Some(pk) = pubkey {
        let mut x = Dict::new();
        x.insert("pubkey".into(), Value::Str(pk));
        details.authextra = Some(DictField(Value::Dict(x)));
    }
    Message::Hello(Box::new(Hello {
        realm: Uri::from("secure"),
        details,
    }))
}

fn authenticate(signature: &str) -> Message {
    Message::Authenticate(crate::codec::Authenticate {
        signature: signature.into(),
        extra: Dict::new(),
    })
}

/// HELLO, then the CHALLENGE's method and extra.
fn challenged(s: &mut Session, realms: &AuthRealms, hello: Message) -> (String, Dict) {
    let mut out = Vec::new();
    s.on_message(hello, realms, &mut out);
    assert_eq!(s.state, State::Authenticating, "{out:?}");
    match out.as_slice() {
        [SessionOutput::Reply(Message::Challenge(c))] => (c.method.clone(), c.extra.clone()),
        other => panic!("expected CHALLENGE, got {other:?}"),
    }
}

fn welcomed(out: &[SessionOutput]) -> Option<(String, String, String, String)> {
    out.iter().find_map(|o| match o {
        SessionOutput::Reply(Message::Welcome(w)) => Some((
            w.details.authid.clone()?,
            w.details.authrole.clone()?,
            w.details.authmethod.clone()?,
            w.details.authprovider.clone()?,
        )),
        _ => None,
    })
}

fn strings(v: [&str; 4]) -> Option<(String, String, String, String)> {
    Some((v[0].into(), v[1].into(), v[2].into(), v[3].into()))
}

#[test]
fn ticket_welcome_and_wrong_ticket() {
    let realms = AuthRealms::new(false);
    let mut s = session();
    let (method, _) = challenged(&mut s, &realms, auth_hello(&["ticket"], Some("joe"), None));
    assert_eq!(method, "ticket");
    let mut out = Vec::new();
    s.on_message(authenticate("joe-ticket"), &realms, &mut out);
    assert_eq!(welcomed(&out), strings(["joe", "user", "ticket", "static"]));
    assert!(matches!(out.last(), Some(SessionOutput::Joined { .. })));
    assert_eq!((s.authid.as_str(), s.authrole.as_str()), ("joe", "user"));

    let mut s = session();
    challenged(&mut s, &realms, auth_hello(&["ticket"], Some("joe"), None));
    let mut out = Vec::new();
    s.on_message(authenticate("nope"), &realms, &mut out);
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.authentication_failed")
    );
    assert!(out.contains(&SessionOutput::Close));
    // The failure is reported for the operator, with its reason (never to the client).
    assert!(matches!(
        out.last(),
        Some(SessionOutput::AuthFailed(f))
            if f.reason == auth::FailReason::BadSignature && f.method == Some(AuthMethod::Ticket)
    ));
    assert_eq!(s.state, State::Closed);
}

#[test]
fn wampcra_welcome_unknown_principal_and_replay() {
    let realms = AuthRealms::new(false);
    let mut s = session();
    let (method, extra) = challenged(
        &mut s,
        &realms,
        auth_hello(&["wampcra"], Some("salty"), None),
    );
    assert_eq!(method, "wampcra");
    let sig = crate::auth::tests::cra_sign(&extra, "secret1");
    let mut out = Vec::new();
    s.on_message(authenticate(&sig), &realms, &mut out);
    assert_eq!(
        welcomed(&out),
        strings(["salty", "user", "wampcra", "static"])
    );

    // The same AUTHENTICATE replayed on a new session meets a new challenge.
    let mut s = session();
    challenged(
        &mut s,
        &realms,
        auth_hello(&["wampcra"], Some("salty"), None),
    );
    let mut out = Vec::new();
    s.on_message(authenticate(&sig), &realms, &mut out);
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.authentication_failed")
    );

    // An unknown authid is challenged like a real one (same keys), then fails.
    let mut s = session();
    let (_, fake) = challenged(
        &mut s,
        &realms,
        auth_hello(&["wampcra"], Some("ghost"), None),
    );
    let real_keys: Vec<_> = extra.keys().collect();
    assert_eq!(fake.keys().collect::<Vec<_>>(), real_keys);
    let mut out = Vec::new();
    let sig = crate::auth::tests::cra_sign(&fake, "secret1");
    s.on_message(authenticate(&sig), &realms, &mut out);
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.authentication_failed")
    );
}

#[test]
fn cryptosign_welcome_and_wrong_key() {
    use crate::auth::tests::{cs_sign, CS_SEED};
    let realms = AuthRealms::new(false);
    let pk = |seed: &[u8; 32]| {
        let k = ed25519_dalek::SigningKey::from_bytes(seed).verifying_key();
        Some(hex::encode(k.to_bytes()))
    };
    let mut s = session();
    let (method, extra) = challenged(
        &mut s,
        &realms,
        auth_hello(&["cryptosign"], None, pk(&CS_SEED)),
    );
    assert_eq!(method, "cryptosign");
    let mut out = Vec::new();
    s.on_message(authenticate(&cs_sign(&extra, &CS_SEED)), &realms, &mut out);
    assert_eq!(
        welcomed(&out),
        strings(["client01", "device", "cryptosign", "static"])
    );

    let mut s = session();
    let (_, extra) = challenged(
        &mut s,
        &realms,
        auth_hello(&["cryptosign"], None, pk(&[3; 32])),
    );
    let mut out = Vec::new();
    s.on_message(authenticate(&cs_sign(&extra, &[3; 32])), &realms, &mut out);
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.authentication_failed")
    );
}

#[test]
fn method_selection() {
    // The first offered method the realm supports; unknown names are skipped.
    let realms = AuthRealms::new(false);
    let mut s = session();
    let (method, _) = challenged(
        &mut s,
        &realms,
        auth_hello(
            &["scram", "anonymous", "wampcra", "ticket"],
            Some("joe"),
            None,
        ),
    );
    assert_eq!(method, "wampcra");
    // Anonymous first, and admitted: WELCOME without a challenge.
    let realms = AuthRealms::new(true);
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(
        auth_hello(&["anonymous", "ticket"], Some("joe"), None),
        &realms,
        &mut out,
    );
    assert_eq!(welcomed(&out).map(|w| w.2), Some("anonymous".to_owned()));
    // No authmethods at all: anonymous, if the realm admits it.
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(
        Message::Hello(Box::new(Hello {
            realm: Uri::from("secure"),
            details: HelloDetails::default(),
        })),
        &realms,
        &mut out,
    );
    assert_eq!(s.state, State::Established);
}

#[test]
fn no_matching_auth_method() {
    let realms = AuthRealms::new(false);
    for hello in [
        auth_hello(&["anonymous"], None, None),
        auth_hello(&["scram", "cookie"], Some("joe"), None),
        // Ticket needs an authid; cryptosign needs a pubkey.
        auth_hello(&["ticket", "cryptosign"], None, None),
        Message::Hello(Box::new(Hello {
            realm: Uri::from("secure"),
            details: HelloDetails::default(),
        })),
    ] {
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(hello, &realms, &mut out);
        assert_eq!(
            reason(&out).as_deref(),
            Some("wamp.error.no_matching_auth_method")
        );
        assert_eq!(s.state, State::Closed);
    }
}

#[test]
fn authenticate_out_of_place_is_a_violation() {
    let realms = AuthRealms::new(true);
    // Before HELLO.
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(authenticate("x"), &realms, &mut out);
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.protocol_violation")
    );
    // After WELCOME.
    let mut s = session();
    let mut out = Vec::new();
    s.on_message(auth_hello(&["anonymous"], None, None), &realms, &mut out);
    out.clear();
    s.on_message(authenticate("x"), &realms, &mut out);
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.protocol_violation")
    );
    // Something other than AUTHENTICATE after CHALLENGE.
    let mut s = session();
    challenged(&mut s, &realms, auth_hello(&["ticket"], Some("joe"), None));
    let mut out = Vec::new();
    s.on_message(
        auth_hello(&["ticket"], Some("joe"), None),
        &realms,
        &mut out,
    );
    assert_eq!(
        reason(&out).as_deref(),
        Some("wamp.error.protocol_violation")
    );
}

#[test]
fn authenticate_timeout_aborts() {
    let realms = AuthRealms::new(false);
    let mut s = session();
    challenged(&mut s, &realms, auth_hello(&["ticket"], Some("joe"), None));
    assert!(s.awaiting_welcome());
    let mut out = Vec::new();
    s.on_hello_timeout(&mut out);
    assert_eq!(reason(&out).as_deref(), Some("wamp.error.timeout"));
    assert_eq!(s.state, State::Closed);
}

#[test]
fn hello_timeout_aborts() {
    let mut s = session();
    let mut out = Vec::new();
    s.on_hello_timeout(&mut out);
    assert_eq!(reason(&out).as_deref(), Some("wamp.error.timeout"));
}

/// The shard's direct route (`routes_directly`) agrees with `on_message`: a message is routed
/// directly exactly when `on_message` would only hand it to routing — for every client frame
/// with a good ID and with ID 0, every other message type, and sessions not yet established or
/// closing.
#[test]
fn routing_directly_agrees_with_on_message() {
    let mut frames: Vec<Message> = CLIENT_ID_FRAMES
        .iter()
        .flat_map(|t| [frame_with_id(t, 1), frame_with_id(t, 0)])
        .collect();
    for text in [
        r#"[8,48,5,{},"a.b"]"#,
        r#"[8,16,5,{},"a.b"]"#,
        r#"[6,{},"wamp.close.normal"]"#,
        r#"[3,{},"wamp.close.normal"]"#,
        r#"[2,5,{}]"#,
        r#"[36,5,6,{}]"#,
        r#"[50,5,{}]"#,
        r#"[68,5,6,{}]"#,
        r#"[1,"realm1",{}]"#,
    ] {
        frames.push(crate::codec::json::decode(&bytes::Bytes::from(text)).expect("decodes"));
    }
    for m in frames {
        let pending = session();
        assert!(!pending.routes_directly(&m), "before WELCOME: {m:?}");
        let mut closing = established_session();
        closing.state = State::Closing;
        assert!(!closing.routes_directly(&m), "closing: {m:?}");
        let mut s = established_session();
        let direct = s.routes_directly(&m);
        let mut out = Vec::new();
        s.on_message(m.clone(), &Realms, &mut out);
        let routed_only = out == vec![SessionOutput::Route(m.clone())];
        assert_eq!(direct, routed_only, "{m:?}: on_message gave {out:?}");
    }
}
