//! `pricer`: a Monte Carlo option pricer that fans out over ArmoniK subtasks.
//!
//! It prices a European call or put on the arithmetic average of a basket of `assets`
//! correlated assets (each a geometric Brownian motion; with `assets=1`, a plain
//! Black–Scholes option) by simulating `paths` paths split into `slices` independent slices,
//! one subtask each, then merging their results in one aggregation subtask. The numerics
//! live in the [`montecarlo`] crate; this crate only wires them into a task graph.
//!
//! In ArmoniK, subtasks run on the same worker, so this one component plays every role,
//! chosen by the payload (UTF-8 text, surrounding whitespace ignored). `<params>` are
//! whitespace-separated `key=value` pairs, each optional (see [`montecarlo::Params`]):
//! `assets=1 spot=100 strike=100 rate=0.05 vol=0.2 corr=0.3 maturity=1 paths=1000000
//! slices=8 seed=42 kind=call` are the defaults.
//!
//! - `price <params>` (the root task; `<params>` may be empty): creates, with
//!   `create_results`, one payload per slice, `slice <i> <params>` (result named
//!   `slice-<i>-payload`), and the aggregation payload `aggregate <params>` (named
//!   `aggregate-payload`), `<params>` being written out in full; creates, with
//!   `create_results_metadata`, one output per slice (named `slice-<i>-summary`); then
//!   submits, in one `submit_tasks` call and with no task options of their own (they inherit
//!   the session's), the `slices` slice tasks (payload `slice-<i>-payload`, expected output
//!   `slice-<i>-summary`) and one aggregation task (payload `aggregate-payload`, data
//!   dependencies every `slice-<i>-summary` in order, expected output the root task's own
//!   first expected output). The root's output is thereby delegated: the root writes
//!   nothing itself.
//! - `slice <i> <params>`: simulates slice `i` ([`montecarlo::simulate_slice`]) and writes
//!   its summary of discounted payoffs to its first expected output, as the one line
//!   `n=<count> sum=<float> sum_sq=<float>` ([`montecarlo::Summary::to_text`], floats in
//!   their shortest exact decimal form).
//! - `aggregate <params>`: reads every data dependency as such a summary, merges them,
//!   checks that they hold `paths` paths in all, and writes to its first expected output the
//!   one line (no final newline), floats with 6 decimals:
//!
//!   ```text
//!   price=<p> std_error=<se> ci95=[<lo>,<hi>] paths=<n> slices=<k> assets=<a> kind=<call|put>
//!   ```
//!
//! Any other payload, invalid parameters, a `slice` index not below `slices`, `price` with
//! more than 10 000 slices, or an `aggregate` whose dependencies do not hold `paths` paths
//! in all fails the task with a message saying why.
//!
//! Run it locally, subtasks included, with:
//!
//! ```text
//! armonik-wasm run target/wasm32-wasip2/release/pricer.wasm --payload-text "price assets=1 paths=1000000 slices=8"
//! ```
//!
//! whose output is (10 tasks; the Black–Scholes price is 10.450584):
//!
//! ```text
//! price=10.459257 std_error=0.014743 ci95=[10.430361,10.488153] paths=1000000 slices=8 assets=1 kind=call
//! ```

use std::collections::HashMap;

use armonik_wasm_sdk::{ResultMetadata, Task, TaskDefinition, TaskError, TaskHandler, export_task};
use montecarlo::{Params, Summary, simulate_slice};

/// The most slices `price` accepts: the aggregation task has one data dependency per slice,
/// and every payload is created in one request, which must stay well under the agent's
/// message size limit.
const MAX_SLICES: u32 = 10_000;

/// The payload forms, for error messages.
const USAGE: &str = "expected one of `price <params>`, `slice <i> <params>` or \
                     `aggregate <params>`, where <params> are optional key=value pairs \
                     among assets, spot, strike, rate, vol, corr, maturity, paths, slices, \
                     seed and kind";

