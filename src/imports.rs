//! The import scanner: lists every import statement of a set of `.py` files (any nesting depth), with line
//! numbers, relative imports resolved and `if TYPE_CHECKING:` blocks marked. Files are parsed in parallel and
//! cached by content hash; classifying an import (stdlib, first-party, third-party) is Python-side policy.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use once_cell::sync::Lazy;
use parking_lot::Mutex;
use pyo3::prelude::*;
use rustpython_parser::ast::{self, Ranged};
use rustpython_parser::Parse;

/// One imported name at one place of one file.
#[pyclass(frozen, get_all, name = "ImportSite", module = "hotswap._native")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSite {
    /// Absolute dotted module: `a.b` for `import a.b` and for `from a.b import c`; relative imports are resolved
    /// against the file's package. An unresolvable relative import keeps its leading dots.
    pub module: String,
    /// For `from m import n`: `n` (`*` for a star import); None for `import m`.
    pub name: Option<String>,
    /// 1-based line of the import statement.
    pub lineno: usize,
    /// Number of leading dots of a relative import (0 for an absolute one).
    pub level: u32,
    /// The import runs only under `if TYPE_CHECKING:` (or `if typing.TYPE_CHECKING:`).
    pub type_checking_only: bool,
    /// The file it was found in.
    pub file: String,
}

#[pymethods]
impl ImportSite {
    fn __repr__(&self) -> String {
        let what = match &self.name {
            Some(name) => format!("from {} import {}", self.module, name),
            None => format!("import {}", self.module),
        };
        format!("ImportSite({what:?} at {}:{})", self.file, self.lineno)
    }
}

/// An import before relative resolution, as cached per file content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawImport {
    pub module: Option<String>,
    pub name: Option<String>,
    pub lineno: usize,
    pub level: u32,
    pub type_checking_only: bool,
}

/// Per content hash: the file's imports, or the parser's complaint.
type Parsed = Arc<Result<Vec<RawImport>, String>>;

static CACHE: Lazy<Mutex<HashMap<u64, Parsed>>> = Lazy::new(|| Mutex::new(HashMap::new()));
/// Bound on cached files; the cache is cleared when it grows past it (a rescan then re-parses once).
const CACHE_LIMIT: usize = 100_000;

/// What a scan found: import sites, and files that could not be read or parsed, with the reason.
#[derive(Debug, Default)]
pub struct ScanResult {
    pub sites: Vec<ImportSite>,
    pub failed: Vec<(String, String)>,
}

/// Directories never descended into: caches, VCS data, virtual environments and installed packages.
fn skip_dir(dir: &Path) -> bool {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.')
        || matches!(name, "__pycache__" | "node_modules" | "site-packages" | "dist-packages")
        || dir.join("pyvenv.cfg").is_file()
}

/// Every `.py` file under `paths` (files are taken as they are), sorted, without duplicates.
pub fn collect_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = Vec::new();
    // Symlinked directories are followed, each real directory once (a link to an ancestor would loop forever).
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        if path.is_dir() {
            stack.push(path.clone());
        } else {
            files.push(path.clone());
        }
    }
    while let Some(dir) = stack.pop() {
        if !seen.insert(std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone())) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() || (kind.is_symlink() && path.is_dir()) {
                if !skip_dir(&path) {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|ext| ext == "py") {
                files.push(path);
            }
        }
    }
    files.sort();
    files.dedup();
    files
}

/// The dotted package a file belongs to, from the `__init__.py` files of its directory and its parents
/// (`a/b/c.py` with `a/__init__.py` and `a/b/__init__.py` -> `a.b`; `a/b/__init__.py` itself -> `a.b`).
/// Namespace packages (no `__init__.py`) are not recognised: their relative imports stay unresolved.
pub fn package_of(file: &Path) -> Vec<String> {
    let mut parts = Vec::new();
    let mut dir = file.parent();
    while let Some(d) = dir {
        if !d.join("__init__.py").is_file() {
            break;
        }
        match d.file_name().and_then(|n| n.to_str()) {
            Some(name) => parts.push(name.to_string()),
            None => break,
        }
        dir = d.parent();
    }
    parts.reverse();
    parts
}

