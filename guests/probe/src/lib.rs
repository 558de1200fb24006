//! `probe`: a test guest that runs agent operations and reports what it saw.
//!
//! Payload: UTF-8 text, one command per line (blank lines skipped), run in order. Each
//! command adds one line to the report; at the end the report (lines joined with `\n`, no
//! trailing newline) is written to the first expected output, then notified. Without an
//! expected output the task fails with the report in its message. Line breaks inside a
//! report line are escaped as `\n`. `<list>` is comma-separated ids, or `-` for none.
//!
//! | command                              | report line                                      |
//! |--------------------------------------|--------------------------------------------------|
//! | `ctx`                                | `ctx key=value;key=value;...` (below)            |
//! | `read <id>`                          | `read <id> <len> <fnv>` or `read <id> err io <message>` |
//! | `metadata <name>...`                 | `ok <name>=<id> ...` (`create-results-metadata`) |
//! | `create <name> <text>`               | `ok <name>=<id>` (`create-results`, data = text) |
//! | `notify <id> <text>`                 | writes text to the file, then `ok <acked ids>`   |
//! | `notify-missing <id>`                | notifies without writing: `ok <acked ids>`       |
//! | `submit <payload-id> <list> <list>`  | `ok <task-id>` (`submit-tasks`, no options)      |
//! | `create-tasks <text> <list> <list>`  | `ok <task-id> <payload-id>` (payload = text)     |
//! | `resource <id>`                      | `ok <len> <fnv>` (`get-resource-data`, then read)|
//! | `common <id>` / `direct <id>`        | `ok`                                             |
//! | `write-big <id> <bytes>`             | writes bytes `(i % 251) as u8` in 1 MiB pieces, then `ok <acked ids>` |
//! | `skip-output`                        | `ok`; the report is then not written at all      |
//! | `fail <text>`                        | ends the task at once with `err(<text>)`          |
//!
//! `<text>` is the rest of the line after one space (it may be empty or hold spaces). `<fnv>`
//! is the 64-bit FNV-1a hash of the data in 16 lowercase hex digits. A failure is reported as
//! `err <kind> <message>`: `<kind>` is the agent error's case (`invalid-argument`,
//! `not-found`, `unavailable`, `deadline-exceeded`, `internal`), `io` for a file error, or
//! `other`; a malformed command gives `err usage <message>`.
//!
//! `ctx` fields, in this order: `session_id`, `task_id`, `payload_id`, `data_dependencies`,
//! `expected_output_ids` (comma-separated), `data_folder`, `data_chunk_max_size`, `options`
//! (sorted, comma-separated `k=v`), `max_duration_ms` (or `none`), `max_retries`,
//! `priority`, `partition_id`, `application_name`, `application_version`,
//! `application_namespace`, `application_service`, `engine_type`.

use std::fs::{self, File};
use std::io::Write;

use armonik_wasm_sdk::{
    SubmittedTask, Task, TaskDefinition, TaskError, TaskHandler, TaskRequest, export_task,
};

/// The probe task.
struct Probe;

impl Task for Probe {
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
        let payload = String::from_utf8(handler.payload()?)?;
        let mut skip_output = false;
        let mut lines = Vec::new();
        for line in payload.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if let Some(message) = line.strip_prefix("fail ") {
                // Ends the task with an error after the commands before it.
                return Err(TaskError::failed(message));
            }
            lines.push(run(handler, line, &mut skip_output).replace('\n', "\\n"));
        }
        let report = lines.join("\n");
        match handler.expected_results().first() {
            _ if skip_output => Ok(()),
            Some(output) => handler.send_result(output, report.as_bytes()),
            None => Err(TaskError::failed(format!(
                "probe: no expected output; report:\n{report}"
            ))),
        }
    }
}

