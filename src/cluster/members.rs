//! Which other nodes are alive, and whether this node's replica of each one's interest is
//! current (sans-IO: fed messages and the time, returns what to do).
//!
//! - A node is alive while its heartbeats keep coming; one not heard from for the node timeout
//!   is gone ([`Members::tick`]), and so is one that says goodbye or comes back with a new
//!   incarnation (it restarted: everything it had is gone).
//! - Interest changes are numbered per node. A change is applied when it is the next one;
//!   changes that arrive early (NATS orders one sender's messages per subscription, and a
//!   snapshot travels on another subject) wait in a bounded buffer; a gap that does not close,
//!   or a heartbeat announcing a change never seen, asks the node for a snapshot
//!   ([`Members`] returns [`Todo::RequestSync`]). A snapshot replaces everything known of the
//!   node, then the buffered changes newer than it apply.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::wire::Entry;
use crate::routing::cluster::NodeId;

/// Changes buffered per node while waiting for a missing one or a snapshot.
const MAX_BUFFERED: usize = 10_000;

/// What the bridge must do after feeding a message or the time.
#[derive(Debug, Clone, PartialEq)]
pub enum Todo {
    /// A node appeared (first heartbeat or a new incarnation).
    Joined(NodeId),
    /// A node is gone: forget its interest on every shard. `dead`: it did not say goodbye
    /// (timeout, or a new incarnation), so its sessions' testaments are due.
    Gone { node: NodeId, dead: bool },
    /// Ask `node` for a snapshot of its interest.
    RequestSync(NodeId),
    /// Forget everything known of `node`'s interest (a snapshot starts).
    Clear(NodeId),
    /// Apply one interest change of `node`.
    Apply { node: NodeId, key: Entry, add: bool },
    /// Another process announces this node's own ID.
    Conflict(NodeId),
}

#[derive(Debug)]
struct Peer {
    incarnation: u64,
    last_seen: Instant,
    /// The last change applied (None: no snapshot yet).
    applied: Option<u64>,
    /// A snapshot being received, at this change number.
    receiving: Option<u64>,
    /// Changes that arrived before their turn: seq → change.
    early: BTreeMap<u64, (Entry, bool)>,
    /// Since when the replica has been known to be behind (heartbeat ahead of `applied`).
    behind_since: Option<Instant>,
    /// When a snapshot was last asked for.
    asked: Option<Instant>,
    /// The node's last testament change as its heartbeat announced it, and the newest one
    /// received (a snapshot carries the testaments too, so a gap heals the same way).
    testaments_announced: u64,
    testaments_seen: u64,
    /// The node's shard count (its heartbeat says): how many answers a meta query gets.
    shards: u16,
}

/// See the module docs.
#[derive(Debug)]
pub struct Members {
    me: NodeId,
    incarnation: u64,
    timeout: Duration,
    /// How long a replica may stay behind before a snapshot is asked for (and how long to
    /// wait before asking again).
    patience: Duration,
    peers: HashMap<NodeId, Peer>,
}

impl Members {
    pub fn new(me: NodeId, incarnation: u64, timeout: Duration, patience: Duration) -> Self {
        Self {
            me,
            incarnation,
            timeout,
            patience,
            peers: HashMap::new(),
        }
    }

    /// Nodes currently alive (this one excluded).
    pub fn alive(&self) -> usize {
        self.peers.len()
    }

    /// Whether this node has the lowest ID among the live ones (it publishes a dead node's
    /// testaments; see `docs/cluster.md` for what a split view can do).
    pub fn lowest(&self) -> bool {
        self.peers.keys().all(|n| *n > self.me)
    }

    /// Whether `node` is alive.
    /// The incarnation of live node `node`.
    pub fn incarnation_of(&self, node: NodeId) -> Option<u64> {
        self.peers.get(&node).map(|p| p.incarnation)
    }

    /// The node's heartbeat says it runs `shards` shards (call after [`Members::heartbeat`]).
    pub fn set_shards(&mut self, node: NodeId, shards: u16) {
        if let Some(p) = self.peers.get_mut(&node) {
            p.shards = shards.max(1);
        }
    }

    /// The live nodes and their shard counts.
    pub fn alive_nodes(&self) -> Vec<(NodeId, u16)> {
        self.peers.iter().map(|(n, p)| (*n, p.shards)).collect()
    }

    pub fn is_alive(&self, node: NodeId) -> bool {
        self.peers.contains_key(&node)
    }