/// Resolves a relative import (`level` dots, then `module`) inside `package`; None when it climbs too far.
pub fn resolve(package: &[String], level: u32, module: Option<&str>) -> Option<String> {
    if level == 0 {
        return module.map(str::to_string);
    }
    let keep = package.len().checked_sub(level as usize - 1)?;
    if keep == 0 {
        return None;
    }
    let mut parts: Vec<&str> = package[..keep].iter().map(String::as_str).collect();
    if let Some(module) = module {
        parts.push(module);
    }
    Some(parts.join("."))
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Parses one file's source and lists its imports; Err is the parser's message with the line.
pub fn imports_of_source(source: &str, path: &str) -> Result<Vec<RawImport>, String> {
    let suite = ast::Suite::parse(source, path).map_err(|err| {
        let offset = usize::from(err.offset).min(source.len());
        let lineno = source[..offset].matches('\n').count() + 1;
        format!("line {lineno}: {}", err.error)
    })?;
    let lines = LineIndex::new(source);
    let mut out = Vec::new();
    walk(&suite, false, &lines, &mut out);
    Ok(out)
}

struct LineIndex(Vec<usize>);

impl LineIndex {
    fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex(starts)
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.0.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

/// `TYPE_CHECKING` or `<anything>.TYPE_CHECKING` (typing.TYPE_CHECKING, t.TYPE_CHECKING).
fn is_type_checking(expr: &ast::Expr) -> bool {
    match expr {
        ast::Expr::Name(name) => name.id.as_str() == "TYPE_CHECKING",
        ast::Expr::Attribute(attr) => attr.attr.as_str() == "TYPE_CHECKING",
        _ => false,
    }
}

/// `not TYPE_CHECKING`: its else branch is the type-checking-only one.
fn is_not_type_checking(expr: &ast::Expr) -> bool {
    match expr {
        ast::Expr::UnaryOp(op) => matches!(op.op, ast::UnaryOp::Not) && is_type_checking(&op.operand),
        _ => false,
    }
}

fn walk(body: &[ast::Stmt], tc: bool, lines: &LineIndex, out: &mut Vec<RawImport>) {
    for stmt in body {
        match stmt {
            ast::Stmt::Import(import) => {
                let lineno = lines.line_of(usize::from(import.range().start()));
                for alias in &import.names {
                    out.push(RawImport {
                        module: Some(alias.name.to_string()),
                        name: None,
                        lineno,
                        level: 0,
                        type_checking_only: tc,
                    });
                }
            }
            ast::Stmt::ImportFrom(import) => {
                let lineno = lines.line_of(usize::from(import.range().start()));
                let level = import.level.as_ref().map_or(0, |l| l.to_u32());
                for alias in &import.names {
                    out.push(RawImport {
                        module: import.module.as_ref().map(|m| m.to_string()),
                        name: Some(alias.name.to_string()),
                        lineno,
                        level,
                        type_checking_only: tc,
                    });
                }
            }
            ast::Stmt::If(node) => {
                let (body_tc, else_tc) = if is_type_checking(&node.test) {
                    (true, tc)
                } else if is_not_type_checking(&node.test) {
                    (tc, true)
                } else {
                    (tc, tc)
                };
                walk(&node.body, body_tc, lines, out);
                walk(&node.orelse, else_tc, lines, out);
            }
            ast::Stmt::FunctionDef(node) => walk(&node.body, tc, lines, out),
            ast::Stmt::AsyncFunctionDef(node) => walk(&node.body, tc, lines, out),
            ast::Stmt::ClassDef(node) => walk(&node.body, tc, lines, out),
            ast::Stmt::For(node) => {
                walk(&node.body, tc, lines, out);
                walk(&node.orelse, tc, lines, out);
            }
            ast::Stmt::AsyncFor(node) => {
                walk(&node.body, tc, lines, out);
                walk(&node.orelse, tc, lines, out);
            }
            ast::Stmt::While(node) => {
                walk(&node.body, tc, lines, out);
                walk(&node.orelse, tc, lines, out);
            }
            ast::Stmt::With(node) => walk(&node.body, tc, lines, out),
            ast::Stmt::AsyncWith(node) => walk(&node.body, tc, lines, out),
            ast::Stmt::Try(node) => {
                walk(&node.body, tc, lines, out);
                for ast::ExceptHandler::ExceptHandler(handler) in &node.handlers {
                    walk(&handler.body, tc, lines, out);
                }
                walk(&node.orelse, tc, lines, out);
                walk(&node.finalbody, tc, lines, out);
            }
            ast::Stmt::TryStar(node) => {
                walk(&node.body, tc, lines, out);
                for ast::ExceptHandler::ExceptHandler(handler) in &node.handlers {
                    walk(&handler.body, tc, lines, out);
                }
                walk(&node.orelse, tc, lines, out);
                walk(&node.finalbody, tc, lines, out);
            }
            ast::Stmt::Match(node) => {
                for case in &node.cases {
                    walk(&case.body, tc, lines, out);
                }
            }
            _ => {}
        }
    }
}

/// Reads and parses one file, through the content-hash cache.
fn parse_cached(path: &Path) -> Result<Parsed, String> {
    let bytes = std::fs::read(path).map_err(|err| format!("cannot read: {err}"))?;
    let hash = content_hash(&bytes);
    if let Some(hit) = CACHE.lock().get(&hash) {
        return Ok(hit.clone());
    }
    let parsed = match std::str::from_utf8(&bytes) {
        // A UTF-8 byte order mark is valid at the start of a Python file; the parser does not expect it.
        Ok(source) => imports_of_source(
            source.strip_prefix('\u{feff}').unwrap_or(source),
            &path.to_string_lossy(),
        ),
        Err(err) => Err(format!(
            "not UTF-8 ({err}); PEP 263 encodings other than UTF-8 are left to CPython"
        )),
    };
    let parsed = Arc::new(parsed);
    let mut cache = CACHE.lock();
    if cache.len() >= CACHE_LIMIT {
        cache.clear();
    }
    cache.insert(hash, parsed.clone());
    Ok(parsed)
}

/// Scans `files` on up to `available_parallelism` threads. Call without the GIL.
pub fn scan_files(files: &[PathBuf]) -> ScanResult {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Vec<Mutex<Option<Result<Parsed, String>>>> = files.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(file) = files.get(i) else { break };
                *results[i].lock() = Some(parse_cached(file));
            });
        }
    });
    let mut out = ScanResult::default();
    for (file, result) in files.iter().zip(results) {
        let shown = file.to_string_lossy().into_owned();
        let parsed = match result.into_inner().expect("every file is scanned") {
            Ok(parsed) => parsed,
            Err(reason) => {
                out.failed.push((shown, reason));
                continue;
            }
        };
        let raws = match &*parsed {
            Ok(raws) => raws,
            Err(reason) => {
                out.failed.push((shown, reason.clone()));
                continue;
            }
        };
        let package = if raws.iter().any(|raw| raw.level > 0) {
            package_of(file)
        } else {
            Vec::new()
        };
        for raw in raws {
            let module = resolve(&package, raw.level, raw.module.as_deref()).unwrap_or_else(|| {
                format!(
                    "{}{}",
                    ".".repeat(raw.level as usize),
                    raw.module.as_deref().unwrap_or("")
                )
            });
            out.sites.push(ImportSite {
                module,
                name: raw.name.clone(),
                lineno: raw.lineno,
                level: raw.level,
                type_checking_only: raw.type_checking_only,
                file: shown.clone(),
            });
        }
    }
    out
}

