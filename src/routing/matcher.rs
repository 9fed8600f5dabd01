//! The URI matching index: `(match policy, pattern) -> T`, looked up by a concrete URI.
//!
//! The broker keeps one [`UriIndex`] of subscriptions per realm and asks it for *every* entry a
//! published topic matches ([`UriIndex::matches`] / [`UriIndex::for_each_match`]); the dealer
//! keeps one of registrations and asks for the *single* best one ([`UriIndex::best_match`]).
//! `T` is whatever the caller keeps per subscription or registration (an ID, a subscriber list).
//! The index does not validate patterns; do that first with `codec::uri::validate_pattern`. It
//! accepts any string without panicking, though.
//!
//! Semantics (advanced profile, pattern-based subscription / registration):
//!
//! - **exact**: the URI equals the pattern.
//! - **prefix**: the URI starts with the pattern *as a string*: `com.myapp.topic.emergency`
//!   matches `com.myapp.topic.emergency.11` and `com.myapp.topic.emergency-low`, but not
//!   `com.myapp.topic.emerge`. (A pattern ending in `.` restricts it to whole components.)
//! - **wildcard**: pattern and URI have the same number of `.`-separated components; an empty
//!   pattern component matches any one *non-empty* URI component, the others must be equal.
//!
//! Structures, chosen so a lookup touches only what lies on the URI's own path:
//!
//! - exact entries: a hash map keyed by the URI (one hash per lookup).
//! - prefix entries (`prefix.rs`): a radix trie over bytes (edges carry byte strings). A
//!   lookup walks down along the URI once; every node passed that holds a value is a matching
//!   prefix, so the cost is O(URI length), independent of how many prefix entries exist.
//! - wildcard entries (`wildcard.rs`): a trie of components as in nats-server's sublist: each
//!   node has a map of literal children and at most one "any component" child. A lookup
//!   explores, per component, the literal child and the wildcard child. It is iterative
//!   (parent links, no recursion), so a pattern of a million components cannot overflow the
//!   stack.
//!
//! Lookups allocate nothing; they report into a caller-supplied `Vec` or closure. Inserts and
//! removals may allocate and keep the tries compact (removal prunes empty nodes and re-merges
//! radix edges).
//!
//! Dealer precedence ([`UriIndex::best_match`], spec "Calls matching multiple registrations"):
//! exact first; else the longest matching prefix; else the best wildcard. "Longest prefix" is
//! measured in bytes: all matching prefixes are prefixes of the same URI, so the longer one
//! never has fewer matched components than the shorter, and two distinct matching prefixes
//! never have the same length, so there is nothing to tie-break.
//!
//! Where the spec contradicts itself: its precedence example says call `a1.b2.c33.d4.e5` has
//! "no prefix match" with prefix registration `a1.b2.c3`, which holds only for component-wise
//! prefixes. Both prefix sections state string-prefix semantics with explicit examples
//! (`myobject1` matches `myobject1-mysubobject1`), and crossbar matches string prefixes, so we do
//! too, for the broker and the dealer alike: here `a1.b2.c3` wins. A callee that wants
//! component-wise behaviour registers `a1.b2.c3.` (the tests cover both).
//! For wildcards the spec picks "the longest portion of URI components matched before each
//! wildcard", comparing the first portion, then the second, and so on. For patterns of equal
//! length (all candidates have the URI's component count) that is the same as comparing them
//! component by component from the left and preferring a literal over a wildcard at the first
//! position where they differ; a depth-first walk that tries the literal child before the
//! wildcard child meets the candidates exactly in that order, so the first one found is the
//! best. Two distinct wildcard patterns matching the same URI always differ somewhere in that
//! literal/wildcard shape, so there are no ties to break.

use std::ops::ControlFlow;

use crate::codec::uri::MatchPolicy;
use crate::util::fast::FastMap;

mod prefix;
#[cfg(test)]
mod tests;
mod wildcard;

use prefix::PrefixTrie;
use wildcard::WildcardTrie;

/// Index of a node in a trie's arena.
type NodeId = u32;

/// The root of both tries lives at arena slot 0 and is never freed.
const ROOT: NodeId = 0;

/// Patterns of all three match policies, each mapped to a `T`.
#[derive(Debug, Clone)]
pub struct UriIndex<T> {
    /// foldhash, not SipHash: the exact lookup of every CALL and PUBLISH hashed its URI for
    /// ~180 instructions (`util::fast` says why a peer cannot aim collisions at it).
    exact: FastMap<Box<str>, T>,
    prefix: PrefixTrie<T>,
    wildcard: WildcardTrie<T>,
}

