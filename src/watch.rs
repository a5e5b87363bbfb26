//! File watching for `AutoReloader`: the OS's notifications (on Linux an inotify descriptor read by the batcher
//! thread itself, see `crate::inotify`; elsewhere notify's native backend; or notify's PollWatcher) on directories
//! that this module walks itself, non-recursively, so ignored trees are never watched; the batcher thread decides
//! from the events when each save is complete, reads it once and hands out batches of files with their bytes. Only
//! the `Watcher` pyclass touches Python, and its `wait` blocks with the GIL released.

use std::collections::{HashMap, HashSet};
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError};
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use notify::{Config, ErrorKind, Event, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use parking_lot::Mutex;
use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[cfg(any(target_os = "linux", target_os = "android"))]
use crate::inotify::Wake;

/// Where there is no inotify backend, nothing needs waking but the stop channel.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
#[allow(dead_code)]
struct Wake;

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Wake {
    fn wake(&self) {}
}

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
/// Kept in step with `IGNORED_DIR_MARKERS` in python/hotswap/watcher.py.
const IGNORED_DIR_MARKERS: &[&str] = &["pyvenv.cfg", "CACHEDIR.TAG"];

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
    /// Canonical root directories; a path outside all of them and not a root file (e.g. reached through a
    /// symlink) is never reported.
    pub roots: Vec<PathBuf>,
    /// Canonical files watched on their own (their directory is watched, not walked); always reported.
    pub files: Vec<PathBuf>,
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

    /// Whether `path` lies under one of the root directories (or is one), or is a root file.
    pub fn under_roots(&self, path: &Path) -> bool {
        self.roots.iter().any(|root| path.starts_with(root)) || self.files.iter().any(|f| f == path)
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

    /// Whether a file path is reported: a root file, or included, not excluded, not an editor's temporary file.
    pub fn wants_file(&self, path: &Path) -> bool {
        if self.files.iter().any(|f| f == path) {
            return true;
        }
        let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
            return false;
        };
        !is_editor_temp(&name)
            && self.matches_any(&self.include, path)
            && !self.matches_any(&self.exclude, path)
            && self.under_roots(path)
    }
}

/// What a file held when it was read, after checking where it really is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A regular file under the roots: its real path and its bytes.
    File { real: PathBuf, content: Vec<u8> },
    /// Gone, not a regular file, or unreadable.
    Missing,
    /// Its real path leads outside the roots (a symlink): never reported.
    Outside,
}

/// Reads `path` once, checking that what is opened is a regular file whose real path is under the roots, and
/// returns what was checked: the check and the read use the same descriptor, so a symlink swapped in between
/// cannot redirect the read. The final component is opened with `O_NOFOLLOW`; on Linux the descriptor's own path
/// (`/proc/self/fd/N`) is checked again after opening, which covers a directory swapped for a symlink.
pub fn read_checked(filter: &Filter, path: &Path) -> Found {
    let Ok(real) = std::fs::canonicalize(path) else {
        return Found::Missing;
    };
    if !filter.under_roots(&real) {
        return Found::Outside;
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let Ok(mut file) = options.open(&real) else {
        return Found::Missing;
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        if let Ok(opened) = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            if !filter.under_roots(&opened) {
                return Found::Outside;
            }
        }
    }
    // A FIFO or device opened (O_NONBLOCK keeps a FIFO from blocking the open) is not source: never read it.
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Found::Missing;
    }
    let mut content = Vec::new();
    match std::io::Read::read_to_end(&mut file, &mut content) {
        Ok(_) => Found::File { real, content },
        Err(_) => Found::Missing,
    }
}

/// What one raw event means for a file path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// Content written; the writer may still hold the file open.
    Write,
    /// Created (opened with `O_CREAT`): its writer has not closed it yet.
    Created,
    /// A writer closed the file (inotify's close-after-write): the save is complete.
    Closed,
    /// A rename landed a file on this path (vim, JetBrains' safe write): complete.
    Landed,
    /// Removed or renamed away.
    Gone,
    /// Anything else (polling's events, rescans, files found in a new directory): look at the file.
    Other,
}

/// Where one path stands in its save.
#[derive(Debug)]
enum State {
    /// Written or created, not yet closed by its writer: never read in this state. `written` is false while the
    /// file was only created (a hard link is never closed: such a file is looked at after `UNWRITTEN_MAX_MS`).
    Writing { written: bool, since: Instant },
    /// Read empty: a writer may have opened it with `O_TRUNC` and not written yet, and not every kernel reports
    /// that truncation as a write (gVisor does not). Reported as empty only once its read is confirmed (as for
    /// `Verifying`) and nothing is written for `UNWRITTEN_MAX_MS` (the Python side never applies an empty file;
    /// it reports it).
    Empty { found: Found, since: Instant, marker: u64 },
    /// Complete by its events: to be read.
    Complete,
    /// Read at `read_at`; waiting for marker number `marker` to come back. After reading, the batcher writes to a
    /// file of its own watched by the same inotify instance (see `Marker`), and one instance's events arrive in the
    /// order they happened: once that marker has come back, every event from before the end of the read has been
    /// seen. If none of them was a write (which turns the file back to `Writing`), nothing wrote to the file from
    /// its completion until after the read, so the bytes are the complete save and not the start of the next one.
    /// A read is never trusted on a timer: however late the events come (a loaded machine delays the thread that
    /// reads them), the bytes wait for them. (Opens of the file and its directory, which any process can make,
    /// would not do as a marker: one made before the read but delivered after it would confirm the read too early.)
    Verifying {
        found: Found,
        marker: u64,
        read_at: Instant,
    },
    /// Ready to be reported.
    Ready(Found),
}

/// How long a file that was created but never written waits for a close before it is looked at, and a file read
/// empty for a write before it is reported as empty.
pub const UNWRITTEN_MAX_MS: u64 = 1000;

/// How long files being read and confirmed hold other ready files of their batch (confirmation takes well under
/// a millisecond on an idle machine), and how often a marker that could not be made is tried again. A read is
/// never trusted when this passes: it waits for its marker.
pub const VERIFY_MAX_MS: u64 = 50;

/// Quiet period for backends that do not report close-after-write (polling, FSEvents, Windows), where
/// completeness can only be inferred from a few quiet milliseconds.
pub const QUIET_WITHOUT_CLOSE_MS: u64 = 5;

/// Decides when each file's save is complete and groups complete files into batches.
///
/// With close events (inotify), a save is complete when its writer closes the file or a rename lands it: the
/// file is then read at once (by the `read` function given to `advance`) and its bytes are confirmed by the
/// marker made after that read (by the `mark` function; see `State::Verifying`). A file being written holds only itself, however slow its writer; it
/// also holds complete files for at most `group_max` (files saved together are applied together, in dependency
/// order). `settle` (the `debounce_ms` option, 0 by default) adds a quiet period before a batch is flushed.
/// Without close events, a batch ends when the tree has been quiet for `settle` (at least
/// `QUIET_WITHOUT_CLOSE_MS`), or at `group_max` after its first event, and files are read then.
#[derive(Debug)]
pub struct Batcher {
    close_events: bool,
    settle: Duration,
    group_max: Duration,
    order: Vec<PathBuf>,
    states: HashMap<PathBuf, State>,
    first: Option<Instant>,
    last: Option<Instant>,
    ready_since: Option<Instant>,
    /// How many markers were made, and how many came back through the event queue (see `State::Verifying`).
    marks_made: u64,
    marks_seen: u64,
}

