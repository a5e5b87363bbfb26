//! The apply step of a reload: one native call, holding the GIL, that writes every change of a reload batch
//! through CPython's own setters and undoes the written part if one write fails.
//!
//! The Python planner decides *what* to write; this module only writes it. While it runs no Python-level code
//! runs: every write goes to a C setter (function getsets, `type.__setattr__`, dict and cell API), and every
//! object a write replaces is kept alive here (or in the caller's op list) until the batch is done, so no
//! `__del__` can run in the middle. The one documented exception is an audit hook installed with
//! `sys.addaudithook`, which `func_set_code` notifies (CPython 3.11+ `Objects/funcobject.c`).

use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyCode, PyDict, PyFunction, PyList, PyString, PyTuple, PyType};
use pyo3::{ffi, intern};

use crate::errors::{reserve, try_vec, CoreError};

// The ops a reload batch is made of. Each is a small frozen class whose constructor checks what it is given, so
// an op that exists is one `apply` can write without endangering the interpreter (a closure holding something
// other than cells, or fewer cells than the new code reads, would crash the first call of the function).

/// Gives `func` a new code object, closure, defaults, keyword defaults, annotations, doc and (3.12+) type params.
#[pyclass(name = "PatchFunction", module = "hotswap._native", frozen, get_all)]
pub struct PatchFunction {
    func: Py<PyAny>,
    code: Py<PyAny>,
    closure: Py<PyAny>,
    defaults: Py<PyAny>,
    kwdefaults: Py<PyAny>,
    annotations: Py<PyAny>,
    doc: Py<PyAny>,
    /// `__type_params__` (3.12+); None leaves it alone.
    type_params: Option<Py<PyAny>>,
}

#[pymethods]
impl PatchFunction {
    #[new]
    #[pyo3(signature = (func, code, closure, defaults, kwdefaults, annotations, doc, type_params = None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        func: &Bound<'_, PyAny>,
        code: &Bound<'_, PyAny>,
        closure: &Bound<'_, PyAny>,
        defaults: &Bound<'_, PyAny>,
        kwdefaults: &Bound<'_, PyAny>,
        annotations: &Bound<'_, PyAny>,
        doc: &Bound<'_, PyAny>,
        type_params: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        check_function(func, code, closure)?;
        check_optional::<PyTuple>(defaults, "defaults", "a tuple")?;
        check_optional::<PyDict>(kwdefaults, "kwdefaults", "a dict")?;
        check_optional::<PyDict>(annotations, "annotations", "a dict")?;
        let type_params = type_params.filter(|t| !t.is_none());
        if let Some(type_params) = type_params {
            check_optional::<PyTuple>(type_params, "type_params", "a tuple")?;
        }
        Ok(PatchFunction {
            func: func.clone().unbind(),
            code: code.clone().unbind(),
            closure: closure.clone().unbind(),
            defaults: defaults.clone().unbind(),
            kwdefaults: kwdefaults.clone().unbind(),
            annotations: annotations.clone().unbind(),
            doc: doc.clone().unbind(),
            type_params: type_params.map(|t| t.clone().unbind()),
        })
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("PatchFunction({})", repr(self.func.bind(py)))
    }
}

/// Sets `obj.name = value`: on a class through `type.__setattr__` (skipping a metaclass `__setattr__`, e.g.
/// Enum's member guard), otherwise through the object's own setattr.
#[pyclass(name = "SetAttr", module = "hotswap._native", frozen, get_all)]
pub struct SetAttr {
    obj: Py<PyAny>,
    name: Py<PyString>,
    value: Py<PyAny>,
}

#[pymethods]
impl SetAttr {
    #[new]
    fn py_new(obj: Py<PyAny>, name: Py<PyString>, value: Py<PyAny>) -> Self {
        SetAttr { obj, name, value }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("SetAttr({}, {})", repr(self.obj.bind(py)), repr(self.name.bind(py)))
    }
}

/// Deletes `obj.name` (classes through `type.__delattr__`).
#[pyclass(name = "DelAttr", module = "hotswap._native", frozen, get_all)]
pub struct DelAttr {
    obj: Py<PyAny>,
    name: Py<PyString>,
}

