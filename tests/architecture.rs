//! The shape of the code, checked: no import cycles between modules, and each layer
//! (a folder of `src/`) depends only on the layers below it, as ARCHITECTURE.md
//! states. Reads the `crate::`, `super::` and `self::` paths of every file under
//! `src/`; a module naming its own descendants (`mod` wiring, re-exports) is
//! containment, not a dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path: `["net", "connection"]`; the crate root is `[]`.
type Module = Vec<String>;

/// What each top-level folder may depend on (besides itself). `lib.rs` and
/// `main.rs` wire everything together and may use anything.
const LAYERS: &[(&str, &[&str])] = &[
    ("http", &[]),
    ("log", &[]),
    ("metrics", &[]),
    ("fs", &["http"]),
    ("handlers", &["http", "fs", "metrics"]),
    ("site", &["handlers", "http", "fs", "log", "metrics"]),
    ("net", &["site", "http", "log", "metrics"]),
    // Parser properties for the fuzz targets and their corpus test.
    ("properties", &["config", "site", "handlers", "http"]),
    (
        "config",
        &["site", "handlers", "net", "http", "log", "metrics"],
    ),
];

#[test]
fn no_import_cycles_between_modules() {
    let graph = Graph::of_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.edges.len() > 20, "too few modules found: {graph:?}");
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "modules that import each other in a circle:\n{}",
        cycles
            .iter()
            .map(|c| format!("  {}", c.join(", ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn layers_depend_only_on_the_layers_below() {
    let graph = Graph::of_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let violations = graph.layer_violations(LAYERS);
    assert!(
        violations.is_empty(),
        "dependencies the layering does not allow (see ARCHITECTURE.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checks_find_a_cycle_and_a_layer_violation() {
    // a -> b -> c -> a is a cycle; d -> a is not part of it.
    let graph = Graph::from_files(&[
        ("a.rs", "use crate::b::Thing;"),
        ("b.rs", "fn f() { crate::c::g() }"),
        ("c/mod.rs", "pub mod inner;\nuse super::a::{X, Y};"),
        (
            "c/inner.rs",
            "use crate::c::Z; // a child naming its parent",
        ),
        ("d.rs", "use crate::a;"),
    ]);
    assert_eq!(graph.cycles(), [["a", "b", "c"]]);
    // `c` naming `c::inner` is containment; `c::inner` naming `c` is a dependency.
    assert!(!graph.edges[&vec!["c".to_string()]].contains(&vec!["c".into(), "inner".into()]));
    assert!(graph.edges[&vec!["c".to_string(), "inner".to_string()]].contains(&vec!["c".into()]));
    // b may not use c under these rules.
    let violations = graph.layer_violations(&[("a", &["b"]), ("b", &[]), ("c", &["a"])]);
    assert_eq!(violations, ["  b -> c"]);
    // Comments do not count.
    let quiet = Graph::from_files(&[("a.rs", "// crate::b\n/* crate::b */"), ("b.rs", "")]);
    assert!(quiet.edges[&vec!["a".to_string()]].is_empty());
}

#[derive(Debug)]
struct Graph {
    /// Each module and the modules it depends on.
    edges: BTreeMap<Module, BTreeSet<Module>>,
}

impl Graph {
    /// The module graph of the crate whose sources are under `src`.
    fn of_crate(src: &Path) -> Graph {
        let mut files = Vec::new();
        collect(src, src, &mut files);
        let borrowed: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        Graph::from_files(&borrowed)
    }

    /// The graph of files given as (path relative to `src/`, text).
    fn from_files(files: &[(&str, &str)]) -> Graph {
        let mut modules: BTreeMap<Module, (bool, String)> = BTreeMap::new();
        for (path, text) in files {
            let stem = path.trim_end_matches(".rs");
            let mut parts: Module = stem.split('/').map(str::to_string).collect();
            let is_dir_module = matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            );
            if parts == ["main"] {
                parts = vec!["<main>".to_string()];
            } else if is_dir_module {
                parts.pop();
            }
            modules.insert(parts, (is_dir_module, strip_comments(text)));
        }
        let mut edges = BTreeMap::new();
        for (module, (is_dir_module, text)) in &modules {
            let parent: Module = if *is_dir_module {
                module.clone()
            } else {
                module[..module.len().saturating_sub(1)].to_vec()
            };
            let mut outs = BTreeSet::new();
            for path in named_paths(text) {
                let resolved: Module = match path[0].as_str() {
                    "crate" => path[1..].to_vec(),
                    "super" => {
                        let mut base = parent.clone();
                        let mut rest = &path[..];
                        while rest.first().is_some_and(|p| p == "super") {
                            base.pop();
                            rest = &rest[1..];
                        }
                        base.extend(rest.iter().cloned());
                        base
                    }
                    _ => {
                        let mut base = parent.clone();
                        base.extend(path[1..].iter().cloned());
                        base
                    }
                };
                // The longest prefix that is a module.
                for n in (1..=resolved.len()).rev() {
                    let target = &resolved[..n];
                    if modules.contains_key(target) {
                        if !target.starts_with(module) {
                            outs.insert(target.to_vec());
                        }
                        break;
                    }
                }
            }
            edges.insert(module.clone(), outs);
        }
        Graph { edges }
    }

    /// Every group of modules that import each other in a circle (a strongly
    /// connected component of more than one module), each sorted.
    fn cycles(&self) -> Vec<Vec<String>> {
        let reach: BTreeMap<&Module, BTreeSet<&Module>> =
            self.edges.keys().map(|m| (m, self.reachable(m))).collect();
        let mut seen: BTreeSet<&Module> = BTreeSet::new();
        let mut found = Vec::new();
        for (module, reached) in &reach {
            if seen.contains(module) {
                continue;
            }
            let group: Vec<&Module> = reached
                .iter()
                .filter(|other| reach.get(*other).is_some_and(|r| r.contains(module)))
                .copied()
                .collect();
            seen.extend(group.iter().copied());
            if group.len() > 1 {
                found.push(group.iter().map(|m| m.join("::")).collect());
            }
        }
        found
    }

    /// The modules `from` depends on, directly or not; itself only through a cycle.
    fn reachable<'a>(&'a self, from: &'a Module) -> BTreeSet<&'a Module> {
        let mut reached = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(at) = todo.pop() {
            for next in self.edges.get(at).into_iter().flatten() {
                if reached.insert(next) {
                    todo.push(next);
                }
            }
        }
        reached
    }

    /// Edges from one top-level folder to another that `layers` does not allow.
    fn layer_violations(&self, layers: &[(&str, &[&str])]) -> Vec<String> {
        let mut out = BTreeSet::new();
        for (from, tos) in &self.edges {
            let Some(from_layer) = from.first() else {
                continue;
            };
            let Some((_, allowed)) = layers.iter().find(|(l, _)| l == from_layer) else {
                continue;
            };
            for to in tos {
                let Some(to_layer) = to.first() else { continue };
                if to_layer != from_layer && !allowed.contains(&to_layer.as_str()) {
                    out.insert(format!("  {} -> {}", from.join("::"), to.join("::")));
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Every `.rs` file under `dir`, as (path relative to `src`, text).
fn collect(src: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("src/ entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(src, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(src).expect("under src/");
            let text = std::fs::read_to_string(&path).expect("source is UTF-8");
            out.push((rel.to_string_lossy().into_owned(), text));
        }
    }
}

/// `text` without `//` and `/* */` comments (doc comments included: intra-doc links
/// are no dependency).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |n| &after[n..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |n| &after[n + 2..]);
        } else {
            let ch = rest.chars().next().unwrap_or(' ');
            out.push(ch);
            rest = &rest[ch.len_utf8()..];
        }
    }
    out
}

/// The module paths named in `text`: every `crate::…`, `super::…` and `self::…`
/// path, with `use` groups (`crate::a::{b, c::d}`) expanded.
fn named_paths(text: &str) -> Vec<Module> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(bytes[i - 1]);
        let head = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|h| starts_word && bytes[i..].starts_with(h.as_bytes()));
        match head {
            Some(h) => {
                let base = vec![h.trim_end_matches("::").to_string()];
                i = path_at(text, i + h.len(), base, &mut out);
            }
            None => i += 1,
        }
    }
    out
}

/// Reads the path continuing at `at` (after `base::`), pushing what it names to
/// `out`; returns where it ends.
fn path_at(text: &str, mut at: usize, mut base: Module, out: &mut Vec<Module>) -> usize {
    let bytes = text.as_bytes();
    loop {
        let start = at;
        while at < bytes.len() && is_ident(bytes[at]) {
            at += 1;
        }
        if start < at {
            base.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
        }
        if bytes[at..].starts_with(b"::{") {
            at += 3;
            // Each member of the group is a path of its own under `base`.
            loop {
                while at < bytes.len() && (bytes[at] as char).is_whitespace() {
                    at += 1;
                }
                if at >= bytes.len() || bytes[at] == b'}' {
                    return at + 1;
                }
                at = path_at(text, at, base.clone(), out);
                while at < bytes.len() && bytes[at] != b',' && bytes[at] != b'}' {
                    at += 1;
                }
                if at < bytes.len() && bytes[at] == b',' {
                    at += 1;
                }
            }
        }
        if bytes[at..].starts_with(b"::") && start < at {
            at += 2;
            continue;
        }
        out.push(base);
        return at;
    }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}
