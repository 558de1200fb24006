//! What the commands print, on stdout and stderr, as writes that can fail.
//!
//! `println!` and `eprintln!` panic when the stream is gone (`armonik-wasm inspect x | head -1`
//! closes stdout after one line: "failed printing to stdout: Broken pipe", and a backtrace).
//! Restoring the default SIGPIPE disposition instead would kill the process on the spot, in the
//! middle of whatever it was doing: `run` would leave its work folder (every result of the
//! graph) behind, `submit` a half-written output, and `serve` could die of a write to a closed
//! socket. So every line the binary prints goes through [`outln!`](crate::outln) or
//! [`errln!`](crate::errln), which return a [`PrintError`]; commands pass it up with `?`
//! (after their own clean-up), and `main` ends quietly when it is a closed pipe
//! ([`PrintError::is_closed`]), with [`CLOSED_EXIT_CODE`].

use std::fmt;
use std::io::{self, Write};

/// The exit code when stdout or stderr was closed early: 128 + SIGPIPE, what a shell reports
/// for a command stopped by a closed pipe, so `set -o pipefail` scripts see what they see with
/// any other Unix tool.
pub const CLOSED_EXIT_CODE: u8 = 141;

/// A line could not be printed.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to {stream}: {source}")]
pub struct PrintError {
    /// `stdout` or `stderr`.
    pub stream: &'static str,
    /// Why.
    #[source]
    pub source: io::Error,
}

impl PrintError {
    /// Whether the reader went away (the other end of a pipe closed): not worth a message.
    pub fn is_closed(&self) -> bool {
        self.source.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Whether `error` comes from a closed stdout or stderr (a [`PrintError`] anywhere in its
/// chain), which ends a command quietly.
pub fn is_closed_output(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<PrintError>()
            .is_some_and(PrintError::is_closed)
    })
}

/// Writes one line to stdout. Use [`outln!`](crate::outln).
///
/// # Errors
/// The write fails (a closed pipe, a full disk).
pub fn out_line(args: fmt::Arguments<'_>) -> Result<(), PrintError> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(|source| PrintError {
            stream: "stdout",
            source,
        })
}

/// Writes one line to stderr. Use [`errln!`](crate::errln).
///
/// # Errors
/// The write fails (a closed pipe).
pub fn err_line(args: fmt::Arguments<'_>) -> Result<(), PrintError> {
    let mut err = io::stderr().lock();
    err.write_fmt(args)
        .and_then(|()| err.write_all(b"\n"))
        .map_err(|source| PrintError {
            stream: "stderr",
            source,
        })
}

/// `println!` that returns `Result<(), PrintError>` instead of panicking.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::console::out_line(::std::format_args!($($arg)*))
    };
}

/// `eprintln!` that returns `Result<(), PrintError>` instead of panicking.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::console::err_line(::std::format_args!($($arg)*))
    };
}
