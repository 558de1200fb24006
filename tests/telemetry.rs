//! What an operator reads off `serve`: its log in the formats ArmoniK's stack takes (CLEF,
//! JSON), one summary record per task, and the Prometheus endpoint, each after real tasks
//! through ArmoniK's Worker contract (the `armonik` crate's worker client and agent server).

mod common;

use std::time::Duration;

use armonik::Output;
use common::{
    Harness, TaskFolder, Transport, Worker, guest, metrics_address, metrics_sample, scrape,
};
use serde_json::Value;

/// The worker's log as JSON records, one per line; panics on a line that is not one.
fn records(log: &str) -> Vec<serde_json::Map<String, Value>> {
    log.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(record)) => record,
            _ => panic!("a log line that is not a JSON object: {line:?}\n{log}"),
        })
        .collect()
}

fn text<'a>(record: &'a serde_json::Map<String, Value>, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Waits for the summary record of the last task: it is logged after the reply.
async fn wait_for_summaries(worker: &Worker, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while worker.log().matches("task finished").count() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {count} summary records: {}",
            worker.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn clef_records_carry_the_ids_and_keep_guest_text_inside_its_property() {
    let harness = Harness::start_with("hostile", &["--log-format", "clef"]).await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("forge-log").build();
    let (session, task) = (request.session_id.clone(), request.task_id.clone());
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    wait_for_summaries(&harness.worker, 1).await;
    // The last line has no newline: it is logged when the task's store is torn down.
    let last = "no newline at the end";
    harness
        .worker
        .expect_log(last, Duration::from_secs(5))
        .await;

    let log = harness.worker.log();
    let records = records(&log);
    for record in &records {
        // CLEF's reserved fields first, in its order, on every record.
        let keys: Vec<&str> = record.keys().map(String::as_str).take(3).collect();
        assert_eq!(keys, ["@t", "@l", "@mt"], "{record:?}");
        assert!(text(record, "@t").ends_with('Z'), "{record:?}");
        assert!(
            ["Verbose", "Debug", "Information", "Warning", "Error"].contains(&text(record, "@l")),
            "{record:?}"
        );
    }
    let guest: Vec<_> = records
        .iter()
        .filter(|r| text(r, "SourceContext") == "guest")
        .collect();
    // Six lines on each stream and the unterminated one: each one record, none split.
    assert_eq!(guest.len(), 13, "{log}");
    for record in &guest {
        assert_eq!(text(record, "@mt"), "guest output", "{record:?}");
        assert_eq!(text(record, "taskId"), task, "{record:?}");
        assert_eq!(text(record, "sessionId"), session, "{record:?}");
        assert!(text(record, "line").contains("evil"), "{record:?}");
        let level = text(record, "@l");
        match text(record, "stream") {
            "stdout" => assert_eq!(level, "Information"),
            "stderr" => assert_eq!(level, "Warning"),
            other => panic!("stream {other:?}: {record:?}"),
        }
    }
    // What the guest printed is in its property, byte for byte but the line ends.
    for byte in ['\u{1b}', '\0', '"', '\r'] {
        assert!(
            guest.iter().any(|r| text(r, "line").contains(byte)),
            "{byte:?} lost: {log}"
        );
    }

    let summary = records
        .iter()
        .find(|r| text(r, "@mt") == "task finished")
        .expect("a summary record");
    assert_eq!(text(summary, "taskId"), task);
    assert_eq!(text(summary, "sessionId"), session);
    assert_eq!(text(summary, "outcome"), "completed");
    assert_eq!(summary["outputBytes"], 6, "`forged`: {summary:?}");
    assert_eq!(summary["inputBytes"], "forge-log".len(), "{summary:?}");
    assert!(summary["agentCalls"].as_u64() >= Some(1), "{summary:?}");
    assert!(summary["memoryPeakBytes"].as_u64() > Some(0), "{summary:?}");
    let instantiation = summary["instantiationSeconds"].as_f64().unwrap_or(-1.0);
    let wall = summary["wallSeconds"].as_f64().unwrap_or(-1.0);
    assert!(0.0 < instantiation && instantiation < wall, "{summary:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_from_the_environment_key_and_failures_summarised_with_their_details() {
    let harness = Harness::start_custom(
        &guest("hostile"),
        Transport::Unix,
        &[],
        &[("ArmonikWasm__LogFormat", "json")],
    )
    .await;
    let folder = TaskFolder::new();
    let failed = folder.process_request().payload("no-such-mode").build();
    let result = harness.run_task(failed).await;
    assert!(matches!(result, Ok(Output::Error { .. })), "{result:?}");
    let trapped = folder.process_request().payload("panic").build();
    let trapped_id = trapped.task_id.clone();
    let result = harness.run_task(trapped).await;
    assert!(result.is_err(), "{result:?}");
    wait_for_summaries(&harness.worker, 2).await;

    let log = harness.worker.log();
    let summaries: Vec<_> = records(&log)
        .into_iter()
        .filter(|r| text(r, "message") == "task finished")
        .collect();
    assert_eq!(summaries.len(), 2, "{log}");
    assert_eq!(text(&summaries[0], "outcome"), "error");
    assert_eq!(text(&summaries[0], "level"), "WARN");
    assert!(text(&summaries[0], "details").contains("unknown mode"));
    assert_eq!(text(&summaries[1], "outcome"), "trap");
    assert!(text(&summaries[1], "details").contains("trapped"));
    // tracing-subscriber's layout: the task span, with its ids, in the span list.
    let spans = summaries[1]["spans"].as_array().expect("a span list");
    assert!(
        spans.iter().any(|s| s["task_id"] == trapped_id.as_str()),
        "{:?}",
        summaries[1]
    );
}

#[test]
fn an_unknown_log_format_is_refused_with_the_known_ones() {
    let ran = common::armonik_wasm(&["--log-format", "xml", "serve"]);
    assert!(!ran.success, "{}", ran.all());
    let said = ran.all();
    assert!(
        said.contains("xml") && said.contains("text") && said.contains("clef"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_real_tasks_by_outcome_with_their_durations() {
    let harness = Harness::start_with("hostile", &["--metrics-address", "127.0.0.1:0"]).await;
    let address = metrics_address(&harness.worker);

    let folder = TaskFolder::new();
    for (payload, ok) in [
        ("forge-log", true),
        ("write abc", true),
        ("no-such-mode", false),
    ] {
        let result = harness
            .run_task(folder.process_request().payload(payload).build())
            .await;
        assert_eq!(
            matches!(result, Ok(Output::Ok)),
            ok,
            "{payload}: {result:?}"
        );
    }
    let trapped = harness
        .run_task(folder.process_request().payload("panic").build())
        .await;
    assert!(trapped.is_err(), "{trapped:?}");
    let late = harness
        .run_task(
            folder
                .process_request()
                .payload("loop")
                .max_duration(Duration::from_millis(200))
                .build(),
        )
        .await;
    assert!(late.is_err(), "{late:?}");
    wait_for_summaries(&harness.worker, 5).await;

    let body = scrape(&address);
    let count = |series: &str| {
        metrics_sample(&body, series).unwrap_or_else(|| panic!("no {series}:\n{body}"))
    };
    assert_eq!(
        count(r#"armonik_wasm_tasks_total{outcome="completed"}"#),
        2.0
    );
    assert_eq!(count(r#"armonik_wasm_tasks_total{outcome="error"}"#), 1.0);
    assert_eq!(count(r#"armonik_wasm_tasks_total{outcome="trap"}"#), 1.0);
    assert_eq!(count(r#"armonik_wasm_tasks_total{outcome="timeout"}"#), 1.0);
    assert_eq!(count("armonik_wasm_task_duration_seconds_count"), 5.0);
    assert!(
        count("armonik_wasm_task_duration_seconds_sum") >= 0.2,
        "the loop ran 200 ms"
    );
    assert_eq!(
        count(r#"armonik_wasm_task_duration_seconds_bucket{le="+Inf"}"#),
        5.0
    );
    assert_eq!(
        count("armonik_wasm_task_instantiation_duration_seconds_count"),
        5.0
    );
    assert_eq!(count("armonik_wasm_task_memory_peak_bytes_count"), 5.0);
    assert!(count("armonik_wasm_task_memory_peak_bytes_sum") > 0.0);
    assert_eq!(count("armonik_wasm_running_tasks"), 0.0);
    // `forge-log` and `write` each notify their output once.
    assert_eq!(
        count(r#"armonik_wasm_agent_calls_total{operation="NotifyResultData",code="OK"}"#),
        2.0
    );
    assert_eq!(
        count(r#"armonik_wasm_agent_call_duration_seconds_count{operation="NotifyResultData"}"#),
        2.0
    );
    // The default component, compiled (or read from the disk cache) at start.
    let loads = metrics_sample(&body, "armonik_wasm_compile_cache_misses_total").unwrap_or(0.0)
        + metrics_sample(
            &body,
            r#"armonik_wasm_compile_cache_hits_total{tier="disk"}"#,
        )
        .unwrap_or(0.0);
    assert_eq!(loads, 1.0, "{body}");

    // Prometheus's conventions: every family typed and described, counters end in `_total`,
    // durations in seconds, sizes in bytes.
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split_whitespace().skip(2);
        let (name, kind) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        assert!(name.starts_with("armonik_wasm_"), "{line}");
        assert!(
            body.contains(&format!("# HELP {name} ")),
            "no help for {name}"
        );
        match kind {
            "counter" => assert!(name.ends_with("_total"), "{line}"),
            "histogram" => assert!(
                name.ends_with("_seconds") || name.ends_with("_bytes"),
                "{line}"
            ),
            "gauge" => {}
            other => panic!("unexpected type {other}: {line}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metrics_address_in_use_stops_serve_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let mut worker = Worker::spawn_with(
        &[
            "serve",
            "--component",
            common::path(&guest("hostile")),
            "--worker-address",
            "{dir}/w.sock",
            "--metrics-address",
            &address,
        ],
        &[],
    );
    let status = worker.wait_exit(Duration::from_secs(60)).await;
    assert!(status.is_some_and(|s| !s.success()), "{status:?}");
    assert!(
        worker
            .log()
            .contains(&format!("cannot listen for metrics on {address}")),
        "{}",
        worker.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_filtered_at_warn_still_gives_the_ids_of_a_failed_task() {
    let harness = Harness::start_custom(
        &guest("hostile"),
        Transport::Unix,
        &["--log-format", "CLEF"],
        &[("RUST_LOG", "warn")],
    )
    .await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("no-such-mode").build();
    let task = request.task_id.clone();
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Error { .. })), "{result:?}");
    wait_for_summaries(&harness.worker, 1).await;
    let log = harness.worker.log();
    let summary = records(&log)
        .into_iter()
        .find(|r| text(r, "@mt") == "task finished")
        .expect("a summary record");
    assert_eq!(text(&summary, "taskId"), task, "{summary:?}");
    assert_eq!(text(&summary, "@l"), "Warning", "{summary:?}");
}
