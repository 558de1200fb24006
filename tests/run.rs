//! `armonik-wasm run`, `compile` and `inspect`, driven from the command line as a user would,
//! with the embedded agent playing ArmoniK.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Ran, armonik_wasm, guest, path};

/// `armonik-wasm run <guest> --payload-text <payload> <extra>...`, writing into a fresh
/// outputs folder (returned with the folder that holds it).
fn run_guest(name: &str, payload: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf, Ran) {
    let (dir, out) = outputs();
    let guest = guest(name);
    let mut args = vec!["run", path(&guest), "--payload-text", payload];
    args.extend_from_slice(extra);
    args.extend(["--outputs", path(&out)]);
    let ran = armonik_wasm(&args);
    (dir, out, ran)
}

/// A fresh outputs folder.
fn outputs() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    (dir, out)
}

#[test]
fn fan_out_and_fan_in_run_in_dependency_order() {
    let (_dir, out, ran) = run_guest("fanout", "fanout 5", &["--all-results"]);
    assert!(ran.success, "{}", ran.all());
    // 0² + 1² + 2² + 3² + 4², computed by the aggregation task the root delegated its output to.
    assert_eq!(
        std::fs::read_to_string(out.join("output")).expect("output"),
        "30"
    );
    assert!(ran.stdout.contains("output: 30"), "{}", ran.stdout);
    assert!(
        ran.stdout.contains("7 tasks run (7 completed)"),
        "{}",
        ran.stdout
    );
    let results: Vec<String> = std::fs::read_dir(out.join("results"))
        .expect("results folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    for name in [
        "part-output-4.",
        "part-payload-0.",
        "sum-payload.",
        "payload.",
        "output.",
    ] {
        assert!(
            results.iter().any(|r| r.starts_with(name)),
            "{name} in {results:?}"
        );
    }
}

#[test]
fn a_failed_subtask_cancels_its_dependants_and_the_run_fails() {
    let (_dir, out, ran) = run_guest("fanout", "fanout 4 fail 2", &[]);
    assert!(!ran.success, "the root's output is never produced");
    assert!(
        ran.stderr.contains("part 2 fails on purpose"),
        "{}",
        ran.all()
    );
    assert!(ran.stderr.contains("was aborted"), "{}", ran.all());
    assert!(
        ran.stdout.contains("output: not produced (aborted)"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("6 tasks run (4 completed, 1 error, 1 cancelled)"),
        "{}",
        ran.stdout
    );
    assert!(!out.join("output").exists());
}

#[test]
fn an_error_discards_what_the_task_submitted() {
    let (_dir, out) = outputs();
    // The probe creates a task through the legacy stream, then fails: the task never runs.
    let ran = armonik_wasm(&[
        "run",
        path(&guest("probe")),
        "--payload-text",
        "create-tasks ctx - -\nfail given up",
        "--outputs",
        path(&out),
    ]);
    assert!(!ran.success);
    assert!(ran.stderr.contains("given up"), "{}", ran.all());
    assert!(
        ran.stdout.contains("1 tasks run (1 error)"),
        "{}",
        ran.stdout
    );
}

#[test]
fn a_trapping_task_is_retried_under_new_ids_then_fails() {
    let (_dir, _out, ran) = run_guest("hostile", "panic", &["--max-retries", "2"]);
    assert!(!ran.success);
    assert!(
        ran.stdout.contains("3 tasks run (1 error, 2 retried)"),
        "{}",
        ran.stdout
    );
    assert!(ran.stderr.contains("###1 retried"), "{}", ran.stderr);
    assert!(ran.stderr.contains("###2 error"), "{}", ran.stderr);
    assert!(ran.stderr.contains("wasm backtrace"), "{}", ran.stderr);
}

#[test]
fn a_task_past_its_max_duration_times_out_without_retry() {
    let (_dir, _out, ran) = run_guest("hostile", "loop", &["--default-max-duration", "1"]);
    assert!(!ran.success);
    assert!(
        ran.stdout.contains("1 tasks run (1 timeout)"),
        "{}",
        ran.all()
    );
}

#[test]
fn session_options_payload_and_dependencies_reach_the_task() {
    let (dir, out) = outputs();
    let dep = dir.path().join("dep.bin");
    std::fs::write(&dep, b"dependency").expect("dep file");
    let ran = armonik_wasm(&[
        "run",
        path(&guest("probe")),
        "--payload-text",
        "ctx",
        "--option",
        "ConventionVersion=none",
        "--option",
        "color=blue",
        "--dep",
        &format!("table={}", path(&dep)),
        "--outputs",
        path(&out),
    ]);
    // ConventionVersion=none is not a convention this host knows: a clear Output.error.
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("unsupported ConventionVersion"),
        "{}",
        ran.all()
    );

    let ran = armonik_wasm(&[
        "run",
        path(&guest("probe")),
        "--payload-text",
        "ctx",
        "--option",
        "color=blue",
        "--dep",
        &format!("table={}", path(&dep)),
        "--outputs",
        path(&out),
    ]);
    assert!(ran.success, "{}", ran.all());
    let report = std::fs::read_to_string(out.join("output")).expect("report");
    assert!(report.contains("options=color=blue"), "{report}");
    assert!(report.contains("max_retries=2"), "{report}");
    assert!(report.contains("data_folder=/data"), "{report}");
}

