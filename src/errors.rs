//! Errors of the native core: `CoreError`, the one enum native code returns, mapped onto Python exceptions at the
//! edge (`impl From<CoreError> for PyErr`), and the exception classes of the native module, which carry their full
//! dotted module so they pickle across a pipe.

use std::collections::TryReserveError;
use std::fmt;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyMemoryError, PySyntaxError, PyTypeError, PyValueError};
use pyo3::PyErr;

create_exception!(
    hotswap._native,
    HotswapError,
    PyException,
    "Base class of hotswap's own errors."
);

/// What native code can fail with, before it becomes a Python exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// Memory that scales with the input could not be reserved: `what` it was for, and how many bytes.
    OutOfMemory { what: &'static str, bytes: usize },
    /// An argument of the wrong type crossed into native code (`TypeError`).
    WrongType(String),
    /// An argument of the right type with a value native code refuses (`ValueError`).
    BadValue(String),
    /// Source the parser rejected, with the 1-based line and column it stopped at (`SyntaxError`).
    Syntax {
        message: String,
        path: String,
        lineno: usize,
        col: usize,
    },
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::OutOfMemory { what, bytes } => write!(f, "cannot allocate {bytes} bytes for {what}"),
            CoreError::WrongType(message) | CoreError::BadValue(message) => f.write_str(message),
            CoreError::Syntax {
                message, path, lineno, ..
            } => write!(f, "{path}:{lineno}: {message}"),
        }
    }
}

impl std::error::Error for CoreError {}

impl From<CoreError> for PyErr {
    fn from(err: CoreError) -> PyErr {
        match err {
            CoreError::OutOfMemory { .. } => PyMemoryError::new_err(err.to_string()),
            CoreError::WrongType(message) => PyTypeError::new_err(message),
            CoreError::BadValue(message) => PyValueError::new_err(message),
            CoreError::Syntax {
                message,
                path,
                lineno,
                col,
            } => PySyntaxError::new_err((message, (path, lineno, col, Option::<String>::None))),
        }
    }
}

/// A vector with room for `items` elements, or `OutOfMemory` instead of Rust's abort-on-failure. For buffers
/// whose size follows the user's input (statements of a module, ops of a reload).
pub fn try_vec<T>(items: usize, what: &'static str) -> Result<Vec<T>, CoreError> {
    let mut out = Vec::new();
    reserve(&mut out, items, what)?;
    Ok(out)
}

/// Reserves room for `additional` more elements in `vec`, or `OutOfMemory`.
pub fn reserve<T>(vec: &mut Vec<T>, additional: usize, what: &'static str) -> Result<(), CoreError> {
    vec.try_reserve(additional)
        .map_err(|_: TryReserveError| CoreError::OutOfMemory {
            what,
            bytes: additional.saturating_mul(std::mem::size_of::<T>()),
        })
}

/// Checks that `bytes` could be allocated now, by reserving and releasing them, before work whose allocations
/// happen inside a library that aborts on failure (the parser). Not a guarantee (the memory is not kept), but what
/// turns "the process is out of address space" into MemoryError instead of an abort halfway through a reload.
pub fn headroom(bytes: usize, what: &'static str) -> Result<(), CoreError> {
    let mut probe: Vec<u8> = Vec::new();
    let reserved = probe.try_reserve_exact(std::hint::black_box(bytes));
    // An allocation nothing reads may be removed by the optimiser, which would make every probe succeed in a
    // release build: the buffer escapes into `black_box`, so it is really allocated (and freed on return).
    std::hint::black_box(&probe);
    reserved.map_err(|_| CoreError::OutOfMemory { what, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_reservation_is_an_error_not_an_abort() {
        let err = try_vec::<u64>(usize::MAX / 16, "a test").unwrap_err();
        assert_eq!(
            err,
            CoreError::OutOfMemory {
                what: "a test",
                bytes: usize::MAX / 16 * 8
            }
        );
        assert!(headroom(usize::MAX / 2, "a test").is_err());
        assert!(headroom(1 << 20, "a test").is_ok());
        assert!(try_vec::<u64>(16, "a test").unwrap().capacity() >= 16);
    }
}