/// Runs one command, returning its report line.
fn run(h: &TaskHandler, line: &str, skip_output: &mut bool) -> String {
    let (cmd, rest) = word(line);
    let args: Vec<&str> = rest.split_whitespace().collect();
    let outcome = match (cmd, args.as_slice()) {
        ("ctx", []) => return ctx(h),
        ("read", [id]) => {
            return match fs::read(h.path_of(id)) {
                Ok(data) => format!("read {id} {} {:016x}", data.len(), fnv1a64(&data)),
                Err(e) => format!("read {id} err io {e}"),
            };
        }
        ("metadata", names) => h.create_results_metadata(names).map(|r| {
            let pairs: Vec<String> = r
                .iter()
                .map(|m| format!("{}={}", m.name, m.result_id))
                .collect();
            pairs.join(" ")
        }),
        ("create", [name, ..]) => (h.create_results(&[(name, word(rest).1)])).map(|r| {
            r.first()
                .map(|m| format!("{}={}", m.name, m.result_id))
                .unwrap_or_default()
        }),
        ("notify", [id, ..]) => fs::write(h.path_of(id), word(rest).1)
            .map_err(|e| TaskError::io(h.path_of(id), e))
            .and_then(|()| h.notify_result_data(&[id]))
            .map(|ids| ids.join(" ")),
        ("notify-missing", [id]) => h.notify_result_data(&[id]).map(|ids| ids.join(" ")),
        ("submit", [payload, deps, outs]) => {
            let task = TaskDefinition::new(*payload, list(deps), list(outs));
            let tasks = h.submit_tasks([task], None);
            tasks.map(|t| {
                t.iter()
                    .map(|t| t.task_id.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        }
        ("create-tasks", [payload, deps, outs]) => {
            let task = TaskRequest::new(payload.as_bytes(), list(deps), list(outs));
            let tasks = h.create_tasks([task], None);
            let line = |t: &SubmittedTask| format!("{} {}", t.task_id, t.payload_id);
            tasks.map(|t| t.iter().map(line).collect::<Vec<_>>().join(" "))
        }
        ("resource", [id]) => {
            (h.get_resource_data(id)).map(|data| format!("{} {:016x}", data.len(), fnv1a64(&data)))
        }
        ("common", [id]) => h.get_common_data(id).map(|()| String::new()),
        ("direct", [id]) => h.get_direct_data(id).map(|()| String::new()),
        ("write-big", [id, bytes]) => write_big(h, id, bytes),
        ("skip-output", []) => {
            *skip_output = true;
            Ok(String::new())
        }
        _ => return format!("err usage cannot run {line:?}"),
    };
    match outcome {
        Ok(details) if details.is_empty() => "ok".into(),
        Ok(details) => format!("ok {details}"),
        Err(TaskError::Agent { error, .. }) => format!("err {} {}", error.kind(), error.message()),
        Err(TaskError::Io { error, .. }) => format!("err io {error}"),
        Err(e) => format!("err other {e}"),
    }
}

/// The `ctx` report line.
fn ctx(h: &TaskHandler) -> String {
    let o = h.task_options();
    let mut options: Vec<String> = o.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
    options.sort();
    let (deps, outs) = (
        h.data_dependencies().join(","),
        h.expected_results().join(","),
    );
    let max_duration = o
        .max_duration_ms
        .map_or("none".to_owned(), |ms| ms.to_string());
    format!(
        "ctx session_id={};task_id={};payload_id={};data_dependencies={deps};\
         expected_output_ids={outs};data_folder={};data_chunk_max_size={};options={};\
         max_duration_ms={max_duration};max_retries={};priority={};partition_id={};\
         application_name={};application_version={};application_namespace={};\
         application_service={};engine_type={}",
        h.session_id(),
        h.task_id(),
        h.payload_id(),
        h.data_folder().display(),
        h.data_chunk_max_size(),
        options.join(","),
        o.max_retries,
        o.priority,
        o.partition_id,
        o.application_name,
        o.application_version,
        o.application_namespace,
        o.application_service,
        o.engine_type,
    )
}

/// Writes `bytes` bytes of the pattern `(i % 251) as u8` to result `id`, then notifies it.
fn write_big(h: &TaskHandler, id: &str, bytes: &str) -> Result<String, TaskError> {
    let (total, path) = (bytes.parse::<u64>()?, h.path_of(id));
    let mut file = File::create(&path).map_err(|e| TaskError::io(&path, e))?;
    let mut piece = vec![0u8; 1 << 20];
    let mut written = 0u64;
    while written < total {
        let n = (total - written).min(piece.len() as u64) as usize;
        for (j, byte) in piece[..n].iter_mut().enumerate() {
            *byte = ((written + j as u64) % 251) as u8;
        }
        file.write_all(&piece[..n])
            .map_err(|e| TaskError::io(&path, e))?;
        written += n as u64;
    }
    drop(file);
    h.notify_result_data(&[id]).map(|ids| ids.join(" "))
}

/// Splits off the first word of `s` (up to the first space) from the rest.
fn word(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

/// Parses a `<list>` argument: comma-separated ids, or `-` for none.
fn list(arg: &str) -> Vec<String> {
    match arg {
        "-" => Vec::new(),
        _ => arg.split(',').map(str::to_owned).collect(),
    }
}

/// The 64-bit FNV-1a hash of `data`.
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

export_task!(Probe);