#[test]
fn guest_output_shows_in_the_terminal() {
    let (_dir, _out, ran) = run_guest("hostile", "panic", &["--max-retries", "0"]);
    assert!(ran.stderr.contains("panicked"), "{}", ran.stderr);
}

#[test]
fn bad_arguments_get_clear_messages_and_a_failure_code() {
    let (dir, out) = outputs();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not wasm").expect("file");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\x00\x00\x00").expect("file");
    let echo = guest("echo");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "/nonexistent/task.wasm"],
            "cannot read the component",
        ),
        (vec!["run", path(&text)], "is not a WebAssembly component"),
        (vec!["run", path(&core)], "core WebAssembly module"),
        (
            vec!["run", path(&echo), "--dep", "table"],
            "--dep expects NAME=FILE",
        ),
        (
            vec!["run", path(&echo), "--dep", "table=/nonexistent.bin"],
            "cannot read the file of --dep table",
        ),
        (
            vec!["run", path(&echo), "--payload", "/nonexistent.bin"],
            "cannot read the payload file",
        ),
        (
            vec!["run", path(&echo), "--option", "=x"],
            "--option expects KEY=VALUE",
        ),
    ];
    for (args, message) in cases {
        let mut args = args;
        args.extend(["--outputs", path(&out)]);
        let ran = armonik_wasm(&args);
        assert!(!ran.success, "{args:?} should fail");
        assert!(ran.stderr.contains(message), "{args:?}: {}", ran.stderr);
    }
}

#[test]
fn compiled_components_run_and_foreign_ones_are_refused() {
    let (dir, out) = outputs();
    let compiled = dir.path().join("echo.cwasm");
    let ran = armonik_wasm(&["compile", path(&guest("echo")), "-o", path(&compiled)]);
    assert!(ran.success, "{}", ran.all());
    let ran = armonik_wasm(&[
        "run",
        path(&compiled),
        "--payload-text",
        "precompiled",
        "--outputs",
        path(&out),
    ]);
    assert!(ran.success, "{}", ran.all());
    assert_eq!(
        std::fs::read(out.join("output")).expect("output"),
        b"precompiled"
    );

    // An artifact of another engine (here: another wasmtime major version, which the
    // artifact's engine section records as a length-prefixed string) is refused, not run.
    let mut bytes = std::fs::read(&compiled).expect("cwasm");
    let version = b"\x0248";
    let places: Vec<usize> = (0..bytes.len() - 2)
        .filter(|&i| &bytes[i..i + 3] == version)
        .collect();
    assert_eq!(places.len(), 1, "one engine version record");
    bytes[places[0] + 1..places[0] + 3].copy_from_slice(b"47");
    let foreign = dir.path().join("foreign.cwasm");
    std::fs::write(&foreign, bytes).expect("write");
    let ran = armonik_wasm(&["run", path(&foreign), "--outputs", path(&out)]);
    assert!(!ran.success);
    assert!(ran.stderr.contains("cannot use"), "{}", ran.stderr);
    assert!(ran.stderr.contains("compile it again"), "{}", ran.stderr);
}

