//! The `hotswap._native` extension module: exports only. Each concern lives in its own module.

use pyo3::prelude::*;

pub mod diff;
pub mod errors;
pub mod funcindex;
pub mod imports;
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

/// Splits `new` reusing what `old` (split into `old_stmts`) shares with it; see `stmts::split_incremental`.
#[pyfunction]
#[pyo3(signature = (old, old_stmts, new, path = "<unknown>"))]
fn split_statements_incremental(
    py: Python<'_>,
    old: &str,
    old_stmts: Vec<PyRef<'_, stmts::Stmt>>,
    new: &str,
    path: &str,
) -> PyResult<Vec<stmts::Stmt>> {
    let mut owned: Vec<stmts::Stmt> = errors::try_vec(old_stmts.len(), "the module's statements")?;
    owned.extend(old_stmts.iter().map(|s| (**s).clone()));
    Ok(py.detach(|| stmts::split_incremental(old, &owned, new, path))?)
}

/// Bytes the planner may need per statement at its peak (keys, indexes, the steps); probed like parsing's.
const PLAN_BYTES_PER_STMT: usize = 512;

/// Plans a reload from the statements a module runs (`old`) to the new ones; see `diff::plan`. `rebound`:
/// names another module's reload rebound here (see `diff::plan_rebinding`).
#[pyfunction]
#[pyo3(signature = (old, new, *, whole_module = false, rebound = Vec::new()))]
fn plan(
    old: Vec<PyRef<'_, stmts::Stmt>>,
    new: Vec<PyRef<'_, stmts::Stmt>>,
    whole_module: bool,
    rebound: Vec<String>,
) -> PyResult<diff::Plan> {
    errors::headroom(
        (old.len() + new.len()).saturating_mul(PLAN_BYTES_PER_STMT),
        "planning the reload",
    )?;
    let old: Vec<&stmts::Stmt> = old.iter().map(|s| &**s).collect();
    let new: Vec<&stmts::Stmt> = new.iter().map(|s| &**s).collect();
    Ok(diff::plan_rebinding(&old, &new, whole_module, &rebound))
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
    m.add_function(wrap_pyfunction!(split_statements_incremental, m)?)?;
    m.add_class::<diff::Plan>()?;
    m.add_class::<diff::Step>()?;
    m.add_class::<diff::MemberPlan>()?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(patch::apply, m)?)?;
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