impl Batcher {
    pub fn new(close_events: bool, settle: Duration, group_max: Duration) -> Self {
        let settle = if close_events {
            settle
        } else {
            settle.max(Duration::from_millis(QUIET_WITHOUT_CLOSE_MS))
        };
        Batcher {
            close_events,
            settle,
            group_max,
            order: Vec::new(),
            states: HashMap::new(),
            first: None,
            last: None,
            ready_since: None,
            marks_made: 0,
            marks_seen: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether `path` is being written (modified or created, not yet closed).
    pub fn is_writing(&self, path: &Path) -> bool {
        matches!(self.states.get(path), Some(State::Writing { .. }))
    }

    /// Records one event on `path` at `now`.
    pub fn touch(&mut self, path: PathBuf, touch: Touch, now: Instant) {
        let current = self.states.get(&path);
        let next = if !self.close_events {
            State::Complete
        } else {
            match (touch, current) {
                (Touch::Write, Some(State::Writing { since, .. })) => State::Writing {
                    written: true,
                    since: *since,
                },
                (Touch::Write, _) => State::Writing {
                    written: true,
                    since: now,
                },
                (Touch::Created, Some(State::Writing { written, since })) => State::Writing {
                    written: *written,
                    since: *since,
                },
                (Touch::Created, _) => State::Writing {
                    written: false,
                    since: now,
                },
                (Touch::Gone, _) => State::Ready(Found::Missing),
                (Touch::Closed | Touch::Landed | Touch::Other, _) => State::Complete,
            }
        };
        if !self.states.contains_key(&path) {
            self.order.push(path.clone());
        }
        if matches!(next, State::Ready(_)) {
            self.ready_since.get_or_insert(now);
        }
        self.states.insert(path, next);
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// Records that the next marker came back through the event queue: every read made before it is confirmed.
    pub fn marker_came_back(&mut self, now: Instant) {
        self.marks_seen += 1;
        for state in self.states.values_mut() {
            if let State::Verifying { found, marker, .. } = state {
                if *marker <= self.marks_seen {
                    *state = State::Ready(std::mem::replace(found, Found::Missing));
                    self.ready_since.get_or_insert(now);
                    self.last = Some(now);
                }
            }
        }
    }

    /// Starts counting markers from scratch (new marker files, after markers may have been lost).
    pub fn count_marks_again(&mut self) {
        self.marks_made = 0;
        self.marks_seen = 0;
    }

    /// Reads every file read but not yet confirmed again (the kernel's event queue overflowed: the markers of
    /// those reads, and the writes before them, may be lost).
    pub fn read_again(&mut self) {
        for state in self.states.values_mut() {
            if matches!(state, State::Verifying { .. } | State::Empty { .. }) {
                *state = State::Complete;
            }
        }
    }

    /// Moves files along without new events: reads complete files (with close events) and makes one marker after
    /// those reads (`mark(seq)`, false when it could not be made: tried again after `VERIFY_MAX_MS`), reports a file
    /// left empty, and looks at files created long ago and never written.
    pub fn advance(&mut self, now: Instant, read: &mut dyn FnMut(&Path) -> Found, mark: &mut dyn FnMut(u64) -> bool) {
        if !self.close_events {
            return;
        }
        let seq = self.marks_made + 1;
        let mut unmarked = false;
        for path in &self.order {
            let Some(state) = self.states.get_mut(path) else {
                continue;
            };
            if let State::Writing { written: false, since } = state {
                if now >= *since + Duration::from_millis(UNWRITTEN_MAX_MS) {
                    *state = State::Complete;
                }
            }
            if let State::Empty { found, since, marker } = state {
                if *marker <= self.marks_seen && now >= *since + Duration::from_millis(UNWRITTEN_MAX_MS) {
                    *state = State::Ready(std::mem::replace(found, Found::Missing));
                    self.ready_since.get_or_insert(now);
                }
            }
            if matches!(state, State::Complete) {
                let found = read(path);
                *state = match found {
                    Found::File { ref content, .. } if content.is_empty() => State::Empty {
                        found,
                        since: now,
                        marker: seq,
                    },
                    // A file read through a symlink in the tree has its writes reported on its real path, which has
                    // a save of its own: nothing to confirm on this path.
                    Found::File { ref real, .. } if real == path => State::Verifying {
                        found,
                        marker: seq,
                        read_at: now,
                    },
                    found => {
                        self.ready_since.get_or_insert(now);
                        State::Ready(found)
                    }
                };
            }
            unmarked |= matches!(state, State::Verifying { marker, .. } | State::Empty { marker, .. } if *marker > self.marks_made);
        }
        if unmarked && mark(seq) {
            self.marks_made = seq;
        }
    }

    /// When the batch of ready files may be flushed: once the tree has been quiet for `settle`; files being read
    /// (a matter of microseconds) or written hold it, for at most `group_max` from the first ready file.
    fn flush_at(&self) -> Option<Instant> {
        if !self.close_events {
            let (first, last) = (self.first?, self.last?);
            return Some((last + self.settle).min(first + self.group_max));
        }
        let ready = self.ready_since?;
        let quiet = self.last.unwrap_or(ready) + self.settle;
        let reading = self
            .states
            .values()
            .any(|s| matches!(s, State::Complete | State::Verifying { .. }));
        let writing = self
            .states
            .values()
            .any(|s| matches!(s, State::Writing { .. } | State::Empty { .. }));
        Some(if reading {
            quiet.max(ready + self.group_max.max(Duration::from_millis(VERIFY_MAX_MS)))
        } else if writing {
            quiet.max(ready + self.group_max)
        } else {
            quiet
        })
    }

    /// When something is due (`advance` or `take`), or None while nothing is.
    pub fn deadline(&self) -> Option<Instant> {
        let mut due = self.flush_at();
        let mut at = |t: Instant| due = Some(due.map_or(t, |d| d.min(t)));
        if self.close_events {
            for state in self.states.values() {
                match state {
                    State::Complete => at(self.last.unwrap_or_else(Instant::now)),
                    // A marker not made yet is tried again; one made is waited for (its event wakes the thread).
                    State::Verifying {
                        read_at: since, marker, ..
                    }
                    | State::Empty { since, marker, .. }
                        if *marker > self.marks_made =>
                    {
                        at(*since + Duration::from_millis(VERIFY_MAX_MS))
                    }
                    State::Empty { since, marker, .. } if *marker <= self.marks_seen => {
                        at(*since + Duration::from_millis(UNWRITTEN_MAX_MS))
                    }
                    State::Writing { written: false, since } => at(*since + Duration::from_millis(UNWRITTEN_MAX_MS)),
                    _ => {}
                }
            }
        }
        due
    }

    /// Whether a batch is due at `now`.
    pub fn due(&self, now: Instant) -> bool {
        self.flush_at().is_some_and(|t| now >= t)
    }

    /// Takes the files ready to report (first-seen order) and keeps those still being written or read. Without
    /// close events every file is read now.
    pub fn take(&mut self, read: &mut dyn FnMut(&Path) -> Found) -> Vec<(PathBuf, Found)> {
        let mut out = Vec::new();
        let mut kept = Vec::new();
        for path in std::mem::take(&mut self.order) {
            let Some(state) = self.states.remove(&path) else {
                continue;
            };
            match state {
                State::Ready(found) => out.push((path, found)),
                State::Complete if !self.close_events => {
                    let found = read(&path);
                    out.push((path, found));
                }
                other => {
                    self.states.insert(path.clone(), other);
                    kept.push(path);
                }
            }
        }
        self.order = kept;
        self.ready_since = None;
        if self.order.is_empty() {
            self.first = None;
            self.last = None;
        }
        out
    }
}

type RawEvent = notify::Result<Event>;

/// One file of a flushed batch: its path (the real path when it was read), whether it exists, and the bytes read.
pub type FileOut = (String, bool, Option<Vec<u8>>);

/// One flushed batch, and notes for the Python side to log (trouble the batcher thread cannot log itself).
pub type BatchOut = (Vec<FileOut>, Vec<String>);

/// Two unnamed temporary files (`O_TMPFILE`: nothing to clean up, even after a crash or `os._exit`), watched by the
/// same inotify instance as the tree through their `/proc/self/fd` paths. After reading, the batcher writes to one
/// of them (the other the next time, so inotify never merges two markers into one event), and that write's event,
/// coming back behind every event that happened before it, confirms the reads (see `State::Verifying`). Nobody else
/// can write to them, so each event is exactly one marker, in order.
struct Marker {
    files: [std::fs::File; 2],
    paths: [PathBuf; 2],
}

impl Marker {
    /// Makes the two files in the system's temporary directory and watches them (Linux only: other systems have no
    /// close events, and so no use for it).
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn new(_watcher: &mut Backend) -> std::io::Result<Marker> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn new(watcher: &mut Backend) -> std::io::Result<Marker> {
        let files = [unnamed_file()?, unnamed_file()?];
        let paths = [&files[0], &files[1]].map(|f| {
            use std::os::fd::AsRawFd;
            PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()))
        });
        for (i, path) in paths.iter().enumerate() {
            if let Err(err) = watcher.watch(path) {
                for watched in &paths[..i] {
                    watcher.unwatch(watched);
                }
                return Err(std::io::Error::other(err.to_string()));
            }
        }
        Ok(Marker { files, paths })
    }

    /// Makes marker `seq` (counted from 1). False if the write failed.
    fn make(&self, seq: u64) -> bool {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.files[(seq % 2) as usize].write_at(&seq.to_le_bytes(), 0).is_ok()
        }
        #[cfg(not(unix))]
        {
            let _ = seq;
            false
        }
    }