#[pymethods]
impl DelAttr {
    #[new]
    fn py_new(obj: Py<PyAny>, name: Py<PyString>) -> Self {
        DelAttr { obj, name }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("DelAttr({}, {})", repr(self.obj.bind(py)), repr(self.name.bind(py)))
    }
}

/// Sets `mapping[key] = value` on a dict (a module's namespace).
#[pyclass(name = "SetItem", module = "hotswap._native", frozen, get_all)]
pub struct SetItem {
    mapping: Py<PyDict>,
    key: Py<PyAny>,
    value: Py<PyAny>,
}

#[pymethods]
impl SetItem {
    #[new]
    fn py_new(mapping: Py<PyDict>, key: Py<PyAny>, value: Py<PyAny>) -> Self {
        SetItem { mapping, key, value }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("SetItem({})", repr(self.key.bind(py)))
    }
}

/// Deletes `mapping[key]` from a dict, if present.
#[pyclass(name = "DelItem", module = "hotswap._native", frozen, get_all)]
pub struct DelItem {
    mapping: Py<PyDict>,
    key: Py<PyAny>,
}

#[pymethods]
impl DelItem {
    #[new]
    fn py_new(mapping: Py<PyDict>, key: Py<PyAny>) -> Self {
        DelItem { mapping, key }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("DelItem({})", repr(self.key.bind(py)))
    }
}

/// Sets a cell's contents; without `value`, empties it.
#[pyclass(name = "SetCell", module = "hotswap._native", frozen, get_all)]
pub struct SetCell {
    cell: Py<PyAny>,
    value: Option<Py<PyAny>>,
}

#[pymethods]
impl SetCell {
    #[new]
    #[pyo3(signature = (cell, *value))]
    fn py_new(cell: &Bound<'_, PyAny>, value: &Bound<'_, PyTuple>) -> PyResult<Self> {
        if !is_cell(cell) {
            return Err(CoreError::WrongType(format!("SetCell needs a cell, not {}", type_name(cell))).into());
        }
        if value.len() > 1 {
            return Err(CoreError::WrongType("SetCell takes a cell and at most one value".into()).into());
        }
        Ok(SetCell {
            cell: cell.clone().unbind(),
            value: value.iter().next().map(Bound::unbind),
        })
    }

    fn __repr__(&self) -> String {
        format!("SetCell(<cell>{})", if self.value.is_some() { ", ..." } else { "" })
    }
}

/// Whether `obj` is exactly a cell object (what closures hold).
fn is_cell(obj: &Bound<'_, PyAny>) -> bool {
    // SAFETY: PyCell_Check only compares the type pointer of a live object (`obj` is borrowed for the call). Public
    // C API (cellobject.h), checked on CPython 3.9-3.13; the same macro in 3.14's cellobject.h (read, untested).
    unsafe { ffi::PyCell_Check(obj.as_ptr()) != 0 }
}

fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<?>".into())
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

fn check_optional<T: pyo3::type_object::PyTypeCheck>(
    value: &Bound<'_, PyAny>,
    what: &str,
    expected: &str,
) -> Result<(), CoreError> {
    if value.is_none() || value.is_instance_of::<T>() {
        Ok(())
    } else {
        Err(CoreError::WrongType(format!(
            "{what} must be None or {expected}, not {}",
            type_name(value)
        )))
    }
}

/// What `func_set_code` and `PyFunction_SetClosure` rely on, and the second does not check: a real function, a real
/// code object, and a closure of exactly as many cells (cells, nothing else) as the code has free variables.
fn check_function(func: &Bound<'_, PyAny>, code: &Bound<'_, PyAny>, closure: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = func.py();
    if !func.is_instance_of::<PyFunction>() {
        return Err(CoreError::WrongType(format!(
            "PatchFunction needs a Python function, not {}",
            type_name(func)
        ))
        .into());
    }
    if !code.is_instance_of::<PyCode>() {
        return Err(CoreError::WrongType(format!("code must be a code object, not {}", type_name(code))).into());
    }
    let nfree = code.getattr(intern!(py, "co_freevars"))?.len()?;
    let cells = if closure.is_none() {
        0
    } else {
        let tuple = closure.cast::<PyTuple>().map_err(|_| {
            CoreError::WrongType(format!(
                "closure must be None or a tuple of cells, not {}",
                type_name(closure)
            ))
        })?;
        if let Some(item) = tuple.iter().find(|item| !is_cell(item)) {
            return Err(CoreError::WrongType(format!("closure must hold only cells, not {}", type_name(&item))).into());
        }
        tuple.len()
    };
    if cells != nfree {
        let name = code.getattr(intern!(py, "co_name"))?;
        return Err(CoreError::BadValue(format!(
            "{name}() has {nfree} free variables but the closure holds {cells} cells"
        ))
        .into());
    }
    Ok(())
}

