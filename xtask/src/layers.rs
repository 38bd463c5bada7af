//! `cargo xtask layers`: the architecture, checked. It prints the crates in layer order with
//! what each depends on, and fails when
//! - a crate depends on a workspace crate that is not below it in [`LAYERS`];
//! - a pure crate ([`Layer::pure`]) has libc, aya, tokio or another kernel-facing crate
//!   anywhere in its normal dependency tree;
//! - the modules of a crate have a cycle.
//!
//! Module cycles are found in the source, parsed with `syn`: a module `a` *uses* a module `b`
//! when it names it by a `crate::`, `super::` or `self::` path (in a `use` or in code). A
//! use between a module and its own ancestor or descendant is nesting, not layering (a parent
//! re-exports its children, a child names its parent's items); every other use is counted
//! between the two sibling subtrees that contain them, and those sibling graphs must be
//! acyclic. Test code (`#[cfg(test)]`) is left out: a test may reach anywhere.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use cargo_metadata::{DependencyKind, MetadataCommand, Package};
use petgraph::{algo::tarjan_scc, graph::DiGraph};
use syn::visit::Visit;

use crate::workspace;

/// One crate of the workspace and its place in the architecture.
pub struct Layer {
    pub name: &'static str,
    /// What it owns, in a few words.
    pub owns: &'static str,
    /// Pure: no kernel, no root; none of [`KERNEL_CRATES`] below it.
    pub pure: bool,
}

const fn layer(name: &'static str, owns: &'static str, pure: bool) -> Layer {
    Layer { name, owns, pure }
}

/// The crates, lowest first: each may depend only on crates before it.
pub const LAYERS: [Layer; 8] = [
    layer(
        "memspike-common",
        "#[repr(C)] types shared with the eBPF programs",
        true,
    ),
    layer(
        "memspike-model",
        "the simulated Go runtime, policies, scenarios",
        true,
    ),
    layer(
        "memspike-report",
        "facts -> report models -> text, JSON, SVG, HTML",
        true,
    ),
    layer(
        "memspike-cgroup",
        "memory cgroups v1/v2, capabilities, PID namespaces",
        false,
    ),
    layer(
        "memspike-probe",
        "the kernel observer: eBPF and its fallbacks",
        false,
    ),
    layer(
        "memspike-worker",
        "the process in the group: heap over real memory, HTTP",
        false,
    ),
    layer(
        "memspike-supervisor",
        "runs workers and programs in groups, collects facts",
        false,
    ),
    layer("memspike", "the binary: the command line", false),
];

/// Crates a pure layer must not reach, even indirectly.
pub const KERNEL_CRATES: [&str; 9] = [
    "libc",
    "nix",
    "rustix",
    "aya",
    "tokio",
    "hyper",
    "cgroups-rs",
    "procfs",
    "caps",
];

/// What the check found: the text to print, and the problems (none when the house is in order).
pub struct Findings {
    pub text: String,
    pub problems: Vec<String>,
}

