//! Guests in Python, JavaScript and C (`guests/{python,js,c}`) on the same WIT world as the Rust
//! ones: each language's `echo`, `concat`, `fanout` and `fail` are built by its build script and
//! run through the real `serve` path (the official `armonik` crate plays ArmoniK) and through
//! `armonik-wasm run`, with the payloads and results of the Rust guests.
//!
//! The tools come from `.ci/install-polyglot-tools`; without them every test here fails, saying
//! to run it.

mod common;

use std::time::{Duration, Instant};

use armonik::Output;
use common::polyglot::{Lang, component};
use common::*;
use tonic::Code;

// ---------------------------------------------------------------------------------------------
// `armonik-wasm run`
// ---------------------------------------------------------------------------------------------

fn echo_run(lang: Lang) {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (output, stdout) = echo_with_run(lang, &payload, &[]);
    assert!(output == payload, "the output differs from the payload");
    assert!(stdout.contains("1 tasks run (1 completed)"), "{stdout}");
}

/// `armonik-wasm run` of the `echo` example with `payload` and `options`: its output and
/// what it printed, once the run succeeded.
fn echo_with_run(lang: Lang, payload: &[u8], options: &[&str]) -> (Vec<u8>, String) {
    let wasm = component(lang, "echo");
    let dir = tempfile::tempdir().expect("temp dir");
    let payload_file = dir.path().join("payload.bin");
    std::fs::write(&payload_file, payload).expect("payload file");
    let out = dir.path().join("out");
    let mut args = vec![
        "run",
        path(&wasm),
        "--payload",
        path(&payload_file),
        "--outputs",
        path(&out),
    ];
    args.extend(options);
    let ran = armonik_wasm(&args);
    assert!(ran.success, "{}", ran.all());
    let output = std::fs::read(out.join("output")).expect("output");
    (output, ran.stdout)
}

fn concat_run(lang: Lang) {
    // Listed b then a: the output follows the task's order, not the names'.
    let output = concat_with_run(lang, &[("b", b"world\0\xff"), ("a", b"hello ")]);
    assert_eq!(output, b"world\0\xffhello ");
}

