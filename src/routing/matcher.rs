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
//! - prefix entries: a radix trie over bytes (edges carry byte strings). A lookup walks down
//!   along the URI once; every node passed that holds a value is a matching prefix, so the cost
//!   is O(URI length), independent of how many prefix entries exist.
//! - wildcard entries: a trie of components as in nats-server's sublist: each node has a map of
//!   literal children and at most one "any component" child. A lookup explores, per component,
//!   the literal child and the wildcard child. It is iterative (parent links, no recursion), so
//!   a pattern of a million components cannot overflow the stack.
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

use std::collections::HashMap;
use std::ops::ControlFlow;

use crate::codec::uri::MatchPolicy;

/// Index of a node in a trie's arena.
type NodeId = u32;

/// The root of both tries lives at arena slot 0 and is never freed.
const ROOT: NodeId = 0;

/// Patterns of all three match policies, each mapped to a `T`.
#[derive(Debug, Clone)]
pub struct UriIndex<T> {
    exact: HashMap<Box<str>, T>,
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
            exact: HashMap::new(),
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

// ---- prefix entries: radix trie over bytes ------------------------------------------------

/// A radix trie keyed by byte strings; each edge label is stored in its child node.
#[derive(Debug, Clone)]
struct PrefixTrie<T> {
    /// Arena; slot [`ROOT`] is the root (empty label). Freed slots are listed in `free`.
    nodes: Vec<PrefixNode<T>>,
    free: Vec<NodeId>,
    /// Number of stored values.
    len: usize,
}

#[derive(Debug, Clone)]
struct PrefixNode<T> {
    /// Bytes on the edge from the parent; non-empty except for the root.
    label: Box<[u8]>,
    /// Children, sorted by the first byte of their label (which is unique among siblings).
    children: Vec<(u8, NodeId)>,
    value: Option<T>,
    parent: NodeId,
}

impl<T> PrefixNode<T> {
    fn empty(parent: NodeId) -> Self {
        Self {
            label: Box::default(),
            children: Vec::new(),
            value: None,
            parent,
        }
    }
}

impl<T> PrefixTrie<T> {
    fn new() -> Self {
        Self {
            nodes: vec![PrefixNode::empty(ROOT)],
            free: Vec::new(),
            len: 0,
        }
    }

    fn node(&self, id: NodeId) -> &PrefixNode<T> {
        &self.nodes[id as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut PrefixNode<T> {
        &mut self.nodes[id as usize]
    }

    fn alloc(&mut self, node: PrefixNode<T>) -> NodeId {
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = node;
            id
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as NodeId
        }
    }

    fn release(&mut self, id: NodeId) {
        self.nodes[id as usize] = PrefixNode::empty(ROOT);
        self.free.push(id);
    }

    /// Position of the child starting with `first` in `parent`'s child list.
    fn child_pos(&self, parent: NodeId, first: u8) -> Result<usize, usize> {
        self.node(parent)
            .children
            .binary_search_by_key(&first, |&(b, _)| b)
    }

    fn child(&self, parent: NodeId, first: u8) -> Option<NodeId> {
        let children = &self.node(parent).children;
        self.child_pos(parent, first).ok().map(|i| children[i].1)
    }

    /// The node whose path spells exactly `key`, if it exists (it may hold no value).
    fn find(&self, key: &[u8]) -> Option<NodeId> {
        let mut node = ROOT;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            let child = self.child(node, first)?;
            rest = rest.strip_prefix(&*self.node(child).label)?;
            node = child;
        }
        Some(node)
    }

    fn get(&self, key: &[u8]) -> Option<&T> {
        self.find(key).and_then(|n| self.node(n).value.as_ref())
    }

    fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        let n = self.find(key)?;
        self.node_mut(n).value.as_mut()
    }