/// One write, decoded from an op.
enum Op<'py> {
    Func {
        func: Bound<'py, PyAny>,
        fields: FuncFields<'py>,
    },
    SetAttr {
        obj: Bound<'py, PyAny>,
        name: Bound<'py, PyString>,
        value: Option<Bound<'py, PyAny>>,
    },
    SetItem {
        dict: Bound<'py, PyDict>,
        key: Bound<'py, PyAny>,
        value: Option<Bound<'py, PyAny>>,
    },
    Cell {
        cell: Bound<'py, PyAny>,
        value: Option<Bound<'py, PyAny>>,
    },
}

/// What a function patch writes, in the order it writes it.
struct FuncFields<'py> {
    closure: Bound<'py, PyAny>,
    code: Bound<'py, PyAny>,
    defaults: Bound<'py, PyAny>,
    kwdefaults: Bound<'py, PyAny>,
    annotations: Bound<'py, PyAny>,
    doc: Bound<'py, PyAny>,
    /// `__type_params__` (3.12+); None leaves it alone.
    type_params: Option<Bound<'py, PyAny>>,
}

/// What an applied op replaced, to undo it.
enum Undo<'py> {
    Func {
        func: Bound<'py, PyAny>,
        old: FuncFields<'py>,
    },
    SetAttr {
        obj: Bound<'py, PyAny>,
        name: Bound<'py, PyString>,
        old: Option<Bound<'py, PyAny>>,
    },
    SetItem {
        dict: Bound<'py, PyDict>,
        key: Bound<'py, PyAny>,
        old: Option<Bound<'py, PyAny>>,
    },
    Cell {
        cell: Bound<'py, PyAny>,
        old: Option<Bound<'py, PyAny>>,
    },
}

fn decode<'py>(op: &Bound<'py, PyAny>) -> PyResult<Op<'py>> {
    let py = op.py();
    if let Ok(op) = op.cast::<PatchFunction>() {
        let op = op.get();
        return Ok(Op::Func {
            func: op.func.bind(py).clone(),
            fields: FuncFields {
                closure: op.closure.bind(py).clone(),
                code: op.code.bind(py).clone(),
                defaults: op.defaults.bind(py).clone(),
                kwdefaults: op.kwdefaults.bind(py).clone(),
                annotations: op.annotations.bind(py).clone(),
                doc: op.doc.bind(py).clone(),
                type_params: op.type_params.as_ref().map(|t| t.bind(py).clone()),
            },
        });
    }
    if let Ok(op) = op.cast::<SetAttr>() {
        let op = op.get();
        return Ok(Op::SetAttr {
            obj: op.obj.bind(py).clone(),
            name: op.name.bind(py).clone(),
            value: Some(op.value.bind(py).clone()),
        });
    }
    if let Ok(op) = op.cast::<DelAttr>() {
        let op = op.get();
        return Ok(Op::SetAttr {
            obj: op.obj.bind(py).clone(),
            name: op.name.bind(py).clone(),
            value: None,
        });
    }
    if let Ok(op) = op.cast::<SetItem>() {
        let op = op.get();
        return Ok(Op::SetItem {
            dict: op.mapping.bind(py).clone(),
            key: op.key.bind(py).clone(),
            value: Some(op.value.bind(py).clone()),
        });
    }
    if let Ok(op) = op.cast::<DelItem>() {
        let op = op.get();
        return Ok(Op::SetItem {
            dict: op.mapping.bind(py).clone(),
            key: op.key.bind(py).clone(),
            value: None,
        });
    }
    if let Ok(op) = op.cast::<SetCell>() {
        let op = op.get();
        return Ok(Op::Cell {
            cell: op.cell.bind(py).clone(),
            value: op.value.as_ref().map(|v| v.bind(py).clone()),
        });
    }
    Err(CoreError::WrongType(format!(
        "a patch op must be PatchFunction, SetAttr, DelAttr, SetItem, DelItem or SetCell, not {}",
        type_name(op)
    ))
    .into())
}

