//! Prefix entries: a radix trie over bytes.

use super::{NodeId, ROOT};

/// A radix trie keyed by byte strings; each edge label is stored in its child node.
#[derive(Debug, Clone)]
pub(super) struct PrefixTrie<T> {
    /// Arena; slot [`ROOT`] is the root (empty label). Freed slots are listed in `free`.
    pub(super) nodes: Vec<PrefixNode<T>>,
    pub(super) free: Vec<NodeId>,
    /// Number of stored values.
    pub(super) len: usize,
}

#[derive(Debug, Clone)]
pub(super) struct PrefixNode<T> {
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
    pub(super) fn new() -> Self {
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

    pub(super) fn get(&self, key: &[u8]) -> Option<&T> {
        self.find(key).and_then(|n| self.node(n).value.as_ref())
    }

    pub(super) fn get_mut(&mut self, key: &[u8]) -> Option<&mut T> {
        let n = self.find(key)?;
        self.node_mut(n).value.as_mut()
    }

    /// The node for `key`, created (splitting an edge if needed) when missing.
    pub(super) fn node_for(&mut self, key: &[u8]) -> NodeId {
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

    pub(super) fn fill(&mut self, node: NodeId, make: impl FnOnce() -> T) -> &mut T {
        let slot = &mut self.nodes[node as usize].value;
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(make)
    }

    pub(super) fn insert(&mut self, key: &[u8], value: T) -> Option<T> {
        let node = self.node_for(key);
        let old = self.node_mut(node).value.replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(super) fn remove(&mut self, key: &[u8]) -> Option<T> {
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
    pub(super) fn walk<'a>(&'a self, uri: &[u8], mut f: impl FnMut(&'a T)) {
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