/// Lists the imports of every `.py` file under `paths` (directories are walked; hidden directories,
/// `__pycache__`, `site-packages` and virtual environments are skipped). Returns `(sites, failed)`: `failed`
/// holds `(file, reason)` for each file that could not be read or that rustpython-parser rejects (the caller
/// retries those with CPython's `ast`). Never raises for a bad file.
#[pyfunction]
pub fn scan_import_sites(py: Python<'_>, paths: Vec<PathBuf>) -> (Vec<ImportSite>, Vec<(String, String)>) {
    let result = py.detach(|| scan_files(&collect_files(&paths)));
    (result.sites, result.failed)
}

/// The imports of one module's source text (no file access, no cache): `(sites, error)`. `package` resolves
/// relative imports. Used for sources that exist only in memory.
#[pyfunction]
#[pyo3(signature = (source, path = "<unknown>", package = ""))]
pub fn scan_source_imports(source: &str, path: &str, package: &str) -> PyResult<Vec<ImportSite>> {
    let package: Vec<String> = package
        .split('.')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    let raws = imports_of_source(source, path).map_err(pyo3::exceptions::PySyntaxError::new_err)?;
    Ok(raws
        .into_iter()
        .map(|raw| ImportSite {
            module: resolve(&package, raw.level, raw.module.as_deref()).unwrap_or_else(|| {
                format!(
                    "{}{}",
                    ".".repeat(raw.level as usize),
                    raw.module.as_deref().unwrap_or("")
                )
            }),
            name: raw.name,
            lineno: raw.lineno,
            level: raw.level,
            type_checking_only: raw.type_checking_only,
            file: path.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (module, name, lineno, level, type_checking_only)
    type Site = (Option<String>, Option<String>, usize, u32, bool);

    fn sites(source: &str) -> Vec<Site> {
        imports_of_source(source, "<test>")
            .unwrap()
            .into_iter()
            .map(|r| (r.module, r.name, r.lineno, r.level, r.type_checking_only))
            .collect()
    }

    #[test]
    fn finds_imports_at_every_nesting_level() {
        let src = "import a, b.c as d\ntry:\n    import e\nexcept ImportError:\n    from f import g\nelse:\n    import h\nfinally:\n    import i\nwith x:\n    import j\nfor _ in y:\n    import k\nelse:\n    import k2\nwhile 0:\n    import l\nmatch z:\n    case 1:\n        import m\ndef fn():\n    import n\nclass C:\n    async def m(self):\n        import o\n";
        let modules: Vec<_> = sites(src).into_iter().map(|s| (s.0.unwrap(), s.2)).collect();
        let expect: Vec<(String, usize)> = [
            ("a", 1),
            ("b.c", 1),
            ("e", 3),
            ("f", 5),
            ("h", 7),
            ("i", 9),
            ("j", 11),
            ("k", 13),
            ("k2", 15),
            ("l", 17),
            ("m", 20),
            ("n", 22),
            ("o", 25),
        ]
        .into_iter()
        .map(|(m, l)| (m.to_string(), l))
        .collect();
        assert_eq!(modules, expect);
    }

    #[test]
    fn marks_type_checking_blocks() {
        let src = "from typing import TYPE_CHECKING\nimport typing\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\nif typing.TYPE_CHECKING:\n    from c import d\nif not TYPE_CHECKING:\n    import e\nelse:\n    import f\n";
        let tc: Vec<_> = sites(src).into_iter().map(|s| (s.0.unwrap(), s.4)).collect();
        let expect: Vec<(String, bool)> = [
            ("typing", false),
            ("typing", false),
            ("a", true),
            ("b", false),
            ("c", true),
            ("e", false),
            ("f", true),
        ]
        .into_iter()
        .map(|(m, t)| (m.to_string(), t))
        .collect();
        assert_eq!(tc, expect);
    }

    #[test]
    fn resolves_relative_imports() {
        let pkg = vec!["app".to_string(), "sub".to_string()];
        assert_eq!(resolve(&pkg, 1, None).as_deref(), Some("app.sub"));
        assert_eq!(resolve(&pkg, 1, Some("m")).as_deref(), Some("app.sub.m"));
        assert_eq!(resolve(&pkg, 2, Some("x.y")).as_deref(), Some("app.x.y"));
        assert_eq!(resolve(&pkg, 3, Some("m")), None);
        assert_eq!(resolve(&[], 1, Some("m")), None);
        assert_eq!(resolve(&[], 0, Some("m")).as_deref(), Some("m"));
        let s = sites("from .. import a\nfrom .b import *\n");
        assert_eq!(s[0], (None, Some("a".into()), 1, 2, false));
        assert_eq!(s[1], (Some("b".into()), Some("*".into()), 2, 1, false));
    }

    #[test]
    fn rejects_what_rustpython_cannot_parse_with_a_line() {
        let err = imports_of_source("import a\nx = f\"{d[\"a\"]}\"\n", "<test>").unwrap_err();
        assert!(err.starts_with("line 2"), "{err}");
    }

    #[test]
    fn scans_a_tree_with_packages_and_caches_by_content() {
        let root = std::env::temp_dir().join(format!("hotswap-imports-test-{}", std::process::id()));
        let pkg = root.join("app");
        std::fs::create_dir_all(pkg.join("__pycache__")).unwrap();
        std::fs::create_dir_all(root.join(".hidden")).unwrap();
        std::fs::write(pkg.join("__init__.py"), "from . import models\n").unwrap();
        std::fs::write(pkg.join("models.py"), "import json\nfrom .util import helper\n").unwrap();
        std::fs::write(pkg.join("__pycache__").join("x.py"), "import never\n").unwrap();
        std::fs::write(root.join(".hidden").join("y.py"), "import never\n").unwrap();
        std::fs::write(root.join("bad.py"), "def (:\n").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(&root, pkg.join("loop")).unwrap();
        let result = scan_files(&collect_files(std::slice::from_ref(&root)));
        let found: Vec<_> = result
            .sites
            .iter()
            .map(|s| (s.module.as_str(), s.name.as_deref()))
            .collect();
        assert_eq!(
            found,
            vec![("app", Some("models")), ("json", None), ("app.util", Some("helper"))]
        );
        assert_eq!(result.failed.len(), 1);
        assert!(result.failed[0].0.ends_with("bad.py"));
        let again = scan_files(&collect_files(std::slice::from_ref(&root)));
        assert_eq!(again.sites, result.sites);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
