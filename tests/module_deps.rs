//! Dependencies between the crate's top-level modules point one way.
//!
//! A top-level module is `src/<name>.rs` or `src/<name>/` (`lib.rs` and `main.rs` are the
//! crate roots, not modules). This test reads every `src/**/*.rs`, with comments and string
//! literals removed, and collects each reference to another top-level module:
//!
//! - `crate::name` (also `$crate::name`), wherever it appears: `use` lines, paths in code,
//!   `impl crate::name::Type`;
//! - the members of a `use crate::{a, b::c}` group;
//! - a `super::` chain that climbs out of the top-level module (counting the inline `mod x {`
//!   blocks it is written in);
//! - `crate::Name` where `Name` is re-exported by `lib.rs` (`pub use router_config::RouterConfig`)
//!   counts as a reference to the module it comes from.
//!
//! Test code (`#[cfg(test)]`) counts: a unit test that needs a higher layer belongs next to that
//! layer. Doc comments do not count (a link in prose is not a dependency).
//!
//! `no_cycles` fails naming every cycle, with the file and line of each edge in it, and prints
//! the whole graph. `layering` pins a few edges of the intended order, so that a new import in
//! the wrong direction fails here even before it closes a cycle.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// Where an edge comes from: the first place it was seen.
#[derive(Debug, Clone)]
struct Site {
    file: PathBuf,
    line: usize,
}

/// `from` → `to` → the first site of the reference.
type Graph = BTreeMap<String, BTreeMap<String, Site>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level modules: `src/<name>.rs` and `src/<name>/`.
fn top_modules(src: &Path) -> BTreeSet<String> {
    let mut mods = BTreeSet::new();
    for e in std::fs::read_dir(src).expect("src/") {
        let p = e.expect("dir entry").path();
        let name = if p.is_dir() {
            p.file_name().and_then(|n| n.to_str()).map(str::to_owned)
        } else if p.extension().is_some_and(|x| x == "rs") {
            p.file_stem().and_then(|n| n.to_str()).map(str::to_owned)
        } else {
            None
        };
        if let Some(n) = name {
            if n != "lib" && n != "main" {
                mods.insert(n);
            }
        }
    }
    mods
}

/// For a file under `src/`: its top-level module and its depth in the module tree
/// (`src/config.rs` and `src/shard/mod.rs`: 1; `src/shard/conn.rs`: 2).
fn module_of(src: &Path, file: &Path) -> Option<(String, usize)> {
    let rel = file.strip_prefix(src).ok()?;
    let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
    let top = match parts.as_slice() {
        [one] => one.strip_suffix(".rs")?,
        [dir, ..] => dir,
        [] => return None,
    };
    if top == "lib" || top == "main" {
        return None;
    }
    let last = *parts.last()?;
    let depth = if last == "mod.rs" {
        parts.len() - 1
    } else {
        parts.len()
    };
    Some((top.to_owned(), depth))
}

