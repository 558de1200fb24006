//! The host's side of the sandbox boundary (issue 10): what a task chose (files it planted in
//! its data folder, result names, result ids, writes left in flight) and what lies in the
//! host's own stores (the compile cache, work folders) never make the host touch a file it
//! did not mean to, store bytes the task does not own, or run code it did not compile.
//!
//! The hostile guest (`guests/hostile`) plays the task, through `armonik-wasm run` (the
//! embedded agent) and `armonik-wasm serve` (the fake agent behaving as ArmoniK.Core's, whose
//! GetResourceData writes `<folder>/<id>` following links and without truncating). Tests are
//! grouped by guarantee: 1. host file operations never follow what a guest planted; 2. names
//! chosen by a task never become host paths; 3. a task produces only what it owns; 4. every
//! write the guest issued has landed before the host checks, replies and commits; 5. the
//! compile cache and the work folders belong to the host.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use armonik::Output;
use armonik::worker::process;
use common::*;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The SHA-256 of `bytes`, in lowercase hex.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A token unique to this test run, for names that must not meet leftovers of other runs.
fn token() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// What the hostile guest reports when the host fetched dependency bytes `good` cleanly: a
/// regular file holding exactly them.
const FETCHED_CLEANLY: &str = "plant=ok\nget=ok\ntype=file\ndata=good";

/// The names of a folder's entries.
fn entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect()
}

/// Asserts that every line of a report is an agent call refused with `invalid-argument`,
/// and that there are `lines` of them.
fn assert_all_refused(report: &str, lines: usize) {
    assert_eq!(report.lines().count(), lines, "{report}");
    for line in report.lines() {
        assert!(
            line.contains(": err agent call ") && line.contains(" failed: invalid-argument: "),
            "{line}\n{report}"
        );
    }
}

/// A file outside every data folder that a host following a planted link would create or
/// overwrite. Removed on drop.
struct Canary {
    path: PathBuf,
    content: Option<&'static str>,
}

impl Canary {
    /// `/tmp/armonik-wasm-canary-<token>`, absent.
    fn absent() -> Self {
        Self::new(None)
    }

    /// The same, holding `canary`.
    fn existing() -> Self {
        Self::new(Some("canary"))
    }

    fn new(content: Option<&'static str>) -> Self {
        let path = PathBuf::from(format!("/tmp/armonik-wasm-canary-{}", token()));
        if let Some(content) = content {
            std::fs::write(&path, content).expect("write the canary");
        }
        Self { path, content }
    }

    /// A relative link target from any data folder to the canary: `../` up to the root,
    /// then the canary's path (a guest may plant relative links; WASI refuses absolute ones).
    fn relative_target(&self) -> String {
        let path = self.path.to_str().expect("utf-8 path");
        format!("{}{}", "../".repeat(16), path.trim_start_matches('/'))
    }