    /// Whether an event on `path` is a marker's.
    fn owns(&self, path: &Path) -> bool {
        self.paths.iter().any(|p| p == path)
    }

    /// Stops watching the files (they are closed when dropped).
    fn unwatch(&self, watcher: &mut Backend) {
        for path in &self.paths {
            watcher.unwatch(path);
        }
    }
}

/// An unnamed file in the system's temporary directory: `O_TMPFILE`, or where the file system lacks it, a file
/// created and removed at once.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn unnamed_file() -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = std::env::temp_dir();
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).mode(0o600);
    if let Ok(file) = options.clone().custom_flags(libc::O_TMPFILE).open(&tmp) {
        return Ok(file);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let path = tmp.join(format!(".hotswap-marker-{}-{nanos}", std::process::id()));
    let file = options.create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// What watches: on Linux an inotify descriptor that the batcher thread reads itself (see `crate::inotify`);
/// elsewhere, or where that cannot be made, notify's native backend; or notify's polling one.
enum Backend {
    Notify(Box<dyn Watcher + Send>),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Inotify(crate::inotify::Inotify),
}

impl Backend {
    fn watch(&mut self, path: &Path) -> notify::Result<()> {
        match self {
            Backend::Notify(watcher) => watcher.watch(path, RecursiveMode::NonRecursive),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Inotify(inotify) => inotify.watch(path),
        }
    }

    /// Stops watching `path`; its watch may be gone already (inotify drops it with the directory).
    fn unwatch(&mut self, path: &Path) {
        match self {
            Backend::Notify(watcher) => drop(watcher.unwatch(path)),
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Backend::Inotify(inotify) => inotify.unwatch(path),
        }
    }
}

/// Where the batcher thread gets its events: notify's channel, or (Linux) the inotify descriptor of the tree's
/// backend, read on the batcher thread, with a wake-up descriptor for `stop()` and the test gate's commands.
pub(crate) enum Events {
    Channel(Receiver<RawEvent>),
    #[cfg(any(target_os = "linux", target_os = "android"))]
    Inotify {
        wake: Arc<Wake>,
        gate: Option<Receiver<GateCmd>>,
    },
}

impl Events {
    /// What wakes the batcher thread from its wait, where writing to its stop channel alone does not.
    fn waker(&self) -> Option<Arc<Wake>> {
        match self {
            Events::Channel(_) => None,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Events::Inotify { wake, .. } => Some(wake.clone()),
        }
    }
}

/// The watching backend, the directories it watches, and the filter. Lives on the batcher thread after start.
struct Tree {
    watcher: Backend,
    /// With the native backend on Linux: what confirms reads.
    marker: Option<Marker>,
    filter: Filter,
    watched: HashSet<PathBuf>,
    native: bool,
    /// For tests: directories the walk treats as unreadable (as if the OS refused to watch them).
    unreadable: Vec<PathBuf>,
}

impl Tree {
    /// Watches `dir` and every non-ignored directory below it; pushes the wanted files found onto `files` when
    /// given. Symlinked directories are never followed (their target is outside the roots, or watched already).
    /// A directory that cannot be watched or listed is skipped with a note; only the watch limit is an error.
    fn walk(
        &mut self,
        dir: &Path,
        mut files: Option<&mut Vec<PathBuf>>,
        notes: &mut Vec<String>,
    ) -> notify::Result<()> {
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            if self.watched.contains(&dir) {
                continue;
            }
            if !self.watch_one(&dir, notes)? {
                continue;
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) => {
                    notes.push(format!(
                        "cannot list {}: {err}; files below it are not watched",
                        dir.display()
                    ));
                    continue;
                }
            };
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

    /// Watches one directory, non-recursively. Ok(false) when it vanished or cannot be watched (with a note).
    fn watch_one(&mut self, dir: &Path, notes: &mut Vec<String>) -> notify::Result<bool> {
        let result = if self.unreadable.iter().any(|u| u == dir) {
            Err(notify::Error::io(std::io::Error::from(
                std::io::ErrorKind::PermissionDenied,
            )))
        } else {
            self.watcher.watch(dir)
        };
        match result {
            Ok(()) => {
                self.watched.insert(dir.to_path_buf());
                Ok(true)
            }
            Err(err) if matches!(err.kind, ErrorKind::PathNotFound) => Ok(false),
            Err(err) if matches!(&err.kind, ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) => {
                Ok(false)
            }
            Err(err) if matches!(err.kind, ErrorKind::MaxFilesWatch) => Err(err),
            Err(err) => {
                let reason = match &err.kind {
                    ErrorKind::Io(io) => io.to_string(),
                    _ => err.to_string(),
                };
                notes.push(format!(
                    "cannot watch {}: {reason}; saves below it are not reloaded",
                    dir.display()
                ));
                Ok(false)
            }
        }
    }

    /// Stops watching `dir` and every watched directory below it.
    fn forget(&mut self, dir: &Path) {
        let gone: Vec<PathBuf> = self.watched.iter().filter(|w| w.starts_with(dir)).cloned().collect();
        for path in gone {
            self.watched.remove(&path);
            self.watcher.unwatch(&path);
        }
    }
}

/// The batcher thread: applies raw events to the tree (new directories get watched) and the batcher, reads
/// complete files, and sends each due batch. Ends on a message on `stop`, or when its sender is dropped (the
/// `Watcher` is), after the backend has shut down: with notify's backend, its event handler, which holds the only
/// sender of the event channel, is dropped after its inotify descriptor is closed.
fn run_batcher(mut tree: Tree, events: Events, stop: Receiver<()>, out: Sender<BatchOut>, mut batcher: Batcher) {
    let mut notes: Vec<String> = Vec::new();
    let mut rescan = false;
    // The events read but not yet applied (one read's worth), and the test gate's state (inotify backend).
    let mut fresh: Vec<RawEvent> = Vec::new();
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let mut gate = match &events {
        Events::Inotify { gate: Some(cmds), .. } => Some(Gate::new(cmds.clone())),
        _ => None,
    };
    // Whether a marker was just made: its event is already queued (inotify queues it before the write returns), so
    // the next wait does not sleep.
    let mut marked = false;
    loop {
        let deadline = if rescan || marked {
            Some(Instant::now())
        } else {
            batcher.deadline()
        };
        let timeout = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match &events {
            Events::Channel(raw_rx) => {
                crossbeam_channel::select! {
                    recv(stop) -> _ => break,
                    recv(raw_rx) -> msg => match msg {
                        Ok(event) => fresh.push(event),
                        Err(_) => break,
                    },
                    default(timeout.unwrap_or(Duration::from_secs(3600))) => {},
                }
                // Decide from every event delivered so far, not only the first one.
                fresh.extend(raw_rx.try_iter());
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            Events::Inotify { wake, .. } => {
                let Backend::Inotify(inotify) = &mut tree.watcher else {
                    unreachable!("inotify events come only with the inotify backend")
                };
                crate::inotify::wait(inotify, wake, timeout);
                if !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
                    break;
                }
                inotify.read(&mut fresh);
            }
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(gate) = gate.as_mut() {
            gate.pass(&mut fresh, |event| {
                handle_event(&mut tree, &mut batcher, event, &mut notes, &mut rescan)
            });
        }
        for event in fresh.drain(..) {
            handle_event(&mut tree, &mut batcher, event, &mut notes, &mut rescan);
        }
        let now = Instant::now();
        if rescan {
            // The kernel's event queue overflowed: look at every wanted file; the Python side skips the unchanged.
            rescan = false;
            let roots = tree.filter.roots.clone();
            let mut files = tree.filter.files.clone();
            tree.watched.clear();
            for root in roots {
                if let Err(err) = tree.walk(&root, Some(&mut files), &mut notes) {
                    notes.push(format!("rescan of {} failed: {err}", root.display()));
                }
            }
            // Markers may have been lost with the events: new marker files (their events cannot be mistaken for
            // the old ones'), counted from scratch, and what was read and not confirmed is read again.
            if let Ok(marker) = Marker::new(&mut tree.watcher) {
                if let Some(old) = tree.marker.replace(marker) {
                    old.unwatch(&mut tree.watcher);
                }
                batcher.count_marks_again();
            }
            batcher.read_again();
            for file in files {
                batcher.touch(file, Touch::Other, now);
            }
        }
        let filter = &tree.filter;
        let mut read = |path: &Path| read_checked(filter, path);
        let marker = tree.marker.as_ref();
        let mut mark = |seq: u64| marker.is_some_and(|m| m.make(seq));
        let made = batcher.marks_made;
        batcher.advance(now, &mut read, &mut mark);
        marked = batcher.marks_made != made && !matches!(events, Events::Channel(_));
        let due = batcher.due(Instant::now());
        if !due && notes.is_empty() {
            continue;
        }
        let files = if due {
            finish(batcher.take(&mut read))
        } else {
            Vec::new()
        };
        if files.is_empty() && notes.is_empty() {
            continue;
        }
        if out.send((files, std::mem::take(&mut notes))).is_err() {
            break;
        }
    }
    drop(tree);
    if let Events::Channel(raw_rx) = events {
        // Wait until the backend's thread has dropped its handler (and with it closed its descriptors).
        let deadline = Instant::now() + Duration::from_millis(250);
        while raw_rx.recv_deadline(deadline).is_ok() {}
    }
}

/// The test gate on the batcher thread (inotify backend; see `GateCmd`): holds events as a starved event thread
/// would, and lets them through on command.
#[cfg(any(target_os = "linux", target_os = "android"))]
struct Gate {
    cmds: Option<Receiver<GateCmd>>,
    held: std::collections::VecDeque<RawEvent>,
    open: bool,
    until_close: Option<Sender<()>>,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Gate {
    fn new(cmds: Receiver<GateCmd>) -> Gate {
        Gate {
            cmds: Some(cmds),
            held: std::collections::VecDeque::new(),
            open: true,
            until_close: None,
        }
    }

    /// Takes the new events in `fresh` and applies (with `apply`) those the gate lets through now, in order.
    fn pass(&mut self, fresh: &mut Vec<RawEvent>, mut apply: impl FnMut(RawEvent)) {
        self.held.extend(fresh.drain(..));
        while let Some(cmds) = &self.cmds {
            match cmds.try_recv() {
                Ok(GateCmd::Hold) => self.open = false,
                Ok(GateCmd::Open) => self.open = true,
                Ok(GateCmd::PassUntilClose(ack)) => self.until_close = Some(ack),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.open = true;
                    self.cmds = None;
                }
            }
        }
        while self.open || self.until_close.is_some() {
            let Some(event) = self.held.pop_front() else { break };
            let closed = matches!(&event, Ok(e) if e.kind == EventKind::Access(AccessKind::Close(AccessMode::Write)));
            apply(event);
            if closed {
                if let Some(ack) = self.until_close.take() {
                    let _ = ack.send(());
                }
            }
        }
    }
}

/// Turns a batch into what Python gets: each file once (by the real path it was read through), files whose real
/// path leads outside the roots dropped.
fn finish(files: Vec<(PathBuf, Found)>) -> Vec<FileOut> {
    let mut seen = HashSet::new();
    files
        .into_iter()
        .filter_map(|(path, found)| {
            let (path, exists, content) = match found {
                Found::File { real, content } => (real, true, Some(content)),
                Found::Missing => (path, false, None),
                Found::Outside => return None,
            };
            seen.insert(path.clone())
                .then(|| (path.to_string_lossy().into_owned(), exists, content))
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
    if let Some(marker) = &tree.marker {
        if event.paths.iter().any(|p| marker.owns(p)) {
            if matches!(event.kind, EventKind::Modify(ModifyKind::Data(_))) {
                batcher.marker_came_back(now);
            }
            return;
        }
    }
    let touch = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Touch::Closed,
        // Opens say nothing about content (inotify does not say for what; notify does not ask for close-after-read).
        EventKind::Access(_) => return,
        EventKind::Modify(ModifyKind::Data(_)) | EventKind::Modify(ModifyKind::Any) => Touch::Write,
        // chmod, utime: no new content (a `touch` also closes after writing, which is looked at).
        EventKind::Modify(ModifyKind::Metadata(_)) if tree.native => return,
        EventKind::Create(_) => Touch::Created,
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Touch::Gone,
        EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Touch::Landed,
        // notify also sends the two halves of a rename as From and To.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if tree.native => return,
        _ => Touch::Other,
    };
    for path in &event.paths {
        let gone = touch == Touch::Gone;
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
        let mut touch = touch;
        if matches!(touch, Touch::Created | Touch::Landed | Touch::Other) {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.is_dir() {
                    if !tree.watched.contains(path) && !tree.filter.ignores_dir(path) && tree.filter.under_roots(path) {
                        // Files may have been created in it before its watch was added: look at those found.
                        let mut files = Vec::new();
                        if let Err(err) = tree.walk(path, Some(&mut files), notes) {
                            notes.push(format!("cannot watch {}: {err}", path.display()));
                        }
                        for file in files {
                            batcher.touch(file, Touch::Other, now);
                        }
                    }
                    continue;
                }
                if meta.file_type().is_symlink() && touch == Touch::Created {
                    // A symlink is complete when it is created: nobody writes through it and closes it.
                    touch = Touch::Landed;
                }
            }
        }
        if tree.filter.wants_file(path) {
            batcher.touch(path.clone(), touch, now);
        }
    }
}

/// A test hook between the native backend and the batcher (`Watcher(simulate_event_gate=True)`): it holds the
/// backend's events, as a starved notify thread on a loaded machine does, and lets them through on command, so a
/// test can make the batcher read a file at a chosen point of a writer's sequence.
pub enum GateCmd {
    /// Hold every event from now on.
    Hold,
    /// Let every event through, held ones first.
    Open,
    /// Let held and new events through up to and including the next close-after-write, then hold again; the
    /// sender gets a message once that close has been passed on.
    PassUntilClose(Sender<()>),
}

/// The gate's thread: relays `input` to `output` as `cmds` say. Passes everything once `input` ends (the backend
/// shut down), then drops `output`, as the backend's own handler would.
fn relay_through_gate(input: Receiver<RawEvent>, output: Sender<RawEvent>, cmds: Receiver<GateCmd>) {
    let mut held = std::collections::VecDeque::new();
    let mut open = true;
    let mut until_close: Option<Sender<()>> = None;
    let mut cmds = Some(cmds);
    loop {
        let never = crossbeam_channel::never();
        crossbeam_channel::select! {
            recv(input) -> ev => match ev {
                Ok(ev) => held.push_back(ev),
                Err(_) => break,
            },
            recv(cmds.as_ref().unwrap_or(&never)) -> cmd => match cmd {
                Ok(GateCmd::Hold) => open = false,
                Ok(GateCmd::Open) | Err(_) => {
                    open = true;
                    if cmd.is_err() {
                        cmds = None;
                    }
                }
                Ok(GateCmd::PassUntilClose(ack)) => until_close = Some(ack),
            },
        }
        while open || until_close.is_some() {
            let Some(ev) = held.pop_front() else { break };
            let closed = matches!(&ev, Ok(e) if e.kind == EventKind::Access(AccessKind::Close(AccessMode::Write)));
            if output.send(ev).is_err() {
                return;
            }
            if closed {
                if let Some(ack) = until_close.take() {
                    let _ = ack.send(());
                }
            }
        }
    }
    for ev in held {
        let _ = output.send(ev);
    }
}

/// Builds the tree with the native backend, or the polling one when asked to or when the native one fails.
/// Returns the tree, where its events come from, and why the native backend was not used; `notes` gets
/// directories that could not be watched.
fn start_tree(
    filter: Filter,
    force_polling: bool,
    simulate_native_error: bool,
    unreadable: Vec<PathBuf>,
    gate: Option<Receiver<GateCmd>>,
    notes: &mut Vec<String>,
) -> (notify::Result<(Tree, Events)>, Option<String>) {
    let mut fallback = if force_polling {
        Some("force_polling=True".to_string())
    } else {
        None
    };
    if fallback.is_none() {
        let native = if simulate_native_error {
            Err(notify::Error::io(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "simulated for tests",
            )))
        } else {
            native_backend(gate)
        };
        match native {
            Ok((watcher, events)) => {
                let mut tree = Tree {
                    watcher,
                    marker: None,
                    filter: filter.clone(),
                    watched: HashSet::new(),
                    native: true,
                    unreadable: unreadable.clone(),
                };
                let mut tried = Vec::new();
                match walk_roots(&mut tree, &mut tried) {
                    Ok(()) => {
                        notes.append(&mut tried);
                        if has_close_events() {
                            match Marker::new(&mut tree.watcher) {
                                Ok(marker) => tree.marker = Some(marker),
                                Err(err) => notes.push(format!(
                                    "cannot make a temporary file under {} to confirm reads of saved files \
                                     ({err}): a save is taken as complete after {QUIET_WITHOUT_CLOSE_MS} quiet \
                                     milliseconds, as when polling",
                                    std::env::temp_dir().display()
                                )),
                            }
                        }
                        return (Ok((tree, events)), None);
                    }
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
            watcher: Backend::Notify(Box::new(watcher)),
            marker: None,
            filter,
            watched: HashSet::new(),
            native: false,
            unreadable,
        };
        walk_roots(&mut tree, notes).map(|()| (tree, Events::Channel(raw_rx)))
    });
    (result, fallback)
}

/// The OS's notifications: on Linux an inotify descriptor the batcher thread reads itself, else (or if that cannot
/// be made) notify's recommended backend, whose thread sends its events through a channel (through the test gate's
/// relay thread when there is a gate).
fn native_backend(gate: Option<Receiver<GateCmd>>) -> notify::Result<(Backend, Events)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let (Ok(inotify), Ok(wake)) = (crate::inotify::Inotify::new(), Wake::new()) {
        let events = Events::Inotify {
            wake: Arc::new(wake),
            gate,
        };
        return Ok((Backend::Inotify(inotify), events));
    }
    let (mut raw_tx, raw_rx) = unbounded::<RawEvent>();
    if let Some(gate) = gate {
        let (relay_tx, relay_rx) = unbounded::<RawEvent>();
        let out = std::mem::replace(&mut raw_tx, relay_tx);
        std::thread::spawn(move || relay_through_gate(relay_rx, out, gate));
    }
    let watcher = RecommendedWatcher::new(move |ev: RawEvent| drop(raw_tx.send(ev)), Config::default())?;
    Ok((Backend::Notify(Box::new(watcher)), Events::Channel(raw_rx)))
}

fn walk_roots(tree: &mut Tree, notes: &mut Vec<String>) -> notify::Result<()> {
    for root in tree.filter.roots.clone() {
        tree.walk(&root, None, notes)?;
    }
    // A root file: its directory is watched (a rename-saving editor replaces the file's inode), not walked.
    for file in tree.filter.files.clone() {
        if let Some(dir) = file.parent() {
            if !tree.watched.contains(dir) {
                tree.watch_one(dir, notes)?;
            }
        }
    }
    Ok(())
}

/// Whether the native backend reports close-after-write, which is how a complete save is recognised (used only
/// with a `Marker`, which confirms each read).
fn has_close_events() -> bool {
    cfg!(any(target_os = "linux", target_os = "android"))
}

/// Watches directory trees and hands out batches of complete, changed files with their bytes.
///
/// The notify callback thread and the batcher thread never touch Python; `wait` blocks with the GIL released,
/// in slices, checking for signals between them so Ctrl-C interrupts it.
#[pyclass(name = "Watcher", module = "hotswap._native")]
pub struct PyWatcher {
    /// Dropped by hand in `Drop`, and never in a forked child (see `abandon_after_fork`).
    batches: ManuallyDrop<Receiver<BatchOut>>,
    stop_tx: Mutex<Option<Sender<()>>>,
    /// What wakes the batcher thread after a message on `stop_tx` or the gate (inotify backend); dropped by `stop()`.
    wake: Mutex<Option<Arc<Wake>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    filter: Filter,
    #[pyo3(get)]
    backend: &'static str,
    #[pyo3(get)]
    fallback_reason: Option<String>,
    #[pyo3(get)]
    watched_dirs: usize,
    #[pyo3(get)]
    warnings: Vec<String>,
    /// The process that started the threads; in a forked child they do not exist (see `forked`).
    pid: u32,
    /// The test hook `simulate_event_gate` (see `GateCmd`).
    gate: Option<Sender<GateCmd>>,
}

/// Slice of a blocking `wait` between two signal checks.
const WAIT_SLICE: Duration = Duration::from_millis(50);

#[pymethods]
impl PyWatcher {
    #[new]
    #[pyo3(signature = (roots, *, include = vec!["*.py".to_string()], exclude = vec![], debounce_ms = 0, max_batch_ms = 100,
                        force_polling = false, simulate_native_error = false, simulate_unreadable = vec![],
                        simulate_event_gate = false))]
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
        simulate_unreadable: Vec<PathBuf>,
        simulate_event_gate: bool,
    ) -> PyResult<Self> {
        if roots.is_empty() {
            return Err(PyValueError::new_err("Watcher needs at least one root directory"));
        }
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        for root in &roots {
            let real = std::fs::canonicalize(root)
                .map_err(|err| PyFileNotFoundError::new_err(format!("cannot watch {}: {err}", root.display())))?;
            if real.parent().is_none() {
                return Err(PyValueError::new_err(format!(
                    "cannot watch {}: that tree is the whole file system; pass your project's directory",
                    root.display()
                )));
            }
            if real.is_dir() {
                dirs.push(real);
            } else if real.is_file() {
                files.push(real);
            } else {
                return Err(PyValueError::new_err(format!(
                    "cannot watch {}: not a directory or a regular file",
                    root.display()
                )));
            }
        }
        let filter = Filter {
            roots: dirs,
            files,
            include,
            exclude,
        };
        let unreadable: Vec<PathBuf> = simulate_unreadable
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let mut warnings = Vec::new();
        let (gate, gate_rx) = if simulate_event_gate {
            let (tx, rx) = unbounded();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (result, fallback_reason) = py.detach(|| {
            start_tree(
                filter.clone(),
                force_polling,
                simulate_native_error,
                unreadable,
                gate_rx,
                &mut warnings,
            )
        });
        let (tree, events) = result.map_err(|err| PyRuntimeError::new_err(format!("cannot start watching: {err}")))?;
        let backend = if tree.native { "native" } else { "poll" };
        let watched_dirs = tree.watched.len();
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let wake = events.waker();
        let (out_tx, out_rx) = unbounded::<BatchOut>();
        let batcher = Batcher::new(
            tree.marker.is_some(),
            Duration::from_millis(debounce_ms),
            Duration::from_millis(max_batch_ms.max(debounce_ms)),
        );
        let thread = std::thread::Builder::new()
            .name("hotswap-watch".into())
            .spawn(move || run_batcher(tree, events, stop_rx, out_tx, batcher))
            .map_err(|err| PyRuntimeError::new_err(format!("cannot start the watcher thread: {err}")))?;
        Ok(PyWatcher {
            batches: ManuallyDrop::new(out_rx),
            stop_tx: Mutex::new(Some(stop_tx)),
            wake: Mutex::new(wake),
            thread: Mutex::new(Some(thread)),
            filter,
            backend,
            fallback_reason,
            watched_dirs,
            warnings,
            pid: std::process::id(),
            gate,
        })
    }

    /// Next batch `(files, notes)`, where files is a list of `(path, exists, content)`; None at timeout or once
    /// stopped.
    #[pyo3(signature = (timeout_s = None))]
    #[allow(clippy::type_complexity)]
    fn wait<'py>(
        &self,
        py: Python<'py>,
        timeout_s: Option<f64>,
    ) -> PyResult<Option<(Vec<(String, bool, Option<Bound<'py, PyBytes>>)>, Vec<String>)>> {
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
                Ok((files, notes)) => {
                    let files = files
                        .into_iter()
                        .map(|(path, exists, content)| (path, exists, content.map(|c| PyBytes::new(py, &c))))
                        .collect();
                    return Ok(Some((files, notes)));
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {}
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
    }

    /// Reads `path` now, checking that it is a regular file whose real path is under the roots: `(real path,
    /// bytes)`, or None (gone, not a regular file, or leading outside the roots). What is returned is what was
    /// checked (one descriptor for both).
    fn read<'py>(&self, py: Python<'py>, path: PathBuf) -> Option<(String, Bound<'py, PyBytes>)> {
        match py.detach(|| read_checked(&self.filter, &path)) {
            Found::File { real, content } => Some((real.to_string_lossy().into_owned(), PyBytes::new(py, &content))),
            Found::Missing | Found::Outside => None,
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
        if let Some(wake) = self.wake.lock().take() {
            wake.wake();
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

    /// Test hook (`simulate_event_gate=True`): holds the backend's events from now on.
    fn _hold_events(&self) -> PyResult<()> {
        self.gate_send(GateCmd::Hold)
    }

    /// Test hook: lets every event through, held ones first.
    fn _release_events(&self) -> PyResult<()> {
        self.gate_send(GateCmd::Open)
    }

    /// Test hook: lets events through up to and including the next close-after-write, then holds again. True once
    /// that close has been passed to the batcher, False if none came within `timeout_s`.
    fn _pass_events_until_close(&self, py: Python<'_>, timeout_s: f64) -> PyResult<bool> {
        let (ack_tx, ack_rx) = bounded(1);
        self.gate_send(GateCmd::PassUntilClose(ack_tx))?;
        Ok(py.detach(|| ack_rx.recv_timeout(Duration::from_secs_f64(timeout_s.max(0.0))).is_ok()))
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
    fn gate_send(&self, cmd: GateCmd) -> PyResult<()> {
        let gate = self.gate.as_ref().ok_or_else(|| {
            PyValueError::new_err("this Watcher was not made with simulate_event_gate=True (a test hook)")
        })?;
        gate.send(cmd)
            .map_err(|_| PyRuntimeError::new_err("the watcher has stopped"))?;
        if let Some(wake) = self.wake.lock().as_ref() {
            wake.wake();
        }
        Ok(())
    }

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
        // Shared with the parent's batcher thread (the descriptor too): not dropped here, never written to.
        std::mem::forget(self.wake.lock().take());
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
        if let Some(wake) = self.wake.get_mut().take() {
            wake.wake();
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
            files: vec![],
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

    fn file(path: &str, content: &str) -> Found {
        Found::File {
            real: PathBuf::from(path),
            content: content.as_bytes().to_vec(),
        }
    }

    /// A reader that returns `content` for every path it is asked for, and counts the reads.
    fn reader<'a>(content: &'static str, reads: &'a mut usize) -> impl FnMut(&Path) -> Found + 'a {
        move |p: &Path| {
            *reads += 1;
            file(p.to_str().unwrap(), content)
        }
    }

    /// Marks always made.
    fn marks(_seq: u64) -> bool {
        true
    }

    /// Feeds `events` to a close-aware batcher at `t0`, advancing after each, and returns the batch if due. The
    /// path "" stands for the latest marker coming back.
    fn run(b: &mut Batcher, t0: Instant, events: &[(&str, Touch)], content: &'static str) -> Vec<(PathBuf, Found)> {
        let mut reads = 0;
        let mut read = reader(content, &mut reads);
        for (path, touch) in events {
            if path.is_empty() {
                while b.marks_seen < b.marks_made {
                    b.marker_came_back(t0);
                }
            } else {
                b.touch(PathBuf::from(path), *touch, t0);
            }
            b.advance(t0, &mut read, &mut marks);
        }
        if b.due(t0) {
            b.take(&mut read)
        } else {
            Vec::new()
        }
    }

    #[test]
    fn a_save_is_reported_once_closed_and_its_read_confirmed() {
        let t0 = Instant::now();
        let mut b = Batcher::new(true, ms(0), ms(100));
        // In place: truncate, write, close. Nothing before the close; then the marker made after the read confirms.
        assert!(run(&mut b, t0, &[("m.py", Touch::Write), ("m.py", Touch::Write)], "x").is_empty());
        assert!(b.is_writing(Path::new("m.py")));
        assert!(
            run(&mut b, t0, &[("m.py", Touch::Closed)], "x = 2").is_empty(),
            "read, not yet confirmed"
        );
        let out = run(&mut b, t0, &[("", Touch::Other)], "unused");
        assert_eq!(out, vec![(PathBuf::from("m.py"), file("m.py", "x = 2"))]);
        assert!(b.is_empty() && b.deadline().is_none());
    }

    #[test]
    fn a_write_between_the_read_and_its_echo_discards_the_read() {
        let t0 = Instant::now();
        let mut b = Batcher::new(true, ms(0), ms(100));
        run(&mut b, t0, &[("m.py", Touch::Write), ("m.py", Touch::Closed)], "first");
        // The next save truncated the file before the read: its write comes before the read's marker.
        let out = run(&mut b, t0, &[("m.py", Touch::Write), ("", Touch::Other)], "");
        assert!(out.is_empty() && b.is_writing(Path::new("m.py")));
        run(&mut b, t0, &[("m.py", Touch::Closed)], "second");
        let out = run(&mut b, t0, &[("", Touch::Other)], "");
        assert_eq!(out, vec![(PathBuf::from("m.py"), file("m.py", "second"))]);
    }

    #[test]
    fn a_slow_writer_holds_its_file_however_long_it_takes() {
        let t0 = Instant::now();
        let mut b = Batcher::new(true, ms(0), ms(100));
        run(&mut b, t0, &[("m.py", Touch::Write)], "");
        let mut reads = 0;
        let later = t0 + Duration::from_secs(3600);
        b.advance(later, &mut reader("half", &mut reads), &mut marks);
        assert!(
            !b.due(later) && reads == 0 && b.deadline().is_none(),
            "no timer while a writer holds the file"
        );
        // A file only created (vim's new inode before its first write) is looked at after a bounded wait.
        let mut b = Batcher::new(true, ms(0), ms(100));
        b.touch("n.py".into(), Touch::Created, t0);
        assert_eq!(b.deadline(), Some(t0 + ms(UNWRITTEN_MAX_MS)));
        b.advance(t0 + ms(UNWRITTEN_MAX_MS), &mut reader("", &mut reads), &mut marks);
        assert_eq!(reads, 1);
    }

    #[test]
    fn editors_save_sequences_give_one_report() {
        let t0 = Instant::now();
        // vim: the original renamed away (gone), a new inode created, written, closed.
        let mut b = Batcher::new(true, ms(0), ms(100));
        let vim = [
            ("m.py", Touch::Gone),
            ("m.py", Touch::Created),
            ("m.py", Touch::Write),
            ("m.py", Touch::Closed),
            ("", Touch::Other),
        ];
        assert_eq!(
            run(&mut b, t0, &vim, "v"),
            vec![(PathBuf::from("m.py"), file("m.py", "v"))]
        );
        // JetBrains: the original renamed away, the temporary file (ignored) renamed over it.
        let mut b = Batcher::new(true, ms(0), ms(100));
        let jb = [("m.py", Touch::Gone), ("m.py", Touch::Landed), ("", Touch::Other)];
        assert_eq!(
            run(&mut b, t0, &jb, "j"),
            vec![(PathBuf::from("m.py"), file("m.py", "j"))]
        );
        // A deletion alone is reported as such.
        let mut b = Batcher::new(true, ms(0), ms(100));
        assert_eq!(
            run(&mut b, t0, &[("m.py", Touch::Gone)], ""),
            vec![(PathBuf::from("m.py"), Found::Missing)]
        );
    }

    #[test]
    fn files_saved_together_wait_for_each_other_within_the_group_bound() {
        let t0 = Instant::now();
        let mut b = Batcher::new(true, ms(0), ms(100));
        run(&mut b, t0, &[("a.py", Touch::Write), ("a.py", Touch::Closed)], "a");
        run(&mut b, t0, &[("b.py", Touch::Write)], "");
        let out = run(&mut b, t0, &[("", Touch::Other)], "");
        assert!(out.is_empty(), "b.py is being written: a.py waits for it");
        assert_eq!(b.deadline(), Some(t0 + ms(100)));
        run(&mut b, t0, &[("b.py", Touch::Closed)], "b");
        let out = run(&mut b, t0, &[("", Touch::Other)], "");
        assert_eq!(
            out.iter().map(|(p, _)| p.to_str().unwrap()).collect::<Vec<_>>(),
            ["a.py", "b.py"]
        );
        // A writer that keeps its file open lets the others go at the bound, and stays held itself.
        run(
            &mut b,
            t0,
            &[("a.py", Touch::Write), ("a.py", Touch::Closed), ("c.py", Touch::Write)],
            "a2",
        );
        run(&mut b, t0, &[("", Touch::Other)], "");
        assert!(!b.due(t0 + ms(99)) && b.due(t0 + ms(100)));
        let mut reads = 0;
        let out = b.take(&mut reader("", &mut reads));
        assert_eq!(out, vec![(PathBuf::from("a.py"), file("a.py", "a2"))]);
        assert!(b.is_writing(Path::new("c.py")) && !b.is_empty());
    }

    #[test]
    fn a_file_read_empty_waits_for_a_write_then_is_reported_empty() {
        let t0 = Instant::now();
        let mut b = Batcher::new(true, ms(0), ms(100));
        // Closed, then truncated by the next writer before the read (no event for the truncation): read empty, and
        // no timer runs until the read is confirmed.
        run(&mut b, t0, &[("m.py", Touch::Write), ("m.py", Touch::Closed)], "");
        assert_eq!(b.deadline(), None);
        run(&mut b, t0, &[("", Touch::Other)], "");
        assert!(!b.due(t0) && b.deadline() == Some(t0 + ms(UNWRITTEN_MAX_MS)));
        run(&mut b, t0, &[("m.py", Touch::Write), ("m.py", Touch::Closed)], "x = 3");
        let out = run(&mut b, t0, &[("", Touch::Other)], "");
        assert_eq!(out, vec![(PathBuf::from("m.py"), file("m.py", "x = 3"))]);
        // Emptied and left so: reported empty after the bound.
        run(
            &mut b,
            t0,
            &[("m.py", Touch::Write), ("m.py", Touch::Closed), ("", Touch::Other)],
            "",
        );
        let mut reads = 0;
        b.advance(t0 + ms(UNWRITTEN_MAX_MS), &mut reader("", &mut reads), &mut marks);
        assert!(b.due(t0 + ms(UNWRITTEN_MAX_MS)));
        assert_eq!(
            b.take(&mut reader("", &mut reads)),
            vec![(PathBuf::from("m.py"), file("m.py", ""))]
        );
    }

    #[test]
    fn a_read_is_confirmed_only_by_a_marker_made_after_it_never_by_a_timer() {
        let t0 = Instant::now();
        let mut b = Batcher::new(true, ms(0), ms(100));
        run(&mut b, t0, &[("a.py", Touch::Closed)], "a");
        assert_eq!(
            (b.marks_made, b.deadline()),
            (1, None),
            "no timer: the marker is waited for"
        );
        let mut reads = 0;
        let later = t0 + Duration::from_secs(3600);
        b.advance(later, &mut reader("", &mut reads), &mut marks);
        assert!(!b.due(later) && reads == 0);
        // A second file read after marker 1 was made: marker 1 coming back confirms a.py only.
        run(&mut b, t0, &[("b.py", Touch::Closed)], "b");
        b.marker_came_back(later);
        assert_eq!(
            b.take(&mut reader("", &mut reads)),
            vec![(PathBuf::from("a.py"), file("a.py", "a"))]
        );
        b.marker_came_back(later);
        assert_eq!(
            b.take(&mut reader("", &mut reads)),
            vec![(PathBuf::from("b.py"), file("b.py", "b"))]
        );
        // A marker that could not be made is tried again after a bound; the bytes read are kept meanwhile.
        b.touch("c.py".into(), Touch::Closed, t0);
        b.advance(t0, &mut reader("c", &mut reads), &mut |_| false);
        assert_eq!((b.marks_made, b.deadline()), (2, Some(t0 + ms(VERIFY_MAX_MS))));
        b.advance(t0 + ms(VERIFY_MAX_MS), &mut reader("", &mut reads), &mut marks);
        assert_eq!((b.marks_made, b.deadline()), (3, None));
        b.marker_came_back(t0);
        assert_eq!(
            b.take(&mut reader("", &mut reads)),
            vec![(PathBuf::from("c.py"), file("c.py", "c"))]
        );
        assert_eq!(reads, 1, "c.py was read once");
        // After an event queue overflow (markers may be lost), counting starts again and what was read is read again.
        run(&mut b, t0, &[("d.py", Touch::Closed)], "old");
        b.count_marks_again();
        b.read_again();
        let out = run(&mut b, t0, &[("", Touch::Other), ("", Touch::Other)], "new");
        assert_eq!(out, vec![(PathBuf::from("d.py"), file("d.py", "new"))]);
    }

    #[test]
    fn without_close_events_a_batch_ends_after_a_quiet_period_or_cap() {
        let t0 = Instant::now();
        let mut b = Batcher::new(false, ms(0), ms(100));
        assert_eq!(b.deadline(), None);
        b.touch("a".into(), Touch::Write, t0);
        assert_eq!(b.deadline(), Some(t0 + ms(QUIET_WITHOUT_CLOSE_MS)));
        b.touch("b".into(), Touch::Other, t0 + ms(3));
        b.touch("a".into(), Touch::Other, t0 + ms(4));
        assert_eq!(b.deadline(), Some(t0 + ms(4 + QUIET_WITHOUT_CLOSE_MS)));
        // A continuous stream flushes at the cap.
        for i in 0..50 {
            b.touch("c".into(), Touch::Write, t0 + ms(4 * i));
        }
        assert_eq!(b.deadline(), Some(t0 + ms(100)));
        let mut reads = 0;
        let out = b.take(&mut reader("z", &mut reads));
        assert_eq!(
            out.iter().map(|(p, _)| p.to_str().unwrap()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert_eq!(reads, 3);
        assert!(b.is_empty() && b.deadline().is_none());
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("hotswap-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::canonicalize(dir).unwrap()
    }

    #[cfg(unix)]
    #[test]
    fn read_checked_reads_only_regular_files_under_the_roots() {
        let dir = temp_dir("read");
        let (root, outside) = (dir.join("root"), dir.join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("m.py"), "x = 1").unwrap();
        std::fs::write(outside.join("o.py"), "evil()").unwrap();
        std::os::unix::fs::symlink(outside.join("o.py"), root.join("link.py")).unwrap();
        std::os::unix::fs::symlink(root.join("m.py"), root.join("alias.py")).unwrap();
        let filter = Filter {
            roots: vec![root.clone()],
            ..Filter::default()
        };
        assert_eq!(
            read_checked(&filter, &root.join("m.py")),
            file(root.join("m.py").to_str().unwrap(), "x = 1")
        );
        assert_eq!(
            read_checked(&filter, &root.join("alias.py")),
            file(root.join("m.py").to_str().unwrap(), "x = 1")
        );
        assert_eq!(read_checked(&filter, &root.join("link.py")), Found::Outside);
        assert_eq!(read_checked(&filter, &root.join("none.py")), Found::Missing);
        assert_eq!(read_checked(&filter, &root), Found::Missing, "a directory");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn batcher_thread_reports_saves_with_their_bytes_without_python() {
        let dir = temp_dir("batcher");
        std::fs::create_dir_all(dir.join("pkg")).unwrap();
        std::fs::create_dir_all(dir.join(".git")).unwrap();
        let root = dir.clone();
        let filter = Filter {
            roots: vec![root.clone()],
            files: vec![],
            include: vec!["*.py".into()],
            exclude: vec![],
        };
        let mut notes = Vec::new();
        let (result, fallback) = start_tree(filter, false, false, vec![], None, &mut notes);
        let (tree, events) = result.unwrap();
        assert!(fallback.is_none() && tree.native && notes.is_empty());
        assert_eq!(tree.watched.len(), 2, "the root and pkg/, not .git/");
        let (stop_tx, stop_rx) = bounded(1);
        let (out_tx, out_rx) = unbounded();
        let batcher = Batcher::new(tree.marker.is_some(), ms(0), ms(100));
        let wake = events.waker();
        let handle = std::thread::spawn(move || run_batcher(tree, events, stop_rx, out_tx, batcher));
        let target = root.join("pkg/m.py");
        std::fs::write(root.join(".git/x.py"), "ignored").unwrap();
        std::fs::write(root.join("pkg/m.py~"), "backup").unwrap();
        std::fs::write(&target, "x = 1").unwrap();
        let (files, notes) = out_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            files,
            vec![(target.to_string_lossy().into_owned(), true, Some(b"x = 1".to_vec()))]
        );
        assert!(notes.is_empty());
        stop_tx.send(()).unwrap();
        if let Some(wake) = wake {
            wake.wake();
        }
        handle.join().unwrap();
        assert!(
            out_rx.recv_timeout(ms(100)).is_err(),
            "the batch channel is closed once stopped"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unreadable_directory_is_a_note_not_an_error() {
        let dir = temp_dir("unreadable");
        std::fs::create_dir_all(dir.join("locked/inner")).unwrap();
        std::fs::create_dir_all(dir.join("open")).unwrap();
        let filter = Filter {
            roots: vec![dir.clone()],
            ..Filter::default()
        };
        let mut notes = Vec::new();
        let (result, _) = start_tree(filter, false, false, vec![dir.join("locked")], None, &mut notes);
        let (tree, _rx) = result.unwrap();
        assert_eq!(tree.watched.len(), 2, "the root and open/");
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains(&*dir.join("locked").to_string_lossy()), "{notes:?}");
        drop(tree);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
