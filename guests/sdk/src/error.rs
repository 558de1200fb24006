//! The error type of tasks and of the handler's operations.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::AgentError;

/// Why a task, or one of [`TaskHandler`](crate::TaskHandler)'s operations, failed.
///
/// Returned from [`Task::process`](crate::Task::process), it fails the task with its
/// [`Display`](fmt::Display) text as the error message. `?` converts [`io::Error`],
/// [`AgentError`], `String`/`&str` (as [`TaskError::Failed`]) and the usual parsing errors.
#[derive(Debug)]
#[non_exhaustive]
pub enum TaskError {
    /// An agent call failed.
    Agent {
        /// The WIT name of the call (`notify-result-data`...); `agent` when unknown.
        call: &'static str,
        /// What the agent said.
        error: AgentError,
    },
    /// Reading or writing a file failed.
    Io {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The underlying error.
        error: io::Error,
    },
    /// [`TaskHandler::data_dependency`](crate::TaskHandler::data_dependency) was asked for a
    /// result that is not one of the task's data dependencies.
    NotADependency(String),
    /// An id that is not a plain file name (empty, `.`, `..`, or containing a `/` or `\`),
    /// so it cannot name a file of the data folder.
    InvalidId(String),
    /// Any other failure, with its message.
    Failed(String),
}

impl TaskError {
    /// A free-form failure: the task fails with `message`.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, error: io::Error) -> Self {
        Self::Io {
            path: Some(path.into()),
            error,
        }
    }

    /// A failed agent call (`call` is its WIT name, e.g. `submit-tasks`).
    pub fn agent(call: &'static str, error: AgentError) -> Self {
        Self::Agent { call, error }
    }

    /// The agent's error, if this is one.
    pub fn agent_error(&self) -> Option<&AgentError> {
        match self {
            Self::Agent { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent { call, error } => write!(
                f,
                "agent call {call} failed: {}: {}",
                error.kind(),
                error.message()
            ),
            Self::Io {
                path: Some(path),
                error,
            } => write!(f, "I/O error on {}: {error}", path.display()),
            Self::Io { path: None, error } => write!(f, "I/O error: {error}"),
            Self::NotADependency(id) => {
                write!(f, "{id:?} is not one of this task's data dependencies")
            }
            Self::InvalidId(id) => write!(f, "{id:?} is not a valid result id (a file name)"),
            Self::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for TaskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Agent { error, .. } => Some(error),
            Self::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for TaskError {
    fn from(error: io::Error) -> Self {
        Self::Io { path: None, error }
    }
}

impl From<AgentError> for TaskError {
    fn from(error: AgentError) -> Self {
        Self::Agent {
            call: "agent",
            error,
        }
    }
}

impl From<String> for TaskError {
    fn from(message: String) -> Self {
        Self::Failed(message)
    }
}

impl From<&str> for TaskError {
    fn from(message: &str) -> Self {
        Self::Failed(message.to_owned())
    }
}

/// Conversions of parsing errors into [`TaskError::Failed`], with their message.
macro_rules! failed_from {
    ($($error:ty),*) => {$(
        impl From<$error> for TaskError {
            fn from(error: $error) -> Self {
                Self::Failed(error.to_string())
            }
        }
    )*};
}

failed_from!(
    std::string::FromUtf8Error,
    std::str::Utf8Error,
    std::num::ParseIntError,
    std::num::ParseFloatError
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let e = TaskError::agent("submit-tasks", AgentError::NotFound("no result x".into()));
        assert_eq!(
            e.to_string(),
            "agent call submit-tasks failed: not-found: no result x"
        );
        let e = TaskError::io("/data/x", io::Error::from(io::ErrorKind::NotFound));
        assert!(e.to_string().starts_with("I/O error on /data/x: "));
        assert_eq!(TaskError::failed("boom").to_string(), "boom");
        assert_eq!(
            TaskError::NotADependency("x".into()).to_string(),
            "\"x\" is not one of this task's data dependencies"
        );
        let e: TaskError = "x".parse::<u32>().unwrap_err().into();
        assert_eq!(e.to_string(), "invalid digit found in string");
    }
}
