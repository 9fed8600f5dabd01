//! The session state machine with a dynamic authenticator (`[[realm.authenticator]]`, see
//! [`crate::auth::dynamic`]): it lives here, not in `auth/`, because auth sits below the
//! session state machine and must not import it.

use super::{router_roles, take_dynamic_auth, RealmDirectory, Session, SessionOutput, State};
use crate::auth::dynamic::PROVIDER;
use crate::auth::{AuthFailed, AuthMethod};
use crate::codec::{Dict, Hello, HelloDetails, Message, Uri, Value};
use std::rc::Rc;

/// The session state machine: HELLO → CHALLENGE → AUTHENTICATE → the runtime is asked →
/// WELCOME (authprovider `dynamic`) or ABORT.
#[test]
fn session_state_machine() {
    struct Dyn;
    impl RealmDirectory for Dyn {
        fn admits_anonymous(&self, _: &str) -> bool {
            false
        }
        fn exists(&self, realm: &str) -> bool {
            realm == "r"
        }
        fn dynamic_authenticator(&self, _: &str, m: AuthMethod) -> Option<&str> {
            (m == AuthMethod::Ticket).then_some("auth.login")
        }
    }
    let hello = Message::Hello(Box::new(Hello {
        realm: Uri::from("r"),
        details: HelloDetails {
            authmethods: Some(vec!["ticket".into()]),
            authid: Some("joe".into()),
            ..Default::default()
        },
    }));
    let authenticate = Message::Authenticate(crate::codec::Authenticate {
        signature: "tkt".into(),
        extra: Dict::new(),
    });
    for accept in [true, false] {
        let mut s = Session::new(5, Rc::new(router_roles(&[], &[])));
        let mut out = Vec::new();
        s.on_message(hello.clone(), &Dyn, &mut out);
        assert!(
            matches!(&out[0], SessionOutput::Reply(Message::Challenge(c)) if c.method == "ticket")
        );
        out.clear();
        s.on_message(authenticate.clone(), &Dyn, &mut out);
        let req = take_dynamic_auth(&mut out).expect("runtime asked");
        assert_eq!(req.procedure, "auth.login");
        assert_eq!(req.authid, "joe");
        assert_eq!(req.session, 5);
        assert!(out.is_empty());
        let result = if accept {
            req.outcome(Some(&Value::Str("user".into())))
        } else {
            Err(AuthFailed)
        };
        s.on_dynamic_auth(result, &mut out);
        if accept {
            assert_eq!(s.state, State::Established);
            assert_eq!(s.authrole, "user");
            match &out[0] {
                SessionOutput::Reply(Message::Welcome(w)) => {
                    assert_eq!(w.details.authprovider.as_deref(), Some(PROVIDER))
                }
                other => panic!("{other:?}"),
            }
        } else {
            assert_eq!(s.state, State::Closed);
            assert!(matches!(&out[0], SessionOutput::Reply(Message::Abort(a))
                if a.reason.as_str() == "wamp.error.authentication_failed"));
        }
    }
}
