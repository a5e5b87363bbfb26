//! The reload plan: which top-level statements of the new source run, which live definitions are patched in
//! place, which only moved, and which names disappear. Pure logic over `stmts::Stmt` lists.

use std::collections::{BTreeSet, HashMap};

use pyo3::prelude::*;

use crate::stmts::Stmt;

/// What a reload does with one statement of the new source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Run it in the module's namespace (new or changed plain statements, new definitions, definitions whose
    /// decorators changed, statements reading a rebound name, statements calling `currently_reloading()`).
    Run,
    /// Build it again and patch the live function or class it matches, keeping that object's identity.
    Patch,
    /// Unchanged but at other lines: only line numbers are updated.
    Move,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Patch => "patch",
            Action::Move => "move",
        }
    }
}

/// One step of a plan, in source order of the new statements.
#[pyclass(frozen, get_all, name = "Step", module = "hotswap._native")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// Index into the new statements.
    pub index: usize,
    /// Index of the matching old statement, if any.
    pub old_index: Option<usize>,
    /// "run", "patch" or "move".
    pub action: &'static str,
    /// Why: "new" (also a plain statement whose text changed), "changed", "decorators", "reads", "reloading",
    /// "module", "moved", "future" (a `from __future__` import changed), "rebinds" (binds a name again after a
    /// statement that runs), "acts_on" (post-processes a changed definition, see `acts_on`).
    pub reason: &'static str,
    /// For a class that is patched: how its body changed (see `MemberPlan`).
    pub members: Option<MemberPlan>,
}

#[pymethods]
impl Step {
    fn __repr__(&self) -> String {
        format!(
            "Step({} #{} from {:?}: {})",
            self.action, self.index, self.old_index, self.reason
        )
    }
}

/// How a class body changed between two versions: class bodies are keyed and diffed like module bodies
/// (definitions by name, other statements by text, in order), so the engine knows which members the reload
/// sets and which hold class-level state it keeps.
#[pyclass(frozen, get_all, name = "MemberPlan", module = "hotswap._native")]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberPlan {
    /// Names bound only by unchanged statements of the body (reading nothing rebound): their values survive.
    pub unchanged: Vec<String>,
    /// Names bound by new or changed statements of the body.
    pub changed: Vec<String>,
    /// Names the old body's statements bound (a name bound before and not now is removed from the class).
    pub old_bound: Vec<String>,
    /// For each name a statement of the new body binds: (name, index of that statement in the new body, index of
    /// the old statement it matches, if any). The last statement binding a name wins.
    pub statements: Vec<(String, usize, Option<usize>)>,
    /// The plans of nested classes that both bodies define, by name.
    pub nested: Vec<(String, MemberPlan)>,
}

/// Plans how a class body changed (see `MemberPlan`); `rebound` are the names this reload rebinds. With no old
/// body every statement of the new one is new.
pub fn plan_members(old: &[Stmt], new: &[Stmt], rebound: &BTreeSet<String>) -> MemberPlan {
    let old_refs: Vec<&Stmt> = old.iter().collect();
    let new_refs: Vec<&Stmt> = new.iter().collect();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut changed: BTreeSet<String> = BTreeSet::new();
    let mut statements: Vec<(String, usize, Option<usize>)> = Vec::new();
    let mut nested: Vec<(String, MemberPlan)> = Vec::new();
    for (i, (stmt, matched)) in new
        .iter()
        .zip(match_old(&old_refs, &new_refs, &BTreeSet::new()))
        .enumerate()
    {
        let same =
            matched.is_some_and(|j| old[j].text == stmt.text) && !stmt.reads.iter().any(|name| rebound.contains(name));
        for name in &stmt.binds {
            if same {
                unchanged.insert(name.clone());
            } else {
                changed.insert(name.clone());
            }
            statements.retain(|(bound, _, _)| bound != name);
            statements.push((name.clone(), i, matched));
        }
        if let ("class", Some(name)) = (stmt.kind, &stmt.name) {
            let old_members = matched.map_or(&[][..], |j| &old[j].members[..]);
            nested.push((name.clone(), plan_members(old_members, &stmt.members, rebound)));
        }
    }
    let old_bound: BTreeSet<String> = old.iter().flat_map(|s| s.binds.iter().cloned()).collect();
    MemberPlan {
        unchanged: unchanged.difference(&changed).cloned().collect(),
        changed: changed.into_iter().collect(),
        old_bound: old_bound.into_iter().collect(),
        statements,
        nested,
    }
}