    pub fn heartbeat(
        &mut self,
        node: NodeId,
        incarnation: u64,
        seq: u64,
        leaving: bool,
        now: Instant,
        todo: &mut Vec<Todo>,
    ) {
        if node == self.me {
            if incarnation != self.incarnation {
                todo.push(Todo::Conflict(node));
            }
            return;
        }
        if leaving {
            if self.peers.remove(&node).is_some() {
                todo.push(Todo::Gone { node, dead: false });
            }
            return;
        }
        let known = self.peers.get(&node).map(|p| p.incarnation);
        if known != Some(incarnation) {
            if known.is_some() {
                todo.push(Todo::Gone { node, dead: true });
            }
            self.peers.insert(
                node,
                Peer {
                    incarnation,
                    last_seen: now,
                    applied: None,
                    receiving: None,
                    early: BTreeMap::new(),
                    behind_since: None,
                    asked: Some(now),
                    testaments_announced: 0,
                    testaments_seen: 0,
                    shards: 1,
                },
            );
            todo.push(Todo::Joined(node));
            todo.push(Todo::RequestSync(node));
            return;
        }
        let patience = self.patience;
        let Some(p) = self.peers.get_mut(&node) else {
            return;
        };
        p.last_seen = now;
        if p.applied == Some(seq) && p.testaments_seen >= p.testaments_announced {
            p.behind_since = None;
            return;
        }
        let since = *p.behind_since.get_or_insert(now);
        let asked_long_ago = p.asked.is_none_or(|a| now.duration_since(a) >= patience);
        if now.duration_since(since) >= patience && asked_long_ago {
            p.asked = Some(now);
            todo.push(Todo::RequestSync(node));
        }
    }

    /// The node's heartbeat announces its last testament change `version` (call before
    /// [`Members::heartbeat`]).
    pub fn announce_testaments(&mut self, node: NodeId, incarnation: u64, version: u64) {
        if let Some(p) = self.peers.get_mut(&node) {
            if p.incarnation == incarnation {
                p.testaments_announced = version;
            }
        }
    }

    /// A testament change `version` of the node arrived.
    pub fn saw_testaments(&mut self, node: NodeId, incarnation: u64, version: u64) {
        if let Some(p) = self.peers.get_mut(&node) {
            if p.incarnation == incarnation {
                p.testaments_seen = p.testaments_seen.max(version);
            }
        }
    }

