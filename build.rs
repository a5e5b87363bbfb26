//! Emits pyo3's `Py_3_*` cfgs for the interpreter being built against (the function watcher exists from 3.12).
fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