/// What a task is asked to do, read from its payload.
#[derive(Debug, Clone, PartialEq)]
enum Role {
    /// `price <params>`: the root, which fans out.
    Price(Params),
    /// `slice <i> <params>`: simulate slice `i`.
    Slice(u32, Params),
    /// `aggregate <params>`: merge the slices' summaries into the report.
    Aggregate(Params),
}

impl Role {
    /// Parses a payload. The error says what is wrong, and lists the payload forms when the
    /// form itself is unknown.
    fn parse(payload: &str) -> Result<Self, String> {
        let payload = payload.trim();
        let (verb, rest) = payload
            .split_once(char::is_whitespace)
            .unwrap_or((payload, ""));
        let params = |text: &str| Params::parse(text).map_err(|e| format!("{verb}: {e}"));
        match verb {
            "price" => {
                let params = params(rest)?;
                if params.slices > MAX_SLICES {
                    return Err(format!(
                        "price: slices={} is more than the {MAX_SLICES} supported",
                        params.slices
                    ));
                }
                Ok(Self::Price(params))
            }
            "aggregate" => Ok(Self::Aggregate(params(rest)?)),
            "slice" => {
                let rest = rest.trim_start();
                let (index, rest) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                let index: u32 = index.parse().map_err(|_| {
                    format!("slice: bad slice index {index:?} (expected `slice <i> <params>`)")
                })?;
                let params = params(rest)?;
                if index >= params.slices {
                    return Err(format!(
                        "slice: index {index} is out of range (slices={})",
                        params.slices
                    ));
                }
                Ok(Self::Slice(index, params))
            }
            _ => Err(format!("unknown payload {payload:?}: {USAGE}")),
        }
    }
}

/// The pricer task, every role of the graph.
struct Pricer;

impl Task for Pricer {
    fn process(handler: &mut TaskHandler) -> Result<(), TaskError> {
        let payload = String::from_utf8(handler.payload()?).map_err(|_| {
            TaskError::failed(format!("pricer: the payload is not UTF-8 text; {USAGE}"))
        })?;
        match Role::parse(&payload).map_err(|e| TaskError::failed(format!("pricer: {e}")))? {
            Role::Price(params) => fan_out(handler, &params),
            Role::Slice(index, params) => {
                let summary = simulate_slice(&params, index);
                handler.send_result(
                    handler.first_expected_result()?,
                    summary.to_text().as_bytes(),
                )
            }
            Role::Aggregate(params) => aggregate(handler, &params),
        }
    }
}

/// The root: creates the slices' payloads and outputs and the aggregation payload, then
/// submits the slice tasks and the aggregation task, delegating its output to the latter.
fn fan_out(handler: &TaskHandler, params: &Params) -> Result<(), TaskError> {
    let output = handler.first_expected_result()?;
    let slices = params.slices;

    let mut payloads: Vec<(String, String)> = (0..slices)
        .map(|i| (format!("slice-{i}-payload"), format!("slice {i} {params}")))
        .collect();
    payloads.push((
        "aggregate-payload".to_owned(),
        format!("aggregate {params}"),
    ));
    let payloads = ids_by_name(handler.create_results(&payloads)?);
    let names: Vec<String> = (0..slices).map(|i| format!("slice-{i}-summary")).collect();
    let summaries = ids_by_name(handler.create_results_metadata(&names)?);

    let mut tasks = Vec::with_capacity(slices as usize + 1);
    let mut summary_ids = Vec::with_capacity(slices as usize);
    for i in 0..slices {
        let summary = id_of(&summaries, &format!("slice-{i}-summary"))?;
        tasks.push(TaskDefinition::new(
            id_of(&payloads, &format!("slice-{i}-payload"))?,
            std::iter::empty::<String>(),
            [summary.clone()],
        ));
        summary_ids.push(summary);
    }
    tasks.push(TaskDefinition::new(
        id_of(&payloads, "aggregate-payload")?,
        summary_ids,
        [output],
    ));
    handler.submit_tasks(tasks, None)?;
    Ok(())
}