    pub fn interest(
        &mut self,
        node: NodeId,
        incarnation: u64,
        seq: u64,
        key: Entry,
        add: bool,
        todo: &mut Vec<Todo>,
    ) {
        let Some(p) = self.peers.get_mut(&node) else {
            return; // not known yet: its heartbeat will bring a snapshot
        };
        if p.incarnation != incarnation {
            return;
        }
        match p.applied {
            Some(a) if p.receiving.is_none() && seq == a + 1 => {
                p.applied = Some(seq);
                todo.push(Todo::Apply { node, key, add });
                Self::drain_early(node, p, todo);
            }
            Some(a) if seq <= a => {} // already in a snapshot
            _ => {
                if p.early.len() < MAX_BUFFERED {
                    p.early.insert(seq, (key, add));
                } else {
                    // Too far behind: start over from a snapshot.
                    p.early.clear();
                    todo.push(Todo::RequestSync(node));
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn snapshot(
        &mut self,
        node: NodeId,
        incarnation: u64,
        seq: u64,
        first: bool,
        last: bool,
        entries: Vec<Entry>,
        todo: &mut Vec<Todo>,
    ) {
        let Some(p) = self.peers.get_mut(&node) else {
            return;
        };
        if p.incarnation != incarnation {
            return;
        }
        if first {
            p.receiving = Some(seq);
            todo.push(Todo::Clear(node));
        } else if p.receiving != Some(seq) {
            return; // a chunk of a snapshot whose start we did not see
        }
        for key in entries {
            todo.push(Todo::Apply {
                node,
                key,
                add: true,
            });
        }
        if last {
            p.receiving = None;
            p.applied = Some(seq);
            p.behind_since = None;
            p.early = p.early.split_off(&(seq + 1));
            Self::drain_early(node, p, todo);
        }
    }

    /// Applies buffered changes that are now next in line.
    fn drain_early(node: NodeId, p: &mut Peer, todo: &mut Vec<Todo>) {
        while let Some(a) = p.applied {
            let Some((key, add)) = p.early.remove(&(a + 1)) else {
                break;
            };
            p.applied = Some(a + 1);
            todo.push(Todo::Apply { node, key, add });
        }
    }

    /// Nodes not heard from within the timeout are gone.
    pub fn tick(&mut self, now: Instant, todo: &mut Vec<Todo>) {
        let timeout = self.timeout;
        let gone: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_seen) > timeout)
            .map(|(n, _)| *n)
            .collect();
        for n in gone {
            self.peers.remove(&n);
            todo.push(Todo::Gone {
                node: n,
                dead: true,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::uri::MatchPolicy;
    use crate::codec::Uri;

    fn key(t: &str) -> Entry {
        Entry::Topic((Uri::from("r"), MatchPolicy::Exact, Uri::from(t)))
    }

    fn members() -> (Members, Instant) {
        (
            Members::new(1, 100, Duration::from_secs(3), Duration::from_millis(500)),
            Instant::now(),
        )
    }

    fn applied(todo: &[Todo]) -> Vec<(String, bool)> {
        todo.iter()
            .filter_map(|t| match t {
                Todo::Apply {
                    key: Entry::Topic(k),
                    add,
                    ..
                } => Some((k.2.to_string(), *add)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn join_snapshot_then_changes_in_order_even_when_they_overtake_it() {
        let (mut m, t0) = members();
        let mut todo = Vec::new();
        m.heartbeat(2, 7, 3, false, t0, &mut todo);
        assert_eq!(todo, vec![Todo::Joined(2), Todo::RequestSync(2)]);
        todo.clear();
        // Change 5 overtakes the snapshot at 3 and change 4.
        m.interest(2, 7, 5, key("e"), true, &mut todo);
        assert!(todo.is_empty());
        m.snapshot(2, 7, 3, true, false, vec![key("a")], &mut todo);
        m.snapshot(2, 7, 3, false, true, vec![key("b")], &mut todo);
        assert_eq!(todo[0], Todo::Clear(2));
        assert_eq!(applied(&todo), [("a".into(), true), ("b".into(), true)]);
        todo.clear();
        m.interest(2, 7, 4, key("a"), false, &mut todo);
        assert_eq!(applied(&todo), [("a".into(), false), ("e".into(), true)]);
        todo.clear();
        // Stale and duplicate changes are ignored.
        m.interest(2, 7, 5, key("e"), true, &mut todo);
        m.interest(2, 6, 6, key("x"), true, &mut todo);
        assert!(todo.is_empty());
    }

    #[test]
    fn a_gap_asks_for_a_snapshot_after_patience_and_not_again_at_once() {
        let (mut m, t0) = members();
        let mut todo = Vec::new();
        m.heartbeat(2, 7, 0, false, t0, &mut todo);
        m.snapshot(2, 7, 0, true, true, vec![], &mut todo);
        todo.clear();
        // Change 1 was lost; the heartbeat says 2.
        m.interest(2, 7, 2, key("b"), true, &mut todo);
        m.heartbeat(2, 7, 2, false, t0 + Duration::from_millis(100), &mut todo);
        assert!(todo.is_empty());
        m.heartbeat(2, 7, 2, false, t0 + Duration::from_millis(700), &mut todo);
        assert_eq!(todo, vec![Todo::RequestSync(2)]);
        todo.clear();
        m.heartbeat(2, 7, 2, false, t0 + Duration::from_millis(800), &mut todo);
        assert!(todo.is_empty());
        m.snapshot(2, 7, 2, true, true, vec![key("b")], &mut todo);
        assert_eq!(applied(&todo), [("b".into(), true)]);
    }

    #[test]
    fn missed_testament_changes_ask_for_a_snapshot() {
        let (mut m, t0) = members();
        let mut todo = Vec::new();
        m.heartbeat(2, 7, 0, false, t0, &mut todo);
        m.snapshot(2, 7, 0, true, true, vec![], &mut todo);
        todo.clear();
        m.saw_testaments(2, 7, 3);
        m.announce_testaments(2, 7, 3);
        m.heartbeat(2, 7, 0, false, t0 + Duration::from_secs(1), &mut todo);
        assert!(todo.is_empty(), "up to date");
        m.announce_testaments(2, 7, 5);
        m.heartbeat(2, 7, 0, false, t0 + Duration::from_millis(1100), &mut todo);
        m.heartbeat(2, 7, 0, false, t0 + Duration::from_millis(1700), &mut todo);
        assert_eq!(todo, vec![Todo::RequestSync(2)]);
        todo.clear();
        m.saw_testaments(2, 7, 5);
        m.heartbeat(2, 7, 0, false, t0 + Duration::from_secs(3), &mut todo);
        assert!(todo.is_empty());
    }

    #[test]
    fn timeout_goodbye_restart_and_conflict() {
        let (mut m, t0) = members();
        let mut todo = Vec::new();
        m.heartbeat(2, 7, 0, false, t0, &mut todo);
        m.heartbeat(3, 8, 0, false, t0, &mut todo);
        todo.clear();
        m.heartbeat(3, 8, 0, false, t0 + Duration::from_secs(2), &mut todo);
        m.tick(t0 + Duration::from_millis(3100), &mut todo);
        assert_eq!(
            todo,
            vec![Todo::Gone {
                node: 2,
                dead: true
            }]
        );
        assert_eq!(m.alive(), 1);
        todo.clear();
        m.heartbeat(3, 9, 0, false, t0 + Duration::from_secs(4), &mut todo);
        assert_eq!(
            todo,
            vec![
                Todo::Gone {
                    node: 3,
                    dead: true
                },
                Todo::Joined(3),
                Todo::RequestSync(3)
            ]
        );
        todo.clear();
        m.heartbeat(3, 9, 0, true, t0 + Duration::from_secs(4), &mut todo);
        assert_eq!(
            todo,
            vec![Todo::Gone {
                node: 3,
                dead: false
            }]
        );
        assert!(m.lowest(), "node 1 is the lowest of 1 and 3");
        let mut five = Members::new(5, 1, Duration::from_secs(3), Duration::from_millis(500));
        five.heartbeat(2, 1, 0, false, t0, &mut todo);
        assert!(!five.lowest());
        todo.clear();
        todo.clear();
        m.heartbeat(1, 55, 0, false, t0, &mut todo);
        assert_eq!(todo, vec![Todo::Conflict(1)]);
    }
}