fn read_func<'py>(func: &Bound<'py, PyAny>, with_type_params: bool) -> PyResult<FuncFields<'py>> {
    let py = func.py();
    Ok(FuncFields {
        closure: func.getattr(intern!(py, "__closure__"))?,
        code: func.getattr(intern!(py, "__code__"))?,
        defaults: func.getattr(intern!(py, "__defaults__"))?,
        kwdefaults: func.getattr(intern!(py, "__kwdefaults__"))?,
        annotations: func.getattr(intern!(py, "__annotations__"))?,
        doc: func.getattr(intern!(py, "__doc__"))?,
        type_params: if with_type_params {
            Some(func.getattr(intern!(py, "__type_params__"))?)
        } else {
            None
        },
    })
}

fn set_closure(func: &Bound<'_, PyAny>, closure: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: `func` is a PyFunctionObject and `closure` is None or a tuple of exactly as many cells as the code
    // being set has free variables (checked by `check_function` when the op was made; a function's own closure
    // when undoing), as PyFunction_SetClosure requires (it checks only the tuple type). It takes its own reference
    // to `closure` and releases the old closure, which the caller keeps alive in `Undo` until the batch ends.
    // Public C API, checked on CPython 3.9-3.13; from 3.11 it also resets the function's version tag,
    // invalidating specialised call sites. 3.14 (read, untested): unchanged, and it sends no watcher event.
    let rc = unsafe { ffi::PyFunction_SetClosure(func.as_ptr(), closure.as_ptr()) };
    if rc < 0 {
        return Err(PyErr::fetch(func.py()));
    }
    Ok(())
}

/// Writes a function's fields in the order that is safe under warmed call sites: closure, then `__code__`
/// through its setter (which checks the free-variable count against the closure just set and resets the
/// version tag), then the rest.
///
/// CPython 3.14 (read in its source, untested): `func_set_code` also warns (DeprecationWarning, an error under
/// `-W error`) when the new code's generator/coroutine kind differs from the old one's; and annotations are
/// lazy (PEP 649): reading `__annotations__` calls `__annotate__` (which can raise NameError on a forward
/// reference), and setting it clears `__annotate__`, so there the op should carry `__annotate__` instead.
fn write_func(func: &Bound<'_, PyAny>, new: &FuncFields<'_>, old_closure: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = func.py();
    set_closure(func, &new.closure)?;
    if let Err(err) = func.setattr(intern!(py, "__code__"), &new.code) {
        set_closure(func, old_closure)?;
        return Err(err);
    }
    func.setattr(intern!(py, "__defaults__"), &new.defaults)?;
    func.setattr(intern!(py, "__kwdefaults__"), &new.kwdefaults)?;
    func.setattr(intern!(py, "__annotations__"), &new.annotations)?;
    func.setattr(intern!(py, "__doc__"), &new.doc)?;
    if let Some(type_params) = &new.type_params {
        func.setattr(intern!(py, "__type_params__"), type_params)?;
    }
    // After every field is written: filing the function can allocate, and a collection then runs the gc
    // callbacks (Python code, where another thread may run and call the function).
    crate::funcindex::code_changed(func, &new.code);
    Ok(())
}

fn type_setattr(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let py = obj.py();
    let ty = py.get_type::<PyType>();
    match value {
        Some(value) => ty
            .call_method1(intern!(py, "__setattr__"), (obj, name, value))
            .map(drop),
        None => ty.call_method1(intern!(py, "__delattr__"), (obj, name)).map(drop),
    }
}

/// Whether a class's metatype has a `__setattr__` of its own written in C (ctypes' `PyCStructType`, which keeps
/// `_fields_` and the type's storage info in step): such a setter must be used, `type.__setattr__` refuses it
/// ("can't apply this __setattr__ to _ctypes.PyCStructType object"). A metatype's `__setattr__` written in Python
/// (Enum's member guard) is skipped.
fn has_native_meta_setattr(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = obj.py();
    let own = obj.get_type().getattr(intern!(py, "__setattr__"))?;
    if own.is(&py.get_type::<PyType>().getattr(intern!(py, "__setattr__"))?) {
        return Ok(false);
    }
    Ok(own.get_type().name()?.to_cow()? == "wrapper_descriptor")
}

