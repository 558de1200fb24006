//! `fail`: fails the task, with its payload as the error message.
//!
//! Payload: the error message, as UTF-8 text (invalid sequences are replaced by U+FFFD).
//! The task returns `err(<payload>)`, so ArmoniK marks it failed without retrying.

use armonik_wasm_sdk::{Task, TaskError, TaskHandler, export_task};

/// The failing task.
struct Fail;

impl Task for Fail {
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
        let payload = handler.payload()?;
        Err(TaskError::failed(String::from_utf8_lossy(&payload)))
    }
}

export_task!(Fail);
