//! Progress of an import, for whoever renders it.

use acr_import_transfer::copy::Progress;

use crate::arm::ImportProgress;

/// Something an import tells its observer while it runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ImportEvent {
    /// Something the user should know and may want to act on (a source that is not what it
    /// seems, an option that does not apply, a preflight that cannot tell).
    Warning(String),
    /// What was looked up, normalized or chosen (the engine and why).
    Note(String),
    /// The client-side copy engine's progress: blobs, bytes, manifests, tags.
    Copy(Progress),
    /// The service accepted a server-side import: from now on it runs on Azure whatever
    /// this process does, and `acr import status <operation_url>` follows it.
    ServerStarted {
        /// The operation URL.
        operation_url: String,
    },
    /// The server-side operation's state, each time it is polled.
    Server(ImportProgress),
    /// An entry of a batch finished (in completion order, not batch order).
    EntryFinished {
        /// Its place in the batch.
        index: usize,
        /// Its label (the source as given).
        label: String,
        /// Whether it succeeded.
        ok: bool,
    },
}

/// Receives [`ImportEvent`]s. Called from the task that runs the import: keep it quick.
///
/// Any `Fn(&ImportEvent) + Send + Sync` closure is an observer; `&()` ignores everything.
///
/// ```
/// use acr_import_acr::{ImportEvent, ImportObserver};
///
/// let print_warnings = |e: &ImportEvent| {
///     if let ImportEvent::Warning(w) = e {
///         eprintln!("WARNING: {w}");
///     }
/// };
/// print_warnings.event(&ImportEvent::Warning("example".into()));
/// ```
pub trait ImportObserver: Send + Sync {
    /// One event.
    fn event(&self, event: &ImportEvent);
}

impl<F: Fn(&ImportEvent) + Send + Sync> ImportObserver for F {
    fn event(&self, event: &ImportEvent) {
        self(event)
    }
}

impl ImportObserver for () {
    fn event(&self, _: &ImportEvent) {}
}