#[test]
fn inspect_tells_what_a_file_is() {
    let ran = armonik_wasm(&["inspect", path(&guest("echo"))]);
    assert!(ran.success, "{}", ran.all());
    assert!(
        ran.stdout.contains("armonik:worker/agent@0.1.0 (instance)"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("armonik:worker/task@0.1.0 (instance)"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout
            .contains("fits the armonik:worker/worker world: yes")
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\x00\x00\x00").expect("file");
    let ran = armonik_wasm(&["inspect", path(&core)]);
    assert!(!ran.success);
    assert!(
        ran.stderr.contains("core WebAssembly module"),
        "{}",
        ran.stderr
    );
}

/// The README's main job: the Monte Carlo pricer fans out over subtasks, and its price agrees
/// with Black–Scholes within the statistical error it reports.
#[test]
fn the_pricer_demo_matches_black_scholes() {
    for params in [
        "assets=1 kind=call paths=400000 slices=8 seed=7",
        "assets=1 kind=put strike=110 vol=0.3 paths=400000 slices=5 seed=11",
    ] {
        let (_dir, out) = outputs();
        let ran = armonik_wasm(&[
            "run",
            path(&guest("pricer")),
            "--payload-text",
            &format!("price {params}"),
            "--outputs",
            path(&out),
        ]);
        assert!(ran.success, "{}", ran.all());
        let slices: usize = params
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("slices="))
            .and_then(|n| n.parse().ok())
            .expect("slices in params");
        // The root, one task per slice, the aggregation.
        let tasks = slices + 2;
        assert!(
            ran.stdout
                .contains(&format!("{tasks} tasks run ({tasks} completed)")),
            "{}",
            ran.stdout
        );
        let line = std::fs::read_to_string(out.join("output")).expect("price line");
        let field = |key: &str| -> f64 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{key} in {line}"))
        };
        let (price, std_error) = (field("price="), field("std_error="));
        let exact = montecarlo::black_scholes(&params.parse().expect("params"));
        assert!(std_error > 0.0 && std_error < 0.1, "{line}");
        assert!(
            (price - exact).abs() < 4.0 * std_error,
            "{params}: Monte Carlo {price} ± {std_error}, Black–Scholes {exact}"
        );
    }
}

/// The entries of the compile cache at `cache`, all engines' folders together.
fn cache_entries(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache)
        .expect("cache root")
        .flat_map(|engine| std::fs::read_dir(engine.expect("entry").path()).expect("engine dir"))
        .map(|e| e.expect("entry").path())
        .collect()
}

#[test]
fn compiled_components_are_cached_on_disk_and_a_damaged_entry_is_recompiled() {
    let (dir, out) = outputs();
    let cache = dir.path().join("cache");
    let run = || {
        let output = Command::new(env!("CARGO_BIN_EXE_armonik-wasm"))
            .args(["run", path(&guest("echo")), "--payload-text", "cached"])
            .args(["--outputs", path(&out), "--cache-dir", path(&cache)])
            .output()
            .expect("armonik-wasm starts");
        assert!(output.status.success(), "{output:?}");
    };
    run();
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(entries[0].extension().is_some_and(|e| e == "cwasm"));
    std::fs::write(&entries[0], b"damaged").expect("damage the entry");
    run();
    assert!(
        std::fs::metadata(&entries[0]).expect("entry").len() > 1000,
        "rewritten"
    );
}

/// A host whose settings refuse a component (a memory limit below the component's memory)
/// leaves the cache entry that hosts with fitting settings compiled: the next of those loads
/// it as it is.
#[test]
fn a_cache_entry_survives_a_host_whose_settings_refuse_its_component() {
    use std::os::unix::fs::MetadataExt as _;
    let (dir, out) = outputs();
    let cache = dir.path().join("cache");
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_armonik-wasm"))
            .args(["run", path(&guest("echo")), "--payload-text", "cached"])
            .args(["--outputs", path(&out), "--cache-dir", path(&cache)])
            .args(extra)
            // Shows whether the component is compiled.
            .env("RUST_LOG", "info")
            .output()
            .expect("armonik-wasm starts")
    };
    let entry = || -> (PathBuf, u64) {
        let entries = cache_entries(&cache);
        assert_eq!(entries.len(), 1, "{entries:?}");
        let inode = std::fs::metadata(&entries[0]).expect("entry").ino();
        (entries[0].clone(), inode)
    };
    assert!(run(&[]).status.success());
    let compiled = entry();
    // The echo guest's memory is more than one MiB: this host refuses it.
    let refused = run(&["--memory-limit-mib", "1"]);
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("needs more linear memory than this host lets a task have (--memory-limit-mib, ArmonikWasm__MemoryLimitMiB)")
            && stderr.contains("exceeds the limit"),
        "{stderr}"
    );
    // Refused from the entry: not taken for a damaged one, nor compiled again to find out.
    assert!(!stderr.contains("ignoring a cache entry"), "{stderr}");
    assert!(!stderr.contains("component compiled"), "{stderr}");
    assert_eq!(entry(), compiled, "the entry is left as it was");
    let again = run(&[]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(entry(), compiled, "loaded, not compiled and replaced");
}

