//! Exceptions of the native module. They carry their full dotted module so they pickle across a pipe.

use pyo3::create_exception;
use pyo3::exceptions::PyException;

create_exception!(
    hotswap._native,
    HotswapError,
    PyException,
    "Base class of hotswap's own errors."
);
