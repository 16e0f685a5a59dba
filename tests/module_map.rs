//! The shape of `src/` as issue 13 left it, checked so it stays: import cycles only
//! where they are natural (the data plane and its two backends), `broadcast` importing
//! neither `conn` nor `worker`, and a `Worker` whose fields are private.
//!
//! A module's imports are the `crate::…` and `super::…` paths in its file, outside
//! comments and outside its `#[cfg(test)] mod tests`; each path names the longest module
//! prefix that is a file under `src/`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// The cycles allowed: a plane and the backends it dispatches to.
const NATURAL: &[&[&str]] = &[&["stream::epoll", "stream::plane", "stream::ring"]];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(root: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Module = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The file's code without comments and without its unit tests.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `prefix::a::b` path in `code`, as its segments.
fn paths<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().last();
        rest = &rest[at + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        // `use crate::{a::b, c}`: each item of the group is a path.
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                found.push(segments(item.trim()));
            }
            continue;
        }
        found.push(segments(rest));
    }
    found
}

fn segments(s: &str) -> Vec<&str> {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(s.len());
    s[..end].split("::").filter(|p| !p.is_empty()).collect()
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut list = Vec::new();
    files(&root, &mut list);
    let modules: BTreeSet<Module> = list.iter().map(|f| module_of(&root, f)).collect();
    let resolve = |parts: Vec<String>| -> Option<Module> {
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].to_vec())
            .find(|m| modules.contains(m))
    };
    let mut edges = BTreeMap::new();
    for file in &list {
        let me = module_of(&root, file);
        let text = code(&std::fs::read_to_string(file).unwrap());
        let parent: Module = me[..me.len().saturating_sub(1)].to_vec();
        let mut to = BTreeSet::new();
        for p in paths(&text, "crate::") {
            to.extend(resolve(p.iter().map(|s| s.to_string()).collect()));
        }
        for p in paths(&text, "super::") {
            let full = parent
                .iter()
                .cloned()
                .chain(p.iter().map(|s| s.to_string()));
            to.extend(resolve(full.collect()));
        }
        to.remove(&me);
        to.remove(&Vec::new()); // the crate root: `lib.rs` only declares modules
        edges.insert(me, to);
    }
    edges
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, (usize, usize)>,
        stack: Vec<&'a Module>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, (n, n));
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let low = match s.index.get(w) {
                None => {
                    visit(s, w);
                    s.index[w].1
                }
                Some(&(i, _)) if s.stack.contains(&w) => i,
                Some(_) => continue,
            };
            let entry = s.index.get_mut(v).unwrap();
            entry.1 = entry.1.min(low);
        }
        let (i, low) = s.index[v];
        if i == low {
            let mut scc = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                scc.insert(w.join("::"));
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                s.found.push(scc);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn the_only_import_cycles_are_the_plane_and_its_backends() {
    let natural: Vec<BTreeSet<String>> = NATURAL
        .iter()
        .map(|c| c.iter().map(|m| m.to_string()).collect())
        .collect();
    let unnatural: Vec<_> = cycles(&graph())
        .into_iter()
        .filter(|c| !natural.contains(c))
        .collect();
    assert!(unnatural.is_empty(), "import cycles in src/: {unnatural:?}");
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let m = |s: &str| -> Module { s.split("::").map(str::to_owned).collect() };
    let mut edges = graph();
    edges.get_mut(&m("stream")).unwrap().insert(m("worker"));
    let found = cycles(&edges);
    assert!(
        found
            .iter()
            .any(|c| c.contains("stream") && c.contains("worker")),
        "{found:?}"
    );
}

#[test]
fn broadcast_imports_neither_connections_nor_workers() {
    for (module, to) in graph() {
        if module.first().map(String::as_str) != Some("broadcast") {
            continue;
        }
        for target in to {
            let top = target[0].as_str();
            assert!(
                top != "conn" && top != "worker",
                "{} imports {}",
                module.join("::"),
                target.join("::")
            );
        }
    }
}

#[test]
fn the_worker_keeps_its_fields_to_itself() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/worker/mod.rs");
    let text = std::fs::read_to_string(path).unwrap();
    let body = text
        .split("pub struct Worker {")
        .nth(1)
        .and_then(|rest| rest.split("\n}").next())
        .expect("struct Worker in src/worker/mod.rs");
    let public: Vec<&str> = body
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("pub"))
        .collect();
    assert!(public.is_empty(), "public fields of Worker: {public:?}");
    assert!(body.lines().filter(|l| l.trim().ends_with(',')).count() >= 10);
}
