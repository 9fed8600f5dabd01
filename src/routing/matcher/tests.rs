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
