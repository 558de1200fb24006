//! `echo`: writes the task's payload, unchanged, to its first expected output.
//!
//! Payload: any bytes. The task fails if it has no expected output; outputs after the first
//! are left alone (so the host's missing-output check fails the task if there are any).

use armonik_wasm_sdk::{Task, TaskError, TaskHandler, export_task};

/// The echo task.
struct Echo;

impl Task for Echo {
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
        let payload = handler.payload()?;
        handler.send_result(handler.first_expected_result()?, &payload)
    }
}

export_task!(Echo);
