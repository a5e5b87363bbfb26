//! Splits a module's source into top-level statements and records, for each, its exact text, the names it
//! binds and the names it reads while the module body runs. The reload planner diffs two such lists.

use std::collections::BTreeSet;

use pyo3::prelude::*;
use rustpython_ast::Visitor;
use rustpython_parser::ast::{self, Ranged};
use rustpython_parser::Parse;

use crate::errors::{headroom, try_vec, CoreError};

/// One statement of a module body (or of a class body, in `members`).
#[pyclass(frozen, get_all, from_py_object, name = "Stmt", module = "hotswap._native")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stmt {
    /// "def", "class" or "other".
    pub kind: &'static str,
    /// The defined name for "def" and "class", else None.
    pub name: Option<String>,
    /// Exact source text, decorators included.
    pub text: String,
    /// First line (of the first decorator, if any), 1-based.
    pub lineno: usize,
    pub end_lineno: usize,
    /// Line of the `def`/`class` keyword (equal to `lineno` when there is no decorator).
    pub def_lineno: usize,
    /// Text from the `def`/`async def`/`class` keyword to the end: the statement without its decorators.
    pub def_text: String,
    /// Decorator source texts, in order.
    pub decorators: Vec<String>,
    /// Names the statement binds at module (or class) level.
    pub binds: Vec<String>,
    /// Names the statement reads while it runs (decorators, defaults, annotations, bases, class bodies, ...).
    pub reads: Vec<String>,
    /// The statement calls `currently_reloading()` while it runs.
    pub calls_reloading: bool,
    /// For "def": (parameter name, default expression text, names that expression reads), for each default.
    pub defaults: Vec<(String, String, Vec<String>)>,
    /// For "class": the statements of the class body.
    pub members: Vec<Stmt>,
}

#[pymethods]
impl Stmt {
    /// Built from Python by the fallback splitter (CPython's `ast`) for source rustpython-parser rejects.
    #[new]
    #[pyo3(signature = (*, kind, name, text, lineno, end_lineno, def_lineno, def_text, decorators, binds, reads,
                        calls_reloading, defaults, members))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        kind: &str,
        name: Option<String>,
        text: String,
        lineno: usize,
        end_lineno: usize,
        def_lineno: usize,
        def_text: String,
        decorators: Vec<String>,
        binds: Vec<String>,
        reads: Vec<String>,
        calls_reloading: bool,
        defaults: Vec<(String, String, Vec<String>)>,
        members: Vec<Stmt>,
    ) -> PyResult<Self> {
        let kind = match kind {
            "def" => "def",
            "class" => "class",
            "other" => "other",
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown statement kind {other:?}"
                )))
            }
        };
        Ok(Stmt {
            kind,
            name,
            text,
            lineno,
            end_lineno,
            def_lineno,
            def_text,
            decorators,
            binds,
            reads,
            calls_reloading,
            defaults,
            members,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "Stmt({} {:?} lines {}-{})",
            self.kind, self.name, self.lineno, self.end_lineno
        )
    }
}

/// Bytes of memory parsing and describing one byte of source may take at its peak (rustpython-parser's tree, the
/// statements' texts and names): measured at about 40 on a 3.7 MB module of small functions. Reserved (and released)
/// before each parse, so a parse that cannot get it raises MemoryError instead of aborting the process halfway.
pub const PARSE_BYTES_PER_SOURCE_BYTE: usize = 48;

/// Byte offsets of line starts, for offset -> line conversion.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    /// 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }

    fn start_of(&self, line: usize) -> usize {
        self.starts[line - 1]
    }
}

/// Parses `source` and splits it into top-level statements.
pub fn split(source: &str, path: &str) -> Result<Vec<Stmt>, CoreError> {
    headroom(
        source.len().saturating_mul(PARSE_BYTES_PER_SOURCE_BYTE),
        "parsing the module's source",
    )?;
    let suite = ast::Suite::parse(source, path).map_err(|err| {
        let lines = Lines::new(source);
        let offset = usize::from(err.offset).min(source.len());
        let lineno = lines.line_of(offset).max(1);
        CoreError::Syntax {
            message: err.error.to_string(),
            path: path.to_string(),
            lineno,
            col: offset - lines.start_of(lineno) + 1,
        }
    })?;
    let lines = Lines::new(source);
    let mut out = try_vec(suite.len(), "the module's statements")?;
    out.extend(suite.into_iter().map(|stmt| describe(stmt, source, &lines)));
    Ok(out)
}

