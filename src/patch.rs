//! The apply step of a reload: one native call, holding the GIL, that writes every change of a reload batch
//! through CPython's own setters and undoes the written part if one write fails.
//!
//! The Python planner decides *what* to write; this module only writes it. While it runs no Python-level code
//! runs: every write goes to a C setter (function getsets, `type.__setattr__`, dict and cell API), and every
//! object a write replaces is kept alive here (or in the caller's op list) until the batch is done, so no
//! `__del__` can run in the middle. The one documented exception is an audit hook installed with
//! `sys.addaudithook`, which `func_set_code` notifies (CPython 3.11+ `Objects/funcobject.c`).

use pyo3::exceptions::{PyKeyError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFunction, PyString, PyTuple, PyType};
use pyo3::{ffi, intern};

/// One write, decoded from the planner's tuple.
enum Op<'py> {
    /// ("func", function, code, closure | None, defaults, kwdefaults, annotations, doc, type_params | None)
    Func {
        func: Bound<'py, PyAny>,
        fields: FuncFields<'py>,
    },
    /// ("setattr", obj, name, value) and ("delattr", obj, name): on a class through `type.__setattr__`
    /// (skipping a metaclass `__setattr__`, e.g. Enum's member guard), otherwise the object's own setattr.
    SetAttr {
        obj: Bound<'py, PyAny>,
        name: Bound<'py, PyString>,
        value: Option<Bound<'py, PyAny>>,
    },
    /// ("setitem", dict, key, value) and ("delitem", dict, key)
    SetItem {
        dict: Bound<'py, PyDict>,
        key: Bound<'py, PyAny>,
        value: Option<Bound<'py, PyAny>>,
    },
    /// ("cell", cell, value), or ("cell", cell) to empty the cell
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
    let op = op
        .cast::<PyTuple>()
        .map_err(|_| PyTypeError::new_err("patch op must be a tuple"))?;
    let tag: String = op.get_item(0)?.extract()?;
    let arg = |i: usize| op.get_item(i);
    let expect = |n: usize| {
        if op.len() == n {
            Ok(())
        } else {
            Err(PyValueError::new_err(format!(
                "patch op {tag:?} takes {n} items, got {}",
                op.len()
            )))
        }
    };
    Ok(match tag.as_str() {
        "func" => {
            expect(9)?;
            let func = arg(1)?;
            if !func.is_instance_of::<PyFunction>() {
                return Err(PyTypeError::new_err("'func' op needs a Python function"));
            }
            let type_params = arg(8)?;
            Op::Func {
                func,
                fields: FuncFields {
                    code: arg(2)?,
                    closure: arg(3)?,
                    defaults: arg(4)?,
                    kwdefaults: arg(5)?,
                    annotations: arg(6)?,
                    doc: arg(7)?,
                    type_params: (!type_params.is_none()).then_some(type_params),
                },
            }
        }
        "setattr" | "delattr" => {
            expect(if tag == "setattr" { 4 } else { 3 })?;
            let value = if tag == "setattr" { Some(arg(3)?) } else { None };
            Op::SetAttr {
                obj: arg(1)?,
                name: arg(2)?.cast_into::<PyString>()?,
                value,
            }
        }
        "setitem" | "delitem" => {
            expect(if tag == "setitem" { 4 } else { 3 })?;
            let value = if tag == "setitem" { Some(arg(3)?) } else { None };
            Op::SetItem {
                dict: arg(1)?.cast_into::<PyDict>()?,
                key: arg(2)?,
                value,
            }
        }
        "cell" => {
            if op.len() != 2 {
                expect(3)?;
            }
            Op::Cell {
                cell: arg(1)?,
                value: if op.len() == 3 { Some(arg(2)?) } else { None },
            }
        }
        other => return Err(PyValueError::new_err(format!("unknown patch op {other:?}"))),
    })
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
    if !closure.is_none() && !closure.is_instance_of::<PyTuple>() {
        return Err(PyTypeError::new_err("closure must be None or a tuple of cells"));
    }
    // SAFETY: `func` is a PyFunctionObject (checked in `decode`) and `closure` is None or a tuple, as
    // PyFunction_SetClosure requires; it takes its own reference to `closure` and releases the old closure,
    // which the caller keeps alive in `Undo` until the batch ends. Public C API on CPython 3.9-3.13; from 3.11
    // it also resets the function's version tag, invalidating specialised call sites.
    let rc = unsafe { ffi::PyFunction_SetClosure(func.as_ptr(), closure.as_ptr()) };
    if rc < 0 {
        return Err(PyErr::fetch(func.py()));
    }
    Ok(())
}

