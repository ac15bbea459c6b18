//! Config errors: each names the file, and where it can the line, column and key.

use std::path::{Path, PathBuf};

// Typo suggestions belong to error reporting; the module also holds `Config::warnings`.
#[path = "suggest.rs"]
mod suggest;

/// Why a config file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, permissions).
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file named on the command line.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// TOML syntax or shape error (unknown key, wrong type, missing key).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A value that parses but is not acceptable.
    #[error("{}:{line}:{column}: {key}: {message}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// Dotted key path, e.g. `service[0].vip`.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

impl ConfigError {
    /// Wraps a TOML parser error with its position in `text`.
    pub(crate) fn syntax(path: &Path, text: &str, err: &toml::de::Error) -> Self {
        let (line, column) = err.span().map_or((1, 1), |s| line_col(text, s.start));
        ConfigError::Syntax {
            path: path.to_path_buf(),
            line,
            column,
            message: suggest::with_suggestion(err.message().trim()),
        }
    }

    /// An invalid value at byte offset `at` of `text`.
    pub(crate) fn invalid(
        path: &Path,
        text: &str,
        at: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_col(text, at);
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            key: key.into(),
            message: suggest::with_suggestion(&message.into()),
        }
    }
}

/// 1-based line and column of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = &text.as_bytes()[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_col;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("a\nbc\n", 0), (1, 1));
        assert_eq!(line_col("a\nbc\n", 3), (2, 2));
        assert_eq!(line_col("a\nbc\n", 99), (3, 1));
    }
}
