//! Write [ArmoniK](https://github.com/aneoconsulting/ArmoniK) tasks in Rust, as WebAssembly
//! components run by the armonik-wasm worker.
//!
//! A task is a type implementing [`Task`], exported with [`export_task!`]. Its
//! [`process`](Task::process) gets a [`TaskHandler`], the same handler the official ArmoniK
//! SDKs give (mirroring the Python SDK's `TaskHandler`): the task's ids and options, its
//! payload and data dependencies, and the ArmoniK Agent's operations (create results, send
//! results, submit subtasks...). Build the crate as a `cdylib` for `wasm32-wasip2`; the
//! resulting `.wasm` is the component the worker runs.
//!
//! ```no_run
//! use armonik_wasm_sdk::{Task, TaskError, TaskHandler, export_task};
//!
//! /// Writes its payload, upper-cased, to its expected output.
//! struct Upper;
//!
//! impl Task for Upper {
//!     fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
//!         let payload = handler.payload()?;
//!         let output = handler.first_expected_result()?;
//!         handler.send_result(output, &payload.to_ascii_uppercase())
//!     }
//! }
//!
//! export_task!(Upper);
//! ```
//!
//! The only dependency a guest crate needs is this one:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! armonik-wasm-sdk = { path = "../sdk" }
//! ```
//!
//! Data flows through files: the payload and the data dependencies are files named after
//! their result ids in [`TaskHandler::data_folder`], and a result is produced by writing
//! `<data folder>/<result id>` then notifying the agent ([`TaskHandler::send_result`] does
//! both). For data too large for memory, stream it yourself to
//! [`TaskHandler::path_of`] with [`std::fs`] and call [`TaskHandler::notify_result_data`].
//!
//! Returning `Err(e)` from `process` fails the task for good, with `e.to_string()` as its
//! error message; a panic traps, and ArmoniK retries the task up to its `max_retries`.
//! Everything a task created, notified or submitted is discarded unless it returns `Ok`.

mod error;
mod handler;
mod types;

pub use error::TaskError;
pub use handler::TaskHandler;
pub use types::{
    AgentError, ResultMetadata, ResultStatus, SubmittedTask, TaskContext, TaskDefinition,
    TaskOptions, TaskRequest,
};

/// The raw bindings `wit-bindgen` generates for the `armonik:worker/worker` world (including
/// the WASI interfaces it names): the agent imports in `bindings::armonik::worker::agent`,
/// the `task` export trait in `bindings::exports`, and the `export!` macro. Prefer the
/// [`TaskHandler`] API; these are here for what it does not cover.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "armonik:worker/worker",
        // Also generate the WASI interfaces the world names (filesystem, io, clocks).
        generate_all,
        // Let guest crates invoke `export!` (through `export_task!`).
        pub_export_macro: true,
        // Where `export!` finds these bindings when invoked from another crate.
        default_bindings_module: "armonik_wasm_sdk::bindings",
    });
}

/// The code of a task: what the worker runs for each ArmoniK task given to the component.
///
/// Export it with [`export_task!`].
pub trait Task {
    /// Runs the task. `Ok(())` completes it, provided every expected result was produced
    /// ([`TaskHandler::send_result`]), created ([`TaskHandler::create_results`]) or delegated
    /// to a subtask; `Err(e)` fails it for good with `e.to_string()` as its message.
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError>;
}

/// `<case>: <message>` for a `data-folder` error, the case as the WIT names it
/// (`not-found`, `invalid-name`, `too-large`, `io`): for guests that report it as text.
pub fn file_error_text(error: &bindings::armonik::worker::data_folder::FileError) -> String {
    use bindings::armonik::worker::data_folder::FileError;
    let (case, message) = match error {
        FileError::NotFound(m) => ("not-found", m),
        FileError::InvalidName(m) => ("invalid-name", m),
        FileError::TooLarge(m) => ("too-large", m),
        FileError::Io(m) => ("io", m),
    };
    format!("{case}: {message}")
}

/// Exports a [`Task`] implementation as the component's `armonik:worker/task` export.
///
/// Invoke it once, at the root of a `cdylib` crate:
///
/// ```no_run
/// # use armonik_wasm_sdk::{Task, TaskError, TaskHandler};
/// struct Noop;
/// impl Task for Noop {
///     fn process(_: &mut TaskHandler) -> Result<(), TaskError> { Ok(()) }
/// }
/// armonik_wasm_sdk::export_task!(Noop);
/// ```
#[macro_export]
macro_rules! export_task {
    ($task:ty) => {
        const _: () = {
            struct __ArmonikWasmTask;

            impl $crate::bindings::exports::armonik::worker::task::Guest for __ArmonikWasmTask {
                fn process(
                    ctx: $crate::TaskContext,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::run::<$task>(ctx)
                }
            }

    $crate::bindings::export!(__ArmonikWasmTask with_types_in $crate::bindings);
        };
    };
}

/// What [`export_task!`] expands to needs; not a public API.
#[doc(hidden)]
pub mod __private {
    use crate::{Task, TaskContext, TaskHandler};

    /// Runs `T` on a task context, turning its error into the WIT error string.
    pub fn run<T: Task>(ctx: TaskContext) -> Result<(), String> {
        let mut handler = TaskHandler::new(ctx);
        T::process(&mut handler).map_err(|e| e.to_string())
    }
}