/// Writes a function's fields in the order that is safe under warmed call sites: closure, then `__code__`
/// through its setter (which checks the free-variable count against the closure just set and resets the
/// version tag), then the rest.
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
    // Public C API on CPython 3.9-3.13.
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
fn undo_op<'py>(py: Python<'py>, undo: Undo<'py>) -> PyResult<Bound<'py, PyTuple>> {
    let none = || py.None().into_bound(py);
    match undo {
        Undo::Func { func, old } => PyTuple::new(
            py,
            [
                PyString::new(py, "func").into_any(),
                func,
                old.code,
                old.closure,
                old.defaults,
                old.kwdefaults,
                old.annotations,
                old.doc,
                old.type_params.unwrap_or_else(none),
            ],
        ),
        Undo::SetAttr {
            obj,
            name,
            old: Some(old),
        } => PyTuple::new(py, [PyString::new(py, "setattr").into_any(), obj, name.into_any(), old]),
        Undo::SetAttr { obj, name, old: None } => {
            PyTuple::new(py, [PyString::new(py, "delattr").into_any(), obj, name.into_any()])
        }
        Undo::SetItem {
            dict,
            key,
            old: Some(old),
        } => PyTuple::new(py, [PyString::new(py, "setitem").into_any(), dict.into_any(), key, old]),
        Undo::SetItem { dict, key, old: None } => {
            PyTuple::new(py, [PyString::new(py, "delitem").into_any(), dict.into_any(), key])
        }
        Undo::Cell { cell, old: Some(old) } => PyTuple::new(py, [PyString::new(py, "cell").into_any(), cell, old]),
        Undo::Cell { cell, old: None } => PyTuple::new(py, [PyString::new(py, "cell").into_any(), cell]),
    }
}

/// Applies a reload batch: every op, or, if one fails, none (the applied ones are undone in reverse order).
///
/// Returns the number of ops applied or, with `undo=True`, the ops that would put everything back (in the
/// order to apply them), for a caller that applies a reload in several batches and may need to roll back.
/// Objects replaced by the batch are released only when this returns.
#[pyfunction]
#[pyo3(signature = (ops, *, undo = false))]
pub fn apply<'py>(py: Python<'py>, ops: &Bound<'py, PyAny>, undo: bool) -> PyResult<Bound<'py, PyAny>> {
    let with_type_params = py.version_info() >= (3, 12);
    let decoded: Vec<Op<'_>> = ops.try_iter()?.map(|op| decode(&op?)).collect::<PyResult<_>>()?;
    let mut done: Vec<Undo<'_>> = Vec::with_capacity(decoded.len());
    for (index, op) in decoded.into_iter().enumerate() {
        match apply_one(op, with_type_params) {
            Ok(undo) => done.push(undo),
            Err(err) => {
                for undo in done.iter().rev() {
                    if let Err(undo_err) = undo_one(undo) {
                        tracing::error!(%undo_err, "could not undo a patch op after a failed batch");
                    }
                }
                tracing::debug!(index, %err, "patch batch failed and was undone");
                return Err(err);
            }
        }
    }
    if undo {
        let inverse = done
            .into_iter()
            .rev()
            .map(|u| undo_op(py, u))
            .collect::<PyResult<Vec<_>>>()?;
        return Ok(pyo3::types::PyList::new(py, inverse)?.into_any());
    }
    let count = done.len();
    // `done` holds the replaced objects; dropping it here, after the last write, is where finalizers may run.
    drop(done);
    Ok(count.into_pyobject(py)?.into_any())
}

/// Finds the live Python functions whose `__code__` is one of `codes`: for each code, the list of functions.
///
/// One sweep over `gc.get_objects()` (functions are always GC-tracked), comparing code pointers natively, so a
/// heap of millions of objects costs a few milliseconds rather than a Python-level loop.
#[pyfunction]
pub fn find_functions<'py>(py: Python<'py>, codes: Vec<Bound<'py, PyAny>>) -> PyResult<Vec<Vec<Bound<'py, PyAny>>>> {
    let mut found: Vec<Vec<Bound<'py, PyAny>>> = vec![Vec::new(); codes.len()];
    if codes.is_empty() {
        return Ok(found);
    }
    let index: std::collections::HashMap<*mut ffi::PyObject, usize> =
        codes.iter().enumerate().map(|(i, code)| (code.as_ptr(), i)).collect();
    let objects = py.import(intern!(py, "gc"))?.call_method0(intern!(py, "get_objects"))?;
    let objects = objects.cast::<pyo3::types::PyList>()?;
    for obj in objects.iter() {
        if !obj.is_instance_of::<PyFunction>() {
            continue;
        }
        // SAFETY: `obj` is a PyFunctionObject (checked just above) kept alive by `objects`;
        // PyFunction_GetCode returns a borrowed, non-NULL reference that is only compared as a pointer here.
        // Public C API on CPython 3.9-3.13.
        let code = unsafe { ffi::PyFunction_GetCode(obj.as_ptr()) };
        if let Some(&i) = index.get(&code) {
            found[i].push(obj);
        }
    }
    Ok(found)
}
