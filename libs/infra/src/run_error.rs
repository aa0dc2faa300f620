//! Why a service could not start, or stopped with an error; shared by the three services.

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A client could not be created from the configuration.
    #[error("cannot set up {what}: {detail}")]
    Setup {
        /// Which client.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// The HTTP server failed.
    #[error("HTTP server failed: {0}")]
    Serve(#[from] std::io::Error),
}

impl RunError {
    /// For `map_err`: turns the error of setting up `what` into [`RunError::Setup`].
    pub fn setup<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> Self {
        move |err| RunError::Setup {
            what,
            detail: err.to_string(),
        }
    }
}
