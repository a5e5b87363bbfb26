//! Which live functions run a given code object, found without sweeping the heap: the closures and nested
//! functions a reload must also patch. CPython 3.12+: a function watcher keeps an exact code -> functions index.
//! 3.9-3.11: a gc callback indexes nested functions (weakly) as they leave the youngest generation, and a query
//! searches only that generation besides the index.
//!
//! The index starts on the first query (one sweep of the heap then, for the functions made before it started).
//! It never keeps a function alive: 3.12+ stores addresses that a function's DESTROY event removes; 3.9-3.11
//! stores weak references and checks each function's current code when it is read.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyFunction, PyList, PyWeakrefReference};
use pyo3::{ffi, intern};

/// Code objects whose functions never outlive the call that made them: a comprehension's or generator
/// expression's function is called at once and dropped (a suspended generator keeps its own code, which no
/// patch can change), so nothing is ever searched for them.
const CALL_SCOPED: [&str; 4] = ["<listcomp>", "<dictcomp>", "<setcomp>", "<genexpr>"];
/// `CO_NESTED` (Include/cpython/code.h, 0x10 on 3.9-3.13 and in 3.14): set on the code of a function defined inside
/// another function.
const CO_NESTED: i64 = 0x10;

type Addr = usize;

/// How queries are answered in this process.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Not started yet.
    Off,
    /// 3.12+: the function watcher keeps `WATCHED` exact.
    Watcher,
    /// 3.9-3.11: the gc callback fills `YOUNG_SEEN`; the youngest generation is searched per query.
    Gc,
}

static MODE: Mutex<Mode> = Mutex::new(Mode::Off);

// ---- 3.12+: function watcher ------------------------------------------------------------------------------

