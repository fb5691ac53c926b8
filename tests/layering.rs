//! The import graph of `src/` keeps its shape: one-way layers and no loops.
//!
//! Read from the source text (every `use` statement and every `crate::`, `super::`, `self::`
//! or `hearth::` path outside comments and strings), with each file a module: `src/a.rs` and
//! `src/a/mod.rs` are `a`, `src/a/b.rs` is `a::b`, `src/bin/hearth/main.rs` is `bin` (`src/bin/hearth/x.rs`, `bin::x`). A path names
//! the deepest module it walks through (`crate::quant::synth::Rng` names `quant::synth`). An
//! edge `A -> B` is a file of module A naming module B, where neither is inside the other
//! (a child naming its parent's items and a parent naming its children is the module tree,
//! not an import).
//!
//! Two rules:
//! 1. **Layers** (the spine): a top-level module may name only top-level modules of a lower
//!    layer in [`LAYERS`] (`wasm`/`bin` -> `engine` -> `model` (with `tokenizer`, `template`,
//!    `registry`) -> `backend` -> `gguf` -> `quant`). Skipping layers downward is allowed;
//!    sideways and upward is not. A new top-level module must be given a layer here.
//! 2. **No loops**: for every module, the edges between its children (each child with all
//!    that is inside it) form no cycle: `q8 -> simd_x86_q8 -> q8` fails, as would
//!    `backend -> model -> backend`.
//!
//! Test code (`tests.rs`, `mod tests { … }`) counts like any other code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level modules by layer, highest first: a module may name modules of later rows only.
const LAYERS: &[&[&str]] = &[
    &["wasm", "bin"],
    &["engine"],
    &["model", "tokenizer", "template", "registry"],
    &["backend"],
    &["gguf"],
    &["quant"],
];

type Module = Vec<String>;

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Every `.rs` file under `src/` with its module path.
fn modules(src: &Path) -> Vec<(Module, String)> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("under src").with_extension("");
            let mut m: Module = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
            if m.len() >= 2 && m[0] == "bin" && m[1] == "hearth" {
                // The CLI: src/bin/hearth/main.rs is `bin`, src/bin/hearth/bench.rs `bin::bench`.
                m.remove(1);
                if m.len() == 2 && m[1] == "main" {
                    m.pop();
                }
            } else if matches!(m.last().map(String::as_str), Some("mod" | "lib")) {
                m.pop();
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            assert!(!text.contains("#[path"), "{}: #[path] is not understood by this test", path.display());
            out.push((m, text));
        }
    }
    out
}