pub fn layers() -> Result<std::process::ExitCode> {
    let f = check(&workspace::root())?;
    print!("{}", f.text);
    if f.problems.is_empty() {
        println!("ok: crates in layer order, pure crates pure, no module cycles");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    for p in &f.problems {
        eprintln!("[xtask] layers: {p}");
    }
    Ok(std::process::ExitCode::FAILURE)
}

/// Checks the workspace at `root`.
pub fn check(root: &Path) -> Result<Findings> {
    let metadata = MetadataCommand::new()
        .manifest_path(root.join("Cargo.toml"))
        .exec()
        .context("cargo metadata")?;
    let members: BTreeMap<&str, &Package> = metadata
        .workspace_packages()
        .into_iter()
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut text = String::from("crates, lowest layer first (each uses only crates above it):\n\n");
    let mut problems = Vec::new();
    for (i, l) in LAYERS.iter().enumerate() {
        let Some(package) = members.get(l.name) else {
            problems.push(format!("{} is in LAYERS but not in the workspace", l.name));
            continue;
        };
        let uses: Vec<&str> = package
            .dependencies
            .iter()
            .filter(|d| d.kind == DependencyKind::Normal)
            .map(|d| d.name.as_str())
            .filter(|d| members.contains_key(d))
            .collect();
        for d in &uses {
            match LAYERS.iter().position(|l| l.name == *d) {
                Some(j) if j < i => {}
                _ => problems.push(format!(
                    "{} depends on {d}, which is not below it in the layers",
                    l.name
                )),
            }
        }
        let _ = writeln!(
            text,
            "{:<20} {:<5} {}{}",
            l.name,
            if l.pure { "pure" } else { "linux" },
            l.owns,
            if uses.is_empty() {
                String::new()
            } else {
                format!("\n{:<26}uses {}", "", uses.join(", "))
            }
        );
        if l.pure {
            for bad in reached(root, l.name, &KERNEL_CRATES)? {
                problems.push(format!("{} is pure but depends on {bad}", l.name));
            }
        }
    }
    let _ = writeln!(
        text,
        "\nmodules (sibling uses; ancestors and tests left out):\n"
    );
    for l in &LAYERS {
        let Some(package) = members.get(l.name) else {
            continue;
        };
        for target in package.targets.iter().filter(|t| t.is_lib() || t.is_bin()) {
            let graph = ModuleGraph::load(target.src_path.as_std_path())?;
            let cycles = graph.cycles();
            let _ = writeln!(
                text,
                "{:<20} {:>3} modules, {:>3} sibling uses, {}",
                target.name,
                graph.modules.len(),
                graph.edges.len(),
                if cycles.is_empty() {
                    "no cycles".to_owned()
                } else {
                    format!("{} cycle(s)", cycles.len())
                }
            );
            for c in cycles {
                problems.push(format!("{}: module cycle {}", target.name, c.join(" <-> ")));
            }
        }
    }
    Ok(Findings { text, problems })
}

/// Which of `names` the crate `name` reaches through normal dependencies, with its own
/// default features (`cargo tree` resolves them for that crate alone; `cargo metadata` would
/// unify them across the workspace).
fn reached(root: &Path, name: &str, names: &[&str]) -> Result<Vec<String>> {
    let out = std::process::Command::new(workspace::cargo())
        .args([
            "tree", "--quiet", "-e", "normal", "--prefix", "none", "-f", "{p}", "-p", name,
        ])
        .current_dir(root)
        .output()
        .context("cargo tree")?;
    if !out.status.success() {
        bail!(
            "cargo tree -p {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let found: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|crate_name| names.contains(crate_name))
        .map(str::to_owned)
        .collect();
    Ok(found.into_iter().collect())
}

/// A crate's modules (by path from the crate root, `[]` being the root) and the uses between
/// sibling subtrees.
pub struct ModuleGraph {
    pub modules: BTreeSet<Vec<String>>,
    /// `(from, to)`: siblings (same parent), `from` names something in `to`'s subtree.
    pub edges: BTreeSet<(Vec<String>, Vec<String>)>,
}

impl ModuleGraph {
    /// Parses the crate whose root file is `root` and every module file it declares.
    pub fn load(root: &Path) -> Result<ModuleGraph> {
        let mut refs: Vec<(Vec<String>, Vec<String>)> = Vec::new();
        let mut modules = BTreeSet::new();
        let file = parse(root)?;
        walk(
            &file.items,
            Vec::new(),
            root.parent().unwrap_or(Path::new(".")).to_path_buf(),
            &mut modules,
            &mut refs,
        )?;
        let mut edges = BTreeSet::new();
        for (from, path) in refs {
            let Some(to) = resolve(&from, &path, &modules) else {
                continue;
            };
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            // An ancestor or a descendant: nesting, not a use between layers.
            if common == from.len() || common == to.len() {
                continue;
            }
            edges.insert((from[..=common].to_vec(), to[..=common].to_vec()));
        }
        Ok(ModuleGraph { modules, edges })
    }

    /// The sets of sibling modules that use each other in a circle, each as `a::b` paths.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let mut graph = DiGraph::<&Vec<String>, ()>::new();
        let index: BTreeMap<&Vec<String>, _> = self
            .modules
            .iter()
            .map(|m| (m, graph.add_node(m)))
            .collect();
        for (a, b) in &self.edges {
            if let (Some(&x), Some(&y)) = (index.get(a), index.get(b)) {
                graph.add_edge(x, y, ());
            }
        }
        tarjan_scc(&graph)
            .into_iter()
            .filter(|scc| scc.len() > 1)
            .map(|scc| {
                let mut names: Vec<String> = scc.into_iter().map(|n| graph[n].join("::")).collect();
                names.sort();
                names
            })
            .collect()
    }
}

fn parse(path: &Path) -> Result<syn::File> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    syn::parse_file(&text).with_context(|| format!("parsing {}", path.display()))
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().contains("test"))
    })
}