/// Hashes an object address: addresses are distinct and 16-byte aligned, so a multiply spreads them well, far
/// cheaper than SipHash on the path every function creation takes (3.12+).
#[derive(Default, Clone, Copy)]
struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, addr: usize) {
        self.0 = ((addr as u64) >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type AddrMap<V> = HashMap<Addr, V, BuildHasherDefault<AddrHasher>>;
type AddrSet = HashSet<Addr, BuildHasherDefault<AddrHasher>>;

/// The functions of one code object: most codes have one (no allocation), some a few, a factory called in a loop
/// many.
enum Funcs {
    One(Addr),
    Few(Vec<Addr>),
    Many(AddrSet),
}

impl Funcs {
    const FEW: usize = 16;

    #[cfg_attr(not(Py_3_12), allow(dead_code))]
    fn insert(&mut self, func: Addr) {
        match self {
            Funcs::One(f) if *f == func => {}
            Funcs::One(f) => *self = Funcs::Few(vec![*f, func]),
            Funcs::Few(list) if list.contains(&func) => {}
            Funcs::Few(list) if list.len() < Self::FEW => list.push(func),
            Funcs::Few(list) => {
                let mut set: AddrSet = list.drain(..).collect();
                set.insert(func);
                *self = Funcs::Many(set);
            }
            Funcs::Many(set) => {
                set.insert(func);
            }
        }
    }

    /// Removes `func`; returns whether none are left.
    #[cfg_attr(not(Py_3_12), allow(dead_code))]
    fn remove(&mut self, func: Addr) -> bool {
        match self {
            Funcs::One(f) => *f == func,
            Funcs::Few(list) => {
                if let Some(i) = list.iter().position(|&f| f == func) {
                    list.swap_remove(i);
                }
                list.is_empty()
            }
            Funcs::Many(set) => {
                set.remove(&func);
                set.is_empty()
            }
        }
    }

    fn iter(&self) -> Box<dyn Iterator<Item = Addr> + '_> {
        match self {
            Funcs::One(f) => Box::new(std::iter::once(*f)),
            Funcs::Few(list) => Box::new(list.iter().copied()),
            Funcs::Many(set) => Box::new(set.iter().copied()),
        }
    }
}

/// code address -> addresses of the live functions whose `__code__` it is. Only touched with the GIL held, and
/// never while Python code can run (so a watcher event can never find it locked).
static WATCHED: Mutex<Option<AddrMap<Funcs>>> = Mutex::new(None);

#[cfg_attr(not(Py_3_12), allow(dead_code))]
fn watched_insert(index: &mut AddrMap<Funcs>, code: Addr, func: Addr) {
    match index.entry(code) {
        Entry::Occupied(mut funcs) => funcs.get_mut().insert(func),
        Entry::Vacant(slot) => {
            slot.insert(Funcs::One(func));
        }
    }
}

#[cfg_attr(not(Py_3_12), allow(dead_code))]
fn watched_remove(index: &mut AddrMap<Funcs>, code: Addr, func: Addr) {
    if let Some(funcs) = index.get_mut(&code) {
        if funcs.remove(func) {
            index.remove(&code);
        }
    }
}

#[cfg(Py_3_12)]
mod watcher {
    use super::*;
    use std::os::raw::c_int;

    // Include/cpython/funcobject.h (3.12, 3.13): `PyFunction_WatchEvent`, in the order of PY_FOREACH_FUNC_EVENT.
    // 3.14 (read, untested) appends MODIFY_QUALNAME after MODIFY_KWDEFAULTS: these values hold, and the callback
    // ignores events it does not know.
    const EVENT_CREATE: c_int = 0;
    const EVENT_DESTROY: c_int = 1;
    const EVENT_MODIFY_CODE: c_int = 2;

    type WatchCallback = unsafe extern "C" fn(c_int, *mut ffi::PyObject, *mut ffi::PyObject) -> c_int;

    extern "C" {
        // pyo3-ffi 0.30 does not declare these (public C API since CPython 3.12).
        fn PyFunction_AddWatcher(callback: WatchCallback) -> c_int;
    }

    /// Keeps `WATCHED` exact. Called by CPython with the GIL held: after a function is fully made (CREATE),
    /// before it is freed (DESTROY), before its `__code__` changes to `new_value` (MODIFY_CODE).
    unsafe extern "C" fn on_function_event(
        event: c_int,
        func: *mut ffi::PyObject,
        new_value: *mut ffi::PyObject,
    ) -> c_int {
        if !matches!(event, EVENT_CREATE | EVENT_DESTROY | EVENT_MODIFY_CODE) {
            return 0;
        }
        // SAFETY: CPython passes a live PyFunctionObject; PyFunction_GetCode returns its borrowed, non-NULL code
        // (func_dealloc runs DESTROY before clearing anything, func_clear keeps func_code), only used as an
        // address here. Checked against Objects/funcobject.c of 3.12 and 3.13. 3.14 (read, untested) sends
        // CREATE and MODIFY_CODE at the same points (MODIFY_CODE before `func_code` changes).
        let code = unsafe { ffi::PyFunction_GetCode(func) } as Addr;
        let mut guard = WATCHED.lock();
        let Some(index) = guard.as_mut() else { return 0 };
        match event {
            EVENT_CREATE => watched_insert(index, code, func as Addr),
            EVENT_DESTROY => watched_remove(index, code, func as Addr),
            _ => {
                watched_remove(index, code, func as Addr);
                watched_insert(index, new_value as Addr, func as Addr);
            }
        }
        0
    }

    /// Registers the watcher; false if CPython has no free watcher slot (8 per interpreter).
    pub(super) fn add(py: Python<'_>) -> bool {
        // SAFETY: PyFunction_AddWatcher (public C API, checked on CPython 3.12 and 3.13; the same in 3.14, read,
        // untested) stores the callback pointer, which is a plain function of this module and lives as long as the
        // process; called with the GIL held.
        let id = unsafe { PyFunction_AddWatcher(on_function_event) };
        if id < 0 {
            let err = PyErr::fetch(py);
            tracing::warn!(%err, "no function watcher slot free; the function index falls back to a gc callback");
            return false;
        }
        true
    }
}

// ---- 3.9-3.11: gc callback --------------------------------------------------------------------------------

/// code address -> weak references to nested functions that have left the youngest generation.
struct Seen {
    by_code: HashMap<Addr, Vec<Py<PyWeakrefReference>>>,
    entries: usize,
    prune_at: usize,
}

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
/// The callback object in `gc.callbacks`, to check that it is still there.
static GC_CALLBACK: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

fn is_nested(code: &Bound<'_, PyAny>) -> PyResult<bool> {
    let flags: i64 = code.getattr(intern!(code.py(), "co_flags"))?.extract()?;
    Ok(flags & CO_NESTED != 0)
}

fn is_call_scoped(code: &Bound<'_, PyAny>) -> PyResult<bool> {
    let name = code.getattr(intern!(code.py(), "co_name"))?;
    Ok(CALL_SCOPED.iter().any(|n| name.eq(*n).unwrap_or(false)))
}

fn code_of(func: &Bound<'_, PyAny>) -> Addr {
    // SAFETY: callers pass a PyFunctionObject (checked with is_instance_of) that they keep alive;
    // PyFunction_GetCode returns a borrowed, non-NULL pointer, only used as an address. Public C API, checked on
    // 3.9-3.13; unchanged in 3.14 (read, untested).
    unsafe { ffi::PyFunction_GetCode(func.as_ptr()) as Addr }
}

/// `gc.get_objects`, kept from the first use: the gc callback also runs during interpreter shutdown, when
/// imports no longer work.
static GET_OBJECTS: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

fn gc_objects<'py>(py: Python<'py>, generation: Option<u8>) -> PyResult<Bound<'py, PyList>> {
    let cached = GET_OBJECTS.lock().as_ref().map(|f| f.clone_ref(py));
    let get_objects = match cached {
        Some(f) => f.into_bound(py),
        None => {
            let f = py.import(intern!(py, "gc"))?.getattr(intern!(py, "get_objects"))?;
            *GET_OBJECTS.lock() = Some(f.clone().unbind());
            f
        }
    };
    let objects = match generation {
        Some(g) => get_objects.call1((g,))?,
        None => get_objects.call0()?,
    };
    Ok(objects.cast_into::<PyList>()?)
}

