//! Ticket-based authentication (`ticket`): the client presents a pre-agreed ticket in
//! AUTHENTICATE.Signature; the CHALLENGE carries nothing.
//!
//! `[CHALLENGE, "ticket", {}]` → `[AUTHENTICATE, Ticket|string, {}]`

use super::{sha256, AuthMethod, Authenticator, Entry, Expect, Pending};
use crate::codec::Dict;
use subtle::ConstantTimeEq;

pub(super) fn challenge(principal: Option<usize>) -> (Dict, Pending) {
    (
        Dict::new(),
        Pending {
            method: AuthMethod::Ticket,
            principal,
            expect: Expect::Ticket,
        },
    )
}

/// Compares digests, so the comparison is constant-time and independent of the ticket length.
/// An unknown principal is compared against a digest no ticket has.
pub(super) fn verify(auth: &Authenticator, entry: Option<&Entry>, ticket: &str) -> bool {
    let expected = entry
        .and_then(|e| e.ticket)
        .unwrap_or_else(|| sha256(&auth.decoy.key));
    let presented = sha256(ticket.as_bytes());
    bool::from(presented[..].ct_eq(&expected[..])) && entry.is_some_and(|e| e.ticket.is_some())
}
