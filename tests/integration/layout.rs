//! The structure keeps its promises: dependencies between modules run one
//! way (no module imports another that imports it back, directly or through
//! others), and no file grows past what a reader takes in at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kiln_testkit::repo;

/// Longest Rust source file outside `tests/`, before its unit tests.
const MAX_RUST_LINES: usize = 600;
/// Longest Lambda main, in lines of code before its tests.
const MAX_MAIN_LINES: usize = 40;
/// Longest Python file of the emulator, the scripts or the benchmarks.
const MAX_PYTHON_LINES: usize = 300;

/// A module path inside a crate: `["channels", "rollout", "stages"]`.
type Module = Vec<String>;

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The source before its unit tests, without comments.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

fn module_of(root: &Path, path: &Path) -> Module {
    let relative = path.strip_prefix(root).expect("under the root");
    let mut parts: Module = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let (prefix, inner) = (&tree[..open], &tree[open + 1..tree.len() - 1]);
    let (mut parts, mut depth, mut current) = (Vec::new(), 0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p))
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// The module a path names, seen from `from`: the longest prefix that is a
/// module of the crate.
fn resolve(modules: &BTreeSet<Module>, from: &Module, path: &str) -> Option<Module> {
    let mut segments = path.split("::").map(str::trim).filter(|s| !s.is_empty());
    let first = segments.next()?;
    let mut base = match first {
        "crate" => Vec::new(),
        "self" => from.clone(),
        "super" => from[..from.len().checked_sub(1)?].to_vec(),
        child => {
            let mut base = from.clone();
            base.push(child.to_owned());
            if !modules.contains(&base) {
                return None;
            }
            base
        }
    };
    let mut found = modules.contains(&base).then(|| base.clone());
    for segment in segments {
        if segment == "super" {
            base.pop();
            continue;
        }
        base.push(segment.split(" as ").next().unwrap_or(segment).to_owned());
        if !modules.contains(&base) {
            break;
        }
        found = Some(base.clone());
    }
    found
}

/// Every module of the crate in `root` with the modules it uses.
fn graph(root: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let sources: Vec<(Module, String)> = files(root, "rs")
        .iter()
        .map(|path| (module_of(root, path), code(path)))
        .collect();
    let modules: BTreeSet<Module> = sources.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = BTreeMap::new();
    for (module, code) in &sources {
        let mut uses = BTreeSet::new();
        for statement in code.split(';') {
            let statement = statement.trim();
            let tree = statement
                .strip_prefix("pub use ")
                .or_else(|| statement.strip_prefix("pub(crate) use "))
                .or_else(|| statement.strip_prefix("use "));
            if let Some(tree) = tree {
                uses.extend(
                    expand(tree)
                        .iter()
                        .filter_map(|p| resolve(&modules, module, p)),
                );
            }
        }
        for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')) {
            if word.contains("::") && !word.starts_with("::") && !word.ends_with("::") {
                uses.extend(resolve(&modules, module, word));
            }
        }
        uses.remove(module);
        graph.insert(module.clone(), uses);
    }
    graph
}

/// A cycle in `graph`, as the modules on it, if there is one.
fn cycle(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Option<Vec<Module>> {
    fn visit(
        graph: &BTreeMap<Module, BTreeSet<Module>>,
        node: &Module,
        path: &mut Vec<Module>,
        done: &mut BTreeSet<Module>,
    ) -> Option<Vec<Module>> {
        if let Some(start) = path.iter().position(|m| m == node) {
            return Some(path[start..].to_vec());
        }
        if !done.insert(node.clone()) {
            return None;
        }
        path.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(graph, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

fn named(modules: &[Module]) -> Vec<String> {
    modules
        .iter()
        .map(|m| {
            if m.is_empty() {
                "crate".into()
            } else {
                m.join("::")
            }
        })
        .collect()
}

#[test]
fn dependencies_between_modules_run_one_way() {
    for root in ["src", "cli/src", "testkit/src"] {
        let graph = graph(&repo().join(root));
        assert!(graph.len() > 4, "{root}: {} modules found", graph.len());
        if let Some(cycle) = cycle(&graph) {
            panic!("{root}: modules import each other: {:?}", named(&cycle));
        }
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write("lib.rs", "mod a;\nmod b;\nmod c;\n");
    write("a.rs", "use crate::b::{self, Thing};\n");
    write("b/mod.rs", "mod inner;\npub fn f() { inner::g() }\n");
    write("b/inner.rs", "use crate::c::C;\n");
    write("c.rs", "pub fn h() { super::a::x() }\n");
    let cycle = cycle(&graph(dir.path())).expect("a cycle");
    assert_eq!(named(&cycle), ["a", "b", "b::inner", "c"]);
}

#[test]
fn no_file_is_longer_than_a_reader_takes_in() {
    let mut long = Vec::new();
    for root in ["src", "cli/src", "testkit/src", "bench"] {
        for path in files(&repo().join(root), "rs") {
            let text = std::fs::read_to_string(&path).expect("read");
            let lines = text
                .split("#[cfg(test)]")
                .next()
                .unwrap_or_default()
                .lines()
                .count();
            if lines > MAX_RUST_LINES {
                long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    for path in files(&repo().join("functions"), "rs") {
        let lines = code(&path)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .count();
        if lines > MAX_MAIN_LINES {
            long.push(format!("{} ({lines} lines of code)", path.display()));
        }
    }
    for root in ["scripts", "bench"] {
        for path in files(&repo().join(root), "py") {
            let lines = std::fs::read_to_string(&path)
                .expect("read")
                .lines()
                .count();
            if lines > MAX_PYTHON_LINES {
                long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(long.is_empty(), "too long: {long:#?}");
}