/// Adds the nested functions among `objects` to `SEEN`.
fn remember_nested(py: Python<'_>, objects: &Bound<'_, PyList>) -> PyResult<()> {
    let mut found = Vec::new();
    for obj in objects.iter() {
        if !obj.is_instance_of::<PyFunction>() {
            continue;
        }
        let code = obj.getattr(intern!(py, "__code__"))?;
        if is_nested(&code)? && !is_call_scoped(&code)? {
            found.push((code.as_ptr() as Addr, PyWeakrefReference::new(&obj)?.unbind()));
        }
    }
    // Weak references are made before locking: making one may start a collection, whose callback locks too.
    let mut guard = SEEN.lock();
    let Some(seen) = guard.as_mut() else { return Ok(()) };
    for (code, weak) in found {
        seen.by_code.entry(code).or_default().push(weak);
        seen.entries += 1;
    }
    if seen.entries > seen.prune_at {
        prune(py, seen);
    }
    Ok(())
}

/// Drops references to dead functions and to functions whose code changed since they were filed.
fn prune(py: Python<'_>, seen: &mut Seen) {
    let mut live = 0;
    seen.by_code.retain(|&code, weaks| {
        // upgrade() takes a new reference to a live function; dropping it cannot free it (someone else holds it).
        weaks.retain(|w| w.bind(py).upgrade().is_some_and(|f| code_of(&f) == code));
        live += weaks.len();
        !weaks.is_empty()
    });
    seen.entries = live;
    seen.prune_at = (2 * live).max(4096);
}