/// The embedded agent answers the guest's agent calls as ArmoniK's does: results and tasks
/// are created, unknown ids, results the task does not own and missing data are refused,
/// Get{Common,Direct}Data do not exist.
#[test]
fn the_embedded_agent_answers_every_agent_operation() {
    let script = "metadata a b\ncreate inline hello\nnotify unknown-id text\nsubmit unknown-id - -\n\
                  resource unknown-id\ncommon x\ndirect x\ncreate-tasks subtask - -";
    let (_dir, out, ran) = run_guest("probe", script, &[]);
    assert!(ran.success, "{}", ran.all());
    let report = std::fs::read_to_string(out.join("output")).expect("report");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 8, "{report}");
    assert!(
        lines[0].starts_with("ok a=") && lines[0].contains(" b="),
        "{report}"
    );
    assert!(lines[1].starts_with("ok inline="), "{report}");
    // Stricter than ArmoniK: a task notifies only results it owns.
    assert!(
        lines[2].starts_with("err invalid-argument cannot notify result `unknown-id`"),
        "{report}"
    );
    assert!(
        lines[3].starts_with("err invalid-argument unknown result id"),
        "{report}"
    );
    assert!(lines[4].starts_with("err not-found"), "{report}");
    assert!(lines[5].starts_with("err internal"), "{report}");
    assert!(lines[6].starts_with("err internal"), "{report}");
    assert!(lines[7].starts_with("ok "), "{report}");
    // The legacy task ran after the root committed; with no expected output, the probe fails.
    assert!(
        ran.stdout.contains("2 tasks run (1 completed, 1 error)"),
        "{}",
        ran.all()
    );
}

/// A root output named `results` and `--all-results` both land: the output as `%72esults`.
#[test]
fn an_output_named_results_leaves_the_folder_to_all_results() {
    let (_dir, out, ran) = run_guest(
        "echo",
        "hello",
        &["--output-name", "results", "--all-results"],
    );
    assert!(ran.success, "{}", ran.all());
    assert_eq!(
        std::fs::read_to_string(out.join("%72esults")).expect("output"),
        "hello"
    );
    assert!(out.join("results").is_dir(), "{}", ran.all());
}

/// Outputs that cannot be written fail the run, and the computed results are kept.
#[test]
fn outputs_that_cannot_be_written_lose_nothing() {
    let (dir, out) = outputs();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(out.join("output")).expect("a directory in the output's way");
    std::fs::create_dir(&tmp).expect("tmp");
    let echo = guest("echo");
    let output = common::armonik_wasm_command(&[
        "run",
        path(&echo),
        "--payload-text",
        "kept",
        "--outputs",
        path(&out),
    ])
    .env("TMPDIR", &tmp)
    .output()
    .expect("armonik-wasm starts");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let kept = stderr
        .lines()
        .find_map(|l| l.strip_prefix("the results are kept in "))
        .and_then(|l| l.strip_suffix(", one file per result id"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let holds_kept = std::fs::read_dir(kept)
        .expect("kept results")
        .any(|e| std::fs::read(e.expect("entry").path()).is_ok_and(|d| d == b"kept"));
    assert!(holds_kept, "{kept}");
}

/// The files of one `run` serve the next: emptied into the user's folder of empty files at
/// exit, then taken again (the same inodes), each next task still seeing exactly its own
/// inputs; a folder of empty files another user may write to is not used.
#[test]
fn a_run_leaves_empty_files_that_the_next_run_takes() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let uid = std::fs::metadata(&tmp).expect("stat").uid();
    let empty_files = tmp.join(format!("armonik-wasm-empty-files-{uid}"));
    let fanout = guest("fanout");
    let run = |n: u64| {
        let out = dir.path().join(format!("out-{n}"));
        let payload = format!("fanout {n}");
        let output = common::armonik_wasm_command(&[
            "run",
            path(&fanout),
            "--payload-text",
            &payload,
            "--outputs",
            path(&out),
        ])
        .env("TMPDIR", &tmp)
        .output()
        .expect("armonik-wasm starts");
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        // The sum of squares below n.
        let sum: u64 = (0..n).map(|i| i * i).sum();
        assert_eq!(
            std::fs::read_to_string(out.join("output")).expect("output"),
            sum.to_string()
        );
        stderr
    };
    let inodes = || {
        let mut inodes = Vec::new();
        for entry in std::fs::read_dir(&empty_files).expect("the empty files") {
            let meta = entry.expect("entry").metadata().expect("stat");
            assert!(meta.is_file() && meta.len() == 0, "{meta:?}");
            inodes.push(meta.ino());
        }
        inodes.sort_unstable();
        inodes
    };

    run(300);
    let first = inodes();
    assert!(
        first.len() >= 300,
        "the sum task's inputs are kept: {}",
        first.len()
    );
    // Fewer tasks than files: every file the second run needs comes from the first.
    run(100);
    let second = inodes();
    assert!(
        first.iter().all(|ino| second.binary_search(ino).is_ok()),
        "the files came back"
    );
    assert_eq!(second.len(), first.len(), "no new file was made");
    let entries = std::fs::read_dir(&tmp).expect("tmp").count();
    assert_eq!(entries, 1, "nothing left in TMPDIR but the empty files");

    // Another user may write there: not used, and the run still works.
    std::fs::set_permissions(
        &empty_files,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let stderr = run(10);
    assert!(stderr.contains("cannot keep empty files there"), "{stderr}");
    assert_eq!(inodes(), second, "left alone");
}
