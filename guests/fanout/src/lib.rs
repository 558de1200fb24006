//! `fanout`: a fan-out / fan-in computing `0² + 1² + ... + (n-1)²` with subtasks.
//!
//! In ArmoniK, subtasks run the same worker, so this one component plays every role, chosen
//! by the payload (UTF-8 text, words separated by whitespace):
//!
//! - `fanout <n>` (the root task): creates the payloads `part <i>` (results named
//!   `part-payload-<i>`) and `sum` (named `sum-payload`) with `create_results`, the part
//!   outputs (`part-output-<i>`) with `create_results_metadata`, then submits, in one call,
//!   the n part tasks (payload `part-payload-<i>`, expected output `part-output-<i>`) and
//!   one aggregation task (payload `sum-payload`, dependencies the part outputs in order,
//!   expected output the root's own first expected output). That delegates the root's
//!   output: the root writes nothing itself.
//! - `part <i>`: writes the decimal text of `i*i` to its first expected output.
//! - `sum`: parses every data dependency as a decimal integer (surrounding whitespace
//!   allowed) and writes the decimal text of their sum to its first expected output.
//!
//! With `fanout 4`, the root's output ends up holding `14`. `fanout <n> fail <k>` makes part
//! `k` fail (its payload is `part <k> fail`), for tests of what a failed subtask does to the
//! tasks that depend on it.

use std::collections::HashMap;

use armonik_wasm_sdk::{ResultMetadata, Task, TaskDefinition, TaskError, TaskHandler, export_task};

/// The fan-out / part / sum task.
struct Fanout;

impl Task for Fanout {
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
        let payload = String::from_utf8(handler.payload()?)?;
        let value: u128 = match payload.split_whitespace().collect::<Vec<_>>()[..] {
            ["fanout", n] => return fan_out(handler, n.parse()?, None),
            ["fanout", n, "fail", k] => return fan_out(handler, n.parse()?, Some(k.parse()?)),
            ["part", i] => u128::from(i.parse::<u64>()?).pow(2),
            ["part", i, "fail"] => {
                return Err(TaskError::failed(format!("part {i} fails on purpose")));
            }
            ["sum"] => (handler.data_dependencies().iter())
                .map(|id| {
                    Ok(String::from_utf8(handler.data_dependency(id)?)?
                        .trim()
                        .parse::<u128>()?)
                })
                .sum::<Result<u128, TaskError>>()?,
            _ => {
                return Err(TaskError::failed(format!(
                    "fanout: unknown payload {payload:?}"
                )));
            }
        };
        let output = handler.first_expected_result()?;
        handler.send_result(output, value.to_string().as_bytes())
    }
}

/// The root: creates the parts' payloads and outputs, then submits parts and aggregation.
fn fan_out(handler: &TaskHandler, n: usize, failing: Option<usize>) -> Result<(), TaskError> {
    let output = handler.first_expected_result()?;
    let mut payloads: Vec<(String, String)> = (0..n)
        .map(|i| {
            let fail = if failing == Some(i) { " fail" } else { "" };
            (format!("part-payload-{i}"), format!("part {i}{fail}"))
        })
        .collect();
    payloads.push(("sum-payload".into(), "sum".into()));
    let payloads = by_name(handler.create_results(&payloads)?);
    let names: Vec<String> = (0..n).map(|i| format!("part-output-{i}")).collect();
    let outputs = by_name(handler.create_results_metadata(&names)?);

    let mut tasks = Vec::with_capacity(n + 1);
    let mut part_outputs = Vec::with_capacity(n);
    for i in 0..n {
        let part_output = id_of(&outputs, &format!("part-output-{i}"))?;
        let part_payload = id_of(&payloads, &format!("part-payload-{i}"))?;
        tasks.push(TaskDefinition::new(
            part_payload,
            Vec::<String>::new(),
            [part_output.clone()],
        ));
        part_outputs.push(part_output);
    }
    tasks.push(TaskDefinition::new(
        id_of(&payloads, "sum-payload")?,
        part_outputs,
        [output],
    ));
    handler.submit_tasks(tasks, None)?;
    Ok(())
}

/// Result ids by name: looked up once per task, so the root stays linear in `n` (the
/// scheduler benchmark measures the host, not this guest).
fn by_name(results: Vec<ResultMetadata>) -> HashMap<String, String> {
    results.into_iter().map(|r| (r.name, r.result_id)).collect()
}

/// The id of the result named `name`.
fn id_of(results: &HashMap<String, String>, name: &str) -> Result<String, TaskError> {
    results
        .get(name)
        .cloned()
        .ok_or_else(|| TaskError::failed(format!("the agent returned no result named {name}")))
}

export_task!(Fanout);