/// Registered in `gc.callbacks`: before each collection, files the nested functions of the youngest generation,
/// which the collection is about to move out of it. Never raises (gc would print it as unraisable).
#[pyfunction]
fn _hotswap_function_index(py: Python<'_>, phase: &str, _info: &Bound<'_, PyAny>) {
    if phase != "start" {
        return;
    }
    if let Err(err) = gc_objects(py, Some(0)).and_then(|young| remember_nested(py, &young)) {
        tracing::warn!(%err, "function index: could not file the youngest generation");
    }
}

fn gc_callback_installed(py: Python<'_>) -> PyResult<bool> {
    let guard = GC_CALLBACK.lock();
    let Some(callback) = guard.as_ref() else {
        return Ok(false);
    };
    let callback = callback.clone_ref(py);
    drop(guard);
    let callbacks = py.import(intern!(py, "gc"))?.getattr(intern!(py, "callbacks"))?;
    for item in callbacks.try_iter()? {
        if item?.is(&callback) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn start_gc_index(py: Python<'_>) -> PyResult<()> {
    *SEEN.lock() = Some(Seen {
        by_code: HashMap::new(),
        entries: 0,
        prune_at: 4096,
    });
    let callback = wrap_pyfunction!(_hotswap_function_index, py)?.into_any();
    py.import(intern!(py, "gc"))?
        .getattr(intern!(py, "callbacks"))?
        .call_method1(intern!(py, "append"), (&callback,))?;
    *GC_CALLBACK.lock() = Some(callback.unbind());
    // Generation 0 is left to the callback (and to queries), so no function is filed twice.
    for generation in [1, 2] {
        let objects = gc_objects(py, Some(generation))?;
        remember_nested(py, &objects)?;
    }
    Ok(())
}

// ---- queries ----------------------------------------------------------------------------------------------

fn ensure_started(py: Python<'_>) -> PyResult<Mode> {
    let mode = *MODE.lock();
    match mode {
        Mode::Off => {}
        // Someone may have emptied gc.callbacks: then the index cannot know, so it starts again.
        Mode::Gc if !gc_callback_installed(py)? => {}
        mode => return Ok(mode),
    }
    let mode = start(py)?;
    *MODE.lock() = mode;
    tracing::debug!(?mode, "function index started");
    Ok(mode)
}

#[cfg(Py_3_12)]
fn start(py: Python<'_>) -> PyResult<Mode> {
    if !watcher::add(py) {
        start_gc_index(py)?;
        return Ok(Mode::Gc);
    }
    *WATCHED.lock() = Some(AddrMap::default());
    // Functions made from here on are filed by the watcher; the sweep files the older ones (set semantics:
    // one made while sweeping is filed once).
    let objects = gc_objects(py, None)?;
    let found: Vec<(Addr, Addr)> = objects
        .iter()
        .filter(|obj| obj.is_instance_of::<PyFunction>())
        .map(|func| (code_of(&func), func.as_ptr() as Addr))
        .collect();
    let mut guard = WATCHED.lock();
    let index = guard.as_mut().expect("started above");
    for (code, func) in found {
        watched_insert(index, code, func);
    }
    Ok(Mode::Watcher)
}

#[cfg(not(Py_3_12))]
fn start(py: Python<'_>) -> PyResult<Mode> {
    start_gc_index(py)?;
    Ok(Mode::Gc)
}

/// New references to the functions filed under `code` by the watcher.
fn watched_functions<'py>(py: Python<'py>, code: Addr) -> Vec<Bound<'py, PyAny>> {
    let guard = WATCHED.lock();
    let Some(funcs) = guard.as_ref().and_then(|index| index.get(&code)) else {
        return Vec::new();
    };
    // SAFETY: every address in the index is a live function (its DESTROY event removes it before it is freed).
    // from_borrowed_ptr only increments its refcount, which runs no Python code, so no event can arrive while the
    // lock is held. Py_INCREF: checked on CPython 3.12, 3.13; 3.14 (read, untested) likewise in the default build
    // (its deferred reference counting of top-level functions is for free-threaded builds only).
    funcs
        .iter()
        .map(|f| unsafe { Bound::from_borrowed_ptr(py, f as *mut ffi::PyObject) })
        .collect()
}