/// Records the modules under `module` (whose child files live in `dir`) and their references.
fn walk(
    items: &[syn::Item],
    module: Vec<String>,
    dir: PathBuf,
    modules: &mut BTreeSet<Vec<String>>,
    refs: &mut Vec<(Vec<String>, Vec<String>)>,
) -> Result<()> {
    modules.insert(module.clone());
    let mut collect = Paths::default();
    for item in items {
        if is_test(item_attrs(item)) {
            continue;
        }
        let syn::Item::Mod(m) = item else {
            collect.visit_item(item);
            continue;
        };
        let mut child = module.clone();
        child.push(m.ident.to_string());
        let name = m.ident.to_string();
        match &m.content {
            Some((_, inner)) => walk(inner, child, dir.join(&name), modules, refs)?,
            None => {
                let flat = dir.join(format!("{name}.rs"));
                let (file, child_dir) = if flat.exists() {
                    (flat, dir.join(&name))
                } else {
                    (dir.join(&name).join("mod.rs"), dir.join(&name))
                };
                let parsed = parse(&file)?;
                walk(&parsed.items, child, child_dir, modules, refs)?;
            }
        }
    }
    refs.extend(collect.paths.into_iter().map(|p| (module.clone(), p)));
    Ok(())
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

/// The module-relative paths (`crate::`, `super::`, `self::`) named in some items.
#[derive(Default)]
struct Paths {
    paths: Vec<Vec<String>>,
}

impl Paths {
    fn push_use(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.push_use(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                if n.ident != "self" {
                    path.push(n.ident.to_string());
                }
                self.keep(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                if r.ident != "self" {
                    path.push(r.ident.to_string());
                }
                self.keep(path);
            }
            syn::UseTree::Glob(_) => self.keep(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.push_use(prefix, t);
                }
            }
        }
    }

    fn keep(&mut self, path: Vec<String>) {
        if matches!(
            path.first().map(String::as_str),
            Some("crate" | "super" | "self")
        ) {
            self.paths.push(path);
        }
    }
}

impl<'ast> Visit<'ast> for Paths {
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.push_use(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.keep(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // Nested modules are walked on their own, with their own path.
    }

    fn visit_attribute(&mut self, _: &'ast syn::Attribute) {
        // Doc links and derives name paths that are not uses.
    }
}

/// The module a path from `module` lands in: the longest known module prefix of its absolute
/// form.
fn resolve(
    module: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut abs: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module.to_vec(),
        _ => return None,
    };
    let mut rest = &path[1..];
    if path[0] == "super" {
        abs.pop()?;
        while rest.first().map(String::as_str) == Some("super") {
            abs.pop()?;
            rest = &rest[1..];
        }
    }
    abs.extend(rest.iter().cloned());
    (0..=abs.len())
        .rev()
        .map(|n| abs[..n].to_vec())
        .find(|m| modules.contains(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(files: &[(&str, &str)]) -> ModuleGraph {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        for (path, text) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        ModuleGraph::load(&dir.join("lib.rs")).unwrap()
    }

    #[test]
    fn a_use_both_ways_between_siblings_is_a_cycle_and_nesting_is_not() {
        let g = graph(&[
            ("lib.rs", "pub mod a; pub mod b; pub use a::X;"),
            (
                "a.rs",
                "use crate::b::Y; pub struct X; pub mod inner { use super::X; }",
            ),
            (
                "b.rs",
                "pub struct Y; fn f() -> crate::a::X { crate::a::X }\n#[cfg(test)] mod tests { use crate::a::X; }",
            ),
        ]);
        assert_eq!(g.modules.len(), 4, "{:?}", g.modules);
        let a = vec!["a".to_owned()];
        let b = vec!["b".to_owned()];
        assert!(g.edges.contains(&(a.clone(), b.clone())));
        assert!(g.edges.contains(&(b, a)));
        assert_eq!(g.cycles(), [vec!["a".to_owned(), "b".to_owned()]]);
    }

    #[test]
    fn a_one_way_use_is_no_cycle_and_tests_do_not_count() {
        let g = graph(&[
            ("lib.rs", "mod a;\nmod b;"),
            ("a.rs", "use super::b::Y;"),
            (
                "b/mod.rs",
                "pub struct Y;\n#[cfg(test)]\nmod tests { use crate::a; }",
            ),
        ]);
        assert_eq!(g.edges.len(), 1);
        assert!(g.cycles().is_empty());
    }

    /// The workspace itself: the crates in layer order, the pure ones pure, no module cycles.
    #[test]
    fn the_workspace_keeps_its_layers() {
        let f = check(&workspace::root()).unwrap();
        assert!(f.problems.is_empty(), "{}", f.problems.join("\n"));
        for l in &LAYERS {
            assert!(f.text.contains(l.name), "{}", f.text);
        }
    }
}