    /// Asserts that the canary is as it was made: still absent, or still holding `canary`.
    fn assert_untouched(&self) {
        let now = std::fs::read_to_string(&self.path).ok();
        assert_eq!(
            now.as_deref(),
            self.content,
            "{} was written through a planted link",
            self.path.display()
        );
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One `armonik-wasm run` of the hostile guest, in its own folder.
struct LocalRun {
    dir: tempfile::TempDir,
    out: PathBuf,
    ran: Ran,
}

impl LocalRun {
    /// `armonik-wasm run <hostile> --payload <file holding payload> [--dep d=<file holding
    /// dep>] --outputs <out> <extra>...`.
    fn new(payload: impl AsRef<[u8]>, dep: Option<&str>, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("out");
        let payload_file = dir.path().join("payload.bin");
        std::fs::write(&payload_file, payload).expect("payload file");
        let hostile = guest("hostile");
        let dep_arg;
        let mut args = vec!["run", path(&hostile), "--payload", path(&payload_file)];
        if let Some(dep) = dep {
            let dep_file = dir.path().join("d.bin");
            std::fs::write(&dep_file, dep).expect("dep file");
            dep_arg = format!("d={}", path(&dep_file));
            args.extend(["--dep", &dep_arg]);
        }
        args.extend(["--outputs", path(&out)]);
        args.extend_from_slice(extra);
        let ran = armonik_wasm(&args);
        Self { dir, out, ran }
    }

    /// Same as [`new`](Self::new), asserting that the run succeeded.
    fn ok(payload: impl AsRef<[u8]>, dep: Option<&str>, extra: &[&str]) -> Self {
        let run = Self::new(payload, dep, extra);
        assert!(run.ran.success, "{}", run.ran.all());
        run
    }

    /// The root task's output `output`, as text.
    fn report(&self) -> String {
        std::fs::read_to_string(self.out.join("output")).expect("the root's output")
    }

    /// Asserts the run's summary line: which tasks ran (a refused submission runs none).
    fn assert_tasks_run(&self, summary: &str) {
        assert!(self.ran.stdout.contains(summary), "{}", self.ran.stdout);
    }

    /// The bytes of the one file of `out/results` named `<name>.<id>` (`--all-results`).
    fn result_named(&self, name: &str) -> Vec<u8> {
        let results = self.out.join("results");
        let found: Vec<String> = (entries(&results).into_iter())
            .filter(|e| {
                e.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
            .collect();
        assert_eq!(found.len(), 1, "one result named {name:?} in {found:?}");
        std::fs::read(results.join(&found[0])).expect("result file")
    }
}

/// One hostile task under `serve`: its folder and request, with data dependency `dep`
/// holding `good`, which the agent also knows as a resource.
struct ServedTask {
    folder: TaskFolder,
    request: process::Request,
}

impl ServedTask {
    fn new(harness: &Harness, payload: &str) -> Self {
        let folder = TaskFolder::new();
        let dep = uuid::Uuid::new_v4().to_string();
        harness.agent.add_resource(&dep, "good");
        let request = folder
            .process_request()
            .payload(payload)
            .dependency(dep, "good")
            .build();
        Self { folder, request }
    }

    fn dep(&self) -> &str {
        &self.request.data_dependencies[0]
    }

    fn output(&self) -> &str {
        &self.request.expected_output_keys[0]
    }

    /// Runs the task; asserts `Output.ok`.
    async fn run(&self, harness: &Harness) {
        let result = harness.run_task(self.request.clone()).await;
        assert!(
            matches!(result, Ok(Output::Ok)),
            "{result:?}\n{}",
            harness.worker.log()
        );
    }

    /// Runs the task; asserts `Output.ok` and returns the guest's report.
    async fn report(&self, harness: &Harness) -> String {
        self.run(harness).await;
        String::from_utf8(self.folder.read(self.output())).expect("utf-8 report")
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Host-side file operations never follow what a guest planted
// ---------------------------------------------------------------------------------------------

#[test]
fn run_fetch_replaces_a_planted_link_and_writes_nothing_outside() {
    let (absent, existing) = (Canary::absent(), Canary::existing());
    for canary in [&absent, &existing] {
        let payload = format!("plant link {}", canary.relative_target());
        let run = LocalRun::ok(payload, Some("good"), &[]);
        assert_eq!(run.report(), FETCHED_CLEANLY);
        canary.assert_untouched();
    }
}

#[test]
fn run_fetch_replaces_a_planted_directory() {
    let run = LocalRun::ok("plant dir", Some("good"), &[]);
    assert_eq!(run.report(), FETCHED_CLEANLY);
}

#[test]
fn run_fetch_replaces_a_longer_planted_file() {
    let run = LocalRun::ok("plant file", Some("good"), &[]);
    assert_eq!(run.report(), FETCHED_CLEANLY);
}

#[test]
fn run_fetch_refuses_ids_that_are_not_plain_names() {
    let run = LocalRun::ok("get-bad-ids", None, &[]);
    assert_all_refused(&run.report(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_clears_a_planted_link_before_the_agent_writes() {
    let harness = Harness::start("hostile").await;
    let (absent, existing) = (Canary::absent(), Canary::existing());
    for canary in [&absent, &existing] {
        // A link to an absolute path outside, left in the folder (as by an earlier step of
        // the task); the guest leaves it and fetches.
        let task = ServedTask::new(&harness, "plant kept");
        let planted = task.folder.path().join(task.dep());
        std::fs::remove_file(&planted).expect("remove the dependency file");
        std::os::unix::fs::symlink(&canary.path, &planted).expect("plant a link");
        assert_eq!(task.report(&harness).await, FETCHED_CLEANLY);
        canary.assert_untouched();

        // A relative link the guest plants itself.
        let payload = format!("plant link {}", canary.relative_target());
        let task = ServedTask::new(&harness, &payload);
        assert_eq!(task.report(&harness).await, FETCHED_CLEANLY);
        canary.assert_untouched();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_clears_a_planted_directory_before_the_agent_writes() {
    let harness = Harness::start("hostile").await;
    let task = ServedTask::new(&harness, "plant dir");
    assert_eq!(task.report(&harness).await, FETCHED_CLEANLY);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_clears_a_longer_planted_file_before_the_agent_writes() {
    let harness = Harness::start("hostile").await;
    let task = ServedTask::new(&harness, "plant file");
    assert_eq!(task.report(&harness).await, FETCHED_CLEANLY);
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_refuses_fetching_ids_that_are_not_plain_names_before_the_agent() {
    let harness = Harness::start("hostile").await;
    let task = ServedTask::new(&harness, "get-bad-ids");
    assert_all_refused(&task.report(&harness).await, 4);
    let calls = harness.agent.calls_to(methods::GET_RESOURCE_DATA);
    assert!(calls.is_empty(), "{calls:#?}");
}

/// The `data-folder` interface (a whole file per call) holds the same line as every host file
/// operation: names that are not plain are refused before any file is touched (a 4 MiB one
/// without the host echoing it whole), links and directories are never read nor written
/// through, a file larger than the task could hold is not read (a 64 GiB sparse file would
/// otherwise make the host allocate 64 GiB), a sparse file it could hold reads as zeros, and a
/// write replaces a link itself, never its target. The sparse file reads as zeros through
/// the path the folder's file system takes: mapped on ext4, XFS and btrfs, read elsewhere (the
/// worker's debug log says which).
#[tokio::test(flavor = "multi_thread")]
async fn serve_data_folder_calls_stay_in_the_data_folder() {
    let harness = Harness::start_custom(
        &guest("hostile"),
        Transport::Unix,
        &[],
        &[("RUST_LOG", "info,armonik_wasm::sandbox::data_folder=debug")],
    )
    .await;
    let mut maps = Vec::new();
    let (absent, existing) = (Canary::absent(), Canary::existing());
    for canary in [&absent, &existing] {
        let payload = format!("data-folder {}", canary.relative_target());
        let task = ServedTask::new(&harness, &payload);
        let report = task.report(&harness).await;
        canary.assert_untouched();
        let size = payload.len();
        let payload_id = task.request.payload_id.clone();
        let long = "n".repeat(256);
        let mut expected: Vec<(String, &str)> = ["../x", "a/b", "/etc/passwd", "", ".", ".."]
            .into_iter()
            .chain([long.as_str(), "nul\0"])
            .map(|name| (format!("read {name:?}: "), "err invalid-name: "))
            .collect();
        expected.extend([
            ("read \"missing\": ".into(), "err not-found: "),
            ("read <4 MiB of \\u{1f}>: ".into(), "err invalid-name: "),
            ("read \"link\": ".into(), "err invalid-name: "),
            ("read \"dir\": ".into(), "err invalid-name: "),
            ("read \"sparse\": ".into(), "err too-large: "),
            // Past the memory limit (2 GiB by default), not only past what a list can hold.
            ("read \"sparse-over\": ".into(), "err too-large: "),
            // A file of holes within the limit reads as zeros, mapped or read.
            ("read \"sparse-small\": ".into(), "ok 1048576 bytes zero"),
            (
                format!("read {payload_id:?} max-size={}: ", size - 1),
                "err too-large: ",
            ),
        ]);
        let exact = format!("ok {size} bytes same");
        expected.push((format!("read {payload_id:?} max-size={size}: "), &exact));
        for name in ["../x", "", "a/b", "dir"] {
            expected.push((format!("write {name:?}: "), "err invalid-name: "));
        }
        expected.extend([
            ("write \"link\": ".into(), "ok"),
            ("link-now=".into(), "file"),
            ("write \"fresh\": ".into(), "ok"),
            ("fresh-back=".into(), "same"),
        ]);
        // Parts: the same names refused, a part of a file too large to read whole, ranges
        // in, across the end of and past a mapped file (`fresh`, 200,000 bytes) and a read one
        // (the payload), at unaligned offsets.
        let parts = [
            ("\"../x\" 0+16", "err invalid-name: ".to_owned()),
            ("\"link-part\" 0+16", "err invalid-name: ".into()),
            ("\"dir\" 0+16", "err invalid-name: ".into()),
            ("\"missing\" 0+16", "err not-found: ".into()),
            (
                "\"sparse\" 42949672960+1048576",
                "ok 1048576 bytes zero".into(),
            ),
            (
                "\"fresh\" 0+18446744073709551615",
                "ok 200000 bytes same".into(),
            ),
            ("\"fresh\" 4097+150000", "ok 150000 bytes same".into()),
            (
                "\"fresh\" 199990+18446744073709551615",
                "ok 10 bytes same".into(),
            ),
            ("\"fresh\" 200000+1", "ok 0 bytes same".into()),
            ("\"fresh\" 300000+5", "ok 0 bytes same".into()),
        ]
        .map(|(call, outcome)| (format!("read-part {call}: "), outcome));
        let payload_parts = [
            (format!("{payload_id:?} 0+3"), "ok 3 bytes same".to_owned()),
            (
                format!("{payload_id:?} 1+18446744073709551615"),
                format!("ok {} bytes same", size - 1),
            ),
            (format!("{payload_id:?} {size}+1"), "ok 0 bytes same".into()),
            (format!("{payload_id:?} 0+0"), "ok 0 bytes same".into()),
        ]
        .map(|(call, outcome)| (format!("read-part {call}: "), outcome));
        expected.extend(
            parts
                .iter()
                .chain(&payload_parts)
                .map(|(prefix, outcome)| (prefix.clone(), outcome.as_str())),
        );
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{report}");
        for (line, (prefix, outcome)) in lines.iter().zip(&expected) {
            let rest = line.strip_prefix(prefix.as_str());
            assert!(
                rest.is_some_and(|rest| rest.starts_with(outcome)),
                "expected `{prefix}{outcome}...`, got `{line}`\n{report}"
            );
        }
        // Only the replaced link and the fresh file are new; the payload is as it was.
        assert_eq!(task.folder.read(&payload_id), payload.as_bytes());
        assert_eq!(task.folder.read("link"), b"evil");
        maps.push(on_mapped_file_system(task.folder.path()));
    }
    // One choice per task, made on its first file read (`sparse-small`), and no mapping
    // refused: the zeros above came through the path this file system takes.
    let log = harness.worker.log();
    let said: Vec<bool> = log
        .lines()
        .filter_map(|line| {
            if line.contains("data-folder reads map this task's files") {
                Some(true)
            } else if line.contains("data-folder reads copy this task's files") {
                Some(false)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(said, maps, "{log}");
    assert!(!log.contains("cannot map a file to read it"), "{log}");
}

/// Whether `folder` lies on ext4, XFS or btrfs: the file systems whose files `data-folder`
/// reads map (src/sandbox/data_folder.rs), and the others it reads.
fn on_mapped_file_system(folder: &Path) -> bool {
    const MAPPED: [u64; 3] = [0xEF53, 0x5846_5342, 0x9123_683E];
    let stat = rustix::fs::statfs(folder).expect("statfs of the task folder");
    // `f_type` is signed on glibc and unsigned on musl; the magic numbers fit either.
    #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
    let kind = stat.f_type as u64;
    MAPPED.contains(&kind)
}

/// A `data-folder` name that is not UTF-8 (a guest calling the core import with raw bytes, as
/// no bindings would) traps the task, as the canonical ABI has any string that does not
/// decode: no file-error reaches the guest, nothing is written, and the worker serves on.
#[tokio::test(flavor = "multi_thread")]
async fn serve_a_data_folder_name_that_is_not_utf8_traps() {
    let harness = Harness::start("hostile").await;
    for call in ["read", "write"] {
        let folder = TaskFolder::new();
        let request = folder
            .process_request()
            .payload(format!("data-folder-raw {call}"))
            .build();
        let before = entries(folder.path());
        let result = harness.run_task(request).await;
        let log = harness.worker.log();
        assert_eq!(
            result.as_ref().err().map(tonic::Status::code),
            Some(tonic::Code::Internal),
            "{call}: {result:?}\n{log}"
        );
        assert!(log.contains("invalid utf-8"), "{call}:\n{log}");
        assert_eq!(entries(folder.path()), before, "{call}");
    }
    let folder = TaskFolder::new();
    let request = folder.process_request().payload("write still").build();
    let output = request.expected_output_keys[0].clone();
    let result = harness.run_task(request).await;
    assert!(matches!(result, Ok(Output::Ok)), "{result:?}");
    assert_eq!(folder.read(&output), b"still");
}

// ---------------------------------------------------------------------------------------------
// 2. Names chosen by a task never become host paths
// ---------------------------------------------------------------------------------------------

/// The file name of a result named `name` once its mapping is cut (mapped name longer than
/// 200 bytes): the first 180 bytes of `mapped` (at a char boundary), `~`, and the first 16
/// hex digits of the SHA-256 of `name`.
fn cut_name(name: &str, mapped: &str) -> String {
    assert!(mapped.len() > 200, "{mapped} is not cut");
    let cut = (0..=180)
        .rev()
        .find(|&i| mapped.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}~{}", &mapped[..cut], &sha256_hex(name.as_bytes())[..16])
}

#[test]
fn run_result_names_never_become_paths() {
    let t = token();
    // 600 bytes, `é` from byte 19 on: the cut at byte 180 falls inside a `é`.
    let mut long = format!("long-{t}-x");
    while long.len() < 599 {
        long.push('é');
    }
    long.push('y');
    let exactly_200 = format!("{t}-{}", "z".repeat(200 - t.len() - 1));
    let just_over = format!("{exactly_200}z");
    let slashes = format!("{t}{}", "/".repeat(100));
    let names: Vec<(String, String)> = vec![
        (
            format!("../../../../tmp/n1-{t}"),
            format!("..%2F..%2F..%2F..%2Ftmp%2Fn1-{t}"),
        ),
        (format!("/tmp/n2-{t}"), format!("%2Ftmp%2Fn2-{t}")),
        (format!("a/b-{t}"), format!("a%2Fb-{t}")),
        (format!("nul\0{t}"), format!("nul%00{t}")),
        (long.clone(), cut_name(&long, &long)),
        (exactly_200.clone(), exactly_200.clone()),
        (just_over.clone(), cut_name(&just_over, &just_over)),
        (
            slashes.clone(),
            cut_name(&slashes, &format!("{t}{}", "%2F".repeat(100))),
        ),
        (".".into(), "%2E".into()),
        ("..".into(), "%2E%2E".into()),
        (String::new(), String::new()),
        (format!("%41-{t}"), format!("%2541-{t}")),
        (format!("héllo wörld-{t}"), format!("héllo%20wörld-{t}")),
    ];
    assert_eq!(long.len(), 600);
    assert_eq!(exactly_200.len(), 200);
    let lines: Vec<&str> = names.iter().map(|(name, _)| name.as_str()).collect();
    let run = LocalRun::ok(
        format!("names\n{}", lines.join("\n")),
        None,
        &["--all-results"],
    );

    let report = run.report();
    let ids: Vec<&str> = report.lines().collect();
    assert_eq!(ids.len(), names.len(), "{report}");
    let results = run.out.join("results");
    let mut expected = BTreeSet::new();
    for (i, ((name, mapped), id)) in names.iter().zip(&ids).enumerate() {
        let file = if mapped.is_empty() {
            (*id).to_owned()
        } else {
            format!("{mapped}.{id}")
        };
        let data = std::fs::read(results.join(&file))
            .unwrap_or_else(|e| panic!("result {name:?} as {file:?}: {e}"));
        assert_eq!(data, i.to_string().as_bytes(), "{file}");
        expected.insert(file);
    }
    // Every result directly in `results`, as a regular file: those, the payload, the output.
    let found = entries(&results);
    assert_eq!(found.len(), names.len() + 2, "{found:#?}");
    assert!(expected.is_subset(&found), "{expected:#?}\n{found:#?}");
    for entry in &found {
        let meta = std::fs::symlink_metadata(results.join(entry)).expect("metadata");
        assert!(meta.is_file(), "{entry} is not a regular file");
    }
    // Nothing written outside `out`.
    assert_eq!(
        entries(&run.out),
        ["output", "results"].map(String::from).into()
    );
    assert_eq!(
        entries(run.dir.path()),
        ["out", "payload.bin"].map(String::from).into()
    );
    let escaped: Vec<String> = (entries(Path::new("/tmp")).into_iter())
        .filter(|e| e.starts_with(&format!("n1-{t}")) || e.starts_with(&format!("n2-{t}")))
        .collect();
    assert!(escaped.is_empty(), "written outside: {escaped:?}");
}

#[test]
fn run_root_output_names_are_mapped_into_the_outputs_folder() {
    let t = token();
    let outputs = [
        ("output".to_owned(), "output".to_owned()),
        ("a/b".into(), "a%2Fb".into()),
        (
            format!("../../../../tmp/o-{t}"),
            format!("..%2F..%2F..%2F..%2Ftmp%2Fo-{t}"),
        ),
        ("..".into(), "%2E%2E".into()),
        (".".into(), "%2E".into()),
        ("%41".into(), "%2541".into()),
        ("héllo wörld".into(), "héllo%20wörld".into()),
    ];
    let mut args = vec!["--all-results"];
    for (name, _) in &outputs {
        args.extend(["--output-name", name.as_str()]);
    }
    let run = LocalRun::ok("write root", None, &args);
    let mut expected: BTreeSet<String> = outputs.iter().map(|(_, file)| file.clone()).collect();
    for file in &expected {
        let path = run.out.join(file);
        let meta = std::fs::symlink_metadata(&path).expect(file);
        assert!(meta.is_file(), "{file} is not a regular file");
        assert_eq!(std::fs::read(&path).expect(file), b"root", "{file}");
    }
    expected.insert("results".into());
    assert_eq!(entries(&run.out), expected);
    assert!(
        !Path::new(&format!("/tmp/o-{t}")).exists(),
        "written outside"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A task produces only its own expected outputs and the results it created
// ---------------------------------------------------------------------------------------------

/// Runs `payload` with `--all-results`; asserts that it succeeded with `refusals` refused
/// agent calls as its report.
fn run_refused(payload: &str, dep: Option<&str>, refusals: usize) -> LocalRun {
    let run = LocalRun::ok(payload, dep, &["--all-results"]);
    assert_all_refused(&run.report(), refusals);
    run
}

#[test]
fn run_notifying_a_data_dependency_is_refused_and_the_stored_dependency_keeps_its_bytes() {
    let run = run_refused("notify dep", Some("good"), 1);
    assert_eq!(run.result_named("d"), b"good");
}

#[test]
fn run_notifying_the_payload_or_an_unknown_id_is_refused() {
    let payload = format!("notify payload {}", uuid::Uuid::new_v4());
    let run = run_refused(&payload, None, 2);
    assert_eq!(run.result_named("payload"), payload.as_bytes());
}

/// Runs `siblings <how>`; asserts that the root's output is the honest sibling's, and that
/// the forger's attempt was refused (its report, in `A`).
fn run_siblings(how: &str) -> LocalRun {
    let run = LocalRun::ok(format!("siblings {how}"), None, &["--all-results"]);
    assert_eq!(run.report(), "honest", "{}", run.ran.all());
    assert_all_refused(&String::from_utf8_lossy(&run.result_named("A")), 1);
    run
}

#[test]
fn run_a_subtask_cannot_forge_its_siblings_output_by_notifying_it() {
    let run = run_siblings("notify");
    assert_eq!(run.result_named("B"), b"honest");
}

#[test]
fn run_a_result_created_with_data_cannot_be_notified() {
    let run = run_refused("notify created", None, 1);
    assert_eq!(run.result_named("created"), b"created");
}

#[test]
fn run_delegating_a_result_the_task_does_not_own_is_refused() {
    let payload = format!("submit payload dep {}", uuid::Uuid::new_v4());
    run_refused(&payload, Some("good"), 3).assert_tasks_run("1 tasks run (1 completed)");
}

#[test]
fn run_a_subtask_cannot_take_over_its_siblings_output_by_delegating_it() {
    let run = run_siblings("submit");
    run.assert_tasks_run("4 tasks run (4 completed)");
}

#[test]
fn run_own_outputs_and_created_metadata_can_still_be_notified() {
    // The report notifies the root's own output.
    let run = LocalRun::ok("notify metadata", None, &["--all-results"]);
    let report = run.report();
    assert!(report.starts_with("metadata: ok "), "{report}");
    assert_eq!(report.lines().count(), 1, "{report}");
    assert_eq!(run.result_named("metadata"), b"evil");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_notifications_of_results_the_task_does_not_own_never_reach_the_agent() {
    let harness = Harness::start("hostile").await;
    let (unknown, sibling) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let task = ServedTask::new(
        &harness,
        &format!("notify payload dep created {unknown} {sibling}"),
    );
    assert_all_refused(&task.report(&harness).await, 5);
    // Only the report itself reached the agent.
    assert_eq!(harness.agent.notified_ids(), [task.output()]);
    let calls = harness.agent.calls_to(methods::NOTIFY_RESULT_DATA);
    assert_eq!(calls.len(), 1, "{calls:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_delegations_of_results_the_task_does_not_own_never_reach_the_agent() {
    let harness = Harness::start("hostile").await;
    let sibling = uuid::Uuid::new_v4();
    let task = ServedTask::new(&harness, &format!("submit payload dep {sibling}"));
    assert_all_refused(&task.report(&harness).await, 3);
    let calls = harness.agent.calls_to(methods::SUBMIT_TASKS);
    assert!(calls.is_empty(), "{calls:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_own_outputs_and_created_metadata_are_still_notified() {
    let harness = Harness::start("hostile").await;
    // The report notifies the task's own output.
    let task = ServedTask::new(&harness, "notify metadata");
    let report = task.report(&harness).await;
    let created = harness.agent.created_results();
    let [metadata] = created.as_slice() else {
        panic!("one result created: {created:#?}");
    };
    let metadata = &metadata.metadata.result_id;
    assert_eq!(report, format!("metadata: ok {metadata}"));
    assert_eq!(
        harness.agent.notified_ids(),
        [metadata.as_str(), task.output()]
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Every write the guest issued has landed before the host checks, replies and commits
// ---------------------------------------------------------------------------------------------

/// Asserts that `file` holds `count` blocks of `kib` KiB, none of them with a zero byte (a
/// write that had not landed leaves the file short, or a hole of zeros). Checked at once,
/// the last blocks first: the last writes issued are the likeliest to be late.
fn assert_all_written(file: &Path, payload: &str, count: usize, kib: usize) {
    use std::os::unix::fs::FileExt as _;
    let opened = std::fs::File::open(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let size = opened.metadata().expect("metadata").len();
    let block = kib * 1024;
    assert_eq!(
        size,
        (count * block) as u64,
        "{payload}: {count} × {kib} KiB"
    );
    let mut data = vec![0; block];
    for i in (0..count).rev() {
        opened
            .read_exact_at(&mut data, (i * block) as u64)
            .expect("read a block");
        assert!(
            !data.contains(&0),
            "{payload}: a zero byte in block {i}: its write had not landed"
        );
    }
}

/// The payloads of `streams <count> <kib>`: notifying the output after the last write, and
/// before the first (the task then returns right after its last write).
fn streams_payloads(count: usize, kib: usize) -> [String; 2] {
    let payload = format!("streams {count} {kib}");
    [format!("{payload} notify-first"), payload]
}

/// Runs both `streams <count> <kib>` under `serve` and checks the file as the reply arrives.
async fn serve_streams(harness: &Harness, count: usize, kib: usize) {
    for payload in streams_payloads(count, kib) {
        let task = ServedTask::new(harness, &payload);
        task.run(harness).await;
        let output = task.folder.path().join(task.output());
        assert_all_written(&output, &payload, count, kib);
    }
}

/// Runs both `streams <count> <kib>` with `run` and checks the committed output.
fn run_streams(count: usize, kib: usize) {
    for payload in streams_payloads(count, kib) {
        let run = LocalRun::ok(&payload, None, &[]);
        assert_all_written(&run.out.join("output"), &payload, count, kib);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_replies_once_2048_open_streams_have_landed() {
    let harness = Harness::start("hostile").await;
    serve_streams(&harness, 2048, 64).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_replies_once_one_or_a_few_large_open_streams_have_landed() {
    let harness = Harness::start("hostile").await;
    serve_streams(&harness, 1, 64).await;
    serve_streams(&harness, 8, 1024).await;
}

#[test]
fn run_commits_once_2048_open_streams_have_landed() {
    run_streams(2048, 64);
}

#[test]
fn run_commits_once_one_or_a_few_large_open_streams_have_landed() {
    run_streams(1, 64);
    run_streams(8, 1024);
}

// ---------------------------------------------------------------------------------------------
// 5. The compile cache and the work folders belong to the host
// ---------------------------------------------------------------------------------------------

/// What the hostile guest writes with the cache tests' payload; `echo`, whose compiled
/// artifact is planted as hostile's cache entry, would write the payload itself.
const OWN_OUTPUT: &str = "mine";

/// A cache root where `run` has cached the hostile guest, and `echo` compiled beside it.
struct Cache {
    dir: tempfile::TempDir,
    root: PathBuf,
    /// `<root>/<engine folder>/<sha256 of hostile.wasm>.cwasm`.
    entry: PathBuf,
    /// `armonik-wasm compile` of another component (`echo`).
    foreign: PathBuf,
}

impl Cache {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("cache");
        let engine = Self::fill(&root, dir.path());
        let hostile = std::fs::read(guest("hostile")).expect("hostile.wasm");
        let entry = engine.join(format!("{}.cwasm", sha256_hex(&hostile)));
        assert!(
            entry.is_file(),
            "run cached hostile.wasm at {}",
            entry.display()
        );
        let foreign = dir.path().join("echo.cwasm");
        let ran = armonik_wasm(&["compile", path(&guest("echo")), "-o", path(&foreign)]);
        assert!(ran.success, "{}", ran.all());
        Self {
            dir,
            root,
            entry,
            foreign,
        }
    }

    /// Runs hostile with the cache at `root` (made if missing); returns its one engine
    /// folder.
    fn fill(root: &Path, dir: &Path) -> PathBuf {
        let ran = Self::run(root, dir);
        assert!(ran.success, "{}", ran.all());
        let engines = entries(root);
        assert_eq!(engines.len(), 1, "one engine folder: {engines:?}");
        root.join(engines.first().expect("engine folder"))
    }

    /// `armonik-wasm run hostile.wasm --payload-text "write mine" --cache-dir <root>`, its
    /// outputs in `<dir>/out`.
    fn run(root: &Path, dir: &Path) -> Ran {
        let out = dir.join("out");
        let payload = format!("write {OWN_OUTPUT}");
        armonik_wasm(&[
            "run",
            path(&guest("hostile")),
            "--payload-text",
            &payload,
            "--cache-dir",
            path(root),
            "--outputs",
            path(&out),
        ])
    }

    /// The engine folder.
    fn engine(&self) -> &Path {
        self.entry.parent().expect("engine folder")
    }

    /// Puts the foreign artifact at `at` as a file the host could have written: a regular
    /// file of this user, mode 0600.
    fn plant_at(&self, at: &Path) {
        let _ = std::fs::remove_file(at);
        std::fs::copy(&self.foreign, at).expect("plant the foreign artifact");
        set_mode(at, 0o600);
    }

    /// Runs hostile with the cache; asserts that it ran its own code (the planted entry was
    /// not loaded) and warned about the cache on stderr.
    fn assert_ignored(&self, case: &str) {
        let ran = Self::run(&self.root, self.dir.path());
        assert!(ran.success, "{case}: {}", ran.all());
        let output = std::fs::read_to_string(self.dir.path().join("out/output")).expect("output");
        assert_eq!(output, OWN_OUTPUT, "{case}: the planted entry was loaded");
        assert!(
            ran.stderr
                .lines()
                .any(|l| l.contains("WARN") && l.to_lowercase().contains("cache")),
            "{case}: no warning\n{}",
            ran.stderr
        );
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn cache_entry_owned_by_another_user_is_never_loaded() {
    let cache = Cache::new();
    cache.plant_at(&cache.entry);
    std::os::unix::fs::chown(&cache.entry, Some(4242), Some(4242)).expect("chown");
    cache.assert_ignored("owned by uid 4242");
}

#[test]
fn cache_entry_writable_by_group_or_others_is_never_loaded() {
    let cache = Cache::new();
    for writable in [0o666, 0o620, 0o602] {
        cache.plant_at(&cache.entry);
        set_mode(&cache.entry, writable);
        cache.assert_ignored(&format!("mode {writable:o}"));
    }
}

#[test]
fn cache_entry_that_is_a_symlink_is_never_loaded() {
    let cache = Cache::new();
    let target = cache.dir.path().join("target.cwasm");
    cache.plant_at(&target);
    std::fs::remove_file(&cache.entry).expect("remove the entry");
    std::os::unix::fs::symlink(&target, &cache.entry).expect("symlink");
    cache.assert_ignored("a symlink");
}

#[test]
fn cache_folders_writable_by_others_are_never_used() {
    let cache = Cache::new();
    for folder in [cache.engine().to_owned(), cache.root.clone()] {
        cache.plant_at(&cache.entry);
        set_mode(&folder, 0o777);
        cache.assert_ignored(&format!("{} mode 777", folder.display()));
        set_mode(&folder, 0o700);
    }
}

#[test]
fn fresh_cache_folders_are_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("new/cache");
    let engine = Cache::fill(&root, dir.path());
    for folder in [root, engine] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
}

/// Every directory below `dir` (links not followed).
fn directories_below(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                found.push(entry.path());
                pending.push(entry.path());
            }
        }
    }
    found
}

#[test]
fn run_work_folders_are_private() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("tmp");
    let mut child = Command::new(env!("CARGO_BIN_EXE_armonik-wasm"))
        .args(["run", path(&guest("hostile"))])
        .args(["--payload-text", "sleep-then-notify 3000", "--outputs"])
        .arg(dir.path().join("out"))
        .env("TMPDIR", &tmp)
        .env("ARMONIK_WASM_CACHE_DIR", cache_dir())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("armonik-wasm starts");
    // While the task runs: its work folder, with the task's data folder in it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut deepest = Vec::new();
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        let folders = directories_below(&tmp);
        for folder in &folders {
            let mode = std::fs::symlink_metadata(folder).map(|m| m.permissions().mode() & 0o777);
            if let Ok(mode) = mode {
                assert_eq!(mode, 0o700, "{} is not private", folder.display());
            }
        }
        if folders.len() > deepest.len() {
            deepest = folders;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().expect("exit");
    assert!(status.success(), "{status}");
    assert!(
        deepest.len() >= 2,
        "the run's work folder and a task folder under TMPDIR: {deepest:?}"
    );
}
