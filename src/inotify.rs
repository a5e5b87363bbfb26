//! The watcher's Linux backend: one inotify descriptor that the batcher thread reads itself. notify's backend reads
//! on a thread of its own and passes each event through a channel, so a save and the marker that confirms its read
//! each cost two thread wake-ups; read here, the marker's event is in the queue as soon as its write returns and is
//! read at once. Events come out as notify's `Event`s, so the batcher treats both backends alike.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, EventKind, Flag, ModifyKind, RemoveKind};
use notify::event::{Event, RenameMode};

/// What is asked of each watch: content written and closed, entries created, removed and renamed, and the watched
/// directory itself going away. No `IN_OPEN` (notify asks for it): every read of a file, the watcher's own
/// included, would be an event to wake for.
const MASK: u32 = libc::IN_MODIFY
    | libc::IN_CLOSE_WRITE
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_MOVED_FROM
    | libc::IN_MOVED_TO
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF;

/// Size of the fixed part of an event (`struct inotify_event` without its name).
const HEADER: usize = std::mem::size_of::<libc::inotify_event>();

/// An inotify instance and the paths of its watches.
pub struct Inotify {
    fd: OwnedFd,
    paths: HashMap<i32, PathBuf>,
    wds: HashMap<PathBuf, i32>,
    buffer: Vec<u8>,
}

impl Inotify {
    /// A non-blocking, close-on-exec inotify descriptor.
    pub fn new() -> io::Result<Inotify> {
        // SAFETY: inotify_init1 takes flags only and returns a new descriptor or -1 (not a CPython call).
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Inotify {
            // SAFETY: `fd` was just returned by inotify_init1 and is owned by nothing else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            paths: HashMap::new(),
            wds: HashMap::new(),
            buffer: vec![0; 64 * 1024],
        })
    }

    /// Watches `path` (a directory, or a file such as a marker); its events carry `path` (joined with the entry's
    /// name for a directory's entries). Errors as notify's backend gives them: the watch limit is `MaxFilesWatch`.
    pub fn watch(&mut self, path: &Path) -> notify::Result<()> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| notify::Error::io(io::Error::from(io::ErrorKind::InvalidInput)))?;
        // SAFETY: the descriptor is open for as long as `self`; `c_path` is a NUL-terminated string that outlives
        // the call (not a CPython call).
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c_path.as_ptr(), MASK) };
        if wd < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ENOSPC) => notify::Error::new(notify::ErrorKind::MaxFilesWatch),
                Some(libc::ENOENT) => notify::Error::new(notify::ErrorKind::PathNotFound),
                _ => notify::Error::io(err),
            }
            .add_path(path.to_path_buf()));
        }
        if let Some(old) = self.paths.insert(wd, path.to_path_buf()) {
            // The same inode under another path (the kernel gives one watch per inode): the newest path names it.
            self.wds.remove(&old);
        }
        self.wds.insert(path.to_path_buf(), wd);
        Ok(())
    }

    /// Stops watching `path` (nothing if it is not watched, or its watch is gone with its directory).
    pub fn unwatch(&mut self, path: &Path) {
        if let Some(wd) = self.wds.remove(path) {
            self.paths.remove(&wd);
            // SAFETY: the descriptor is open; a watch the kernel already dropped gives EINVAL, which is ignored.
            unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads every event queued now, without blocking, and appends them to `out` in the order they happened.
    /// An overflowed queue is one event with notify's rescan flag.
    pub fn read(&mut self, out: &mut Vec<notify::Result<Event>>) {
        let mut buffer = std::mem::take(&mut self.buffer);
        self.read_into(&mut buffer, out);
        self.buffer = buffer;
    }

    fn read_into(&mut self, buffer: &mut [u8], out: &mut Vec<notify::Result<Event>>) {
        loop {
            // SAFETY: reads into our own buffer, within its length, from our open descriptor (not a CPython call).
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return; // EAGAIN: the queue is empty
            }
            let n = n as usize;
            let mut offset = 0;
            while offset + HEADER <= n {
                // SAFETY: the kernel wrote a whole `inotify_event` header at `offset` (inotify never splits an
                // event across reads); read_unaligned because the buffer is a byte vector.
                let event: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buffer.as_ptr().add(offset).cast()) };
                let name_end = (offset + HEADER + event.len as usize).min(n);
                let name = &buffer[offset + HEADER..name_end];
                let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
                offset = name_end;
                self.translate(event.wd, event.mask, name, out);
            }
        }
    }

    fn translate(&mut self, wd: i32, mask: u32, name: &[u8], out: &mut Vec<notify::Result<Event>>) {
        if mask & libc::IN_Q_OVERFLOW != 0 {
            out.push(Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)));
            return;
        }
        if mask & libc::IN_IGNORED != 0 {
            // The watch is gone (its directory was removed, or we removed it).
            if let Some(path) = self.paths.remove(&wd) {
                self.wds.remove(&path);
            }
            return;
        }
        let Some(dir) = self.paths.get(&wd) else {
            return; // a watch removed since the event was queued
        };
        let path = if name.is_empty() {
            dir.clone()
        } else {
            dir.join(OsStr::from_bytes(name))
        };
        let is_dir = mask & libc::IN_ISDIR != 0;
        let kind = if mask & libc::IN_CREATE != 0 {
            EventKind::Create(if is_dir { CreateKind::Folder } else { CreateKind::File })
        } else if mask & libc::IN_MODIFY != 0 {
            EventKind::Modify(ModifyKind::Data(DataChange::Any))
        } else if mask & libc::IN_CLOSE_WRITE != 0 {
            EventKind::Access(AccessKind::Close(AccessMode::Write))
        } else if mask & (libc::IN_MOVED_FROM | libc::IN_MOVE_SELF) != 0 {
            EventKind::Modify(ModifyKind::Name(RenameMode::From))
        } else if mask & libc::IN_MOVED_TO != 0 {
            EventKind::Modify(ModifyKind::Name(RenameMode::To))
        } else if mask & (libc::IN_DELETE | libc::IN_DELETE_SELF) != 0 {
            EventKind::Remove(if is_dir || mask & libc::IN_DELETE_SELF != 0 {
                RemoveKind::Folder
            } else {
                RemoveKind::File
            })
        } else {
            return; // IN_UNMOUNT and the like: the IN_IGNORED that follows drops the watch
        };
        out.push(Ok(Event::new(kind).add_path(path)));
    }
}