#[pymethods]
impl MemberPlan {
    fn __repr__(&self) -> String {
        format!("MemberPlan(changed={:?}, unchanged={:?})", self.changed, self.unchanged)
    }
}

/// A reload plan (see `plan`).
#[pyclass(frozen, get_all, name = "Plan", module = "hotswap._native")]
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Statements to act on, in source order; unchanged statements that stay put are not listed.
    pub steps: Vec<Step>,
    /// Names that the old source bound (definitions, imports, assignments) and the new one binds nowhere.
    pub removed: Vec<String>,
    /// Names this reload binds to new objects: what a default or class attribute reading them must re-evaluate.
    pub rebound: Vec<String>,
}

/// Identity of a statement across two versions of a module: definitions by kind and name, other statements by
/// their text; the occurrence number tells repeated ones apart (several `def _` registered with singledispatch).
/// For a name with `@overload` stubs (in either version) the last `def`, the implementation the name is bound
/// to, is matched with the last one (occurrence 0), so stubs added above it never take its place.
fn keys(stmts: &[&Stmt], overloaded: &BTreeSet<String>) -> Vec<(&'static str, String, usize)> {
    let mut seen: HashMap<(&'static str, String), usize> = HashMap::new();
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, stmt) in stmts.iter().enumerate() {
        if let ("def", Some(name)) = (stmt.kind, &stmt.name) {
            last.insert(name.clone(), i);
        }
    }
    stmts
        .iter()
        .enumerate()
        .map(|(i, stmt)| {
            let ident = match (stmt.kind, &stmt.name) {
                ("def" | "class", Some(name)) => name.clone(),
                _ => stmt.text.clone(),
            };
            if stmt.kind == "def" && overloaded.contains(&ident) && last.get(&ident) == Some(&i) {
                return (stmt.kind, ident, 0);
            }
            let count = seen.entry((stmt.kind, ident.clone())).or_insert(0);
            *count += 1;
            (stmt.kind, ident, *count)
        })
        .collect()
}

/// For each new statement, the index of the old statement with the same key (see `keys`), if any.
fn match_old(old: &[&Stmt], new: &[&Stmt], overloaded: &BTreeSet<String>) -> Vec<Option<usize>> {
    let old_index: HashMap<_, usize> = keys(old, overloaded)
        .into_iter()
        .enumerate()
        .map(|(i, key)| (key, i))
        .collect();
    keys(new, overloaded)
        .into_iter()
        .map(|key| old_index.get(&key).copied())
        .collect()
}

/// Names defined with an `@overload` (or `@typing.overload`) stub.
fn overloaded_names<'a>(stmts: impl Iterator<Item = &'a &'a Stmt>) -> BTreeSet<String> {
    stmts
        .filter(|s| s.kind == "def" && s.decorators.iter().any(|d| d == "overload" || d.ends_with(".overload")))
        .filter_map(|s| s.name.clone())
        .collect()
}

/// The `from __future__ import ...` statements of a module: they set the compiler flags of every function.
fn future_imports<'a>(stmts: &[&'a Stmt]) -> BTreeSet<&'a str> {
    stmts
        .iter()
        .filter(|s| s.kind == "other" && s.text.starts_with("from __future__"))
        .map(|s| s.text.as_str())
        .collect()
}

/// Whether `text` (an unchanged statement) writes to the object bound to `name`: assigns one of its attributes,
/// calls `setattr`/`delattr` on it, or walks its members (`vars(name)`, `name.__dict__`). Such a statement post-
/// processes a definition, and runs again after the definition is patched, as a fresh import would run it.
pub fn acts_on(text: &str, name: &str) -> bool {
    for call in ["setattr(", "delattr(", "vars("] {
        if text.match_indices(call).any(|(i, _)| {
            let rest = text[i + call.len()..].trim_start();
            rest.starts_with(name) && !rest[name.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        }) {
            return true;
        }
    }
    text.match_indices(name).any(|(i, _)| {
        let before_ok = !text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '.');
        let rest = &text[i + name.len()..];
        let Some(attr) = rest.strip_prefix('.') else {
            return false;
        };
        let ident_len = attr
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(attr.len());
        if ident_len == 0 {
            return false;
        }
        if &attr[..ident_len] == "__dict__" {
            return before_ok;
        }
        let after = attr[ident_len..].trim_start();
        // `name.attr = ...` or `name.attr += ...`, not `name.attr == ...`
        let assigns = (after.starts_with('=') && !after.starts_with("=="))
            || after
                .find('=')
                .is_some_and(|eq| eq > 0 && eq <= 3 && after[..eq].chars().all(|c| "+-*/%&|^<>@".contains(c)));
        before_ok && assigns
    })
}

