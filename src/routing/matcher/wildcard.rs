//! Wildcard entries: a trie of `.`-separated components (nats sublist style).

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::{NodeId, ROOT};

/// A trie over `.`-separated components. Empty pattern components are wildcards.
#[derive(Debug, Clone)]
pub(super) struct WildcardTrie<T> {
    /// Arena; slot [`ROOT`] is the root. Freed slots are listed in `free`.
    pub(super) nodes: Vec<WildNode<T>>,
    pub(super) free: Vec<NodeId>,
    /// Number of stored values.
    pub(super) len: usize,
}

#[derive(Debug, Clone)]
pub(super) struct WildNode<T> {
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
    pub(super) fn new() -> Self {
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

    pub(super) fn get(&self, pattern: &str) -> Option<&T> {
        self.find(pattern).and_then(|n| self.node(n).value.as_ref())
    }

    pub(super) fn get_mut(&mut self, pattern: &str) -> Option<&mut T> {
        let n = self.find(pattern)?;
        self.node_mut(n).value.as_mut()
    }

    pub(super) fn node_for(&mut self, pattern: &str) -> NodeId {
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

    pub(super) fn fill(&mut self, node: NodeId, make: impl FnOnce() -> T) -> &mut T {
        let slot = &mut self.nodes[node as usize].value;
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(make)
    }

    pub(super) fn insert(&mut self, pattern: &str, value: T) -> Option<T> {
        let node = self.node_for(pattern);
        let old = self.node_mut(node).value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(super) fn remove(&mut self, pattern: &str) -> Option<T> {
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
    pub(super) fn walk<'a>(&'a self, uri: &str, mut f: impl FnMut(&'a T) -> ControlFlow<()>) {
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
