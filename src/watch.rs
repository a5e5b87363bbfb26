//! File watching for `AutoReloader`: notify's native backend (or its PollWatcher) on directories that this module
//! walks itself, non-recursively, so ignored trees are never watched; a batcher thread coalesces raw events into
//! quiet-period batches. Only the `Watcher` pyclass touches Python, and its `wait` blocks with the GIL released.

use std::collections::{HashMap, HashSet};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{Config, ErrorKind, Event, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use parking_lot::Mutex;
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// Directory names never watched (nor walked). Kept in step with `DEFAULT_IGNORED_DIRS` in
/// `python/hotswap/watcher.py`; `tests/test_watch_native.py` checks that they agree.
pub const DEFAULT_IGNORED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    "__pycache__",
    "node_modules",
    "site-packages",
    "dist-packages",
    ".tox",
    ".nox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "venv",
];

/// Marker files that make a directory ignored: a virtual environment (`pyvenv.cfg`) and any cache directory that
/// follows the Cache Directory Tagging spec (`CACHEDIR.TAG`: cargo's `target/`, pytest's and ruff's caches). A
/// directory merely named `target` is not ignored, since it may well be a Python package.
const IGNORED_DIR_MARKERS: &[&str] = &["pyvenv.cfg", "CACHEDIR.TAG"];

/// How long a batch waits for a writer that modified a file without closing it yet (inotify's close-after-write),
/// counted from the batch's first event. Bounds the wait when a writer keeps a file open.
pub const OPEN_WRITE_MAX_MS: u64 = 1000;

/// Polling interval of the fallback backend.
pub const POLL_INTERVAL_MS: u64 = 200;

/// Whether a file name is an editor's temporary or backup file (vim's `name~`, `4913` probe and swap files,
/// JetBrains' `name.___jb_tmp___`/`name.___jb_old___`, emacs' `.#name` lock and `#name#` autosave files).
pub fn is_editor_temp(name: &str) -> bool {
    name.ends_with('~')
        || (!name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()))
        || [".swp", ".swo", ".swx", ".swpx"].iter().any(|s| name.ends_with(s))
        || name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || (name.contains(".___jb_") && name.ends_with("___"))
}

