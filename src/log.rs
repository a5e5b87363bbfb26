//! Rust-side logging: `tracing` events filtered by the `HOTSWAP_LOG` environment variable
//! (`trace|debug|info|warn|error`, or any `tracing_subscriber` filter directive; default `warn`), to stderr.

use once_cell::sync::OnceCell;
use tracing_subscriber::EnvFilter;

/// Name of the environment variable holding the filter. Python reads the same name (hotswap/_log.py).
pub const LOG_ENV: &str = "HOTSWAP_LOG";

static INIT: OnceCell<()> = OnceCell::new();

/// Installs the subscriber once per process. A host that already installed a global subscriber keeps it.
pub fn init() {
    INIT.get_or_init(|| {
        let filter = EnvFilter::try_from_env(LOG_ENV).unwrap_or_else(|_| EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_target(false)
            .try_init();
    });
}