fn set_attr(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    if obj.is_instance_of::<PyType>() && !has_native_meta_setattr(obj)? {
        return type_setattr(obj, name, value);
    }
    match value {
        Some(value) => obj.setattr(name, value),
        None => obj.delattr(name),
    }
}

/// The value stored under `name` in a class's own namespace, or in an object's `__dict__`.
fn own_attr<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = obj.py();
    if obj.is_instance_of::<PyType>() {
        // A class's namespace is a mappingproxy: its item lookup is C code and runs no descriptor.
        return match obj.getattr(intern!(py, "__dict__"))?.get_item(name) {
            Ok(value) => Ok(Some(value)),
            Err(err) if err.is_instance_of::<PyKeyError>(py) => Ok(None),
            Err(err) => Err(err),
        };
    }
    // Attributes that live in a getset (like `__class__`) are read directly.
    obj.getattr(name).map(Some).or_else(|_| Ok(None))
}

fn cell_get<'py>(cell: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    match cell.getattr(intern!(cell.py(), "cell_contents")) {
        Ok(v) => Ok(Some(v)),
        Err(err) if err.is_instance_of::<PyValueError>(cell.py()) => Ok(None),
        Err(err) => Err(err),
    }
}

fn cell_set(cell: &Bound<'_, PyAny>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    // SAFETY: PyCell_Set type-checks `cell` itself (raising SystemError on a non-cell) and takes a new
    // reference to `value` (NULL empties the cell). The old contents are held by the caller's Undo entry.
    // Public C API, checked on CPython 3.9-3.13; unchanged in 3.14 (read, untested).
    let rc = unsafe { ffi::PyCell_Set(cell.as_ptr(), value.map_or(std::ptr::null_mut(), |v| v.as_ptr())) };
    if rc < 0 {
        return Err(PyErr::fetch(cell.py()));
    }
    Ok(())
}

fn apply_one<'py>(op: Op<'py>, with_type_params: bool) -> PyResult<Undo<'py>> {
    Ok(match op {
        Op::Func { func, fields } => {
            let old = read_func(&func, with_type_params && fields.type_params.is_some())?;
            if let Err(err) = write_func(&func, &fields, &old.closure) {
                // Put back whatever part was written; the old fields are all still valid for this function.
                let _ = write_func(&func, &old, &old.closure);
                return Err(err);
            }
            Undo::Func { func, old }
        }
        Op::SetAttr { obj, name, value } => {
            let old = own_attr(&obj, &name)?;
            set_attr(&obj, &name, value.as_ref())?;
            Undo::SetAttr { obj, name, old }
        }
        Op::SetItem { dict, key, value } => {
            let old = dict.get_item(&key)?;
            match &value {
                Some(value) => dict.set_item(&key, value)?,
                None if old.is_some() => dict.del_item(&key)?,
                None => {}
            }
            Undo::SetItem { dict, key, old }
        }
        Op::Cell { cell, value } => {
            let old = cell_get(&cell)?;
            cell_set(&cell, value.as_ref())?;
            Undo::Cell { cell, old }
        }
    })
}

fn undo_one(undo: &Undo<'_>) -> PyResult<()> {
    match undo {
        Undo::Func { func, old } => write_func(func, old, &old.closure),
        Undo::SetAttr { obj, name, old } => set_attr(obj, name, old.as_ref()),
        Undo::SetItem { dict, key, old } => match old {
            Some(old) => dict.set_item(key, old),
            None => dict.del_item(key),
        },
        Undo::Cell { cell, old } => cell_set(cell, old.as_ref()),
    }
}

