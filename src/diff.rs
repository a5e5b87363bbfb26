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
    /// "module", "moved".
    pub reason: &'static str,
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

/// A reload plan (see `plan`).
#[pyclass(frozen, get_all, name = "Plan", module = "hotswap._native")]
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Statements to act on, in source order; unchanged statements that stay put are not listed.
    pub steps: Vec<Step>,
    /// Names of definitions (def/class) that the old source bound and the new one binds nowhere.
    pub removed: Vec<String>,
    /// Names this reload binds to new objects: what a default or class attribute reading them must re-evaluate.
    pub rebound: Vec<String>,
}

/// Identity of a statement across two versions of a module: definitions by kind and name, other statements by
/// their text; the occurrence number tells repeated ones apart (several `def _` registered with singledispatch).
fn keys(stmts: &[&Stmt]) -> Vec<(&'static str, String, usize)> {
    let mut seen: HashMap<(&'static str, String), usize> = HashMap::new();
    stmts
        .iter()
        .map(|stmt| {
            let ident = match (stmt.kind, &stmt.name) {
                ("def" | "class", Some(name)) => name.clone(),
                _ => stmt.text.clone(),
            };
            let count = seen.entry((stmt.kind, ident.clone())).or_insert(0);
            *count += 1;
            (stmt.kind, ident, *count)
        })
        .collect()
}

/// Plans a reload from the statements the module runs (`old`) to the new ones.
///
/// `whole_module` re-runs every statement (re-import semantics); definitions are still patched in place.
pub fn plan(old: &[&Stmt], new: &[&Stmt], whole_module: bool) -> Plan {
    plan_rebinding(old, new, whole_module, &[])
}

/// `plan`, where the names in `outside` were also rebound before the reload (names imported with
/// `from m import X` whose object the reload of `m` replaced): the statements reading them act too.
pub fn plan_rebinding(old: &[&Stmt], new: &[&Stmt], whole_module: bool, outside: &[String]) -> Plan {
    let old_index: HashMap<_, usize> = keys(old).into_iter().enumerate().map(|(i, key)| (key, i)).collect();
    let mut actions: Vec<Option<(Action, &'static str)>> = Vec::with_capacity(new.len());
    let mut matches: Vec<Option<usize>> = Vec::with_capacity(new.len());
    for (stmt, key) in new.iter().zip(keys(new)) {
        let matched = old_index.get(&key).copied();
        matches.push(matched);
        let is_def = stmt.kind != "other";
        let action = match matched.map(|i| old[i]) {
            None => Some((Action::Run, "new")),
            Some(prev) if is_def && prev.decorators != stmt.decorators && stmt.kind == "def" => {
                Some((Action::Run, "decorators"))
            }
            Some(prev) if prev.text != stmt.text => Some((if is_def { Action::Patch } else { Action::Run }, "changed")),
            Some(_) if whole_module => Some((if is_def { Action::Patch } else { Action::Run }, "module")),
            Some(_) if stmt.calls_reloading => Some((if is_def { Action::Patch } else { Action::Run }, "reloading")),
            Some(prev) if prev.lineno != stmt.lineno => Some((Action::Move, "moved")),
            Some(_) => None,
        };
        actions.push(action);
    }

    // Names rebound by what runs; unchanged statements reading one of them run (or are rebuilt) too, transitively.
    let mut rebound: BTreeSet<String> = BTreeSet::new();
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut queue: Vec<&str> = outside.iter().map(String::as_str).collect();
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

    let new_binds: BTreeSet<&str> = new.iter().flat_map(|s| s.binds.iter().map(String::as_str)).collect();
    let mut removed: Vec<String> = old
        .iter()
        .filter(|s| s.kind != "other")
        .filter_map(|s| s.name.clone())
        .filter(|name| !new_binds.contains(name.as_str()))
        .collect();
    removed.sort();
    removed.dedup();

    let steps = actions
        .into_iter()
        .enumerate()
        .filter_map(|(index, action)| {
            action.map(|(action, reason)| Step {
                index,
                old_index: matches[index],
                action: action.as_str(),
                reason,
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

    fn run(before: &str, after: &str) -> Plan {
        let old = split(before, "<old>").unwrap();
        let new = split(after, "<new>").unwrap();
        plan(&old.iter().collect::<Vec<_>>(), &new.iter().collect::<Vec<_>>(), false)
    }

    fn actions(plan: &Plan) -> Vec<(usize, &'static str, &'static str)> {
        plan.steps.iter().map(|s| (s.index, s.action, s.reason)).collect()
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
        let old = split(src, "<old>").unwrap();
        let refs: Vec<_> = old.iter().collect();
        let plan = plan_rebinding(&refs, &refs, false, &["X".to_string()]);
        assert_eq!(actions(&plan), vec![(1, "run", "reads"), (3, "patch", "reads")]);
        assert_eq!(plan.rebound, vec!["X", "Y"]);
    }

    #[test]
    fn patched_definitions_do_not_rebind_their_name() {
        // `f` keeps its identity, so `handlers = [f]` must not run again.
        let plan = run(
            "def f():\n    return 1\nhandlers = [f]\n",
            "def f():\n    return 2\nhandlers = [f]\n",
        );
        assert_eq!(actions(&plan), vec![(0, "patch", "changed")]);
        assert!(plan.rebound.is_empty());
    }

    #[test]
    fn new_definitions_run_and_removed_ones_are_listed() {
        let plan = run(
            "def f():\n    pass\nclass Old:\n    pass\n",
            "def f():\n    pass\ndef g():\n    pass\n",
        );
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
        let plan = run("def f():\n    pass\n", "\n\ndef f():\n    pass\n");
        assert_eq!(actions(&plan), vec![(0, "move", "moved")]);
    }

    #[test]
    fn statements_calling_currently_reloading_always_run() {
        let src = "reloads = 0\nif currently_reloading():\n    reloads += 1\n";
        assert_eq!(actions(&run(src, src)), vec![(1, "run", "reloading")]);
    }

    #[test]
    fn repeated_names_are_matched_in_order() {
        let before = "@f.register\ndef _(x: int):\n    return 1\n@f.register\ndef _(x: str):\n    return 2\n";
        let after = before.replace("return 2", "return 3");
        assert_eq!(actions(&run(before, &after)), vec![(1, "patch", "changed")]);
    }

    #[test]
    fn whole_module_mode_runs_everything_and_patches_definitions() {
        let src = "X = 1\ndef f():\n    pass\n";
        let old = split(src, "<old>").unwrap();
        let refs: Vec<_> = old.iter().collect();
        let plan = plan(&refs, &refs, true);
        assert_eq!(actions(&plan), vec![(0, "run", "module"), (1, "patch", "module")]);
    }
}
