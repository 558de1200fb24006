//! `concat`: concatenates all the task's data dependencies, in the order the task lists
//! them, into its first expected output.
//!
//! Payload: ignored. No dependencies give an empty output; the task fails if it has no
//! expected output.

use armonik_wasm_sdk::{Task, TaskError, TaskHandler, export_task};

/// The concat task.
struct Concat;

impl Task for Concat {
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
        let output = handler.first_expected_result()?;
        let mut data = Vec::new();
        for id in handler.data_dependencies() {
            data.extend(handler.data_dependency(id)?);
        }
        handler.send_result(output, &data)
    }
}

export_task!(Concat);