/// The source with comments and the contents of string and char literals replaced by spaces
/// (newlines kept, so line numbers stay right).
fn strip(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !prev_is_ident(&b, i)
            && raw_string_start(&b, i).is_some()
        {
            let (hashes, body) = raw_string_start(&b, i).unwrap_or((0, i));
            for _ in i..body {
                out.push(' ');
            }
            i = body;
            // Until `"` followed by `hashes` #.
            while i < b.len() {
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(b[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                out.push(' ');
                i += 1;
                while i < b.len() && !(b[i] == '\'' && b[i - 1] != '\\') {
                    out.push(' ');
                    i += 1;
                }
                out.push(' ');
                i += 1;
            } else if b.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn prev_is_ident(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

/// At `b[i] == 'r'` (or the `r` of `br`): `r"`, `r#"`, `r##"`… → (number of #, index of the
/// first character of the body).
fn raw_string_start(b: &[char], i: usize) -> Option<(usize, usize)> {
    let mut j = i + 1;
    let mut hashes = 0;
    while b.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (b.get(j) == Some(&'"')).then_some((hashes, j + 1))
}

/// A token of the stripped source: an identifier, `::`, or one punctuation character.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Path,
    Punct(char),
}

fn tokens(text: &str) -> Vec<(Tok, usize)> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            out.push((Tok::Ident(word.trim_start_matches('$').to_owned()), line));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// The names `lib.rs` re-exports from a top-level module (`pub use router_config::RouterConfig;`,
/// `pub use shard::{LocalConnector, Router};`) → that module.
fn lib_reexports(src: &Path, mods: &BTreeSet<String>) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let toks = tokens(&strip(&text));
    let mut map = BTreeMap::new();
    let mut i = 0;
    while i + 3 < toks.len() {
        let is_use =
            toks[i].0 == Tok::Ident("pub".into()) && toks[i + 1].0 == Tok::Ident("use".into());
        if !is_use {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        if let Tok::Ident(m) = &toks[j].0 {
            if mods.contains(m) {
                let module = m.clone();
                j += 1;
                // Everything up to `;`: the last identifier of each path is the exported name
                // (or the alias after `as`).
                let mut last: Option<String> = None;
                while j < toks.len() && toks[j].0 != Tok::Punct(';') {
                    match &toks[j].0 {
                        Tok::Ident(w) if w != "as" && w != "self" => last = Some(w.clone()),
                        Tok::Punct(',') | Tok::Punct('}') => {
                            if let Some(n) = last.take() {
                                map.insert(n, module.clone());
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                if let Some(n) = last.take() {
                    map.insert(n, module.clone());
                }
            }
        }
        i = j.max(i + 1);
    }
    map
}

/// The references from one file to top-level modules (the file's own module included; the
/// caller drops it), with their line numbers.
fn references(
    text: &str,
    depth: usize,
    mods: &BTreeSet<String>,
    reexports: &BTreeMap<String, String>,
) -> Vec<(String, usize)> {
    let toks = tokens(&strip(text));
    let resolve = |name: &str| -> Option<String> {
        if mods.contains(name) {
            Some(name.to_owned())
        } else {
            reexports.get(name).cloned()
        }
    };
    let mut refs = Vec::new();
    // Inline `mod x {` blocks: the brace depth at which each opened.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let ident = |k: usize| match toks.get(k) {
        Some((Tok::Ident(w), _)) => Some(w.as_str()),
        _ => None,
    };
    let mut i = 0;
    while i < toks.len() {
        let (tok, line) = (&toks[i].0, toks[i].1);
        match tok {
            Tok::Punct('{') => {
                if i >= 2 && ident(i - 2) == Some("mod") && ident(i - 1).is_some() {
                    inline_mods.push(braces);
                }
                braces += 1;
            }
            Tok::Punct('}') => {
                braces = braces.saturating_sub(1);
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
            }
            Tok::Ident(w) if w == "crate" && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path) => {
                match toks.get(i + 2) {
                    Some((Tok::Ident(name), _)) => {
                        if let Some(m) = resolve(name) {
                            refs.push((m, line));
                        }
                    }
                    Some((Tok::Punct('{'), _)) => {
                        // `crate::{a, b::c, d::{e, f}}`: the first segment of each item.
                        let mut d = 0usize;
                        let mut item_start = true;
                        let mut k = i + 2;
                        while k < toks.len() {
                            match &toks[k].0 {
                                Tok::Punct('{') => {
                                    d += 1;
                                    item_start = d == 1;
                                }
                                Tok::Punct('}') => {
                                    d -= 1;
                                    if d == 0 {
                                        break;
                                    }
                                }
                                Tok::Punct(',') => item_start = d == 1,
                                Tok::Ident(name) if item_start && d == 1 => {
                                    if let Some(m) = resolve(name) {
                                        refs.push((m, toks[k].1));
                                    }
                                    item_start = false;
                                }
                                _ => item_start = false,
                            }
                            k += 1;
                        }
                    }
                    _ => {}
                }
            }
            Tok::Ident(w)
                if w == "super"
                    && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path)
                    && !(i >= 1 && toks[i - 1].0 == Tok::Path) =>
            {
                // A chain `super::super::…::name`.
                let mut k = i;
                let mut ups = 0;
                while ident(k) == Some("super") && toks.get(k + 1).map(|t| &t.0) == Some(&Tok::Path)
                {
                    ups += 1;
                    k += 2;
                }
                let here = depth + inline_mods.len();
                if ups >= here {
                    // Climbed to the crate root: the next segment is a top-level name.
                    if let Some(name) = ident(k) {
                        if let Some(m) = resolve(name) {
                            refs.push((m, line));
                        }
                    }
                }
                i = k;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    refs
}

fn graph() -> (BTreeSet<String>, Graph) {
    let src = src_dir();
    let mods = top_modules(&src);
    let reexports = lib_reexports(&src, &mods);
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut g: Graph = mods.iter().map(|m| (m.clone(), BTreeMap::new())).collect();
    for f in files {
        let Some((from, depth)) = module_of(&src, &f) else {
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (to, line) in references(&text, depth, &mods, &reexports) {
            if to != from {
                let rel = f.strip_prefix(src.parent().unwrap_or(&src)).unwrap_or(&f);
                g.entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| Site {
                        file: rel.to_owned(),
                        line,
                    });
            }
        }
    }
    (mods, g)
}

fn render(g: &Graph) -> String {
    let mut s = String::from("top-level module graph (module -> what it imports):\n");
    let width = g.keys().map(String::len).max().unwrap_or(0);
    for (from, tos) in g {
        let list: Vec<&str> = tos.keys().map(String::as_str).collect();
        s.push_str(&format!("  {from:<width$} -> {}\n", list.join(", ")));
    }
    s
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let g = self.g;
            for w in g.get(v).into_iter().flat_map(|m| m.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// The shortest way back from `to` to `from` inside `comp`, so `from -> to -> … -> from`.
fn shortest_cycle(g: &Graph, comp: &BTreeSet<&str>, from: &str, to: &str) -> Vec<String> {
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([to]);
    let mut seen = BTreeSet::from([to]);
    while let Some(v) = queue.pop_front() {
        if v == from {
            break;
        }
        for w in g.get(v).into_iter().flat_map(|m| m.keys()) {
            let w = w.as_str();
            if comp.contains(w) && seen.insert(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    let mut path = vec![from.to_owned()];
    let mut v = from;
    while v != to {
        match prev.get(v) {
            Some(p) => {
                path.push((*p).to_owned());
                v = p;
            }
            None => break,
        }
    }
    path.reverse();
    let mut cycle = vec![from.to_owned()];
    cycle.extend(path);
    cycle
}

#[test]
fn no_cycles() {
    let (_, g) = graph();
    // Shown with `cargo test --test module_deps -- --nocapture`.
    println!("{}", render(&g));
    let comps = cycles(&g);
    if comps.is_empty() {
        return;
    }
    let mut report = String::new();
    for comp in &comps {
        let set: BTreeSet<&str> = comp.iter().map(String::as_str).collect();
        report.push_str(&format!("cycle among {{{}}}:\n", comp.join(", ")));
        for from in comp {
            for (to, site) in &g[from] {
                if set.contains(to.as_str()) {
                    let c = shortest_cycle(&g, &set, from, to);
                    report.push_str(&format!(
                        "  {from} -> {to}  ({}:{})  closes {}\n",
                        site.file.display(),
                        site.line,
                        c.join(" -> ")
                    ));
                }
            }
        }
    }
    panic!(
        "dependencies between top-level modules of src/ must not form a cycle\n{report}\n{}",
        render(&g)
    );
}

/// A few edges of the intended layering (lowest first):
/// `util`, `codec` → `config` → `auth`, `authz`, `routing`, `session`, … → `shard`, `net` → `cli`.
#[test]
fn layering() {
    let (mods, g) = graph();
    let mut wrong = Vec::new();
    let mut check = |from: &str, allowed: &dyn Fn(&str) -> bool, rule: &str| {
        assert!(mods.contains(from), "no module {from}");
        for (to, site) in &g[from] {
            if !allowed(to) {
                wrong.push(format!(
                    "{from} -> {to} ({}:{}): {rule}",
                    site.file.display(),
                    site.line
                ));
            }
        }
    };
    check("util", &|_| false, "util imports nothing else of the crate");
    check(
        "codec",
        &|_| false,
        "codec imports nothing else of the crate",
    );
    check(
        "config",
        &|m| m == "codec" || m == "util",
        "config is plain data: it imports only codec and util",
    );
    check(
        "routing",
        &|m| !["shard", "net", "client", "config", "cli"].contains(&m),
        "the sans-IO routing core does not import the runtime, the client or the config",
    );
    assert!(wrong.is_empty(), "{}\n\n{}", wrong.join("\n"), render(&g));
}

/// The parser itself, on the forms the crate uses.
#[test]
fn parser_sees_every_form() {
    let mods: BTreeSet<String> = ["auth", "codec", "config", "shard", "util"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let reexports = BTreeMap::from([("Router".to_string(), "shard".to_string())]);
    let text = r##"
        //! Links in docs are not imports: [`crate::auth`].
        use crate::{codec::{Dict, Value}, util};
        // crate::config in a comment
        let s = "crate::config in a string";
        let r = r#"crate::config in a raw string"#;
        let c = '"'; let l: &'static str = "";
        fn f() -> crate::Router { unreachable!() }
        mod tests {
            use super::*;
            use super::super::config::ConfigFile;
        }
    "##;
    let refs: BTreeSet<String> = references(text, 1, &mods, &reexports)
        .into_iter()
        .map(|(m, _)| m)
        .collect();
    let want: BTreeSet<String> = ["codec", "util", "shard", "config"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(refs, want);
    // At depth 2 (src/auth/scram.rs), one `super::` stays inside auth.
    let refs = references(
        "use super::mod_item; use super::super::shard::X;",
        2,
        &mods,
        &reexports,
    );
    assert_eq!(refs, vec![("shard".to_string(), 1)]);
}
