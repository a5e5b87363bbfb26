//! The `hotswap._native` extension module: exports only. Each concern lives in its own module.

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyTuple;

pub mod audit;
pub mod diff;
pub mod errors;
pub mod funcindex;
pub mod imports;
#[cfg(any(target_os = "linux", target_os = "android"))]
pub mod inotify;
pub mod log;
pub mod patch;
pub mod stmts;
pub mod template;
pub mod watch;

/// Splits module source into top-level statements (see `stmts::Stmt`). Raises SyntaxError where the parser
/// rejects the source, with the line it stopped at (the caller then falls back to CPython's parser), and
/// MemoryError when there is not enough memory to parse it.
#[pyfunction]
#[pyo3(signature = (source, path = "<unknown>"))]
fn split_statements(py: Python<'_>, source: &str, path: &str) -> PyResult<Vec<stmts::Stmt>> {
    Ok(py.detach(|| stmts::split(source, path))?)
}

/// Bytes the planner may need per statement at its peak (keys, indexes, the steps); probed like parsing's.
const PLAN_BYTES_PER_STMT: usize = 512;

/// Sources at least this long are split and planned with the GIL released. A shorter one takes well under a
/// millisecond, less than handing the GIL over costs: a program thread waiting for it takes it, and when that
/// thread computes rather than waits, the reload gets it back only after the switch interval (5 ms).
const DETACH_MIN_BYTES: usize = 64 * 1024;

/// Runs `work` with the GIL released when `source_len` is worth it (see `DETACH_MIN_BYTES`), else holding it.
fn maybe_detach<T: Send>(py: Python<'_>, source_len: usize, work: impl FnOnce() -> T + Send) -> T {
    if source_len >= DETACH_MIN_BYTES {
        py.detach(work)
    } else {
        work()
    }
}

/// Splits `source` and plans the reload to it from what the module runs, in one call: returns the new
/// statements (a tuple) and the plan (`diff::plan`), class bodies' member plans included.
///
/// `old`: the source the module runs and its statements; the new source is split reusing the statements of the
/// text both share (the same objects where they did not move), or as a whole. None: no baseline is known (every
/// statement acts, see `diff::plan`). `statements`: the new source already split (by the fallback splitter,
/// for syntax the parser rejects); it is then not parsed. `rebound`: names another module's reload rebound
/// here. Raises SyntaxError (the caller falls back) and MemoryError as `split_statements` does.
#[pyfunction]
#[pyo3(signature = (source, path, old = None, *, statements = None, whole_module = false, rebound = Vec::new()))]
fn plan<'py>(
    py: Python<'py>,
    source: &str,
    path: &str,
    old: Option<(PyBackedStr, Vec<Py<stmts::Stmt>>)>,
    statements: Option<Vec<Py<stmts::Stmt>>>,
    whole_module: bool,
    rebound: Vec<String>,
) -> PyResult<(Bound<'py, PyTuple>, diff::Plan)> {
    let old_refs: Option<Vec<&stmts::Stmt>> = old.as_ref().map(|(_, stmts)| stmts.iter().map(Py::get).collect());
    let new: Vec<Py<stmts::Stmt>> = match (statements, &old, &old_refs) {
        (Some(given), _, _) => given,
        (None, Some((old_text, old_stmts)), Some(refs)) => {
            match maybe_detach(py, source.len(), || stmts::splice(old_text, refs, source, path))? {
                stmts::Splice::Whole(all) => all.into_iter().map(|s| Py::new(py, s)).collect::<PyResult<_>>()?,
                stmts::Splice::Reuse {
                    head,
                    middle,
                    tail,
                    delta,
                } => {
                    let mut out =
                        errors::try_vec(head + middle.len() + old_stmts.len() - tail, "the module's statements")?;
                    out.extend(old_stmts[..head].iter().map(|s| s.clone_ref(py)));
                    for s in middle {
                        out.push(Py::new(py, s)?);
                    }
                    for s in &old_stmts[tail..] {
                        out.push(if delta == 0 {
                            s.clone_ref(py)
                        } else {
                            Py::new(py, s.get().shifted(delta))?
                        });
                    }
                    out
                }
            }
        }
        _ => {
            let all = maybe_detach(py, source.len(), || stmts::split(source, path))?;
            all.into_iter().map(|s| Py::new(py, s)).collect::<PyResult<_>>()?
        }
    };
    let new_refs: Vec<&stmts::Stmt> = new.iter().map(Py::get).collect();
    errors::headroom(
        (old_refs.as_ref().map_or(0, Vec::len) + new.len()).saturating_mul(PLAN_BYTES_PER_STMT),
        "planning the reload",
    )?;
    let plan = maybe_detach(py, source.len(), || {
        diff::plan(old_refs.as_deref(), &new_refs, whole_module, &rebound)
    });
    Ok((PyTuple::new(py, &new)?, plan))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    log::init();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("LOG_ENV", log::LOG_ENV)?;
    m.add("HotswapError", m.py().get_type::<errors::HotswapError>())?;
    m.add_class::<stmts::Stmt>()?;
    m.add_class::<watch::PyWatcher>()?;
    m.add_function(wrap_pyfunction!(split_statements, m)?)?;
    m.add_class::<diff::Plan>()?;
    m.add_class::<diff::Step>()?;
    m.add_class::<diff::MemberPlan>()?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(patch::apply, m)?)?;
    m.add_function(wrap_pyfunction!(audit::audit_gate, m)?)?;
    m.add_function(wrap_pyfunction!(audit::set_audit_handler, m)?)?;
    m.add_class::<patch::PatchFunction>()?;
    m.add_class::<patch::SetAttr>()?;
    m.add_class::<patch::DelAttr>()?;
    m.add_class::<patch::SetItem>()?;
    m.add_class::<patch::DelItem>()?;
    m.add_class::<patch::SetCell>()?;
    m.add_function(wrap_pyfunction!(funcindex::find_functions, m)?)?;
    m.add_function(wrap_pyfunction!(funcindex::find_defined_function, m)?)?;
    m.add_function(wrap_pyfunction!(funcindex::function_index_mode, m)?)?;
    m.add_class::<imports::ImportSite>()?;
    m.add_function(wrap_pyfunction!(imports::scan_import_sites, m)?)?;
    m.add_function(wrap_pyfunction!(imports::scan_source_imports, m)?)?;
    m.add("TemplateError", m.py().get_type::<template::TemplateError>())?;
    m.add("ChildExitedError", m.py().get_type::<template::ChildExitedError>())?;
    m.add("IsolatedCallError", m.py().get_type::<template::IsolatedCallError>())?;
    Ok(())
}