/// `text` without comments, string and char literals (their contents could look like paths).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('a', '\n', '\''); a lifetime ('a) is kept.
            i += if b[i + 1] == b'\\' { 3 } else { 1 };
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else {
            let c = text[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The paths of one `use` tree (`a::{b, c::{d, self}}` gives `a::b`, `a::c::d`, `a::c`).
fn expand_use(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split_whitespace().next().unwrap_or("").trim_end_matches("::*");
        return vec![path.trim_end_matches("::self").to_string()];
    };
    let prefix = tree[..open].trim();
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let (mut parts, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(inner[start..].trim());
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand_use(&format!("{prefix}{p}")))
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths a file names, each with the inline modules (`mod tests { … }`) it is written in.
fn paths(code: &str) -> Vec<(Vec<String>, String)> {
    let c: Vec<char> = code.chars().collect();
    let text = |from: usize, to: usize| c[from..to.min(c.len())].iter().collect::<String>();
    let word_at = |i: usize, w: &str| {
        let n = w.chars().count();
        text(i, i + n) == w && (i == 0 || !(is_ident(c[i - 1]) || c[i - 1] == ':')) && c.get(i + n).is_none_or(|&x| !is_ident(x))
    };
    let mut out = Vec::new();
    // Inline modules: (name, brace depth of their body); the next `{` opens `pending`.
    let (mut inline, mut depth, mut pending): (Vec<(String, usize)>, usize, Option<String>) = (Vec::new(), 0, None);
    let mut i = 0;
    while i < c.len() {
        let ctx: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
        if word_at(i, "use") {
            let end = c[i..].iter().position(|&x| x == ';').map_or(c.len(), |p| i + p);
            out.extend(expand_use(&text(i + 3, end)).into_iter().map(|p| (ctx.clone(), p)));
            i = end + 1;
            continue;
        }
        if let Some(root) = ["crate", "super", "self", "hearth"].into_iter().find(|r| word_at(i, r) && text(i + r.len(), i + r.len() + 2) == "::") {
            let end = c[i..].iter().position(|&x| !(is_ident(x) || x == ':')).map_or(c.len(), |p| i + p);
            out.push((ctx, text(i, end).trim_end_matches(':').to_string()));
            i = end.max(i + root.len());
            continue;
        }
        if word_at(i, "mod") {
            let rest = text(i + 3, c.len());
            let name: String = rest.trim_start().chars().take_while(|&x| is_ident(x)).collect();
            let after = rest.trim_start()[name.len()..].trim_start().chars().next();
            if after == Some('{') {
                pending = Some(name);
            }
        }
        match c[i] {
            '{' => {
                depth += 1;
                if let Some(name) = pending.take() {
                    inline.push((name, depth));
                }
            }
            '}' => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// The module a path names, from code in module `at` (a file's module plus inline modules).
fn resolve(known: &BTreeSet<Module>, file: &[String], inline: &[String], path: &str) -> Module {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut at: Module = file.iter().chain(inline).cloned().collect();
    let mut rest = &segs[..];
    match segs.first() {
        Some(&"crate") | Some(&"hearth") => {
            at.clear();
            rest = &segs[1..];
        }
        _ => {
            while let Some((&s, tail)) = rest.split_first() {
                match s {
                    "super" => {
                        at.pop();
                    }
                    "self" => {}
                    _ => break,
                }
                rest = tail;
            }
        }
    }
    // Code in an inline module belongs to its file's module.
    while !known.contains(&at) && !at.is_empty() {
        at.pop();
    }
    for s in rest {
        let mut next = at.clone();
        next.push(s.to_string());
        if !known.contains(&next) {
            break;
        }
        at = next;
    }
    at
}

fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Every edge `A -> B` of `src/`, each with one example path.
fn edges() -> BTreeMap<(Module, Module), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = modules(&src);
    let known: BTreeSet<Module> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut out = BTreeMap::new();
    for (m, text) in &files {
        for (inline, path) in paths(&code_only(text)) {
            let target = resolve(&known, m, &inline, &path);
            if !related(m, &target) {
                out.entry((m.clone(), target)).or_insert(path);
            }
        }
    }
    out
}

fn layer(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

#[test]
fn top_level_modules_import_only_lower_layers() {
    let mut bad = Vec::new();
    for ((from, to), path) in edges() {
        let (Some(f), Some(t)) = (from.first(), to.first()) else { continue };
        if f == t {
            continue;
        }
        match (layer(f), layer(t)) {
            (Some(lf), Some(lt)) if lt > lf => {}
            (Some(_), Some(_)) => bad.push(format!("{} -> {} ({path}): not a lower layer", name(&from), name(&to))),
            _ => bad.push(format!("{} -> {}: give every top-level module a layer in LAYERS", name(&from), name(&to))),
        }
    }
    assert!(bad.is_empty(), "upward or sideways imports:\n{}", bad.join("\n"));
}

#[test]
fn no_import_loops_between_sibling_modules() {
    let edges = edges();
    // For each parent module: edges between its children's subtrees.
    let mut groups: BTreeMap<Module, BTreeMap<String, BTreeMap<String, String>>> = BTreeMap::new();
    for ((from, to), path) in &edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        let parent: Module = from[..common].to_vec();
        let (Some(a), Some(b)) = (from.get(common), to.get(common)) else { continue };
        let example = format!("{} -> {} ({path})", name(from), name(to));
        groups.entry(parent).or_default().entry(a.clone()).or_default().entry(b.clone()).or_insert(example);
    }
    let mut loops = Vec::new();
    for (parent, graph) in &groups {
        // Depth-first search for a back edge.
        fn visit(
            n: &str,
            graph: &BTreeMap<String, BTreeMap<String, String>>,
            state: &mut BTreeMap<String, u8>,
            stack: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            state.insert(n.to_string(), 1);
            stack.push(n.to_string());
            for next in graph.get(n).into_iter().flat_map(|m| m.keys()) {
                match state.get(next.as_str()) {
                    Some(1) => {
                        let start = stack.iter().position(|s| s == next).unwrap_or(0);
                        let mut cycle = stack[start..].to_vec();
                        cycle.push(next.clone());
                        return Some(cycle);
                    }
                    Some(_) => {}
                    None => {
                        if let Some(c) = visit(next, graph, state, stack) {
                            return Some(c);
                        }
                    }
                }
            }
            stack.pop();
            state.insert(n.to_string(), 2);
            None
        }
        let mut state = BTreeMap::new();
        for n in graph.keys() {
            if state.contains_key(n.as_str()) {
                continue;
            }
            if let Some(cycle) = visit(n, graph, &mut state, &mut Vec::new()) {
                let why: Vec<&str> = cycle.windows(2).map(|w| graph[&w[0]][&w[1]].as_str()).collect();
                loops.push(format!("in {}: {}\n    {}", name(parent), cycle.join(" -> "), why.join("\n    ")));
                break; // one loop per parent: the search stopped half-way
            }
        }
    }
    assert!(loops.is_empty(), "import loops:\n{}", loops.join("\n"));
}

#[test]
fn the_reader_sees_the_known_edges() {
    // The parser itself: a few edges that exist, and the loop this layout removed stays gone.
    let e = edges();
    let m = |s: &str| s.split("::").map(String::from).collect::<Module>();
    for (from, to) in [("backend::cpu::kernels::simd_x86_q8", "backend::cpu::kernels::q8"), ("engine::load", "model"), ("gguf::parser", "quant"), ("bin", "engine")] {
        assert!(e.contains_key(&(m(from), m(to))), "missing edge {from} -> {to}");
    }
    assert!(!e.contains_key(&(m("backend::cpu::kernels::q8"), m("backend::cpu::kernels::simd_wasm_q8"))));
    assert_eq!(expand_use("a::{b, c::{d, self}, e as f}"), ["a::b", "a::c::d", "a::c", "a::e"]);
}