/// Plans a reload from the statements the module runs (`old`) to the new ones. `whole_module` re-runs every
/// statement (re-import semantics); definitions are still patched in place. The names in `outside` were also
/// rebound before the reload (names imported with `from m import X` whose object the reload of `m` replaced):
/// the statements reading them act too.
///
/// Without `old` (what the module runs is not known), every statement acts as in `whole_module`, no step has
/// an old statement, and every class body counts as new.
pub fn plan(old: Option<&[&Stmt]>, new: &[&Stmt], whole_module: bool, outside: &[String]) -> Plan {
    let baseline = old.is_some();
    let (old, whole_module) = match old {
        Some(old) => (old, whole_module),
        None => (new, true),
    };
    let overloaded = overloaded_names(old.iter().chain(new.iter()));
    // Adding or removing a `from __future__` import recompiles every definition under the new flags.
    let flags_changed = future_imports(old) != future_imports(new);
    let matches = match_old(old, new, &overloaded);
    let mut actions: Vec<Option<(Action, &'static str)>> = Vec::with_capacity(new.len());
    for (stmt, matched) in new.iter().zip(&matches) {
        let is_def = stmt.kind != "other";
        let action = match matched.map(|i| old[i]) {
            None => Some((Action::Run, "new")),
            Some(prev) if is_def && prev.decorators != stmt.decorators && stmt.kind == "def" => {
                Some((Action::Run, "decorators"))
            }
            Some(prev) if prev.text != stmt.text => Some((if is_def { Action::Patch } else { Action::Run }, "changed")),
            Some(_) if whole_module => Some((if is_def { Action::Patch } else { Action::Run }, "module")),
            Some(_) if stmt.calls_reloading => Some((if is_def { Action::Patch } else { Action::Run }, "reloading")),
            Some(_) if flags_changed && is_def => Some((Action::Patch, "future")),
            Some(prev) if prev.lineno != stmt.lineno => Some((Action::Move, "moved")),
            Some(_) => None,
        };
        actions.push(action);
    }

    // Names bound by the old source (by any statement) and by no statement of the new one are removed.
    let new_binds: BTreeSet<&str> = new.iter().flat_map(|s| s.binds.iter().map(String::as_str)).collect();
    let mut removed: Vec<String> = old
        .iter()
        .flat_map(|s| s.binds.iter().cloned())
        .filter(|name| !new_binds.contains(name.as_str()))
        .collect();
    removed.sort();
    removed.dedup();

    // Names rebound by what runs; unchanged statements reading one of them run (or are rebuilt) too, transitively.
    // A removed name is rebound as well (to a builtin of that name, as a removed `str = bytes` shim leaves it, or
    // to nothing).
    let mut rebound: BTreeSet<String> = BTreeSet::new();
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut queue: Vec<&str> = outside.iter().chain(&removed).map(String::as_str).collect();
    for (i, stmt) in new.iter().enumerate() {
        for name in &stmt.reads {
            readers.entry(name.as_str()).or_default().push(i);
        }
        if matches!(actions[i], Some((Action::Run, _))) {
            queue.extend(stmt.binds.iter().map(String::as_str));
        }
    }
    while let Some(name) = queue.pop() {
        if !rebound.insert(name.to_string()) {
            continue;
        }
        for &reader in readers.get(name).map(Vec::as_slice).unwrap_or(&[]) {
            match actions[reader] {
                Some((Action::Run | Action::Patch, _)) => {}
                None | Some((Action::Move, _)) => {
                    if new[reader].kind == "other" {
                        actions[reader] = Some((Action::Run, "reads"));
                        queue.extend(new[reader].binds.iter().map(String::as_str));
                    } else {
                        // A definition keeps its identity: its defaults, decorators' inputs or class body are
                        // rebuilt against the new names, but its own name is not rebound.
                        actions[reader] = Some((Action::Patch, "reads"));
                    }
                }
            }
        }
    }

    // A name's final binding follows source order: an unchanged later statement binding a name that a statement
    // run (or a definition patched) by this reload binds runs again after it. And an unchanged statement that
    // post-processes a changed definition (`acts_on`) runs again after it is patched.
    for i in 0..new.len() {
        let Some((action, reason)) = actions[i] else { continue };
        if action == Action::Move {
            continue;
        }
        // A patched definition keeps its object and does not rebind its name (`f = wrap(f)` after it must not
        // wrap twice); a statement that runs does rebind.
        let runs = action == Action::Run;
        let changed_def = action == Action::Patch && new[i].kind != "other" && reason != "reads";
        for j in i + 1..new.len() {
            if !matches!(actions[j], None | Some((Action::Move, _))) {
                continue;
            }
            let later = new[j];
            let rebinds = runs && new[i].binds.iter().any(|name| later.binds.contains(name));
            let post = changed_def
                && later.kind == "other"
                && new[i].name.as_deref().is_some_and(|name| acts_on(&later.text, name));
            if rebinds || post {
                actions[j] = Some(if later.kind == "other" {
                    (Action::Run, if rebinds { "rebinds" } else { "acts_on" })
                } else {
                    (Action::Patch, "rebinds")
                });
            }
        }
    }

    let steps = actions
        .into_iter()
        .enumerate()
        .filter_map(|(index, action)| {
            let (action, reason) = action?;
            let old_index = matches[index].filter(|_| baseline);
            let members = match (action, old_index) {
                (Action::Patch, old_index) if new[index].kind == "class" => {
                    let old_members = old_index.map_or(&[][..], |j| &old[j].members[..]);
                    Some(plan_members(old_members, &new[index].members, &rebound))
                }
                _ => None,
            };
            Some(Step {
                index,
                old_index,
                action: action.as_str(),
                reason,
                members,
            })
        })
        .collect();
    Plan {
        steps,
        removed,
        rebound: rebound.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stmts::split;

    type Acts = Vec<(usize, &'static str, &'static str)>;

    /// The plan from `before` (None: no baseline) to `after`.
    fn plan_of(before: Option<&str>, after: &str, whole_module: bool, outside: &[&str]) -> Plan {
        let old = before.map(|before| split(before, "<old>").unwrap());
        let old_refs: Option<Vec<&Stmt>> = old.as_ref().map(|old| old.iter().collect());
        let new = split(after, "<new>").unwrap();
        let outside: Vec<String> = outside.iter().map(|name| name.to_string()).collect();
        plan(
            old_refs.as_deref(),
            &new.iter().collect::<Vec<_>>(),
            whole_module,
            &outside,
        )
    }

    fn run(before: &str, after: &str) -> Plan {
        plan_of(Some(before), after, false, &[])
    }

    fn actions(plan: &Plan) -> Acts {
        plan.steps.iter().map(|s| (s.index, s.action, s.reason)).collect()
    }

    /// The steps of the plan from `before` to `after`, as (index, action, reason).
    fn acts(before: &str, after: &str) -> Acts {
        actions(&run(before, after))
    }

    #[test]
    fn unchanged_source_does_nothing() {
        let src = "import os\nX = 1\ndef f():\n    return X\nclass C:\n    pass\n";
        let plan = run(src, src);
        assert!(plan.steps.is_empty(), "{plan:?}");
        assert!(plan.removed.is_empty());
    }

    #[test]
    fn changed_definitions_are_patched_and_plain_statements_run() {
        let plan = run("X = 1\ndef f():\n    return 1\n", "X = 2\ndef f():\n    return 2\n");
        assert_eq!(actions(&plan), vec![(0, "run", "new"), (1, "patch", "changed")]);
        assert_eq!(plan.rebound, vec!["X".to_string()]);
    }

    #[test]
    fn readers_of_rebound_names_rerun_transitively() {
        let before = "X = 1\nY = X * 10\nZ = Y + 1\nW = 5\ndef f(x=Z):\n    return x\ndef g(x=W):\n    return x\n";
        let after = before.replacen("X = 1", "X = 2", 1);
        let plan = run(before, &after);
        assert_eq!(
            actions(&plan),
            vec![
                (0, "run", "new"),
                (1, "run", "reads"),
                (2, "run", "reads"),
                (4, "patch", "reads")
            ]
        );
        assert_eq!(plan.rebound, vec!["X", "Y", "Z"]);
    }

    #[test]
    fn statements_updating_a_rebound_name_run_again() {
        let before = "X = {}\nX['k'] = 1\nX.update(a=2)\nN = 1\nN += 1\nT = 0\ndel T\nclass C:\n    y = N * 2\n";
        let after = before
            .replacen("X = {}", "X = {'z': 0}", 1)
            .replacen("N = 1", "N = 5", 1)
            .replacen("T = 0", "T = 1", 1);
        let plan = run(before, &after);
        assert_eq!(
            actions(&plan),
            vec![
                (0, "run", "new"),
                (1, "run", "reads"),
                (2, "run", "reads"),
                (3, "run", "new"),
                (4, "run", "reads"),
                (5, "run", "new"),
                (6, "run", "reads"),
                (7, "patch", "reads")
            ]
        );
    }

    #[test]
    fn names_rebound_outside_make_their_readers_act() {
        let src = "from m import X\nY = X + 1\nZ = 3\ndef f(a=Y):\n    return a\n";
        let plan = plan_of(Some(src), src, false, &["X"]);
        assert_eq!(actions(&plan), vec![(1, "run", "reads"), (3, "patch", "reads")]);
        assert_eq!(plan.rebound, vec!["X", "Y"]);
    }

    #[test]
    fn patched_definitions_do_not_rebind_their_name() {
        // `f` keeps its identity, so `handlers = [f]` must not run again.
        let before = "def f():\n    return 1\nhandlers = [f]\n";
        let plan = run(before, &before.replace("return 1", "return 2"));
        assert_eq!(actions(&plan), vec![(0, "patch", "changed")]);
        assert!(plan.rebound.is_empty());
    }

    #[test]
    fn new_definitions_run_and_removed_ones_are_listed() {
        let before = "def f():\n    pass\nclass Old:\n    pass\n";
        let plan = run(before, &before.replace("class Old:", "def g():"));
        assert_eq!(actions(&plan), vec![(1, "run", "new")]);
        assert_eq!(plan.removed, vec!["Old".to_string()]);
    }

    #[test]
    fn a_name_bound_elsewhere_is_not_removed() {
        let plan = run("def f():\n    pass\n", "f = print\n");
        assert!(plan.removed.is_empty(), "{plan:?}");
    }

    #[test]
    fn changed_decorators_rerun_the_definition() {
        let plan = run("@a\ndef f():\n    pass\n", "@b\ndef f():\n    pass\n");
        assert_eq!(actions(&plan), vec![(0, "run", "decorators")]);
        assert_eq!(plan.rebound, vec!["f".to_string()]);
    }

    #[test]
    fn moved_definitions_only_move() {
        assert_eq!(
            acts("def f():\n    pass\n", "\n\ndef f():\n    pass\n"),
            vec![(0, "move", "moved")]
        );
    }

    #[test]
    fn statements_calling_currently_reloading_always_run() {
        let src = "reloads = 0\nif currently_reloading():\n    reloads += 1\n";
        assert_eq!(acts(src, src), vec![(1, "run", "reloading")]);
    }

    #[test]
    fn repeated_names_are_matched_in_order() {
        let before = "@f.register\ndef _(x: int):\n    return 1\n@f.register\ndef _(x: str):\n    return 2\n";
        let after = before.replace("return 2", "return 3");
        assert_eq!(acts(before, &after), vec![(1, "patch", "changed")]);
    }

    #[test]
    fn overload_stubs_added_above_a_def_leave_it_the_implementation() {
        let before = "def f(x):\n    return x\n";
        let after =
            "@overload\ndef f(x: int) -> int: ...\n@overload\ndef f(x: str) -> str: ...\ndef f(x):\n    return x\n";
        // The stubs bind `f` as they run; the implementation binds it again, keeping its function object.
        assert_eq!(
            acts(before, after),
            vec![(0, "run", "new"), (1, "run", "new"), (2, "patch", "rebinds")]
        );
    }

    #[test]
    fn a_later_statement_binding_the_same_name_runs_again() {
        let before = "X = 1\ntry:\n    from m import X\nexcept ImportError:\n    pass\n";
        let after = before.replacen("X = 1", "X = 2", 1);
        assert_eq!(acts(before, &after), vec![(0, "run", "new"), (1, "run", "rebinds")]);
        // A patched definition does not rebind its name: `f = wrap(f)` must not wrap twice.
        let before = "def f():\n    return 1\nf = wrap(f)\n";
        let after = before.replace("return 1", "return 2");
        assert_eq!(acts(before, &after), vec![(0, "patch", "changed")]);
    }

    #[test]
    fn statements_acting_on_a_changed_definition_run_again() {
        let before = "class S:\n    x = 1\nfor k in list(vars(S)):\n    pass\nS.y = 2\nprint(S.x)\nT = S.x == 1\n";
        let after = before.replace("x = 1", "x = 3");
        assert_eq!(
            acts(before, &after),
            vec![(0, "patch", "changed"), (1, "run", "acts_on"), (2, "run", "acts_on")]
        );
        assert!(acts_on("setattr(S, 'a', 1)", "S") && acts_on("S.__dict__", "S") && acts_on("S.n += 1", "S"));
        assert!(!acts_on("S.n == 1", "S") && !acts_on("XS.n = 1", "S") && !acts_on("f(S)", "S"));
    }

    #[test]
    fn names_bound_only_by_removed_statements_are_removed_and_their_readers_act() {
        let plan = run("import os\nstr = bytes\nX = 1\nY = str(X)\n", "X = 1\nY = str(X)\n");
        assert_eq!(plan.removed, vec!["os".to_string(), "str".to_string()]);
        assert_eq!(actions(&plan), vec![(0, "move", "moved"), (1, "run", "reads")]);
        assert_eq!(plan.rebound, vec!["Y", "os", "str"]);
    }

    #[test]
    fn a_changed_future_import_patches_every_definition() {
        let before = "def f():\n    pass\nclass C:\n    pass\n";
        let after = format!("from __future__ import annotations\n{before}");
        assert_eq!(
            acts(before, &after),
            vec![(0, "run", "new"), (1, "patch", "future"), (2, "patch", "future")]
        );
    }

    #[test]
    fn class_bodies_are_keyed_and_diffed_beside_module_statements() {
        let before = "LIMIT = 1\nclass C:\n    x = LIMIT\n    cache = {}\n    def m(self):\n        return 1\n    class Inner:\n        y = 1\n    old = 1\n";
        let after = before
            .replace("LIMIT = 1", "LIMIT = 2")
            .replace("return 1", "return 2")
            .replace("y = 1", "y = 2")
            .replace("    old = 1\n", "");
        let plan = run(before, &after);
        let members = plan.steps[1]
            .members
            .clone()
            .expect("a patched class has a member plan");
        assert_eq!(members.changed, vec!["Inner", "m", "x"]);
        assert_eq!(members.unchanged, vec!["cache"]);
        assert!(members.old_bound.contains(&"old".to_string()));
        assert_eq!(members.statements[1], ("cache".to_string(), 1, Some(1)));
        assert_eq!(members.nested[0].0, "Inner");
        assert_eq!(members.nested[0].1.changed, vec!["y"]);
    }

    #[test]
    fn whole_module_mode_runs_everything_and_patches_definitions() {
        let src = "X = 1\ndef f():\n    pass\n";
        let plan = plan_of(Some(src), src, true, &[]);
        assert_eq!(actions(&plan), vec![(0, "run", "module"), (1, "patch", "module")]);
    }

    #[test]
    fn without_a_baseline_everything_acts_and_class_bodies_are_new() {
        let src = "X = 1\nclass C:\n    y = X\n    class Inner:\n        z = 1\n";
        let plan = plan_of(None, src, false, &[]);
        assert_eq!(actions(&plan), vec![(0, "run", "module"), (1, "patch", "module")]);
        assert!(plan.steps.iter().all(|step| step.old_index.is_none()), "{plan:?}");
        let members = plan.steps[1]
            .members
            .clone()
            .expect("a patched class has a member plan");
        assert_eq!(members.changed, vec!["Inner", "y"]);
        assert!(members.unchanged.is_empty() && members.old_bound.is_empty());
        assert_eq!(
            members.statements,
            vec![("y".to_string(), 0, None), ("Inner".to_string(), 1, None)]
        );
        assert_eq!(members.nested[0].0, "Inner");
        assert_eq!(members.nested[0].1.changed, vec!["z"]);
    }
}