    /// The node for `key`, created (splitting an edge if needed) when missing.
    fn node_for(&mut self, key: &[u8]) -> NodeId {
        let mut node = ROOT;
        let mut rest = key;
        while let Some(&first) = rest.first() {
            match self.child_pos(node, first) {
                Err(pos) => {
                    let leaf = self.alloc(PrefixNode {
                        label: rest.into(),
                        children: Vec::new(),
                        value: None,
                        parent: node,
                    });
                    self.node_mut(node).children.insert(pos, (first, leaf));
                    return leaf;
                }
                Ok(pos) => {
                    let child = self.node(node).children[pos].1;
                    let label = &self.node(child).label;
                    let common = common_prefix_len(label, rest);
                    if common < label.len() {
                        // Split the edge: node -> mid (label[..common]) -> child (label[common..]).
                        // `common >= 1` because the first bytes are equal.
                        let head: Box<[u8]> = label[..common].into();
                        let tail: Box<[u8]> = label[common..].into();
                        let tail_first = tail[0];
                        let mid = self.alloc(PrefixNode {
                            label: head,
                            children: vec![(tail_first, child)],
                            value: None,
                            parent: node,
                        });
                        let c = self.node_mut(child);
                        c.label = tail;
                        c.parent = mid;
                        self.node_mut(node).children[pos].1 = mid;
                        node = mid;
                    } else {
                        node = child;
                    }
                    rest = &rest[common..];
                }
            }
        }
        node
    }

    fn fill(&mut self, node: NodeId, make: impl FnOnce() -> T) -> &mut T {
        let slot = &mut self.nodes[node as usize].value;
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(make)
    }