impl<T> Default for UriIndex<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> UriIndex<T> {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            exact: FastMap::default(),
            prefix: PrefixTrie::new(),
            wildcard: WildcardTrie::new(),
        }
    }

    /// Number of entries, all policies together.
    pub fn len(&self) -> usize {
        self.exact.len() + self.prefix.len + self.wildcard.len
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Map `(policy, pattern)` to `value`, returning the value it replaces, if any.
    pub fn insert(&mut self, policy: MatchPolicy, pattern: &str, value: T) -> Option<T> {
        match policy {
            MatchPolicy::Exact => self.exact.insert(pattern.into(), value),
            MatchPolicy::Prefix => self.prefix.insert(pattern.as_bytes(), value),
            MatchPolicy::Wildcard => self.wildcard.insert(pattern, value),
        }
    }

    /// The value for `(policy, pattern)`, inserting `make()` first if there is none.
    pub fn get_or_insert_with(
        &mut self,
        policy: MatchPolicy,
        pattern: &str,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        match policy {
            MatchPolicy::Exact => self.exact.entry(pattern.into()).or_insert_with(make),
            MatchPolicy::Prefix => {
                let node = self.prefix.node_for(pattern.as_bytes());
                self.prefix.fill(node, make)
            }
            MatchPolicy::Wildcard => {
                let node = self.wildcard.node_for(pattern);
                self.wildcard.fill(node, make)
            }
        }
    }

    /// The value stored for exactly `(policy, pattern)` (no matching involved).
    pub fn get(&self, policy: MatchPolicy, pattern: &str) -> Option<&T> {
        match policy {
            MatchPolicy::Exact => self.exact.get(pattern),
            MatchPolicy::Prefix => self.prefix.get(pattern.as_bytes()),
            MatchPolicy::Wildcard => self.wildcard.get(pattern),
        }
    }

    /// Mutable access to the value stored for exactly `(policy, pattern)`.
    pub fn get_mut(&mut self, policy: MatchPolicy, pattern: &str) -> Option<&mut T> {
        match policy {
            MatchPolicy::Exact => self.exact.get_mut(pattern),
            MatchPolicy::Prefix => self.prefix.get_mut(pattern.as_bytes()),
            MatchPolicy::Wildcard => self.wildcard.get_mut(pattern),
        }
    }

    /// Remove `(policy, pattern)`, returning its value.
    pub fn remove(&mut self, policy: MatchPolicy, pattern: &str) -> Option<T> {
        match policy {
            MatchPolicy::Exact => self.exact.remove(pattern),
            MatchPolicy::Prefix => self.prefix.remove(pattern.as_bytes()),
            MatchPolicy::Wildcard => self.wildcard.remove(pattern),
        }
    }

    /// Call `f` for every entry whose pattern matches `uri` (the broker's question).
    ///
    /// Order: the exact entry, then prefix entries from shortest to longest, then wildcard entries
    /// from best to worst (the dealer's precedence order).
    pub fn for_each_match<'a>(&'a self, uri: &str, mut f: impl FnMut(MatchPolicy, &'a T)) {
        if let Some(v) = self.exact.get(uri) {
            f(MatchPolicy::Exact, v);
        }
        self.prefix
            .walk(uri.as_bytes(), |v| f(MatchPolicy::Prefix, v));
        self.wildcard.walk(uri, |v| {
            f(MatchPolicy::Wildcard, v);
            ControlFlow::Continue(())
        });
    }

    /// Append every entry whose pattern matches `uri` to `out`, in the order of
    /// [`UriIndex::for_each_match`]. `out` is not cleared, so one buffer can be reused.
    pub fn matches<'a>(&'a self, uri: &str, out: &mut Vec<&'a T>) {
        self.for_each_match(uri, |_, v| out.push(v));
    }

    /// The single entry a call to `uri` is routed to (the dealer's question): exact, else the
    /// longest prefix, else the best wildcard, as the module docs explain. `None` means
    /// `wamp.error.no_such_procedure`.
    pub fn best_match(&self, uri: &str) -> Option<(MatchPolicy, &T)> {
        if let Some(v) = self.exact.get(uri) {
            return Some((MatchPolicy::Exact, v));
        }
        let mut longest = None;
        self.prefix.walk(uri.as_bytes(), |v| longest = Some(v));
        if let Some(v) = longest {
            return Some((MatchPolicy::Prefix, v));
        }
        let mut best = None;
        self.wildcard.walk(uri, |v| {
            best = Some(v);
            ControlFlow::Break(())
        });
        best.map(|v| (MatchPolicy::Wildcard, v))
    }
}
