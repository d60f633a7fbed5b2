//! What `vigil policy check` reports: every problem with the file, line, column and field.

use std::{fmt, path::PathBuf};

/// One problem in a policy or case file, at a position (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {message}")]
pub struct CheckError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The field's path in the file, such as `rules[2].match.process.binary`.
    pub field: String,
    pub message: String,
}

/// Every problem found in a set of files (never empty when returned as an error).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckErrors(pub Vec<CheckError>);

impl fmt::Display for CheckErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CheckErrors {}

/// Loading a policy set failed: a file could not be read, or did not check.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy path {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Check(#[from] CheckErrors),
    #[error(transparent)]
    Untrusted(#[from] crate::secure::TrustError),
}