    fn insert(&mut self, key: &[u8], value: T) -> Option<T> {
        let node = self.node_for(key);
        let old = self.node_mut(node).value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    fn remove(&mut self, key: &[u8]) -> Option<T> {
        let node = self.find(key)?;
        let value = self.node_mut(node).value.take()?;
        self.len -= 1;
        self.compact(node);
        Some(value)
    }

    /// Restore the radix invariants after `start` lost its value: drop value-less leaves
    /// (walking up), and merge a value-less node with a single child into that child.
    fn compact(&mut self, start: NodeId) {
        let mut id = start;
        while id != ROOT {
            let node = self.node(id);
            if node.value.is_some() {
                return;
            }
            let parent = node.parent;
            let Some(&first) = node.label.first() else {
                return; // only the root has an empty label
            };
            match node.children.len() {
                0 => {
                    if let Ok(pos) = self.child_pos(parent, first) {
                        self.node_mut(parent).children.remove(pos);
                    }
                    self.release(id);
                    id = parent; // the parent may now be a leaf or a pass-through
                }
                1 => {
                    let child = node.children[0].1;
                    let mut label =
                        Vec::with_capacity(node.label.len() + self.node(child).label.len());
                    label.extend_from_slice(&node.label);
                    label.extend_from_slice(&self.node(child).label);
                    let c = self.node_mut(child);
                    c.label = label.into();
                    c.parent = parent;
                    if let Ok(pos) = self.child_pos(parent, first) {
                        self.node_mut(parent).children[pos].1 = child;
                    }
                    self.release(id);
                    return;
                }
                _ => return,
            }
        }
    }

    /// Call `f` for every stored key that is a prefix of `uri`, shortest first.
    fn walk<'a>(&'a self, uri: &[u8], mut f: impl FnMut(&'a T)) {
        let mut node = ROOT;
        let mut rest = uri;
        loop {
            let n = self.node(node);
            if let Some(v) = &n.value {
                f(v);
            }
            let Some(&first) = rest.first() else {
                return;
            };
            let Some(child) = self.child(node, first) else {
                return;
            };
            let Some(r) = rest.strip_prefix(&*self.node(child).label) else {
                return;
            };
            rest = r;
            node = child;
        }
    }
}

fn common_prefix_len(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

// ---- wildcard entries: component trie (nats sublist style) -------------------------------

/// A trie over `.`-separated components. Empty pattern components are wildcards.
#[derive(Debug, Clone)]
struct WildcardTrie<T> {
    /// Arena; slot [`ROOT`] is the root. Freed slots are listed in `free`.
    nodes: Vec<WildNode<T>>,
    free: Vec<NodeId>,
    /// Number of stored values.
    len: usize,
}

#[derive(Debug, Clone)]
struct WildNode<T> {
    /// Children reached by a literal component.
    literal: HashMap<Box<str>, NodeId>,
    /// Child reached by a wildcard (empty) component: matches any one non-empty component.
    any: Option<NodeId>,
    value: Option<T>,
    /// Parent link and which kind of child this is: the match walk backtracks through these
    /// instead of recursing, so its depth is not bounded by the stack.
    parent: NodeId,
    is_any: bool,
}

impl<T> WildNode<T> {
    fn new(parent: NodeId, is_any: bool) -> Self {
        Self {
            literal: HashMap::new(),
            any: None,
            value: None,
            parent,
            is_any,
        }
    }
}

/// Walk state of [`WildcardTrie::walk`].
#[derive(Clone, Copy)]
enum Step {
    /// Just arrived at the node; try its literal child next.
    Enter,
    /// The literal child is done; try the wildcard child.
    TryAny,
    /// The node is done; go back to its parent.
    Up,
}

impl<T> WildcardTrie<T> {
    fn new() -> Self {
        Self {
            nodes: vec![WildNode::new(ROOT, false)],
            free: Vec::new(),
            len: 0,
        }
    }

    fn node(&self, id: NodeId) -> &WildNode<T> {
        &self.nodes[id as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut WildNode<T> {
        &mut self.nodes[id as usize]
    }

    fn alloc(&mut self, node: WildNode<T>) -> NodeId {
        if let Some(id) = self.free.pop() {
            self.nodes[id as usize] = node;
            id
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as NodeId
        }
    }

    fn child(&self, node: NodeId, comp: &str) -> Option<NodeId> {
        let n = self.node(node);
        if comp.is_empty() {
            n.any
        } else {
            n.literal.get(comp).copied()
        }
    }

    fn find(&self, pattern: &str) -> Option<NodeId> {
        pattern
            .split('.')
            .try_fold(ROOT, |node, comp| self.child(node, comp))
    }

    fn get(&self, pattern: &str) -> Option<&T> {
        self.find(pattern).and_then(|n| self.node(n).value.as_ref())
    }

    fn get_mut(&mut self, pattern: &str) -> Option<&mut T> {
        let n = self.find(pattern)?;
        self.node_mut(n).value.as_mut()
    }

    fn node_for(&mut self, pattern: &str) -> NodeId {
        let mut node = ROOT;
        for comp in pattern.split('.') {
            node = match self.child(node, comp) {
                Some(c) => c,
                None => {
                    let is_any = comp.is_empty();
                    let c = self.alloc(WildNode::new(node, is_any));
                    let n = self.node_mut(node);
                    if is_any {
                        n.any = Some(c);
                    } else {
                        n.literal.insert(comp.into(), c);
                    }
                    c
                }
            };
        }
        node
    }

    fn fill(&mut self, node: NodeId, make: impl FnOnce() -> T) -> &mut T {
        let slot = &mut self.nodes[node as usize].value;
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(make)
    }

    fn insert(&mut self, pattern: &str, value: T) -> Option<T> {
        let node = self.node_for(pattern);
        let old = self.node_mut(node).value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    fn remove(&mut self, pattern: &str) -> Option<T> {
        let node = self.find(pattern)?;
        let value = self.node_mut(node).value.take()?;
        self.len -= 1;
        // Prune nodes left without value and children, from the leaf up. The components are
        // taken from the pattern's end, matching the nodes met on the way up.
        let mut id = node;
        let mut comps = pattern.rsplit('.');
        while id != ROOT {
            let n = self.node(id);
            if n.value.is_some() || n.any.is_some() || !n.literal.is_empty() {
                break;
            }
            let (parent, is_any) = (n.parent, n.is_any);
            let comp = comps.next().unwrap_or_default();
            let p = self.node_mut(parent);
            if is_any {
                p.any = None;
            } else {
                p.literal.remove(comp);
            }
            self.nodes[id as usize] = WildNode::new(ROOT, false);
            self.free.push(id);
            id = parent;
        }
        Some(value)
    }

    /// Call `f` for every pattern matching `uri`, best first (literal before wildcard at the
    /// leftmost difference); stop early when `f` breaks.
    ///
    /// Depth-first, iterative: `pos` is the byte offset in `uri` where the component *below*
    /// `node` starts, or `uri.len() + 1` once every component has been consumed.
    fn walk<'a>(&'a self, uri: &str, mut f: impl FnMut(&'a T) -> ControlFlow<()>) {
        if self.len == 0 {
            return;
        }
        let bytes = uri.as_bytes();
        let done = bytes.len() + 1;
        let comp_end = |pos: usize| {
            bytes[pos..]
                .iter()
                .position(|&b| b == b'.')
                .map_or(bytes.len(), |i| pos + i)
        };
        let mut node = ROOT;
        let mut pos = 0;
        let mut step = Step::Enter;
        loop {
            match step {
                Step::Enter => {
                    if pos == done {
                        if let Some(v) = &self.node(node).value {
                            if f(v).is_break() {
                                return;
                            }
                        }
                        step = Step::Up;
                        continue;
                    }
                    let end = comp_end(pos);
                    let comp = uri.get(pos..end).unwrap_or_default();
                    match self.node(node).literal.get(comp) {
                        Some(&c) => {
                            node = c;
                            pos = end + 1;
                        }
                        None => step = Step::TryAny,
                    }
                }
                Step::TryAny => {
                    let end = comp_end(pos);
                    match self.node(node).any {
                        Some(c) if end > pos => {
                            node = c;
                            pos = end + 1;
                            step = Step::Enter;
                        }
                        _ => step = Step::Up,
                    }
                }
                Step::Up => {
                    if node == ROOT {
                        return;
                    }
                    let n = self.node(node);
                    // The component `node` consumed ends at `pos - 1`; find where it starts.
                    let end = pos - 1;
                    pos = bytes[..end]
                        .iter()
                        .rposition(|&b| b == b'.')
                        .map_or(0, |i| i + 1);
                    step = if n.is_any { Step::Up } else { Step::TryAny };
                    node = n.parent;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::{Exact, Prefix, Wildcard};

    fn index(entries: &[(MatchPolicy, &str)]) -> UriIndex<String> {
        let mut idx = UriIndex::new();
        for (p, pat) in entries {
            idx.insert(*p, pat, format!("{}:{pat}", p.as_str()));
        }
        idx
    }

    fn matches(idx: &UriIndex<String>, uri: &str) -> Vec<String> {
        let mut out = Vec::new();
        idx.matches(uri, &mut out);
        out.into_iter().cloned().collect()
    }

    fn best(idx: &UriIndex<String>, uri: &str) -> Option<String> {
        idx.best_match(uri).map(|(_, v)| v.clone())
    }

    #[test]
    fn insert_get_remove_per_policy() {
        let mut idx = UriIndex::new();
        assert!(idx.is_empty());
        for p in [Exact, Prefix, Wildcard] {
            assert_eq!(idx.insert(p, "a.b", 1), None);
            assert_eq!(idx.insert(p, "a.b", 2), Some(1));
        }
        assert_eq!(idx.len(), 3);
        for p in [Exact, Prefix, Wildcard] {
            assert_eq!(idx.get(p, "a.b"), Some(&2));
            assert_eq!(idx.get(p, "a"), None);
            assert_eq!(idx.get(p, "a.b.c"), None);
            if let Some(v) = idx.get_mut(p, "a.b") {
                *v += 1;
            }
            assert_eq!(idx.remove(p, "a.b"), Some(3));
            assert_eq!(idx.remove(p, "a.b"), None);
            assert_eq!(idx.get(p, "a.b"), None);
        }
        assert!(idx.is_empty());
    }

    #[test]
    fn get_or_insert_with_counts_once() {
        let mut idx: UriIndex<Vec<u32>> = UriIndex::new();
        for p in [Exact, Prefix, Wildcard] {
            idx.get_or_insert_with(p, "x..y", Vec::new).push(1);
            idx.get_or_insert_with(p, "x..y", Vec::new).push(2);
            assert_eq!(idx.get(p, "x..y"), Some(&vec![1, 2]));
        }
        assert_eq!(idx.len(), 3);
    }

    #[test]
    fn exact_matches_only_itself() {
        let idx = index(&[(Exact, "com.myapp.mytopic1")]);
        assert_eq!(
            matches(&idx, "com.myapp.mytopic1"),
            ["exact:com.myapp.mytopic1"]
        );
        assert!(matches(&idx, "com.myapp.mytopic").is_empty());
        assert!(matches(&idx, "com.myapp.mytopic1.x").is_empty());
    }

    #[test]
    fn spec_prefix_subscription_example() {
        let idx = index(&[(Prefix, "com.myapp.topic.emergency")]);
        for uri in [
            "com.myapp.topic.emergency.11",
            "com.myapp.topic.emergency-low",
            "com.myapp.topic.emergency.category.severe",
            "com.myapp.topic.emergency",
        ] {
            assert_eq!(
                matches(&idx, uri),
                ["prefix:com.myapp.topic.emergency"],
                "{uri}"
            );
        }
        assert!(matches(&idx, "com.myapp.topic.emerge").is_empty());
    }

    #[test]
    fn spec_prefix_registration_example() {
        let idx = index(&[(Prefix, "com.myapp.myobject1")]);
        for uri in [
            "com.myapp.myobject1.myprocedure1",
            "com.myapp.myobject1-mysubobject1",
            "com.myapp.myobject1.mysubobject1.myprocedure1",
            "com.myapp.myobject1",
        ] {
            assert!(best(&idx, uri).is_some(), "{uri}");
        }
        assert_eq!(best(&idx, "com.myapp.myobject2"), None);
        assert_eq!(best(&idx, "com.myapp.myobject"), None);
    }

    #[test]
    fn prefix_with_trailing_dot_and_empty_prefix() {
        let idx = index(&[(Prefix, "com.myapp."), (Prefix, "")]);
        assert_eq!(
            matches(&idx, "com.myapp.x"),
            ["prefix:", "prefix:com.myapp."]
        );
        assert_eq!(matches(&idx, "com.myapp2.x"), ["prefix:"]);
        assert_eq!(matches(&idx, "com.myapp"), ["prefix:"]);
        assert_eq!(matches(&idx, ""), ["prefix:"]);
    }

    #[test]
    fn nested_prefixes_all_match_shortest_first() {
        let idx = index(&[
            (Prefix, "a1.b2.c3"),
            (Prefix, "a"),
            (Prefix, "a1.b2"),
            (Prefix, "a1.b2.c3.d4"),
            (Prefix, "a1.b2.c4"),
            (Prefix, "a1.b"),
        ]);
        assert_eq!(
            matches(&idx, "a1.b2.c3.d4.e5"),
            [
                "prefix:a",
                "prefix:a1.b",
                "prefix:a1.b2",
                "prefix:a1.b2.c3",
                "prefix:a1.b2.c3.d4"
            ]
        );
        assert_eq!(
            best(&idx, "a1.b2.c3.d4.e5").as_deref(),
            Some("prefix:a1.b2.c3.d4")
        );
        assert_eq!(
            best(&idx, "a1.b2.c3.d5").as_deref(),
            Some("prefix:a1.b2.c3")
        );
    }

    #[test]
    fn prefix_trie_splits_and_merges_edges() {
        let mut idx = UriIndex::new();
        idx.insert(Prefix, "abcdef", 1);
        idx.insert(Prefix, "abcxyz", 2); // splits "abcdef" at "abc"
        idx.insert(Prefix, "ab", 3); // splits "abc" at "ab"
        let m = |idx: &UriIndex<i32>, uri| {
            let mut out = Vec::new();
            idx.matches(uri, &mut out);
            out.into_iter().copied().collect::<Vec<_>>()
        };
        assert_eq!(m(&idx, "abcdefg"), [3, 1]);
        assert_eq!(m(&idx, "abcxyz"), [3, 2]);
        assert_eq!(m(&idx, "abc"), [3]);
        assert_eq!(idx.get(Prefix, "abc"), None, "split node holds no value");
        assert_eq!(idx.remove(Prefix, "ab"), Some(3));
        assert_eq!(idx.remove(Prefix, "abcxyz"), Some(2));
        // Only "abcdef" is left; the trie should be root -> "abcdef" again.
        assert_eq!(m(&idx, "abcdefg"), [1]);
        let live = idx.prefix.nodes.len() - idx.prefix.free.len();
        assert_eq!(live, 2, "root plus one merged leaf");
        assert_eq!(idx.remove(Prefix, "abcdef"), Some(1));
        assert_eq!(idx.prefix.nodes.len() - idx.prefix.free.len(), 1);
    }

    #[test]
    fn spec_wildcard_subscription_example() {
        let idx = index(&[(Wildcard, "com.myapp..userevent")]);
        for uri in [
            "com.myapp.foo.userevent",
            "com.myapp.bar.userevent",
            "com.myapp.a12.userevent",
        ] {
            assert_eq!(
                matches(&idx, uri),
                ["wildcard:com.myapp..userevent"],
                "{uri}"
            );
        }
        for uri in [
            "com.myapp.foo.userevent.bar",
            "com.myapp.foo.user",
            "com.myapp2.foo.userevent",
        ] {
            assert!(matches(&idx, uri).is_empty(), "{uri}");
        }
    }

    #[test]
    fn wildcard_needs_equal_component_count_and_nonempty_components() {
        let idx = index(&[(Wildcard, "a.."), (Wildcard, ".b"), (Wildcard, "")]);
        assert_eq!(matches(&idx, "a.x.y"), ["wildcard:a.."]);
        assert!(matches(&idx, "a.x").is_empty());
        assert!(matches(&idx, "a.x.y.z").is_empty());
        assert!(
            matches(&idx, "a..y").is_empty(),
            "empty URI component never matches"
        );
        assert!(matches(&idx, "a.x.").is_empty());
        assert_eq!(matches(&idx, "q.b"), ["wildcard:.b"]);
        assert!(matches(&idx, ".b").is_empty());
        assert_eq!(matches(&idx, "solo"), ["wildcard:"]);
        assert!(matches(&idx, "").is_empty());
    }

    #[test]
    fn wildcard_without_wildcards_matches_like_exact() {
        let idx = index(&[(Wildcard, "a.b")]);
        assert_eq!(matches(&idx, "a.b"), ["wildcard:a.b"]);
        assert!(matches(&idx, "a.c").is_empty());
    }

    #[test]
    fn spec_registration_precedence_examples() {
        let idx = index(&[
            (Exact, "a1.b2.c3.d4.e55"),
            (Prefix, "a1.b2.c3"),
            (Prefix, "a1.b2.c3.d4"),
            (Wildcard, "a1.b2..d4.e5"),
            (Wildcard, "a1.b2.c33..e5"),
            (Wildcard, "a1.b2..d4.e5..g7"),
            (Wildcard, "a1.b2..d4..f6.g7"),
        ]);
        let cases = [
            ("a1.b2.c3.d4.e55", Some("exact:a1.b2.c3.d4.e55")),
            ("a1.b2.c3.d98.e74", Some("prefix:a1.b2.c3")),
            ("a1.b2.c3.d4.e325", Some("prefix:a1.b2.c3.d4")),
            ("a1.b2.c55.d4.e5", Some("wildcard:a1.b2..d4.e5")),
            // The spec's example says "no prefix match" here and picks RPC 5, but `a1.b2.c3` is
            // a string prefix of `a1.b2.c33.d4.e5`, and the spec's own prefix rules (and
            // crossbar) match string prefixes (`myobject1` matches `myobject1-mysubobject1`).
            // We follow the normative rule; see `spec_example_c33_without_string_prefix`.
            ("a1.b2.c33.d4.e5", Some("prefix:a1.b2.c3")),
            ("a1.b2.c88.d4.e5.f6.g7", Some("wildcard:a1.b2..d4.e5..g7")),
            ("a2.b2.c2.d2.e2", None),
        ];
        for (uri, want) in cases {
            assert_eq!(best(&idx, uri).as_deref(), want, "{uri}");
        }
        // The broker sees every match, in precedence order within each policy.
        assert_eq!(
            matches(&idx, "a1.b2.c33.d4.e5"),
            [
                "prefix:a1.b2.c3",
                "wildcard:a1.b2.c33..e5",
                "wildcard:a1.b2..d4.e5"
            ]
        );
    }

    #[test]
    fn spec_example_c33_without_string_prefix() {
        // The spec's example outcome for `a1.b2.c33.d4.e5` (RPC 5) holds once the prefix
        // registration is limited to whole components with a trailing dot.
        let idx = index(&[
            (Exact, "a1.b2.c3.d4.e55"),
            (Prefix, "a1.b2.c3."),
            (Prefix, "a1.b2.c3.d4"),
            (Wildcard, "a1.b2..d4.e5"),
            (Wildcard, "a1.b2.c33..e5"),
            (Wildcard, "a1.b2..d4.e5..g7"),
            (Wildcard, "a1.b2..d4..f6.g7"),
        ]);
        assert_eq!(
            best(&idx, "a1.b2.c33.d4.e5").as_deref(),
            Some("wildcard:a1.b2.c33..e5")
        );
        assert_eq!(
            best(&idx, "a1.b2.c3.d98.e74").as_deref(),
            Some("prefix:a1.b2.c3.")
        );
    }

    #[test]
    fn wildcard_precedence_literal_before_wildcard_at_first_difference() {
        // For `a1.b2.c3.d4` the spec prefers `a1.b2..d4` over `a1...d4`.
        let idx = index(&[
            (Wildcard, "a1...d4"),
            (Wildcard, "a1.b2..d4"),
            (Wildcard, "..."),
            (Wildcard, "...d4"),
            (Wildcard, ".b2.c3.d4"),
        ]);
        assert_eq!(
            matches(&idx, "a1.b2.c3.d4"),
            [
                "wildcard:a1.b2..d4",
                "wildcard:a1...d4",
                "wildcard:.b2.c3.d4",
                "wildcard:...d4",
                "wildcard:..."
            ]
        );
        assert_eq!(
            best(&idx, "a1.b2.c3.d4").as_deref(),
            Some("wildcard:a1.b2..d4")
        );
        assert_eq!(
            best(&idx, "z.b2.c3.d4").as_deref(),
            Some("wildcard:.b2.c3.d4")
        );
        assert_eq!(best(&idx, "z.y.x.w").as_deref(), Some("wildcard:..."));
    }

    #[test]
    fn broker_sees_all_policies_exact_prefix_wildcard_order() {
        let idx = index(&[
            (Wildcard, "com..x"),
            (Prefix, "com."),
            (Exact, "com.a.x"),
            (Prefix, "com.a"),
        ]);
        assert_eq!(
            matches(&idx, "com.a.x"),
            [
                "exact:com.a.x",
                "prefix:com.",
                "prefix:com.a",
                "wildcard:com..x"
            ]
        );
        let mut kinds = Vec::new();
        idx.for_each_match("com.a.x", |p, _| kinds.push(p));
        assert_eq!(kinds, [Exact, Prefix, Prefix, Wildcard]);
    }

    #[test]
    fn matches_appends_without_clearing() {
        let idx = index(&[(Exact, "a")]);
        let mut out = Vec::new();
        idx.matches("a", &mut out);
        idx.matches("a", &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn wildcard_remove_prunes_but_keeps_shared_paths() {
        let mut idx = UriIndex::new();
        idx.insert(Wildcard, "a..c", 1);
        idx.insert(Wildcard, "a..d", 2);
        idx.insert(Wildcard, "a.b.c", 3);
        assert_eq!(idx.remove(Wildcard, "a..c"), Some(1));
        assert_eq!(idx.best_match("a.x.d").map(|(_, v)| *v), Some(2));
        assert_eq!(idx.best_match("a.x.c").map(|(_, v)| *v), None);
        assert_eq!(idx.best_match("a.b.c").map(|(_, v)| *v), Some(3));
        assert_eq!(idx.remove(Wildcard, "a..d"), Some(2));
        assert_eq!(idx.remove(Wildcard, "a.b.c"), Some(3));
        assert_eq!(idx.wildcard.nodes.len() - idx.wildcard.free.len(), 1);
        // Removing a missing pattern or a pure path node changes nothing.
        idx.insert(Wildcard, "a.b.c", 4);
        assert_eq!(idx.remove(Wildcard, "a.b"), None);
        assert_eq!(idx.remove(Wildcard, "a.b.c.d"), None);
        assert_eq!(idx.best_match("a.b.c").map(|(_, v)| *v), Some(4));
    }

    #[test]
    fn deep_patterns_do_not_overflow_the_stack() {
        let deep = ".".repeat(200_000); // 200,001 wildcard components
        let uri = vec!["x"; 200_001].join(".");
        let mut idx = UriIndex::new();
        idx.insert(Wildcard, &deep, 1);
        idx.insert(Prefix, &uri[..1000], 2);
        assert_eq!(
            idx.best_match(&uri).map(|(p, v)| (p, *v)),
            Some((Prefix, 2))
        );
        idx.remove(Prefix, &uri[..1000]);
        assert_eq!(
            idx.best_match(&uri).map(|(p, v)| (p, *v)),
            Some((Wildcard, 1))
        );
        assert_eq!(idx.remove(Wildcard, &deep), Some(1));
        assert!(idx.is_empty());
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let mut idx = UriIndex::new();
        for p in ["", ".", "..", "a.", ".a", "é.", "#", " . "] {
            for pol in [Exact, Prefix, Wildcard] {
                idx.insert(pol, p, 0u8);
            }
        }
        for u in ["", ".", "..", "...", "a", "a.", "é.x", "日本.", " . "] {
            let mut out = Vec::new();
            idx.matches(u, &mut out);
            let _ = idx.best_match(u);
        }
    }

    // ---- reference model -------------------------------------------------------------

    /// The spec's rules written as directly as possible, over a flat list.
    fn naive_matches(policy: MatchPolicy, pattern: &str, uri: &str) -> bool {
        match policy {
            Exact => pattern == uri,
            Prefix => uri.starts_with(pattern),
            Wildcard => {
                let p: Vec<&str> = pattern.split('.').collect();
                let u: Vec<&str> = uri.split('.').collect();
                p.len() == u.len()
                    && p.iter()
                        .zip(&u)
                        .all(|(p, u)| if p.is_empty() { !u.is_empty() } else { p == u })
            }
        }
    }

    /// The spec's dealer rule: portions of literal components before each wildcard, compared
    /// first portion first, longer wins.
    fn portions(pattern: &str) -> Vec<usize> {
        let mut out = vec![0];
        for c in pattern.split('.') {
            if c.is_empty() {
                out.push(0);
            } else if let Some(last) = out.last_mut() {
                *last += 1;
            }
        }
        out
    }

    fn naive_best<'a>(
        entries: &'a [(MatchPolicy, String)],
        uri: &str,
    ) -> Option<&'a (MatchPolicy, String)> {
        let hits: Vec<_> = entries
            .iter()
            .filter(|(p, pat)| naive_matches(*p, pat, uri))
            .collect();
        if let Some(e) = hits.iter().find(|(p, _)| *p == Exact) {
            return Some(e);
        }
        if let Some(e) = hits
            .iter()
            .filter(|(p, _)| *p == Prefix)
            .max_by_key(|(_, pat)| pat.len())
        {
            return Some(e);
        }
        hits.iter()
            .filter(|(p, _)| *p == Wildcard)
            .max_by(|a, b| portions(&a.1).cmp(&portions(&b.1)))
            .copied()
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn policy() -> impl Strategy<Value = MatchPolicy> {
            prop_oneof![Just(Exact), Just(Prefix), Just(Wildcard)]
        }

        /// Small alphabets so patterns and URIs collide often.
        fn pattern() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![Just(""), Just("a"), Just("b"), Just("ab"), Just("a-")],
                1..5,
            )
            .prop_map(|v| v.join("."))
        }

        fn uri() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![Just("a"), Just("b"), Just("ab"), Just("a-b"), Just("")],
                1..6,
            )
            .prop_map(|v| v.join("."))
        }

        proptest! {
            #[test]
            fn index_agrees_with_linear_scan(
                ops in proptest::collection::vec((any::<bool>(), policy(), pattern()), 0..60),
                uris in proptest::collection::vec(uri(), 1..20),
            ) {
                let mut idx = UriIndex::new();
                let mut flat: Vec<(MatchPolicy, String)> = Vec::new();
                for (add, p, pat) in ops {
                    let key = (p, pat.clone());
                    if add {
                        idx.insert(p, &pat, key.clone());
                        if !flat.contains(&key) {
                            flat.push(key);
                        }
                    } else {
                        let removed = idx.remove(p, &pat);
                        let pos = flat.iter().position(|k| *k == key);
                        prop_assert_eq!(removed.is_some(), pos.is_some());
                        if let Some(i) = pos {
                            flat.swap_remove(i);
                        }
                    }
                    prop_assert_eq!(idx.len(), flat.len());
                }
                for k in &flat {
                    prop_assert_eq!(idx.get(k.0, &k.1), Some(k));
                }
                for u in uris.iter().chain(flat.iter().map(|(_, p)| p)) {
                    let mut got = Vec::new();
                    idx.matches(u, &mut got);
                    let mut got: Vec<_> = got.into_iter().cloned().collect();
                    let mut want: Vec<_> = flat.iter().filter(|(p, pat)| naive_matches(*p, pat, u)).cloned().collect();
                    got.sort();
                    want.sort();
                    prop_assert_eq!(got, want, "uri {:?}", u);
                    prop_assert_eq!(idx.best_match(u).map(|(_, v)| v), naive_best(&flat, u), "best for {:?}", u);
                }
            }
        }
    }
}
