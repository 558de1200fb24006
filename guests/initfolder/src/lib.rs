//! `initfolder`: exports `_initialize`, which wit-component runs as the component's start
//! function, i.e. at instantiation (as `initfs`'s). It reads the file `config` through the
//! world's `data-folder` interface, as a runtime loading its settings through the helpers at
//! start-up would, touching no WASI resource, and keeps the outcome: `ok <bytes, lossy
//! UTF-8>` or `err <case>: <message>` (`not-found`, `invalid-name`, `too-large`, `io`).
//! `process` writes `start-read=<outcome>` to the first expected output.
//!
//! An instance the host made ahead of its task has no folder when it starts, so its read is
//! refused (`err io: ...`); the host must then not hand that instance to a task, whose
//! report would say so.

use std::sync::OnceLock;

use armonik_wasm_sdk::bindings::armonik::worker::data_folder;
use armonik_wasm_sdk::{Task, TaskError, TaskHandler, export_task, file_error_text};

/// What the start function's read gave.
static START_READ: OnceLock<String> = OnceLock::new();

/// Run by the component's start function.
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    let outcome = match data_folder::read("config", 4096) {
        Ok(bytes) => format!("ok {}", String::from_utf8_lossy(&bytes)),
        Err(error) => format!("err {}", file_error_text(&error)),
    };
    // A second start of the same instance does not happen; if it did, the first read stands.
    let _ = START_READ.set(outcome);
}

struct InitFolder;

impl Task for InitFolder {
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
        let outcome = START_READ.get().map_or("none (no start)", String::as_str);
        let report = format!("start-read={outcome}");
        handler.send_result(handler.first_expected_result()?, report.as_bytes())
    }
}

export_task!(InitFolder);
