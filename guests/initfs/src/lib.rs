//! `initfs`: exports `_initialize`, which wit-component runs as the
//! component's start function, i.e. at instantiation (as for a C reactor, TinyGo, ...). This
//! is a Rust wasm32-wasip2 guest: std and wasi-libc talk WASI 0.2 directly (no adapter).
//! `_initialize` does what a library reading an optional config file at start-up does
//! (`std::fs::metadata("/data/config")`), and records whether it found it.
//! `process` reports `init=<n> found=<0|1>`, then lists `/data`, reads the payload, and
//! writes the report to the first expected output.

use std::sync::atomic::{AtomicU32, Ordering};

use armonik_wasm_sdk::{Task, TaskError, TaskHandler, export_task};

static INIT: AtomicU32 = AtomicU32::new(0);
static FOUND: AtomicU32 = AtomicU32::new(9);

/// Run by the component's start function.
#[unsafe(no_mangle)]
pub extern "C" fn _initialize() {
    INIT.fetch_add(1, Ordering::SeqCst);
    let found = std::fs::metadata("/data/config").is_ok();
    FOUND.store(u32::from(found), Ordering::SeqCst);
}

struct InitFs;

impl Task for InitFs {
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
        let mut report = format!(
            "init={} found={}\n",
            INIT.load(Ordering::SeqCst),
            FOUND.load(Ordering::SeqCst)
        );
        match std::fs::read_dir("/data") {
            Ok(entries) => report.push_str(&format!("list=ok {}\n", entries.count())),
            Err(e) => report.push_str(&format!("list=err {e}\n")),
        }
        match handler.payload() {
            Ok(p) => report.push_str(&format!("payload=ok {}\n", p.len())),
            Err(e) => report.push_str(&format!("payload=err {e}\n")),
        }
        // The report goes where the SDK writes results: the data folder.
        match handler.first_expected_result() {
            Ok(id) => handler.send_result(id, report.as_bytes()),
            Err(_) => Err(TaskError::failed(report)),
        }
    }
}

export_task!(InitFs);