/// `armonik-wasm run` of the `concat` example over `deps` (name, bytes), in that order: its
/// output, once the run succeeded.
fn concat_with_run(lang: Lang, deps: &[(&str, &[u8])]) -> Vec<u8> {
    let wasm = component(lang, "concat");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = vec!["run".to_owned(), path(&wasm).to_owned()];
    for (name, bytes) in deps {
        let file = dir.path().join(format!("{name}.bin"));
        std::fs::write(&file, bytes).expect("dependency file");
        args.extend(["--dep".to_owned(), format!("{name}={}", path(&file))]);
    }
    let out = dir.path().join("out");
    args.extend(["--outputs".to_owned(), path(&out).to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ran = armonik_wasm(&args);
    assert!(ran.success, "{}", ran.all());
    std::fs::read(out.join("output")).expect("output")
}

fn fanout_run(lang: Lang) {
    let wasm = component(lang, "fanout");
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    let ran = armonik_wasm(&[
        "run",
        path(&wasm),
        "--payload-text",
        "fanout 4",
        "--outputs",
        path(&out),
    ]);
    assert!(ran.success, "{}", ran.all());
    // 0² + 1² + 2² + 3², computed by the aggregation task the root delegated its output to.
    assert!(ran.stdout.contains("output: 14"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("6 tasks run (6 completed)"),
        "{}",
        ran.stdout
    );

    // A failing part cancels the aggregation, as with the Rust guest (tests/run.rs).
    let ran = armonik_wasm(&[
        "run",
        path(&wasm),
        "--payload-text",
        "fanout 4 fail 2",
        "--outputs",
        path(&out),
    ]);
    assert!(!ran.success, "{}", ran.all());
    assert!(
        ran.stderr.contains("part 2 fails on purpose"),
        "{}",
        ran.all()
    );
    assert!(
        ran.stdout
            .contains("6 tasks run (4 completed, 1 error, 1 cancelled)"),
        "{}",
        ran.stdout
    );
}

fn fail_run(lang: Lang) {
    let wasm = component(lang, "fail");
    let dir = tempfile::tempdir().expect("temp dir");
    let ran = armonik_wasm(&[
        "run",
        path(&wasm),
        "--payload-text",
        "bad input: x < 0",
        "--outputs",
        path(&dir.path().join("out")),
    ]);
    assert!(!ran.success, "{}", ran.all());
    assert!(
        ran.stderr.contains("error: bad input: x < 0"),
        "{}",
        ran.all()
    );
    assert!(
        ran.stdout.contains("1 tasks run (1 error)"),
        "{}",
        ran.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// `armonik-wasm serve`
// ---------------------------------------------------------------------------------------------

/// A fake agent and `armonik-wasm serve` running `example` of `lang`, with the shared cache.
async fn serve(lang: Lang, example: &str) -> Harness {
    let wasm = component(lang, example);
    let cache = cache_dir();
    Harness::start_custom(&wasm, Transport::Unix, &["--cache-dir", path(&cache)], &[]).await
}

/// Asserts `Output.ok`; shows the worker's log otherwise.
fn assert_ok(result: Result<Output, tonic::Status>, harness: &Harness) {
    match result {
        Ok(Output::Ok) => {}
        other => panic!(
            "expected Output.ok, got {other:?}\n{}",
            harness.worker.log()
        ),
    }
}

/// `Output.error`'s details, or a panic naming what came instead.
fn error_details(result: Result<Output, tonic::Status>, harness: &Harness) -> String {
    match result {
        Ok(Output::Error { details }) => details,
        other => panic!(
            "expected Output.error, got {other:?}\n{}",
            harness.worker.log()
        ),
    }
}

/// Every call the agent got carried the task's token and session, and succeeded.
fn assert_calls_belong_to(harness: &Harness, folder: &TaskFolder, session: &str) {
    for call in harness.agent.calls() {
        assert_eq!(call.token, folder.token(), "{}", call.method);
        assert!(call.session_ids.iter().all(|s| s == session), "{call:?}");
        assert!(call.is_ok(), "{call:?}");
    }
}

async fn echo_serve(lang: Lang) {
    let harness = serve(lang, "echo").await;
    // Larger than the JavaScript helper's 1 MiB file pieces.
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 7)
        .map(|i: u32| (i * 31 % 256) as u8)
        .collect();
    let payloads = [
        Vec::new(),
        vec![0, 255, 10, 13, 0, 0xc3, 0x28],
        "héllo wörld ✓".as_bytes().to_vec(),
        big,
    ];
    for payload in payloads {
        harness.agent.clear_records();
        let folder = TaskFolder::new();
        let request = folder.process_request().payload(payload.clone()).build();
        let output = request.expected_output_keys[0].clone();
        let session = request.session_id.clone();
        assert_ok(harness.run_task(request).await, &harness);
        assert!(
            folder.read(&output) == payload,
            "{}: the output differs from the {}-byte payload",
            lang.name(),
            payload.len()
        );
        // One write, then ONE notify call naming the output.
        let calls = harness.agent.calls();
        let methods: Vec<&str> = calls.iter().map(|c| c.method).collect();
        assert_eq!(methods, [methods::NOTIFY_RESULT_DATA]);
        assert_eq!(harness.agent.notified_ids(), [output]);
        assert_calls_belong_to(&harness, &folder, &session);
    }
}

async fn concat_serve(lang: Lang) {
    let harness = serve(lang, "concat").await;
    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("ignored")
        .dependency("dep-b", "world")
        .dependency("dep-a", "hello ")
        .dependency("dep-c", b"\0\xff".to_vec())
        .build();
    let output = request.expected_output_keys[0].clone();
    assert_ok(harness.run_task(request).await, &harness);
    assert_eq!(folder.read(&output), b"worldhello \0\xff");
    assert_eq!(harness.agent.notified_ids(), [output]);

    // No dependencies: an empty output.
    let folder = TaskFolder::new();
    let request = folder.process_request().build();
    let output = request.expected_output_keys[0].clone();
    assert_ok(harness.run_task(request).await, &harness);
    assert_eq!(folder.read(&output), b"");
}

async fn fanout_serve(lang: Lang) {
    let harness = serve(lang, "fanout").await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("fanout 3").build();
    let output = request.expected_output_keys[0].clone();
    let session = request.session_id.clone();
    assert_ok(harness.run_task(request).await, &harness);

    // The Rust guest's calls, in its order: payloads, part outputs, then one submission.
    let methods: Vec<&str> = harness.agent.calls().iter().map(|c| c.method).collect();
    assert_eq!(
        methods,
        [
            methods::CREATE_RESULTS,
            methods::CREATE_RESULTS_METADATA,
            methods::SUBMIT_TASKS
        ]
    );
    assert_calls_belong_to(&harness, &folder, &session);
    // Ok without writing the output: it was delegated to the aggregation task.
    assert!(!folder.contains(&output));

    let created = harness.agent.created_results();
    let id_of = |name: &str| {
        created
            .iter()
            .find(|r| r.metadata.name == name)
            .unwrap_or_else(|| panic!("no result named {name} in {created:?}"))
            .metadata
            .result_id
            .clone()
    };
    let data_of = |name: &str| {
        created
            .iter()
            .find(|r| r.metadata.name == name)
            .and_then(|r| r.data.clone())
    };
    for i in 0..3 {
        assert_eq!(
            data_of(&format!("part-payload-{i}")),
            Some(format!("part {i}").into_bytes())
        );
        assert_eq!(data_of(&format!("part-output-{i}")), None, "no data");
    }
    assert_eq!(data_of("sum-payload"), Some(b"sum".to_vec()));
    assert_eq!(
        created.len(),
        7,
        "4 payloads and 3 part outputs: {created:?}"
    );

    let submitted = harness.agent.submitted_tasks();
    assert_eq!(submitted.len(), 4, "3 parts and 1 aggregation");
    let part_outputs: Vec<String> = (0..3).map(|i| id_of(&format!("part-output-{i}"))).collect();
    for (i, task) in submitted[..3].iter().enumerate() {
        assert_eq!(
            task.creation.payload_id,
            id_of(&format!("part-payload-{i}"))
        );
        assert_eq!(
            task.creation.expected_output_keys,
            [part_outputs[i].clone()]
        );
        assert!(task.creation.data_dependencies.is_empty());
    }
    let aggregation = &submitted[3].creation;
    assert_eq!(aggregation.payload_id, id_of("sum-payload"));
    assert_eq!(aggregation.expected_output_keys, [output]);
    assert_eq!(aggregation.data_dependencies, part_outputs);

    // The other roles of the same component.
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("part 3").build();
    let output = request.expected_output_keys[0].clone();
    assert_ok(harness.run_task(request).await, &harness);
    assert_eq!(folder.read(&output), b"9");

    let folder = TaskFolder::new();
    let request = folder
        .process_request()
        .payload("sum")
        .dependency("p0", "1")
        .dependency("p1", " 4\n")
        .dependency("p2", "18446744073709551616")
        .build();
    let output = request.expected_output_keys[0].clone();
    assert_ok(harness.run_task(request).await, &harness);
    assert_eq!(folder.read(&output), b"18446744073709551621");

    for (payload, details) in [
        ("part 2 fail", "part 2 fails on purpose"),
        ("hello  world", "fanout: unknown payload \"hello  world\""),
        ("part x", "invalid digit found in string"),
    ] {
        let folder = TaskFolder::new();
        let request = folder.process_request().payload(payload).build();
        let result = harness.run_task(request).await;
        assert_eq!(error_details(result, &harness), details, "{payload}");
    }
}

async fn fail_serve(lang: Lang) {
    let harness = serve(lang, "fail").await;
    for (payload, message) in [
        (b"bad input: x < 0".to_vec(), "bad input: x < 0"),
        // Invalid UTF-8 is replaced as Rust's from_utf8_lossy does: one U+FFFD per maximal
        // invalid subsequence.
        (
            b"bad \xff input \xe2\x82 \xf0\x9f\x98".to_vec(),
            "bad \u{FFFD} input \u{FFFD} \u{FFFD}",
        ),
    ] {
        let folder = TaskFolder::new();
        let request = folder.process_request().payload(payload).build();
        let result = harness.run_task(request).await;
        assert_eq!(error_details(result, &harness), message);
    }
    assert!(
        harness.agent.calls().is_empty(),
        "{:?}",
        harness.agent.calls()
    );
}

/// A failed agent call fails the task with the message the Rust SDK gives for it.
async fn agent_error_serve(lang: Lang) {
    let cases = [
        ("echo", methods::NOTIFY_RESULT_DATA, Code::NotFound, "x"),
        (
            "fanout",
            methods::SUBMIT_TASKS,
            Code::InvalidArgument,
            "fanout 2",
        ),
    ];
    let cache = cache_dir();
    for (example, method, code, payload) in cases {
        let mut details = Vec::new();
        for wasm in [guest(example), component(lang, example)] {
            let harness =
                Harness::start_custom(&wasm, Transport::Unix, &["--cache-dir", path(&cache)], &[])
                    .await;
            harness
                .agent
                .inject_error(method, code, "injected by the test");
            let folder = TaskFolder::new();
            let request = folder.process_request().payload(payload).build();
            details.push(error_details(harness.run_task(request).await, &harness));
        }
        assert!(details[0].contains("injected by the test"), "{details:?}");
        assert_eq!(
            details[1],
            details[0],
            "{} {example}: the Rust guest's message first",
            lang.name()
        );
    }
}

/// The tests of one language, in a module of their own (`python::echo_serve`...).
macro_rules! language_tests {
    ($module:ident, $lang:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread")]
            async fn echo_serve() {
                super::echo_serve($lang).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn concat_serve() {
                super::concat_serve($lang).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn fanout_serve() {
                super::fanout_serve($lang).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn fail_serve() {
                super::fail_serve($lang).await;
            }

            #[tokio::test(flavor = "multi_thread")]
            async fn agent_error_serve() {
                super::agent_error_serve($lang).await;
            }

            #[test]
            fn echo_run() {
                super::echo_run($lang);
            }

            #[test]
            fn concat_run() {
                super::concat_run($lang);
            }

            #[test]
            fn fanout_run() {
                super::fanout_run($lang);
            }

            #[test]
            fn fail_run() {
                super::fail_run($lang);
            }
        }
    };
}

/// Runs the `lang` echo with its payload removed after the request was built; returns the
/// task's error details and the payload id, having checked that nothing reached the agent.
async fn unreadable_payload(lang: Lang) -> (String, String) {
    let harness = serve(lang, "echo").await;
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("gone").build();
    std::fs::remove_file(folder.path().join(&request.payload_id)).expect("remove the payload");
    let payload_id = request.payload_id.clone();
    let details = error_details(harness.run_task(request).await, &harness);
    assert!(
        harness.agent.calls().is_empty(),
        "{:?}",
        harness.agent.calls()
    );
    (details, payload_id)
}

/// The C helpers fail the task, naming the file, when a result file cannot be opened, and
/// send nothing to the agent.
#[tokio::test(flavor = "multi_thread")]
async fn c_unreadable_payload_is_an_error_naming_the_file() {
    let (details, payload_id) = unreadable_payload(Lang::C).await;
    assert!(
        details.starts_with("I/O error on /data/") && details.contains(&payload_id),
        "{details}"
    );
}

/// The JavaScript helpers fail the task when a file cannot be read through `data-folder`,
/// naming the file and the host's file error, and send nothing to the agent.
#[tokio::test(flavor = "multi_thread")]
async fn js_unreadable_payload_is_an_error_naming_the_file() {
    let (details, payload_id) = unreadable_payload(Lang::Js).await;
    assert!(
        details.starts_with(&format!("I/O error on reading {payload_id}: not-found: ")),
        "{details}"
    );
}

/// The JavaScript echo writes its payload as it reads it (`chunksOf`: `data-folder`'s
/// `read-part`, 16 MiB a call above 256 MiB), so a payload larger than the task could hold
/// twice goes through: 300 MiB and a few bytes under a 512 MiB memory limit (holding it, the
/// list then the runtime's copy, took three times the payload: BENCHMARKS.md "Session 14").
/// Every byte written still stays allocated (componentize-js 0.23's glue frees none), so the
/// payload itself must fit.
#[test]
fn js_echo_streams_a_payload_it_could_not_hold_twice() {
    let payload: Vec<u8> = (0..(300u32 << 20) + 12_345)
        .map(|i| (i % 251) as u8)
        .collect();
    let (output, _) = echo_with_run(Lang::Js, &payload, &["--memory-limit-mib", "512"]);
    assert_eq!(output.len(), payload.len());
    assert!(output == payload, "the output differs from the payload");
}

/// A data dependency larger than the helpers read in one call (256 MiB) is read whole all the
/// same: in JavaScript from its size, in 16 MiB `read-part` pieces (the last one short), in
/// Python through WASI; `concat` puts it before a small one.
fn concat_of_a_dependency_above_the_whole_file_limit(lang: Lang) {
    let big: Vec<u8> = (0..(256u32 << 20) + 12_345)
        .map(|i| (i % 253) as u8)
        .collect();
    let output = concat_with_run(lang, &[("a", &big), ("b", b"tail")]);
    assert_eq!(output.len(), big.len() + 4, "{}", lang.name());
    assert!(
        output[..big.len()] == big[..] && &output[big.len()..] == b"tail",
        "{}: the output is not the dependencies in order",
        lang.name()
    );
}

#[test]
fn js_concat_of_a_dependency_above_the_whole_file_limit() {
    concat_of_a_dependency_above_the_whole_file_limit(Lang::Js);
}

#[test]
fn python_concat_of_a_dependency_above_the_whole_file_limit() {
    concat_of_a_dependency_above_the_whole_file_limit(Lang::Python);
}

language_tests!(python, Lang::Python);
language_tests!(js, Lang::Js);
language_tests!(c, Lang::C);

// ---------------------------------------------------------------------------------------------
// Per-task cost
// ---------------------------------------------------------------------------------------------

/// The wall time of every task of a worker log (the host's own time for a task: store,
/// instantiation, the call, output checks), in microseconds.
fn host_task_times(log: &str) -> Vec<f64> {
    common::task_wall_times(log, |_| true)
        .iter()
        .map(|wall| wall.as_secs_f64() * 1e6)
        .collect()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * p).round() as usize]
}

/// Per-task time of `echo` (8-byte payload: read, write, one notify) and `fail` (read, return
/// an error; no agent call) for each language and the Rust guest, with component sizes.
/// Numbers from a debug host are several times a release host's; run with
/// `cargo test --release --test polyglot -- --ignored --nocapture per_task_cost`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, prints numbers"]
async fn per_task_cost() {
    const WARM_UP: usize = 20;
    const TASKS: usize = 300;
    let mut rows = Vec::new();
    let guests: [(&str, Option<Lang>); 4] = [
        ("Rust", None),
        ("C", Some(Lang::C)),
        ("JavaScript", Some(Lang::Js)),
        ("Python", Some(Lang::Python)),
    ];
    for (name, lang) in guests {
        for example in ["echo", "fail"] {
            let wasm = match lang {
                Some(lang) => component(lang, example),
                None => guest(example),
            };
            let cache = cache_dir();
            let harness =
                Harness::start_custom(&wasm, Transport::Unix, &["--cache-dir", path(&cache)], &[])
                    .await;
            let mut client_times = Vec::with_capacity(TASKS);
            for i in 0..WARM_UP + TASKS {
                let folder = TaskFolder::new();
                let request = folder.process_request().payload("8 bytes!").build();
                let started = Instant::now();
                let result = harness.run_task(request).await;
                let elapsed = started.elapsed();
                assert!(result.is_ok(), "{result:?}");
                if i >= WARM_UP {
                    client_times.push(elapsed.as_secs_f64() * 1e6);
                }
            }
            // Let the last log lines reach the file.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut host_times = host_task_times(&harness.worker.log());
            let mut host_times = host_times.split_off(WARM_UP.min(host_times.len()));
            assert!(!host_times.is_empty(), "{}", harness.worker.log());
            rows.push(format!(
                "{name:<10} {example:<5} {:>10} B   host p50 {:>8.0} µs  p90 {:>8.0} µs   \
                 Process round trip p50 {:>8.0} µs",
                std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0),
                percentile(&mut host_times, 0.5),
                percentile(&mut host_times, 0.9),
                percentile(&mut client_times, 0.5),
            ));
        }
    }
    eprintln!("per-task cost ({TASKS} tasks after {WARM_UP} warm-up, one at a time):");
    for row in rows {
        eprintln!("{row}");
    }
}

/// Instantiation alone, then instantiation and a call of `fail` (reads the payload, returns an
/// error; no agent call), straight on the host's sandbox: what each language's runtime costs
/// per task, without gRPC. Numbers from a debug host are several times a release host's; run
/// with `cargo test --release --test polyglot -- --ignored --nocapture instantiation_cost`.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "measurement, prints numbers"]
async fn instantiation_cost() {
    use std::sync::Arc;

    use armonik_wasm::agent::Agent;
    use armonik_wasm::agent::bridge::{AgentBridge, TaskIdentity};
    use armonik_wasm::agent::convert::task_options_to_wit;
    use armonik_wasm::bindings::types::TaskContext;
    use armonik_wasm::host_files::Folder;
    use armonik_wasm::local::agent::LocalAgent;
    use armonik_wasm::sandbox::compile_cache::DiskCache;
    use armonik_wasm::sandbox::data_folder::DataFolder;
    use armonik_wasm::sandbox::guest_log::TaskIds;
    use armonik_wasm::sandbox::{DEFAULT_KEEP_RESIDENT, Sandbox, SandboxConfig, wasi_context};
    use sha2::{Digest, Sha256};

    const RUNS: usize = 300;
    let sandbox = Sandbox::new(SandboxConfig {
        max_concurrent_tasks: 4,
        memory_limit: 2048 << 20,
        pooling: true,
        instantiate_ahead: false,
        keep_resident: DEFAULT_KEEP_RESIDENT,
    })
    .expect("sandbox");
    let disk = DiskCache::open(&cache_dir(), sandbox.engine(), Default::default()).expect("cache");
    let dir = tempfile::tempdir().expect("temp dir");
    let agent: Arc<dyn Agent> = Arc::new(LocalAgent::new(dir.path(), None).expect("local agent"));
    let folder = TaskFolder::new();
    folder.write("payload", "8 bytes!");
    let data_folder = Arc::new(Folder::open(folder.path()).expect("data folder"));
    let guests = [
        ("Rust", guest("fail")),
        ("C", component(Lang::C, "fail")),
        ("JavaScript", component(Lang::Js, "fail")),
        ("Python", component(Lang::Python, "fail")),
    ];
    eprintln!("per task, p50 of {RUNS} (after 20 warm-up), one at a time:");
    for (name, wasm) in guests {
        let bytes = std::fs::read(&wasm).expect("component");
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cached = disk
            .load(sandbox.engine(), &digest)
            .expect("a loadable entry");
        let component = cached.unwrap_or_else(|| {
            wasmtime::component::Component::new(sandbox.engine(), &bytes).expect("compiles")
        });
        let pre = sandbox.prepare(&component).expect("fits the world");
        let (mut instantiate, mut whole) = (Vec::new(), Vec::new());
        let mut faults_before = 0;
        for i in 0..RUNS + 20 {
            if i == 20 {
                faults_before = minor_page_faults();
            }
            let started = Instant::now();
            let ids = Arc::new(TaskIds {
                session_id: "session".into(),
                task_id: format!("task-{i}"),
            });
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let bridge = AgentBridge::new(
                agent.clone(),
                TaskIdentity {
                    token: "token".into(),
                    session_id: "session".into(),
                    expected_outputs: vec!["out".into()],
                    library: None,
                },
                1 << 20,
                deadline,
                data_folder.clone(),
            );
            let wasi = wasi_context(folder.path(), &ids).expect("wasi");
            let files = DataFolder::new(data_folder.clone(), sandbox.config().memory_limit);
            let mut store = sandbox.new_store(wasi, bridge, files, deadline);
            let worker = pre.instantiate_async(&mut store).await.expect("instance");
            let instantiated = started.elapsed();
            let context = TaskContext {
                session_id: "session".into(),
                task_id: ids.task_id.clone(),
                options: task_options_to_wit(&Default::default()),
                payload_id: "payload".into(),
                data_dependencies: Vec::new(),
                expected_output_ids: vec!["out".into()],
                data_folder: "/data".into(),
                data_chunk_max_size: 1 << 20,
            };
            let result = worker
                .armonik_worker_task()
                .call_process(&mut store, &context)
                .await
                .expect("no trap");
            assert_eq!(result, Err("8 bytes!".to_owned()));
            drop(store);
            if i >= 20 {
                instantiate.push(instantiated.as_secs_f64() * 1e6);
                whole.push(started.elapsed().as_secs_f64() * 1e6);
            }
        }
        let faults = (minor_page_faults() - faults_before) / RUNS as u64;
        eprintln!(
            "{name:<10} store + instantiate {:>7.0} µs   + process (fail) {:>7.0} µs   \
             {faults:>5} page faults per task",
            percentile(&mut instantiate, 0.5),
            percentile(&mut whole, 0.5),
        );
    }
}