/// Python's `fnmatch.fnmatchcase`: `*` (any run, `/` included), `?`, `[seq]`, `[!seq]`.
pub fn fnmatch(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative wildcard matching with one backtrack point (the last `*`), linear in practice.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = match_class(&p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`: `Some((matched, index after ']'))`, or None when
/// the class is unterminated (then `[` is literal, as in Python).
fn match_class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = i < p.len() && p[i] == '!';
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (p[i] != ']' || first) {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    if i >= p.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

/// Which paths are watched and reported. Patterns match a file's (or directory's) name, or its path relative to
/// the root it lies under, `/`-separated.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Canonical roots; a path outside all of them (e.g. reached through a symlink) is never reported.
    pub roots: Vec<PathBuf>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl Filter {
    fn matches_any(&self, patterns: &[String], path: &Path) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let rel = self.relative(path);
        patterns
            .iter()
            .any(|p| fnmatch(p, &name) || rel.as_deref().is_some_and(|r| fnmatch(p, r)))
    }

    fn relative(&self, path: &Path) -> Option<String> {
        self.roots.iter().find_map(|root| {
            path.strip_prefix(root)
                .ok()
                .map(|r| r.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/"))
        })
    }

    /// Whether `path` lies under one of the roots (or is one).
    pub fn under_roots(&self, path: &Path) -> bool {
        self.roots.iter().any(|root| path.starts_with(root))
    }

    /// Whether a directory is skipped: a default-ignored name, `.venv*`, an excluded pattern, or a marker file.
    pub fn ignores_dir(&self, path: &Path) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if self.roots.iter().any(|r| r == path) {
            return false;
        }
        DEFAULT_IGNORED_DIRS.contains(&name.as_ref())
            || name.starts_with(".venv")
            || self.matches_any(&self.exclude, path)
            || IGNORED_DIR_MARKERS.iter().any(|m| path.join(m).exists())
    }

    /// Whether a file path is reported: included, not excluded, not an editor's temporary file.
    pub fn wants_file(&self, path: &Path) -> bool {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
            return false;
        };
        !is_editor_temp(&name)
            && self.matches_any(&self.include, path)
            && !self.matches_any(&self.exclude, path)
            && self.under_roots(path)
    }
}

/// Coalesces file events into a batch that ends when the tree has been quiet for `debounce`, or at `max_batch`
/// after its first event so a continuous stream still flushes. A file modified but not yet closed by its writer
/// (inotify reports close-after-write) holds the batch, for at most `OPEN_WRITE_MAX_MS` from its first event, so
/// that a truncated or half-written file is not reported.
#[derive(Debug)]
pub struct Batcher {
    debounce: Duration,
    max_batch: Duration,
    open_write_max: Duration,
    /// Paths in first-seen order, and for each whether a write is open (modified, not yet closed).
    order: Vec<PathBuf>,
    open_write: HashMap<PathBuf, bool>,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// What one raw event means for a file path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// Content written, the writer may still hold the file open.
    Write,
    /// The writer closed the file.
    Closed,
    /// Created, removed, renamed, attributes changed: no write in flight.
    Other,
}

impl Batcher {
    pub fn new(debounce: Duration, max_batch: Duration, open_write_max: Duration) -> Self {
        Batcher {
            debounce,
            max_batch,
            open_write_max,
            order: Vec::new(),
            open_write: HashMap::new(),
            first: None,
            last: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Records one event on `path` at `now`.
    pub fn touch(&mut self, path: PathBuf, touch: Touch, now: Instant) {
        let open = match touch {
            Touch::Write => Some(true),
            Touch::Closed => Some(false),
            Touch::Other => None,
        };
        match self.open_write.get_mut(&path) {
            Some(state) => {
                if let Some(open) = open {
                    *state = open;
                }
            }
            None => {
                self.order.push(path.clone());
                self.open_write.insert(path, open.unwrap_or(false));
            }
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When the batch is due, or None while it is empty.
    pub fn deadline(&self) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        if self.open_write.values().any(|&open| open) {
            Some(first + self.open_write_max)
        } else {
            Some((last + self.debounce).min(first + self.max_batch))
        }
    }

    /// Takes the batch's paths (first-seen order) and resets.
    pub fn take(&mut self) -> Vec<PathBuf> {
        self.open_write.clear();
        self.first = None;
        self.last = None;
        std::mem::take(&mut self.order)
    }
}

type RawEvent = notify::Result<Event>;

/// One flushed batch: `(path, exists)` pairs, each decided from the file's state at flush time, and notes for
/// the Python side to log (backend trouble the batcher thread cannot log itself).
pub type BatchOut = (Vec<(String, bool)>, Vec<String>);

/// The notify watcher, the directories it watches, and the filter. Lives on the batcher thread after start.
struct Tree {
    watcher: Box<dyn Watcher + Send>,
    filter: Filter,
    watched: HashSet<PathBuf>,
    native: bool,
}

impl Tree {
    /// Watches `dir` and every non-ignored directory below it; pushes the wanted files found onto `files` when
    /// given. Symlinked directories are never followed (their target is outside the roots, or watched already).
    fn walk(&mut self, dir: &Path, mut files: Option<&mut Vec<PathBuf>>) -> notify::Result<()> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if self.watched.contains(&dir) {
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {}
                Err(err) if matches!(err.kind, ErrorKind::PathNotFound) => continue,
                Err(err) if matches!(&err.kind, ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) => {
                    continue
                }
                Err(err) => return Err(err),
            }
            self.watched.insert(dir.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let (mut subdirs, mut found) = (Vec::new(), Vec::new());
            let mut marked = false;
            for entry in entries.flatten() {
                let Ok(kind) = entry.file_type() else { continue };
                let path = entry.path();
                if kind.is_dir() {
                    if !self.filter.ignores_dir(&path) {
                        subdirs.push(path);
                    }
                } else if IGNORED_DIR_MARKERS.iter().any(|m| entry.file_name() == *m) {
                    marked = true;
                } else if files.is_some() && self.filter.wants_file(&path) {
                    found.push(path);
                }
            }
            if marked && !self.filter.roots.contains(&dir) {
                // The marker appeared between the check and the watch (a venv being created): drop it again.
                self.forget(&dir);
                continue;
            }
            stack.extend(subdirs);
            if let Some(files) = files.as_deref_mut() {
                files.extend(found);
            }
        }
        Ok(())
    }

    /// Stops watching `dir` and every watched directory below it.
    fn forget(&mut self, dir: &Path) {
        let gone: Vec<PathBuf> = self.watched.iter().filter(|w| w.starts_with(dir)).cloned().collect();
        for path in gone {
            self.watched.remove(&path);
            // The watch may be gone already (inotify drops it with the directory).
            let _ = self.watcher.unwatch(&path);
        }
    }
}

/// The batcher thread: applies raw events to the tree (new directories get watched) and the batch, and sends
/// each due batch. Ends on a message on `stop` (or when the `Watcher` is dropped), after the notify backend has
/// shut down: its event handler, which holds the only `raw_tx`, is dropped after its inotify descriptor is closed.
fn run_batcher(
    mut tree: Tree,
    raw_rx: Receiver<RawEvent>,
    stop: Receiver<()>,
    out: Sender<BatchOut>,
    mut batcher: Batcher,
) {
    let mut notes: Vec<String> = Vec::new();
    let mut rescan = false;
    loop {
        let deadline = if rescan {
            Some(Instant::now())
        } else {
            batcher.deadline()
        };
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        crossbeam_channel::select! {
            recv(stop) -> _ => break,
            recv(raw_rx) -> msg => match msg {
                Ok(event) => handle_event(&mut tree, &mut batcher, event, &mut notes, &mut rescan),
                Err(_) => break,
            },
            default(timeout.unwrap_or(Duration::from_secs(3600))) => {},
        }
        let due = rescan || batcher.deadline().is_some_and(|d| Instant::now() >= d);
        if !due && notes.is_empty() {
            continue;
        }
        let mut paths = if due { batcher.take() } else { Vec::new() };
        if rescan {
            // The kernel's event queue overflowed: report every wanted file; the Python side skips the unchanged.
            rescan = false;
            let roots = tree.filter.roots.clone();
            let mut files = Vec::new();
            tree.watched.clear();
            for root in roots {
                if let Err(err) = tree.walk(&root, Some(&mut files)) {
                    notes.push(format!("rescan of {} failed: {err}", root.display()));
                }
            }
            let seen: HashSet<PathBuf> = paths.iter().cloned().collect();
            paths.extend(files.into_iter().filter(|f| !seen.contains(f)));
        }
        let batch = finish(&tree.filter, paths);
        if batch.is_empty() && notes.is_empty() {
            continue;
        }
        if out.send((batch, std::mem::take(&mut notes))).is_err() {
            break;
        }
    }
    let deadline = Instant::now() + Duration::from_millis(250);
    drop(tree);
    // Wait until the backend's thread has dropped its handler (and with it closed its descriptors).
    while raw_rx.recv_deadline(deadline).is_ok() {}
}

/// Decides each path from its final state: exists (a regular file, or a symlink to one inside the roots, reported
/// by its real path) or not. A file reached through a symlink that leads outside the roots is dropped.
fn finish(filter: &Filter, paths: Vec<PathBuf>) -> Vec<(String, bool)> {
    let mut seen = HashSet::new();
    paths
        .into_iter()
        .filter_map(|path| {
            let (path, exists) = match std::fs::canonicalize(&path) {
                Ok(real) if !filter.under_roots(&real) => return None,
                Ok(real) if real.is_file() => (real, true),
                _ => (path, false),
            };
            seen.insert(path.clone())
                .then(|| (path.to_string_lossy().into_owned(), exists))
        })
        .collect()
}

fn handle_event(tree: &mut Tree, batcher: &mut Batcher, event: RawEvent, notes: &mut Vec<String>, rescan: &mut bool) {
    let event = match event {
        Ok(event) => event,
        Err(err) => {
            notes.push(format!("file watching error: {err}"));
            return;
        }
    };
    if event.need_rescan() {
        *rescan = true;
        return;
    }
    let now = Instant::now();
    let touch = match event.kind {
        // Our own reads (and everyone's) open and close files: only a close after writing matters.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Touch::Closed,
        EventKind::Access(_) => return,
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) if tree.native => Touch::Write,
        _ => Touch::Other,
    };
    let renamed_from = matches!(event.kind, EventKind::Modify(ModifyKind::Name(RenameMode::From)));
    for (i, path) in event.paths.iter().enumerate() {
        let gone = renamed_from
            || matches!(event.kind, EventKind::Remove(_))
            || (i == 0 && matches!(event.kind, EventKind::Modify(ModifyKind::Name(RenameMode::Both))));
        if gone && tree.watched.contains(path) {
            tree.forget(path);
            continue;
        }
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if IGNORED_DIR_MARKERS.contains(&name.as_ref()) && matches!(event.kind, EventKind::Create(_)) {
            // A virtual environment (or cache) is being created in a watched directory: stop watching it.
            if let Some(parent) = path.parent() {
                if !tree.filter.roots.iter().any(|r| r == parent) {
                    tree.forget(parent);
                }
            }
            continue;
        }
        if !gone {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.is_dir() {
                    if !tree.watched.contains(path) && !tree.filter.ignores_dir(path) && tree.filter.under_roots(path) {
                        // Files may have been created in it before its watch was added: report those found.
                        let mut files = Vec::new();
                        if let Err(err) = tree.walk(path, Some(&mut files)) {
                            notes.push(format!("cannot watch {}: {err}", path.display()));
                        }
                        for file in files {
                            batcher.touch(file, Touch::Other, now);
                        }
                    }
                    continue;
                }
            }
        }
        if tree.filter.wants_file(path) {
            batcher.touch(path.clone(), touch, now);
        }
    }
}

/// Builds the tree with the native backend, or the polling one when asked to or when the native one fails.
/// Returns the tree, its raw event receiver, and why the native backend was not used.
fn start_tree(
    filter: Filter,
    force_polling: bool,
    simulate_native_error: bool,
) -> (notify::Result<(Tree, Receiver<RawEvent>)>, Option<String>) {
    let mut fallback = if force_polling {
        Some("force_polling=True".to_string())
    } else {
        None
    };
    if fallback.is_none() {
        let (raw_tx, raw_rx) = unbounded::<RawEvent>();
        let native = if simulate_native_error {
            Err(notify::Error::io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "simulated for tests",
            )))
        } else {
            RecommendedWatcher::new(move |ev: RawEvent| drop(raw_tx.send(ev)), Config::default())
        };
        match native {
            Ok(watcher) => {
                let mut tree = Tree {
                    watcher: Box::new(watcher),
                    filter: filter.clone(),
                    watched: HashSet::new(),
                    native: true,
                };
                match walk_roots(&mut tree) {
                    Ok(()) => return (Ok((tree, raw_rx)), None),
                    Err(err) if matches!(err.kind, ErrorKind::MaxFilesWatch) => {
                        fallback = Some(format!("native backend: {err} (inotify watch limit)"))
                    }
                    Err(err) => return (Err(err), None),
                }
            }
            Err(err) => fallback = Some(format!("native backend unavailable: {err}")),
        }
    }
    let (raw_tx, raw_rx) = unbounded::<RawEvent>();
    // notify's PollWatcher compares whole-second mtimes: a save within the same second as the previous one is only
    // seen by comparing contents (each poll hashes the watched directories' files; ignored trees are not among them).
    let config = Config::default()
        .with_poll_interval(Duration::from_millis(POLL_INTERVAL_MS))
        .with_compare_contents(true);
    let result = PollWatcher::new(move |ev: RawEvent| drop(raw_tx.send(ev)), config).and_then(|watcher| {
        let mut tree = Tree {
            watcher: Box::new(watcher),
            filter,
            watched: HashSet::new(),
            native: false,
        };
        walk_roots(&mut tree).map(|()| (tree, raw_rx))
    });
    (result, fallback)
}

fn walk_roots(tree: &mut Tree) -> notify::Result<()> {
    for root in tree.filter.roots.clone() {
        tree.walk(&root, None)?;
    }
    Ok(())
}

/// Watches directory trees and hands out batches of changed file paths.
///
/// The notify callback thread and the batcher thread never touch Python; `wait` blocks with the GIL released,
/// in slices, checking for signals between them so Ctrl-C interrupts it.
#[pyclass(name = "Watcher", module = "hotswap._native")]
pub struct PyWatcher {
    /// Dropped by hand in `Drop`, and never in a forked child (see `abandon_after_fork`).
    batches: ManuallyDrop<Receiver<BatchOut>>,
    stop_tx: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    #[pyo3(get)]
    backend: &'static str,
    #[pyo3(get)]
    fallback_reason: Option<String>,
    #[pyo3(get)]
    watched_dirs: usize,
    /// The process that started the threads; in a forked child they do not exist (see `forked`).
    pid: u32,
}

/// Slice of a blocking `wait` between two signal checks.
const WAIT_SLICE: Duration = Duration::from_millis(50);

#[pymethods]
impl PyWatcher {
    #[new]
    #[pyo3(signature = (roots, *, include = vec!["*.py".to_string()], exclude = vec![], debounce_ms = 5, max_batch_ms = 100,
                        force_polling = false, simulate_native_error = false))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        py: Python<'_>,
        roots: Vec<PathBuf>,
        include: Vec<String>,
        exclude: Vec<String>,
        debounce_ms: u64,
        max_batch_ms: u64,
        force_polling: bool,
        simulate_native_error: bool,
    ) -> PyResult<Self> {
        if roots.is_empty() {
            return Err(PyValueError::new_err("Watcher needs at least one root directory"));
        }
        let mut canonical = Vec::with_capacity(roots.len());
        for root in &roots {
            let real = std::fs::canonicalize(root)
                .map_err(|err| PyFileNotFoundError::new_err(format!("cannot watch {}: {err}", root.display())))?;
            if !real.is_dir() {
                return Err(PyValueError::new_err(format!(
                    "cannot watch {}: not a directory",
                    root.display()
                )));
            }
            canonical.push(real);
        }
        let filter = Filter {
            roots: canonical,
            include,
            exclude,
        };
        let (result, fallback_reason) = py.detach(|| start_tree(filter, force_polling, simulate_native_error));
        let (tree, raw_rx) = result.map_err(|err| PyRuntimeError::new_err(format!("cannot start watching: {err}")))?;
        let backend = if tree.native { "native" } else { "poll" };
        let watched_dirs = tree.watched.len();
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let (out_tx, out_rx) = unbounded::<BatchOut>();
        let batcher = Batcher::new(
            Duration::from_millis(debounce_ms),
            Duration::from_millis(max_batch_ms.max(debounce_ms)),
            Duration::from_millis(OPEN_WRITE_MAX_MS),
        );
        let thread = std::thread::Builder::new()
            .name("hotswap-watch".into())
            .spawn(move || run_batcher(tree, raw_rx, stop_rx, out_tx, batcher))
            .map_err(|err| PyRuntimeError::new_err(format!("cannot start the watcher thread: {err}")))?;
        Ok(PyWatcher {
            batches: ManuallyDrop::new(out_rx),
            stop_tx: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
            backend,
            fallback_reason,
            watched_dirs,
            pid: std::process::id(),
        })
    }

    /// Next batch `(files, notes)`, where files is a list of `(path, exists)`; None at timeout or once stopped.
    #[pyo3(signature = (timeout_s = None))]
    fn wait(&self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<Option<BatchOut>> {
        if self.forked() {
            return Ok(None); // its threads stayed in the parent: nothing will ever arrive here
        }
        let deadline = timeout_s.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        // Only the main thread receives signals (PyErr_CheckSignals does nothing elsewhere): on any other thread,
        // such as AutoReloader's, block for the whole timeout instead of waking every slice.
        let threading = py.import("threading")?;
        let on_main = threading
            .call_method0("current_thread")?
            .is(&threading.call_method0("main_thread")?);
        let max_slice = if on_main { WAIT_SLICE } else { Duration::from_secs(3600) };
        loop {
            let slice = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()).min(max_slice),
                None => max_slice,
            };
            match py.detach(|| self.batches.recv_timeout(slice)) {
                Ok(batch) => return Ok(Some(batch)),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {}
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// Stops watching and joins the batcher thread; the backend's descriptors are closed on return. Idempotent.
    fn stop(&self, py: Python<'_>) {
        if self.forked() {
            self.abandon_after_fork();
            return;
        }
        if let Some(tx) = self.stop_tx.lock().take() {
            let _ = tx.try_send(());
        }
        let handle = self.thread.lock().take();
        if let Some(handle) = handle {
            py.detach(|| {
                let _ = handle.join();
            });
        }
    }

    /// Whether the batcher thread is running.
    #[getter]
    fn running(&self) -> bool {
        !self.forked() && self.thread.lock().as_ref().is_some_and(|h| !h.is_finished())
    }

    /// Polling interval of the fallback backend, in milliseconds (the Python side quotes it in its log line).
    #[classattr]
    fn poll_interval_ms() -> u64 {
        POLL_INTERVAL_MS
    }

    /// The directory names never watched (shared with the Python side, which checks they agree).
    #[classattr]
    fn default_ignored_dirs() -> Vec<&'static str> {
        DEFAULT_IGNORED_DIRS.to_vec()
    }

    fn __repr__(&self) -> String {
        format!(
            "<hotswap._native.Watcher backend={} dirs={} running={}>",
            self.backend,
            self.watched_dirs,
            self.running()
        )
    }
}

// Fork handling: a forked child has only the thread that called fork(). The batcher and notify threads of a
// watcher made before the fork do not exist there, so joining or detaching them would fail (std panics with
// "threads should not terminate unexpectedly"); the child forgets them instead and starts a watcher of its own.
impl PyWatcher {
    /// Whether this process is a fork of the one that started the watcher's threads.
    fn forked(&self) -> bool {
        std::process::id() != self.pid
    }

    /// In a forked child: drops the handle of the thread that exists only in the parent, without touching it.
    /// The tree it owned (and its inherited descriptors) stays unreachable in this process's memory.
    fn abandon_after_fork(&self) {
        if let Some(handle) = self.thread.lock().take() {
            std::mem::forget(handle);
        }
        if let Some(tx) = self.stop_tx.lock().take() {
            // Its channel's waker may be mid-update by a thread that is not here: leave it untouched.
            std::mem::forget(tx);
        }
    }
}

impl Drop for PyWatcher {
    fn drop(&mut self) {
        if self.forked() {
            self.abandon_after_fork();
            return;
        }
        // Without a stop(): tell the thread to end; it drops the backend itself. Not joined (no GIL games in Drop).
        if let Some(tx) = self.stop_tx.get_mut().take() {
            let _ = tx.try_send(());
        }
        // SAFETY: not a CPython call; `batches` is dropped exactly once, here, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.batches) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("*.py", "a.py"));
        assert!(fnmatch("*.py", "pkg/a.py"));
        assert!(!fnmatch("*.py", "a.pyc"));
        assert!(fnmatch("a?.py", "ab.py"));
        assert!(!fnmatch("a?.py", "a.py"));
        assert!(fnmatch("[abc].py", "b.py"));
        assert!(!fnmatch("[!abc].py", "b.py"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(fnmatch("[", "["));
        assert!(fnmatch("tests/*", "tests/x/y.py"));
        assert!(fnmatch("*", ""));
        assert!(!fnmatch("?", ""));
        assert!(fnmatch("*a*b*c", "xxaxxbxxc"));
        assert!(!fnmatch("*a*b*c", "xxaxxbxx"));
    }

    #[test]
    fn editor_temp_names() {
        for name in [
            "m.py~",
            "4913",
            "5036",
            ".m.py.swp",
            ".m.py.swx",
            "m.py.___jb_tmp___",
            "m.py.___jb_old___",
            ".#m.py",
            "#m.py#",
        ] {
            assert!(is_editor_temp(name), "{name}");
        }
        for name in ["m.py", "a4913.py", "jb.py", "#.py"] {
            assert!(!is_editor_temp(name), "{name}");
        }
    }

    #[test]
    fn filter_ignores_dirs_and_outside_paths() {
        let dir = std::env::temp_dir().join(format!("hotswap-filter-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("env")).unwrap();
        std::fs::write(dir.join("env/pyvenv.cfg"), "").unwrap();
        std::fs::create_dir_all(dir.join("target")).unwrap();
        let filter = Filter {
            roots: vec![dir.clone()],
            include: vec!["*.py".into()],
            exclude: vec!["gen/*".into()],
        };
        assert!(filter.ignores_dir(&dir.join(".git")));
        assert!(filter.ignores_dir(&dir.join(".venv-3.11")));
        assert!(filter.ignores_dir(&dir.join("env")));
        assert!(
            !filter.ignores_dir(&dir.join("target")),
            "a plain `target` directory may be a package"
        );
        std::fs::write(dir.join("target/CACHEDIR.TAG"), "").unwrap();
        assert!(filter.ignores_dir(&dir.join("target")));
        assert!(filter.wants_file(&dir.join("a.py")));
        assert!(!filter.wants_file(&dir.join("gen/a.py")));
        assert!(!filter.wants_file(&dir.join("a.py~")));
        assert!(!filter.wants_file(&dir.join("a.txt")));
        assert!(!filter.wants_file(Path::new("/elsewhere/a.py")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn batch_ends_after_quiet_period_or_cap() {
        let t0 = Instant::now();
        let mut b = Batcher::new(ms(5), ms(100), ms(1000));
        assert_eq!(b.deadline(), None);
        b.touch("a".into(), Touch::Other, t0);
        assert_eq!(b.deadline(), Some(t0 + ms(5)));
        b.touch("b".into(), Touch::Other, t0 + ms(3));
        b.touch("a".into(), Touch::Other, t0 + ms(4));
        assert_eq!(b.deadline(), Some(t0 + ms(9)));
        // A continuous stream flushes at the cap.
        for i in 0..50 {
            b.touch("c".into(), Touch::Other, t0 + ms(4 * i));
        }
        assert_eq!(b.deadline(), Some(t0 + ms(100)));
        assert_eq!(
            b.take(),
            vec![PathBuf::from("a"), PathBuf::from("b"), PathBuf::from("c")]
        );
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None);
    }

    #[test]
    fn open_write_holds_batch_until_closed_or_bounded() {
        let t0 = Instant::now();
        let mut b = Batcher::new(ms(5), ms(100), ms(1000));
        // VS Code: truncate (a write, file still open), a gap, the write, then close-after-write.
        b.touch("m.py".into(), Touch::Write, t0);
        assert_eq!(b.deadline(), Some(t0 + ms(1000)));
        b.touch("m.py".into(), Touch::Write, t0 + ms(300));
        assert_eq!(b.deadline(), Some(t0 + ms(1000)));
        b.touch("m.py".into(), Touch::Closed, t0 + ms(301));
        assert_eq!(
            b.deadline(),
            Some(t0 + ms(100)),
            "closed: the cap, already past, flushes at once"
        );
        b.take();
        // touch(1): open, attrib, close-after-write.
        b.touch("m.py".into(), Touch::Other, t0);
        b.touch("m.py".into(), Touch::Closed, t0 + ms(1));
        assert_eq!(b.deadline(), Some(t0 + ms(6)));
    }

    #[test]
    fn batcher_thread_reports_saves_without_python() {
        let dir = std::env::temp_dir().join(format!("hotswap-batcher-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        let root = std::fs::canonicalize(&dir).unwrap();
        let filter = Filter {
            roots: vec![root.clone()],
            include: vec!["*.py".into()],
            exclude: vec![],
        };
        let (result, fallback) = start_tree(filter, false, false);
        let (tree, raw_rx) = result.unwrap();
        assert!(fallback.is_none() && tree.native);
        assert_eq!(tree.watched.len(), 2, "the root and pkg/, not .git/");
        let (stop_tx, stop_rx) = bounded(1);
        let (out_tx, out_rx) = unbounded();
        let batcher = Batcher::new(ms(5), ms(100), ms(OPEN_WRITE_MAX_MS));
        let handle = std::thread::spawn(move || run_batcher(tree, raw_rx, stop_rx, out_tx, batcher));
        let target = root.join("pkg/m.py");
        std::fs::write(root.join(".git/x.py"), "ignored").unwrap();
        std::fs::write(root.join("pkg/m.py~"), "backup").unwrap();
        std::fs::write(&target, "x = 1").unwrap();
        let (files, notes) = out_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(files, vec![(target.to_string_lossy().into_owned(), true)]);
        assert!(notes.is_empty());
        stop_tx.send(()).unwrap();
        handle.join().unwrap();
        assert!(
            out_rx.recv_timeout(ms(100)).is_err(),
            "the batch channel is closed once stopped"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