/// Live functions of the codes filed in `SEEN`, plus those still in the youngest generation.
fn gc_functions<'py>(py: Python<'py>, codes: &[Addr], found: &mut [Vec<Bound<'py, PyAny>>]) -> PyResult<()> {
    let position: HashMap<Addr, usize> = codes.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let weaks: Vec<(usize, Py<PyWeakrefReference>)> = {
        let guard = SEEN.lock();
        let Some(seen) = guard.as_ref() else { return Ok(()) };
        position
            .iter()
            .flat_map(|(code, &i)| {
                seen.by_code
                    .get(code)
                    .into_iter()
                    .flatten()
                    .map(move |w| (i, w.clone_ref(py)))
            })
            .collect()
    };
    for (i, weak) in weaks {
        if let Some(func) = weak.bind(py).upgrade() {
            if code_of(&func) == codes[i] {
                found[i].push(func);
            }
        }
    }
    sweep_into(&gc_objects(py, Some(0))?, &position, found);
    Ok(())
}

fn sweep_into<'py>(
    objects: &Bound<'py, PyList>,
    position: &HashMap<Addr, usize>,
    found: &mut [Vec<Bound<'py, PyAny>>],
) {
    for obj in objects.iter() {
        if obj.is_instance_of::<PyFunction>() {
            if let Some(&i) = position.get(&code_of(&obj)) {
                found[i].push(obj);
            }
        }
    }
}

fn dedup(funcs: &mut Vec<Bound<'_, PyAny>>) {
    let mut seen = HashSet::new();
    funcs.retain(|f| seen.insert(f.as_ptr() as Addr));
}

/// Finds the live Python functions whose `__code__` is one of `codes`: for each code, the list of functions.
///
/// Answered from the code -> functions index (see the module docs), so its cost does not grow with the heap;
/// the heap is swept only for a code the index cannot know about (3.9-3.11: a code that is not nested in a
/// function). A comprehension's or generator expression's code has no function to find.
#[pyfunction]
pub fn find_functions<'py>(py: Python<'py>, codes: Vec<Bound<'py, PyAny>>) -> PyResult<Vec<Vec<Bound<'py, PyAny>>>> {
    let mut found: Vec<Vec<Bound<'py, PyAny>>> = vec![Vec::new(); codes.len()];
    let mut searched = Vec::new(); // (index in `codes`, address)
    for (i, code) in codes.iter().enumerate() {
        if !is_call_scoped(code)? {
            searched.push((i, code.as_ptr() as Addr));
        }
    }
    if searched.is_empty() {
        return Ok(found);
    }
    let mode = ensure_started(py)?;
    let mut swept: HashMap<Addr, usize> = HashMap::new();
    match mode {
        Mode::Watcher => {
            for &(i, code) in &searched {
                found[i] = watched_functions(py, code);
            }
        }
        Mode::Gc => {
            let mut nested = Vec::new();
            for &(i, code) in &searched {
                if is_nested(&codes[i])? {
                    nested.push((i, code));
                } else {
                    swept.insert(code, i);
                }
            }
            let addrs: Vec<Addr> = nested.iter().map(|&(_, c)| c).collect();
            let mut part = vec![Vec::new(); addrs.len()];
            gc_functions(py, &addrs, &mut part)?;
            for ((i, _), funcs) in nested.into_iter().zip(part) {
                found[i] = funcs;
            }
        }
        Mode::Off => swept.extend(searched.iter().map(|&(i, code)| (code, i))),
    }
    if !swept.is_empty() {
        sweep_into(&gc_objects(py, None)?, &swept, &mut found);
    }
    found.iter_mut().for_each(dedup);
    Ok(found)
}