/// A descriptor that wakes the batcher thread from `wait` (an eventfd): `stop()` and the test gate write to it.
pub struct Wake {
    fd: OwnedFd,
}

impl Wake {
    pub fn new() -> io::Result<Wake> {
        // SAFETY: eventfd takes an initial value and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
        Ok(Wake {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Wakes the thread waiting on it (now or at its next wait).
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our open eventfd; a full counter (EAGAIN) still wakes.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Resets the counter after a wake-up.
    fn clear(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our open, non-blocking eventfd.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    }
}

/// Blocks until `inotify` has events or `wake` was written to, or `timeout` passes (None: no limit). Returns
/// whether `wake` was written to (it is then cleared).
pub fn wait(inotify: &Inotify, wake: &Wake, timeout: Option<Duration>) -> bool {
    let mut fds = [
        libc::pollfd {
            fd: inotify.raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // Rounded up, so a deadline a few microseconds away is not a busy loop of zero-timeout polls.
    let ms = timeout.map_or(-1, |t| t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32);
    // SAFETY: `fds` is a live array of two pollfd structures of our open descriptors (not a CPython call).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    let woken = n > 0 && fds[1].revents != 0;
    if woken {
        wake.clear();
    }
    woken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_a_watched_directory_come_in_order_with_their_paths() {
        let dir = std::env::temp_dir().join(format!("hotswap-inotify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut ino = Inotify::new().unwrap();
        ino.watch(&dir).unwrap();
        let file = dir.join("m.py");
        std::fs::write(&file, "x = 1").unwrap();
        std::fs::rename(&file, dir.join("n.py")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        let mut out = Vec::new();
        ino.read(&mut out);
        let got: Vec<(EventKind, PathBuf)> = out
            .into_iter()
            .map(|e| e.unwrap())
            .map(|e| (e.kind, e.paths[0].clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (EventKind::Create(CreateKind::File), file.clone()),
                (EventKind::Modify(ModifyKind::Data(DataChange::Any)), file.clone()),
                (EventKind::Access(AccessKind::Close(AccessMode::Write)), file.clone()),
                (EventKind::Modify(ModifyKind::Name(RenameMode::From)), file.clone()),
                (EventKind::Modify(ModifyKind::Name(RenameMode::To)), dir.join("n.py")),
                (EventKind::Create(CreateKind::Folder), dir.join("sub")),
            ]
        );
        // Reading the file is no event (no IN_OPEN); nothing is left to read, and a wait times out.
        std::fs::read(dir.join("n.py")).unwrap();
        let wake = Wake::new().unwrap();
        assert!(!wait(&ino, &wake, Some(Duration::from_millis(10))));
        let mut out = Vec::new();
        ino.read(&mut out);
        assert!(out.is_empty());
        // A wake-up is seen once.
        wake.wake();
        assert!(wait(&ino, &wake, Some(Duration::from_secs(5))));
        assert!(!wait(&ino, &wake, Some(Duration::from_millis(1))));
        ino.unwatch(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