impl Stmt {
    /// The same statement `delta` lines further down (negative: up).
    pub fn shifted(&self, delta: isize) -> Stmt {
        let mv = |line: usize| line.saturating_add_signed(delta);
        Stmt {
            lineno: mv(self.lineno),
            end_lineno: mv(self.end_lineno),
            def_lineno: mv(self.def_lineno),
            members: self.members.iter().map(|m| m.shifted(delta)).collect(),
            ..self.clone()
        }
    }
}

/// How a new version of a module splits, given the statements of the version before it (see `splice`).
#[derive(Debug, PartialEq, Eq)]
pub enum Splice {
    /// The old statements `..head`, unchanged; then `middle`, parsed from the new text; then the old statements
    /// `tail..`, moved `delta` lines down (negative: up).
    Reuse {
        head: usize,
        middle: Vec<Stmt>,
        tail: usize,
        delta: isize,
    },
    /// The new text parsed whole.
    Whole(Vec<Stmt>),
}

/// Splits `new` knowing that `old` split into `old_stmts`: statements entirely in the text the two share at
/// their start or end are reused (moved by the change in line count), and only the lines in between are
/// parsed. That region is parsed on its own, so it must hold whole statements; where it does not (an edit
/// opened a string that closes further down, say) the whole of `new` is parsed, so the statements are always
/// what `split(new)` returns.
pub fn splice(old: &str, old_stmts: &[&Stmt], new: &str, path: &str) -> Result<Splice, CoreError> {
    let (ob, nb) = (old.as_bytes(), new.as_bytes());
    let prefix = ob.iter().zip(nb).take_while(|(a, b)| a == b).count();
    let max_suffix = ob.len().min(nb.len()) - prefix;
    let suffix = ob
        .iter()
        .rev()
        .zip(nb.iter().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    let (old_lines, new_lines) = (Lines::new(old), Lines::new(new));
    // 1-based lines of the old text holding the first and the last changed byte (or the insertion point).
    let first_changed = old_lines.line_of(prefix).max(1);
    let last_changed = old_lines.line_of((ob.len() - suffix).max(prefix)).max(first_changed);
    let head = old_stmts.iter().take_while(|s| s.end_lineno < first_changed).count();
    let tail = old_stmts[head..]
        .iter()
        .position(|s| s.lineno > last_changed)
        .map_or(old_stmts.len(), |i| head + i);
    let delta = new_lines.starts.len() as isize - old_lines.starts.len() as isize;
    let whole = || split(new, path).map(Splice::Whole);
    // The region of the new text to parse: from the line after the last reused head statement to the line
    // before the first reused tail statement.
    let region_first = old_stmts[..head].last().map_or(1, |s| s.end_lineno + 1);
    let region_start = if region_first <= new_lines.starts.len() {
        new_lines.start_of(region_first)
    } else {
        nb.len()
    };
    let region_end = match old_stmts.get(tail) {
        Some(s) => match s.lineno.checked_add_signed(delta) {
            Some(line) if line >= 1 && line <= new_lines.starts.len() => new_lines.start_of(line),
            _ => return whole(),
        },
        None => nb.len(),
    };
    if region_end < region_start || !new.is_char_boundary(region_start) || !new.is_char_boundary(region_end) {
        return whole();
    }
    // Newlines in front give the region's statements the file's line numbers.
    let padded = format!("{}{}", "\n".repeat(region_first - 1), &new[region_start..region_end]);
    match split(&padded, path) {
        Ok(middle) => Ok(Splice::Reuse {
            head,
            middle,
            tail,
            delta,
        }),
        Err(CoreError::Syntax { .. }) => whole(),
        Err(err) => Err(err),
    }
}

fn slice(source: &str, range: ast::text_size::TextRange) -> &str {
    &source[usize::from(range.start())..usize::from(range.end())]
}

/// Start of a decorated statement: the `@` before its first decorator (the parser's range may start at the
/// decorator expression itself).
fn decorated_start(source: &str, stmt_start: usize, decorators: &[ast::Expr]) -> usize {
    match decorators.first() {
        Some(first) => {
            let expr_start = usize::from(first.range().start());
            source[..expr_start]
                .rfind('@')
                .map_or(stmt_start, |at| at.min(stmt_start))
        }
        None => stmt_start,
    }
}

/// Line of the `def`/`class` keyword: the first line after the last decorator that is not blank or a comment.
fn keyword_line(source: &str, lines: &Lines, decorators: &[ast::Expr], fallback: usize) -> usize {
    let Some(last) = decorators.last() else { return fallback };
    let mut line = lines.line_of(usize::from(last.range().end())) + 1;
    while line <= lines.starts.len() {
        let start = lines.start_of(line);
        let end = lines.starts.get(line).copied().unwrap_or(source.len());
        let text = source[start..end].trim();
        if !text.is_empty() && !text.starts_with('#') {
            return line;
        }
        line += 1;
    }
    fallback
}

fn describe(stmt: ast::Stmt, source: &str, lines: &Lines) -> Stmt {
    let range = stmt.range();
    let stmt_start = usize::from(range.start());
    let end = usize::from(range.end());
    let mut out = Stmt {
        kind: "other",
        name: None,
        text: String::new(),
        lineno: 0,
        end_lineno: lines.line_of(end.saturating_sub(1).max(stmt_start)),
        def_lineno: 0,
        def_text: String::new(),
        decorators: Vec::new(),
        binds: Vec::new(),
        reads: Vec::new(),
        calls_reloading: false,
        defaults: Vec::new(),
        members: Vec::new(),
    };
    let mut scan = Scan::default();
    let start = match stmt {
        ast::Stmt::FunctionDef(ast::StmtFunctionDef {
            name,
            decorator_list,
            args,
            returns,
            ..
        })
        | ast::Stmt::AsyncFunctionDef(ast::StmtAsyncFunctionDef {
            name,
            decorator_list,
            args,
            returns,
            ..
        }) => {
            let start = decorated_start(source, stmt_start, &decorator_list);
            describe_def(
                &mut out,
                &mut scan,
                source,
                lines,
                name.to_string(),
                decorator_list,
                *args,
                returns,
            );
            start
        }
        ast::Stmt::ClassDef(class) => {
            let start = decorated_start(source, stmt_start, &class.decorator_list);
            out.kind = "class";
            out.name = Some(class.name.to_string());
            out.def_lineno = keyword_line(source, lines, &class.decorator_list, lines.line_of(stmt_start));
            out.decorators = class
                .decorator_list
                .iter()
                .map(|d| slice(source, d.range()).to_string())
                .collect();
            scan.binds.insert(class.name.to_string());
            for expr in class.decorator_list.into_iter().chain(class.bases) {
                scan.visit_expr(expr);
            }
            for keyword in class.keywords {
                scan.visit_expr(keyword.value);
            }
            out.members = class
                .body
                .into_iter()
                .map(|member| describe(member, source, lines))
                .collect();
            for member in &out.members {
                scan.reads.extend(member.reads.iter().cloned());
                scan.calls_reloading |= member.calls_reloading;
            }
            start
        }
        other => {
            scan.visit_stmt(other);
            stmt_start
        }
    };
    out.text = source[start..end].to_string();
    out.lineno = lines.line_of(start);
    if out.def_lineno == 0 {
        out.def_lineno = out.lineno;
    }
    let def_start = lines.start_of(out.def_lineno).max(start);
    out.def_text = source[def_start..end].to_string();
    out.binds = scan.binds.into_iter().collect();
    out.reads = scan.reads.into_iter().collect();
    out.calls_reloading = scan.calls_reloading;
    out
}

#[allow(clippy::too_many_arguments)]
fn describe_def(
    out: &mut Stmt,
    scan: &mut Scan,
    source: &str,
    lines: &Lines,
    name: String,
    decorators: Vec<ast::Expr>,
    args: ast::Arguments,
    returns: Option<Box<ast::Expr>>,
) {
    out.kind = "def";
    out.def_lineno = keyword_line(source, lines, &decorators, 0);
    out.decorators = decorators
        .iter()
        .map(|d| slice(source, d.range()).to_string())
        .collect();
    for arg in args.posonlyargs.iter().chain(&args.args).chain(&args.kwonlyargs) {
        if let Some(default) = &arg.default {
            let mut reads = Scan::default();
            reads.visit_expr((**default).clone());
            out.defaults.push((
                arg.def.arg.to_string(),
                slice(source, default.range()).to_string(),
                reads.reads.into_iter().collect(),
            ));
        }
    }
    for expr in decorators {
        scan.visit_expr(expr);
    }
    scan.visit_signature(args, returns);
    scan.binds.insert(name.clone());
    out.name = Some(name);
}

/// Collects what a statement binds and reads while it runs. Function and lambda bodies do not run when the
/// statement runs, so only their decorators, defaults and annotations count; class bodies do run.
#[derive(Default)]
struct Scan {
    binds: BTreeSet<String>,
    reads: BTreeSet<String>,
    calls_reloading: bool,
}

impl Scan {
    fn visit_signature(&mut self, args: ast::Arguments, returns: Option<Box<ast::Expr>>) {
        let ast::Arguments {
            posonlyargs,
            args,
            vararg,
            kwonlyargs,
            kwarg,
            ..
        } = args;
        for arg in posonlyargs.into_iter().chain(args).chain(kwonlyargs) {
            if let Some(default) = arg.default {
                self.visit_expr(*default);
            }
            if let Some(annotation) = arg.def.annotation {
                self.visit_expr(*annotation);
            }
        }
        for arg in vararg.into_iter().chain(kwarg) {
            if let Some(annotation) = arg.annotation {
                self.visit_expr(*annotation);
            }
        }
        if let Some(returns) = returns {
            self.visit_expr(*returns);
        }
    }
}

impl Visitor for Scan {
    fn visit_expr_name(&mut self, node: ast::ExprName) {
        match node.ctx {
            ast::ExprContext::Load => self.reads.insert(node.id.to_string()),
            ast::ExprContext::Store => self.binds.insert(node.id.to_string()),
            // `del X` needs the binding it removes: it reads `X` as well.
            ast::ExprContext::Del => {
                self.reads.insert(node.id.to_string());
                self.binds.insert(node.id.to_string())
            }
        };
    }

    fn visit_stmt_aug_assign(&mut self, node: ast::StmtAugAssign) {
        // `X += 1` reads the `X` it rebinds (the parser marks the target Store only).
        if let ast::Expr::Name(name) = &*node.target {
            self.reads.insert(name.id.to_string());
        }
        self.generic_visit_stmt_aug_assign(node)
    }

    fn visit_expr_call(&mut self, node: ast::ExprCall) {
        let reloading = match &*node.func {
            ast::Expr::Name(name) => name.id.as_str() == "currently_reloading",
            ast::Expr::Attribute(attr) => attr.attr.as_str() == "currently_reloading",
            _ => false,
        };
        self.calls_reloading |= reloading;
        self.generic_visit_expr_call(node)
    }

    fn visit_expr_lambda(&mut self, node: ast::ExprLambda) {
        self.visit_signature(*node.args, None);
    }

    fn visit_comprehension(&mut self, node: ast::Comprehension) {
        // The target is local to the comprehension; its iterable and conditions are read.
        self.visit_expr(node.iter);
        for cond in node.ifs {
            self.visit_expr(cond);
        }
    }

    fn visit_keyword(&mut self, node: ast::Keyword) {
        self.visit_expr(node.value);
    }

    fn visit_withitem(&mut self, node: ast::WithItem) {
        self.visit_expr(node.context_expr);
        if let Some(vars) = node.optional_vars {
            self.visit_expr(*vars);
        }
    }

    fn visit_match_case(&mut self, node: ast::MatchCase) {
        self.visit_pattern(node.pattern);
        if let Some(guard) = node.guard {
            self.visit_expr(*guard);
        }
        for stmt in node.body {
            self.visit_stmt(stmt);
        }
    }

    fn visit_pattern_match_as(&mut self, node: ast::PatternMatchAs) {
        if let Some(name) = &node.name {
            self.binds.insert(name.to_string());
        }
        self.generic_visit_pattern_match_as(node)
    }

    fn visit_pattern_match_star(&mut self, node: ast::PatternMatchStar) {
        if let Some(name) = node.name {
            self.binds.insert(name.to_string());
        }
    }

    fn visit_pattern_match_mapping(&mut self, node: ast::PatternMatchMapping) {
        if let Some(rest) = &node.rest {
            self.binds.insert(rest.to_string());
        }
        self.generic_visit_pattern_match_mapping(node)
    }

    fn visit_excepthandler_except_handler(&mut self, node: ast::ExceptHandlerExceptHandler) {
        if let Some(name) = &node.name {
            self.binds.insert(name.to_string());
        }
        self.generic_visit_excepthandler_except_handler(node)
    }

    fn visit_alias(&mut self, node: ast::Alias) {
        let bound = match &node.asname {
            Some(asname) => asname.to_string(),
            None => node.name.split('.').next().unwrap_or_default().to_string(),
        };
        self.binds.insert(bound);
    }

    fn visit_stmt_function_def(&mut self, node: ast::StmtFunctionDef) {
        self.binds.insert(node.name.to_string());
        for expr in node.decorator_list {
            self.visit_expr(expr);
        }
        self.visit_signature(*node.args, node.returns);
    }

    fn visit_stmt_async_function_def(&mut self, node: ast::StmtAsyncFunctionDef) {
        self.binds.insert(node.name.to_string());
        for expr in node.decorator_list {
            self.visit_expr(expr);
        }
        self.visit_signature(*node.args, node.returns);
    }

    fn visit_stmt_class_def(&mut self, node: ast::StmtClassDef) {
        self.binds.insert(node.name.to_string());
        for expr in node.decorator_list.into_iter().chain(node.bases) {
            self.visit_expr(expr);
        }
        for keyword in node.keywords {
            self.visit_expr(keyword.value);
        }
        // The body runs now, but what it binds belongs to the class, not to the enclosing namespace.
        let mut body = Scan::default();
        for stmt in node.body {
            body.visit_stmt(stmt);
        }
        self.reads.extend(body.reads);
        self.calls_reloading |= body.calls_reloading;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(source: &str) -> Stmt {
        let mut stmts = split(source, "<test>").unwrap();
        assert_eq!(stmts.len(), 1, "{stmts:?}");
        stmts.remove(0)
    }

    #[test]
    fn splits_top_level_statements_with_exact_text_and_lines() {
        let src = "import os\n\nX = 1\n\n@deco(X)\n# note\ndef f(a, b=X + 1, *, c=[]):\n    return a\n\nclass C(Base):\n    y = X\n    def m(self):\n        pass\n";
        let stmts = split(src, "<test>").unwrap();
        let kinds: Vec<_> = stmts
            .iter()
            .map(|s| (s.kind, s.name.as_deref(), s.lineno, s.end_lineno))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("other", None, 1, 1),
                ("other", None, 3, 3),
                ("def", Some("f"), 5, 8),
                ("class", Some("C"), 10, 13)
            ]
        );
        let f = &stmts[2];
        assert_eq!(f.text, "@deco(X)\n# note\ndef f(a, b=X + 1, *, c=[]):\n    return a");
        assert_eq!(f.def_lineno, 7);
        assert!(f.def_text.starts_with("def f("));
        assert_eq!(f.decorators, vec!["deco(X)".to_string()]);
        assert_eq!(
            f.defaults,
            vec![
                ("b".into(), "X + 1".into(), vec!["X".into()]),
                ("c".into(), "[]".into(), vec![])
            ]
        );
        assert_eq!(f.reads, vec!["X".to_string(), "deco".to_string()]);
        let c = &stmts[3];
        assert_eq!(c.reads, vec!["Base".to_string(), "X".to_string()]);
        let members: Vec<_> = c.members.iter().map(|m| (m.kind, m.binds.clone())).collect();
        assert_eq!(
            members,
            vec![("other", vec!["y".to_string()]), ("def", vec!["m".to_string()])]
        );
    }

    #[test]
    fn records_binds_including_imports_and_nested_blocks() {
        let s = one("try:\n    import numpy.linalg as la, os.path\nexcept ImportError as e:\n    la = None\n");
        assert_eq!(s.binds, vec!["e".to_string(), "la".to_string(), "os".to_string()]);
        assert_eq!(s.reads, vec!["ImportError".to_string()]);
        let s = one("for i, (j, *k) in pairs:\n    total = i\n");
        assert_eq!(s.binds, vec!["i", "j", "k", "total"]);
        assert_eq!(s.reads, vec!["i", "pairs"]);
    }

    #[test]
    fn statements_that_update_a_name_read_it() {
        for (src, name) in [
            ("X += 1\n", "X"),
            ("X[k] = v\n", "X"),
            ("X.a = v\n", "X"),
            ("del X\n", "X"),
        ] {
            let s = one(src);
            assert!(s.reads.contains(&name.to_string()), "{src:?} reads {:?}", s.reads);
        }
        assert_eq!(one("X += 1\n").binds, vec!["X".to_string()]);
        assert_eq!(one("del X\n").binds, vec!["X".to_string()]);
        // Reads in a class body count for the class statement.
        assert_eq!(one("class C:\n    y = X * 2\n").reads, vec!["X".to_string()]);
    }

    #[test]
    fn function_bodies_do_not_count_as_reads_but_comprehensions_do() {
        let s = one("Y = [X * i for i in range(N) if i != Z]\n");
        assert_eq!(s.reads, vec!["N", "X", "Z", "i", "range"]);
        assert_eq!(s.binds, vec!["Y"]);
        let s = one("def f():\n    return HIDDEN\n");
        assert!(s.reads.is_empty());
        let s = one("handler = lambda event: HIDDEN(event)\n");
        assert!(s.reads.is_empty());
    }

    #[test]
    fn detects_currently_reloading_calls_at_statement_time_only() {
        assert!(one("if currently_reloading():\n    n += 1\n").calls_reloading);
        assert!(one("x = hotswap.currently_reloading()\n").calls_reloading);
        assert!(!one("def f():\n    return currently_reloading()\n").calls_reloading);
    }

    /// The statements `splice` describes, as a list.
    fn split_incremental(old: &str, old_stmts: &[Stmt], new: &str) -> Result<Vec<Stmt>, CoreError> {
        let refs: Vec<&Stmt> = old_stmts.iter().collect();
        Ok(match splice(old, &refs, new, "<t>")? {
            Splice::Whole(stmts) => stmts,
            Splice::Reuse {
                head,
                middle,
                tail,
                delta,
            } => {
                let moved = old_stmts[tail..].iter().map(|s| s.shifted(delta));
                old_stmts[..head].iter().cloned().chain(middle).chain(moved).collect()
            }
        })
    }

    fn check_incremental(old: &str, new: &str) {
        let old_stmts = split(old, "<t>").unwrap();
        let fast = split_incremental(old, &old_stmts, new);
        assert_eq!(fast, split(new, "<t>"), "old={old:?} new={new:?}");
    }

    #[test]
    fn incremental_split_equals_a_full_split() {
        let base = "import os\n\nX = 1\n\n@deco\ndef f(a=X):\n    return a\n\nclass C:\n    y = 1\n\n    def m(self):\n        return 2\n\nZ = [\n    1,\n]\n";
        let cases = [
            base.replace("return a", "return a + 1"),
            base.replace("X = 1\n", "X = 1\nW = 2\nV = 3\n"),
            base.replace("import os\n", ""),
            base.replace("    y = 1\n", "    y = 1\n    z = 2\n"),
            base.replace("Z = [\n    1,\n]\n", ""),
            base.replace("X = 1", "X = \"\"\"\nopen"),
            base.replace("return 2", "return 2\n\n# trailing comment"),
            format!("# header\n{base}"),
            format!("{base}def g():\n    pass\n"),
            base.replace("return a\n", "return a\n  x = 1\n"),
            base.replace("@deco\n", ""),
            base.replace("    1,\n", "    1, (\n"),
            base.to_string(),
            String::new(),
        ];
        for new in &cases {
            if split(base, "<t>").is_ok() {
                check_incremental(base, new);
            }
            if split(new, "<t>").is_ok() {
                check_incremental(new, base);
            }
        }
    }

    #[test]
    fn parse_failure_reports_line() {
        let err = split("x = 1\ndef f(:\n    pass\n", "<test>").unwrap_err();
        assert!(matches!(err, CoreError::Syntax { lineno: 2, .. }), "{err:?}");
    }
}