/// The module-level function `name` defined in `filename` at one of `lines`, wherever it is referenced from, or
/// None: an overwritten `def _` that the registry its `@x.register` decorator names does not hold (the engine
/// looks there first).
///
/// 3.12+: a walk over the indexed functions' codes, not the heap; otherwise one native heap sweep.
#[pyfunction]
pub fn find_defined_function<'py>(
    py: Python<'py>,
    name: &str,
    filename: &str,
    lines: Vec<i64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let matches = |code: &Bound<'py, PyAny>| -> PyResult<bool> {
        let line: i64 = code.getattr(intern!(py, "co_firstlineno"))?.extract()?;
        Ok(lines.contains(&line)
            && code.getattr(intern!(py, "co_name"))?.eq(name)?
            && code.getattr(intern!(py, "co_filename"))?.eq(filename)?)
    };
    let top_level = |func: &Bound<'py, PyAny>| -> PyResult<bool> {
        let qualname: String = func.getattr(intern!(py, "__qualname__"))?.extract()?;
        Ok(!qualname.contains('.'))
    };
    let candidates: Vec<Bound<'py, PyAny>> = if ensure_started(py)? == Mode::Watcher {
        let codes: Vec<Bound<'py, PyAny>> = {
            let guard = WATCHED.lock();
            let index = guard.as_ref().expect("watcher mode has an index");
            // SAFETY: each key is the code of a live function, which holds a reference to it; from_borrowed_ptr
            // increments its refcount and runs no Python code. Py_INCREF: checked on CPython 3.12, 3.13; the same in
            // 3.14's default build (read, untested).
            index
                .keys()
                .map(|&c| unsafe { Bound::from_borrowed_ptr(py, c as *mut ffi::PyObject) })
                .collect()
        };
        let mut out = Vec::new();
        for code in codes {
            if matches(&code)? {
                out.extend(watched_functions(py, code.as_ptr() as Addr));
            }
        }
        out
    } else {
        gc_objects(py, None)?
            .iter()
            .filter(|obj| obj.is_instance_of::<PyFunction>())
            .collect()
    };
    for func in candidates {
        if func.is_instance_of::<PyFunction>() && matches(&func.getattr(intern!(py, "__code__"))?)? && top_level(&func)?
        {
            return Ok(Some(func));
        }
    }
    Ok(None)
}

/// Called after hotswap itself set `func.__code__` to `code`. 3.12+'s watcher sees that already; with the gc
/// callback the function is filed under its new code, so the next reload finds it without a sweep. Never fails:
/// a function it could not file is still found, by the sweep of the youngest generation or not at all (logged).
pub fn code_changed(func: &Bound<'_, PyAny>, code: &Bound<'_, PyAny>) {
    if *MODE.lock() != Mode::Gc {
        return;
    }
    let filed = (|| -> PyResult<Option<Py<PyWeakrefReference>>> {
        if !is_nested(code)? || is_call_scoped(code)? {
            return Ok(None);
        }
        Ok(Some(PyWeakrefReference::new(func)?.unbind()))
    })();
    match filed {
        Ok(Some(weak)) => {
            let mut guard = SEEN.lock();
            if let Some(seen) = guard.as_mut() {
                seen.by_code.entry(code.as_ptr() as Addr).or_default().push(weak);
                seen.entries += 1;
            }
        }
        Ok(None) => {}
        Err(err) => tracing::warn!(%err, "function index: could not file a patched function under its new code"),
    }
}

/// How this process finds functions: "off" (not started), "watcher" (3.12+), or "gc" (3.9-3.11, or 3.12+ when every watcher slot is taken).
#[pyfunction]
pub fn function_index_mode() -> &'static str {
    match *MODE.lock() {
        Mode::Off => "off",
        Mode::Watcher => "watcher",
        Mode::Gc => "gc",
    }
}