/// The op that puts back what an applied op replaced.
fn undo_op<'py>(py: Python<'py>, undo: &Undo<'py>) -> PyResult<Bound<'py, PyAny>> {
    Ok(match undo {
        Undo::Func { func, old } => Bound::new(
            py,
            PatchFunction {
                func: func.clone().unbind(),
                code: old.code.clone().unbind(),
                closure: old.closure.clone().unbind(),
                defaults: old.defaults.clone().unbind(),
                kwdefaults: old.kwdefaults.clone().unbind(),
                annotations: old.annotations.clone().unbind(),
                doc: old.doc.clone().unbind(),
                type_params: old.type_params.clone().map(Bound::unbind),
            },
        )?
        .into_any(),
        Undo::SetAttr {
            obj,
            name,
            old: Some(old),
        } => Bound::new(
            py,
            SetAttr {
                obj: obj.clone().unbind(),
                name: name.clone().unbind(),
                value: old.clone().unbind(),
            },
        )?
        .into_any(),
        Undo::SetAttr { obj, name, old: None } => Bound::new(
            py,
            DelAttr {
                obj: obj.clone().unbind(),
                name: name.clone().unbind(),
            },
        )?
        .into_any(),
        Undo::SetItem {
            dict,
            key,
            old: Some(old),
        } => Bound::new(
            py,
            SetItem {
                mapping: dict.clone().unbind(),
                key: key.clone().unbind(),
                value: old.clone().unbind(),
            },
        )?
        .into_any(),
        Undo::SetItem { dict, key, old: None } => Bound::new(
            py,
            DelItem {
                mapping: dict.clone().unbind(),
                key: key.clone().unbind(),
            },
        )?
        .into_any(),
        Undo::Cell { cell, old } => Bound::new(
            py,
            SetCell {
                cell: cell.clone().unbind(),
                value: old.clone().map(Bound::unbind),
            },
        )?
        .into_any(),
    })
}

/// Applies a reload batch: every op, or, if one fails, none (the applied ones are undone in reverse order).
///
/// Returns the number of ops applied. With `undo` (a list), also appends to it, before returning, the list of ops
/// that put everything back (in the order to apply them): a caller that applies a reload in several batches and
/// may need to roll back can hold that list in its undo log *before* the call, so that no Python bytecode, where a
/// signal, an asynchronous exception or a fork could step in, falls between the writes and their record. Objects
/// replaced by the batch are released only when this returns. An allocation that fails raises MemoryError with
/// nothing applied.
#[pyfunction]
#[pyo3(signature = (ops, *, undo = None))]
pub fn apply<'py>(py: Python<'py>, ops: &Bound<'py, PyAny>, undo: Option<&Bound<'py, PyList>>) -> PyResult<usize> {
    let with_type_params = py.version_info() >= (3, 12);
    let mut decoded: Vec<Op<'_>> = try_vec(ops.len().unwrap_or(0), "the ops of a reload batch")?;
    for op in ops.try_iter()? {
        reserve(&mut decoded, 1, "the ops of a reload batch")?;
        decoded.push(decode(&op?)?);
    }
    let mut done: Vec<Undo<'_>> = try_vec(decoded.len(), "the undo log of a reload batch")?;
    // Room for the record too, reserved before anything is written: past this point nothing grows but `done`.
    let mut inverse: Vec<Bound<'py, PyAny>> = try_vec(
        if undo.is_some() { decoded.len() } else { 0 },
        "the undo log of a reload batch",
    )?;
    for (index, op) in decoded.into_iter().enumerate() {
        match apply_one(op, with_type_params) {
            Ok(undo) => done.push(undo),
            Err(err) => {
                undo_all(&done);
                tracing::debug!(index, %err, "patch batch failed and was undone");
                return Err(err);
            }
        }
    }
    let count = done.len();
    if let Some(record) = undo {
        let built = (|| -> PyResult<()> {
            for u in done.iter().rev() {
                inverse.push(undo_op(py, u)?);
            }
            record.append(PyList::new(py, &inverse)?)?;
            Ok(())
        })();
        if let Err(err) = built {
            // The record could not be made (out of memory): a batch that cannot be undone is not applied.
            undo_all(&done);
            return Err(err);
        }
    }
    // `done` holds the replaced objects; dropping it here, after the last write, is where finalizers may run.
    drop(done);
    Ok(count)
}

fn undo_all(done: &[Undo<'_>]) {
    for undo in done.iter().rev() {
        if let Err(undo_err) = undo_one(undo) {
            tracing::error!(%undo_err, "could not undo a patch op after a failed batch");
        }
    }
}
