//! Exceptions of the fork-based template (`hotswap.template`). The supervisor itself is Python (see that
//! module's docstring for why); these live natively so that they share `HotswapError` as base and pickle by
//! their full dotted module `hotswap._native` when a forked child raises them.

use pyo3::create_exception;

use crate::errors::HotswapError;

create_exception!(
    hotswap._native,
    TemplateError,
    HotswapError,
    "The template process failed to start or crashed; it is restarted on the next `exec`."
);
create_exception!(
    hotswap._native,
    ChildExitedError,
    HotswapError,
    "An isolated call's process ended (exit, signal, crash) without reporting a result."
);
create_exception!(
    hotswap._native,
    IsolatedCallError,
    HotswapError,
    "An isolated call raised an exception that could not be re-created in the caller (its traceback is attached)."
);
