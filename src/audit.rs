//! The process-wide audit hook's first stop: a native function that hands on only the events hotswap reads.
//!
//! Trade-off: `sys.addaudithook` cannot be undone and its hook runs for every audited operation of the process,
//! among them the `object.__setattr__` event CPython raises for every `__code__`, `__defaults__` and
//! `__kwdefaults__` write of the native apply step. A hook written in Python runs bytecode there, where the
//! interpreter may hand the GIL to another thread between two writes of one function, which could then call it
//! half patched (new code, old keyword defaults). Calling this function runs no bytecode; only the `open` and
//! `exec` events reach the Python handler.

use once_cell::sync::OnceCell;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

static HANDLER: OnceCell<Py<PyAny>> = OnceCell::new();

/// Sets the Python function `audit_gate` hands the `open` and `exec` events to (once per process).
#[pyfunction]
pub fn set_audit_handler(handler: Bound<'_, PyAny>) -> PyResult<()> {
    HANDLER
        .set(handler.unbind())
        .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("the audit handler is already set"))
}

/// The audit hook itself: `sys.addaudithook(_native.audit_gate)`.
#[pyfunction]
pub fn audit_gate(py: Python<'_>, event: &str, args: Bound<'_, PyTuple>) -> PyResult<()> {
    if event != "open" && event != "exec" {
        return Ok(());
    }
    if let Some(handler) = HANDLER.get() {
        handler.bind(py).call1((event, args))?;
    }
    Ok(())
}