/// The aggregation: merges the summaries of the data dependencies and writes the report.
fn aggregate(handler: &TaskHandler, params: &Params) -> Result<(), TaskError> {
    let mut total = Summary::default();
    for id in handler.data_dependencies() {
        let data = handler.data_dependency(id)?;
        let summary = std::str::from_utf8(&data)
            .map_err(|_| "not UTF-8 text".to_owned())
            .and_then(Summary::from_text)
            .map_err(|e| {
                TaskError::failed(format!("pricer: aggregate: data dependency {id}: {e}"))
            })?;
        total.merge(&summary);
    }
    if total.n != params.paths {
        return Err(TaskError::failed(format!(
            "pricer: aggregate: the {} data dependencies hold {} paths in all, expected paths={}",
            handler.data_dependencies().len(),
            total.n,
            params.paths
        )));
    }
    let report = total.estimate().report_line(params);
    handler.send_result(handler.first_expected_result()?, report.as_bytes())
}

/// Indexes the results the agent created by name.
fn ids_by_name(results: Vec<ResultMetadata>) -> HashMap<String, String> {
    results.into_iter().map(|r| (r.name, r.result_id)).collect()
}

/// The id of the result named `name`.
fn id_of(ids: &HashMap<String, String>, name: &str) -> Result<String, TaskError> {
    ids.get(name).cloned().ok_or_else(|| {
        TaskError::failed(format!("pricer: the agent returned no result named {name}"))
    })
}

export_task!(Pricer);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_roles() {
        let defaults = Params::default();
        assert_eq!(Role::parse("price").unwrap(), Role::Price(defaults));
        assert_eq!(Role::parse("  price \n").unwrap(), Role::Price(defaults));
        let p = Params::parse("assets=3 paths=1000 slices=4 kind=put").unwrap();
        assert_eq!(
            Role::parse("price assets=3 paths=1000 slices=4 kind=put").unwrap(),
            Role::Price(p)
        );
        assert_eq!(
            Role::parse(&format!("slice 3 {p}")).unwrap(),
            Role::Slice(3, p)
        );
        assert_eq!(Role::parse("slice 0").unwrap(), Role::Slice(0, defaults));
        assert_eq!(
            Role::parse(&format!("aggregate {p}\n")).unwrap(),
            Role::Aggregate(p)
        );
        assert_eq!(Role::parse("aggregate").unwrap(), Role::Aggregate(defaults));
    }

    #[test]
    fn parse_errors() {
        let err = |payload: &str| Role::parse(payload).unwrap_err();
        assert_eq!(err("hello"), format!("unknown payload \"hello\": {USAGE}"));
        assert_eq!(err(""), format!("unknown payload \"\": {USAGE}"));
        assert_eq!(
            err("price=1"),
            format!("unknown payload \"price=1\": {USAGE}")
        );
        assert!(
            err("hello").contains("`price <params>`, `slice <i> <params>` or `aggregate <params>`")
        );
        assert_eq!(err("price vol=0"), "price: vol must be > 0 (got 0)");
        assert!(err("aggregate foo=1").starts_with("aggregate: unknown key \"foo\""));
        assert_eq!(
            err("slice x paths=10"),
            "slice: bad slice index \"x\" (expected `slice <i> <params>`)"
        );
        assert_eq!(
            err("slice"),
            "slice: bad slice index \"\" (expected `slice <i> <params>`)"
        );
        assert_eq!(
            err("price paths=100000 slices=10001"),
            "price: slices=10001 is more than the 10000 supported"
        );
        assert!(Role::parse("price paths=100000 slices=10000").is_ok());
        assert_eq!(
            err("slice 8 slices=8"),
            "slice: index 8 is out of range (slices=8)"
        );
    }
}
