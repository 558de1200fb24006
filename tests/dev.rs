//! `armonik-wasm dev` driven by the official `armonik` crate's client: session life cycle,
//! List calls with filters, sorting and paging, the event stream, what the control plane
//! says about itself, and the services it does not serve. (The Python client's workflows are
//! in `tests/dev_python.rs`.)

mod common;

use std::collections::HashMap;
use std::time::Duration;

use armonik::tasks::{Field as TaskField, SummaryField, filter as task_filter};
use armonik::{
    FilterStatus, FilterStatusOperator, FilterString, FilterStringOperator, ResultStatus,
    SessionStatus, SortDirection, TaskOptions, TaskStatus, events, results, sessions, tasks,
};
use common::dev::Dev;
use common::{guest, request_error_status};
use futures::StreamExt;
use tonic::Code;

/// Session options as ArmoniK's validators want them, with the component selection.
fn options(library: Option<&str>) -> TaskOptions {
    let mut options = TaskOptions {
        max_duration: prost_types::Duration {
            seconds: 60,
            nanos: 0,
        },
        max_retries: 1,
        priority: 1,
        ..TaskOptions::default()
    };
    if let Some(library) = library {
        options.options = HashMap::from([
            ("ConventionVersion".to_owned(), "v1".to_owned()),
            ("LibraryBlobId".to_owned(), library.to_owned()),
        ]);
    }
    options
}

/// A session whose tasks run the echo guest: its id and the component's result id.
async fn echo_session(client: &mut armonik::Client) -> (String, String) {
    guest_session(client, "echo").await
}

/// A session whose tasks run the guest `name`: its id and the component's result id.
async fn guest_session(client: &mut armonik::Client, name: &str) -> (String, String) {
    let session = client
        .sessions()
        .create(Vec::<String>::new(), options(None))
        .await
        .expect("session");
    let library = create_metadata(client, &session, "component").await;
    let wasm = std::fs::read(guest(name)).expect("guest");
    client
        .results()
        .upload(
            session.clone(),
            library.clone(),
            futures::stream::iter(wasm.chunks(100_000).map(<[u8]>::to_vec).collect::<Vec<_>>()),
        )
        .await
        .expect("upload");
    (session, library)
}

/// Creates a result without data; returns its id.
async fn create_metadata(client: &mut armonik::Client, session: &str, name: &str) -> String {
    let created = client
        .results()
        .create_metadata(session, [name.into()])
        .await
        .expect("result created");
    created[0].result_id.clone()
}

/// Creates a result holding `data`; returns its id.
async fn create(client: &mut armonik::Client, session: &str, name: &str, data: &[u8]) -> String {
    let created = client
        .results()
        .create(session, [(name, data.to_vec()).into()])
        .await
        .expect("result created");
    created[0].result_id.clone()
}

/// Submits echo tasks of `payloads` in one call; returns (task id, output id) per task.
async fn submit_echoes(
    client: &mut armonik::Client,
    session: &str,
    library: &str,
    payloads: &[&str],
) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut outputs = Vec::new();
    for (n, payload) in payloads.iter().enumerate() {
        let payload_id = create(client, session, &format!("payload-{n}"), payload.as_bytes()).await;
        let output_id = create_metadata(client, session, &format!("output-{n}")).await;
        items.push(tasks::submit::RequestItem {
            expected_output_keys: vec![output_id.clone()],
            data_dependencies: vec![library.to_owned()],
            payload_id,
            task_options: Some(options(Some(library))),
        });
        outputs.push(output_id);
    }
    let submitted = client
        .tasks()
        .submit(session, None, items)
        .await
        .expect("submit");
    submitted
        .into_iter()
        .map(|t| t.task_id)
        .zip(outputs)
        .collect()
}

/// Waits until every result of `ids` is completed, through the event stream (as ArmoniK's
/// clients do): what is already completed is replayed first.
async fn wait_completed(client: &mut armonik::Client, session: &str, ids: &[String]) {
    let mut waiting: Vec<String> = ids.to_vec();
    let stream = client
        .events()
        .subscribe(
            session,
            Vec::<Vec<task_filter::Field>>::new(),
            Vec::<Vec<results::filter::Field>>::new(),
            [
                events::EventsEnum::NewResult,
                events::EventsEnum::ResultStatusUpdate,
            ],
        )
        .await
        .expect("subscribe");
    let mut stream = std::pin::pin!(stream);
    let wait = async {
        while !waiting.is_empty() {
            let event = stream
                .next()
                .await
                .expect("the stream goes on")
                .expect("event");
            let (id, status) = match event.update {
                events::Update::NewResult(r) => (r.result_id, r.status),
                events::Update::ResultStatusUpdate(r) => (r.result_id, r.status),
                other => panic!("an event that was not asked for: {other:?}"),
            };
            assert_ne!(status, ResultStatus::Aborted, "result {id} aborted");
            if status == ResultStatus::Completed {
                waiting.retain(|w| *w != id);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .expect("the results complete in time");
}

fn status_is(status: TaskStatus) -> task_filter::Field {
    task_filter::Field {
        field: TaskField::Summary(SummaryField::Status),
        condition: task_filter::Condition::Status(FilterStatus {
            value: status,
            operator: FilterStatusOperator::Equal,
        }),
    }
}

fn session_is(session: &str) -> task_filter::Field {
    task_filter::Field {
        field: TaskField::Summary(SummaryField::SessionId),
        condition: task_filter::Condition::String(FilterString {
            value: session.to_owned(),
            operator: FilterStringOperator::Equal,
        }),
    }
}

#[tokio::test]
async fn tasks_and_results_are_listed_filtered_sorted_and_paged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = Dev::start(&dir.path().join("dev"));
    let mut client = dev.client().await;
    let (session, library) = echo_session(&mut client).await;
    let (other, other_library) = echo_session(&mut client).await;
    let submitted =
        submit_echoes(&mut client, &session, &library, &["a", "b", "c", "d", "e"]).await;
    submit_echoes(&mut client, &other, &other_library, &["x"]).await;
    let outputs: Vec<String> = submitted.iter().map(|(_, o)| o.clone()).collect();
    wait_completed(&mut client, &session, &outputs).await;

    // This session's completed tasks, newest first, two per page.
    let sort = tasks::Sort {
        field: TaskField::Summary(SummaryField::CreatedAt),
        direction: SortDirection::Desc,
    };
    let filter = vec![vec![session_is(&session), status_is(TaskStatus::Completed)]];
    let page0 = client
        .tasks()
        .list(filter.clone(), sort.clone(), false, 0, 2)
        .await
        .expect("list");
    assert_eq!(page0.total, 5);
    let ids: Vec<&str> = page0.tasks.iter().map(|t| t.task_id.as_str()).collect();
    assert_eq!(ids, [submitted[4].0.as_str(), submitted[3].0.as_str()]);
    let page2 = client
        .tasks()
        .list(filter.clone(), sort, false, 2, 2)
        .await
        .expect("list");
    assert_eq!(page2.tasks.len(), 1);
    assert_eq!(page2.tasks[0].task_id, submitted[0].0);

    // An OR of two task ids, detailed, with their outputs.
    let either = vec![
        vec![task_id_is(&submitted[1].0)],
        vec![task_id_is(&submitted[2].0)],
    ];
    let detailed = client
        .tasks()
        .list_detailed(either, tasks::Sort::default(), true, 0, 10)
        .await
        .expect("list detailed");
    assert_eq!(detailed.total, 2);
    for task in &detailed.tasks {
        assert_eq!(task.status, TaskStatus::Completed);
        assert_eq!(task.session_id, session);
        assert_eq!(task.data_dependencies, std::slice::from_ref(&library));
        assert!(task.started_at.is_some() && task.ended_at.is_some());
        assert_eq!(
            task.options
                .options
                .get("LibraryBlobId")
                .map(String::as_str),
            Some(library.as_str())
        );
    }

    // A generic task option, as ArmoniK's filters name it.
    let by_option = vec![vec![task_filter::Field {
        field: TaskField::OptionGeneric("LibraryBlobId".into()),
        condition: task_filter::Condition::String(FilterString {
            value: other_library.clone(),
            operator: FilterStringOperator::Equal,
        }),
    }]];
    let found = client
        .tasks()
        .list(by_option, tasks::Sort::default(), false, 0, 10)
        .await
        .expect("list by option");
    assert_eq!(found.total, 1);
    assert_eq!(found.tasks[0].session_id, other);

    let counts = client
        .tasks()
        .count_status(task_filter::Or {
            or: vec![task_filter::And {
                and: vec![session_is(&session)],
            }],
        })
        .await
        .expect("count");
    assert_eq!(
        counts
            .iter()
            .map(|c| (c.status.clone(), c.count))
            .collect::<Vec<_>>(),
        [(TaskStatus::Completed, 5)]
    );

    // Results: by name prefix in the session, and who produced them.
    let named = vec![vec![
        results::filter::Field {
            field: results::Field::SessionId,
            condition: results::filter::Condition::String(FilterString {
                value: session.clone(),
                operator: FilterStringOperator::Equal,
            }),
        },
        results::filter::Field {
            field: results::Field::Name,
            condition: results::filter::Condition::String(FilterString {
                value: "output-".into(),
                operator: FilterStringOperator::StartsWith,
            }),
        },
    ]];
    let listed = client
        .results()
        .list(
            named,
            results::Sort {
                field: results::Field::Name,
                direction: SortDirection::Asc,
            },
            0,
            100,
        )
        .await
        .expect("list results");
    assert_eq!(listed.total, 5);
    let names: Vec<&str> = listed.results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["output-0", "output-1", "output-2", "output-3", "output-4"]
    );
    for result in &listed.results {
        assert_eq!(result.status, ResultStatus::Completed);
        assert_eq!(result.size, 1);
    }
    let owners = client
        .results()
        .get_owner_task_id(session.clone(), [outputs[0].clone()])
        .await
        .expect("owners");
    assert_eq!(owners.get(&outputs[0]), Some(&submitted[0].0));
    let result_ids = client
        .tasks()
        .get_result_ids([submitted[3].0.clone()])
        .await
        .expect("result ids");
    assert_eq!(
        result_ids.get(&submitted[3].0),
        Some(&vec![outputs[3].clone()])
    );
}

fn task_id_is(id: &str) -> task_filter::Field {
    task_filter::Field {
        field: TaskField::Summary(SummaryField::TaskId),
        condition: task_filter::Condition::String(FilterString {
            value: id.to_owned(),
            operator: FilterStringOperator::Equal,
        }),
    }
}

#[tokio::test]
async fn a_session_lives_pauses_resumes_closes_purges_and_is_deleted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = Dev::start(&dir.path().join("dev"));
    let mut client = dev.client().await;
    let (session, library) = echo_session(&mut client).await;
    let raw = client.sessions().get(session.clone()).await.expect("get");
    assert_eq!(raw.status, SessionStatus::Running);
    assert_eq!(raw.partition_ids, ["default"]);
    assert_eq!(raw.default_task_options.max_retries, 1);

    // Paused: a task is accepted but does not start.
    client
        .sessions()
        .pause(session.clone())
        .await
        .expect("pause");
    let submitted = submit_echoes(&mut client, &session, &library, &["paused"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let task = client
        .tasks()
        .get(submitted[0].0.clone())
        .await
        .expect("task");
    assert_eq!(task.status, TaskStatus::Paused);
    client
        .sessions()
        .resume(session.clone())
        .await
        .expect("resume");
    wait_completed(&mut client, &session, &[submitted[0].1.clone()]).await;

    let closed = client
        .sessions()
        .close(session.clone())
        .await
        .expect("close");
    assert_eq!(closed.status, SessionStatus::Closed);
    assert!(closed.closed_at.is_some());
    let refused = client
        .tasks()
        .submit(session.clone(), None, Vec::new())
        .await
        .expect_err("a closed session takes no task");
    assert_eq!(
        request_error_status(refused).code(),
        Code::FailedPrecondition
    );

    let purged = client
        .sessions()
        .purge(session.clone())
        .await
        .expect("purge");
    assert_eq!(purged.status, SessionStatus::Purged);
    // Its data is gone for good: deleted, never read back as empty.
    let output = &submitted[0].1;
    let result = client.results().get(output.clone()).await.expect("result");
    assert_eq!(result.status, ResultStatus::Deleted);
    let gone = client
        .results()
        .download(session.clone(), output.clone())
        .await
        .map(|_| ())
        .expect_err("purged data");
    assert_eq!(request_error_status(gone).code(), Code::NotFound);
    let deleted = client
        .sessions()
        .delete(session.clone())
        .await
        .expect("delete");
    assert_eq!(deleted.status, SessionStatus::Deleted);
    let gone = client
        .sessions()
        .get(session.clone())
        .await
        .expect_err("a deleted session is gone");
    assert_eq!(request_error_status(gone).code(), Code::NotFound);
    for (task, output) in &submitted {
        let gone = client
            .tasks()
            .get(task.clone())
            .await
            .expect_err("task gone");
        assert_eq!(request_error_status(gone).code(), Code::NotFound);
        let gone = client
            .results()
            .get(output.clone())
            .await
            .expect_err("result gone");
        assert_eq!(request_error_status(gone).code(), Code::NotFound);
    }
    let listed = client
        .sessions()
        .list(
            Vec::<Vec<sessions::filter::Field>>::new(),
            sessions::Sort::default(),
            true,
            0,
            10,
        )
        .await
        .expect("list sessions");
    assert!(listed.sessions.iter().all(|s| s.session_id != session));
}

#[tokio::test]
async fn bad_sessions_and_ids_get_clear_statuses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = Dev::start_with(&dir.path().join("dev"), &["--partition", "gpu"]);
    let mut client = dev.client().await;
    let mut no_priority = options(None);
    no_priority.priority = 0;
    let cases = [
        (no_priority, vec!["default"], "priority"),
        (options(None), vec!["nowhere"], "partition `nowhere`"),
    ];
    for (options, partitions, says) in cases {
        let refused = client
            .sessions()
            .create(partitions, options)
            .await
            .expect_err("refused");
        let status = request_error_status(refused);
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(says), "{status:?}");
    }
    let session = client
        .sessions()
        .create(["gpu"], options(None))
        .await
        .expect("a configured partition");
    let unknown = client
        .results()
        .create_metadata("no-such-session", ["x".into()])
        .await
        .expect_err("unknown session");
    assert_eq!(request_error_status(unknown).code(), Code::NotFound);
    let unknown = client
        .results()
        .download(session.clone(), "no-such-result")
        .await
        .map(|_| ())
        .expect_err("unknown result");
    assert_eq!(request_error_status(unknown).code(), Code::NotFound);
    let unknown = client
        .tasks()
        .submit(
            session.clone(),
            None,
            [tasks::submit::RequestItem {
                payload_id: "no-such-payload".into(),
                ..Default::default()
            }],
        )
        .await
        .expect_err("unknown payload");
    assert_eq!(request_error_status(unknown).code(), Code::InvalidArgument);
    // A task that would wait for itself: its output is its own dependency.
    let input = create(&mut client, &session, "input", b"x").await;
    let looped = create_metadata(&mut client, &session, "looped").await;
    let refused = client
        .tasks()
        .submit(
            session.clone(),
            None,
            [tasks::submit::RequestItem {
                payload_id: input,
                data_dependencies: vec![looped.clone()],
                expected_output_keys: vec![looped],
                ..Default::default()
            }],
        )
        .await
        .expect_err("would wait for itself");
    let status = request_error_status(refused);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("wait for itself"), "{status:?}");
    // A filter that does not fit its field, refused even when nothing would be tested.
    let misfit = vec![vec![task_filter::Field {
        field: TaskField::Summary(SummaryField::CreatedAt),
        condition: task_filter::Condition::String(FilterString {
            value: "yesterday".into(),
            operator: FilterStringOperator::Equal,
        }),
    }]];
    let refused = client
        .tasks()
        .list(misfit, tasks::Sort::default(), false, 0, 10)
        .await
        .expect_err("a string condition on a date");
    let status = request_error_status(refused);
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("a string filter condition does not apply to a date field"),
        "{status:?}"
    );
    // Data for a completed result never changes.
    let done = create(&mut client, &session, "done", b"data").await;
    let refused = client
        .results()
        .upload(
            session.clone(),
            done,
            futures::stream::iter([b"other".to_vec()]),
        )
        .await
        .expect_err("completed");
    assert_eq!(
        request_error_status(refused).code(),
        Code::FailedPrecondition
    );
}

#[tokio::test]
async fn the_event_stream_replays_then_follows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = Dev::start(&dir.path().join("dev"));
    let mut client = dev.client().await;
    let (session, library) = echo_session(&mut client).await;

    // Subscribed first: every kind of event of one task, in ArmoniK's order.
    let stream = client
        .events()
        .subscribe(
            session.clone(),
            Vec::<Vec<task_filter::Field>>::new(),
            Vec::<Vec<results::filter::Field>>::new(),
            Vec::<events::EventsEnum>::new(),
        )
        .await
        .expect("subscribe");
    let mut stream = std::pin::pin!(stream);
    let submitted = submit_echoes(&mut client, &session, &library, &["hello"]).await;
    let (task, output) = submitted[0].clone();
    let mut seen = Vec::new();
    let follow = async {
        loop {
            let event = stream.next().await.expect("more").expect("event");
            let done = matches!(&event.update,
                events::Update::TaskStatusUpdate(t) if t.task_id == task && t.status == TaskStatus::Completed);
            seen.push(event.update);
            if done {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), follow)
        .await
        .expect("the task completes in time");
    let has = |wanted: &dyn Fn(&events::Update) -> bool| seen.iter().any(wanted);
    assert!(has(
        &|u| matches!(u, events::Update::NewTask(t) if t.task_id == task)
    ));
    assert!(has(
        &|u| matches!(u, events::Update::NewResult(r) if r.result_id == output)
    ));
    assert!(has(&|u| matches!(u,
        events::Update::ResultOwnerUpdate(r) if r.result_id == output && r.current_owner_id == task)));
    assert!(has(&|u| matches!(u,
        events::Update::TaskStatusUpdate(t) if t.task_id == task && t.status == TaskStatus::Processing)));
    assert!(has(&|u| matches!(u,
        events::Update::ResultStatusUpdate(r) if r.result_id == output && r.status == ResultStatus::Completed)));

    // Subscribed after: the completed result is replayed, filtered to the one asked for.
    let only_output = vec![vec![results::filter::Field {
        field: results::Field::ResultId,
        condition: results::filter::Condition::String(FilterString {
            value: output.clone(),
            operator: FilterStringOperator::Equal,
        }),
    }]];
    let stream = client
        .events()
        .subscribe(
            session.clone(),
            Vec::<Vec<task_filter::Field>>::new(),
            only_output,
            [events::EventsEnum::NewResult],
        )
        .await
        .expect("subscribe");
    let mut stream = std::pin::pin!(stream);
    let replayed = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("replayed at once")
        .expect("an event")
        .expect("event");
    match replayed.update {
        events::Update::NewResult(r) => {
            assert_eq!(r.result_id, output);
            assert_eq!(r.status, ResultStatus::Completed);
            assert_eq!(r.owner_id, task);
        }
        other => panic!("expected the output's NewResult, got {other:?}"),
    }
    // Nothing else matches: the stream stays open and quiet.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_control_plane_describes_itself_and_refuses_what_it_does_not_serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let dev = Dev::start_with(&dir.path().join("dev"), &["--partition", "gpu"]);
    let mut client = dev.client().await;
    let health = client.health_checks().check().await.expect("health");
    assert!(!health.is_empty());
    let versions = client.versions().list().await.expect("versions");
    assert!(versions.core.starts_with("armonik-wasm"), "{versions:?}");
    let partitions = client
        .partitions()
        .list(
            Vec::<Vec<armonik::partitions::filter::Field>>::new(),
            armonik::partitions::Sort::default(),
            0,
            10,
        )
        .await
        .expect("partitions");
    let ids: Vec<&str> = partitions
        .partitions
        .iter()
        .map(|p| p.partition_id.as_str())
        .collect();
    assert_eq!(ids, ["default", "gpu"]);
    let unknown = client
        .partitions()
        .get("cpu")
        .await
        .expect_err("no such partition");
    assert_eq!(request_error_status(unknown).code(), Code::NotFound);

    // An application named in a task's options is listed.
    let (session, library) = echo_session(&mut client).await;
    let mut named = options(Some(&library));
    named.application_name = "pricer".into();
    named.application_version = "1.2.0".into();
    let payload = create(&mut client, &session, "p", b"x").await;
    client
        .tasks()
        .submit(
            session.clone(),
            None,
            [tasks::submit::RequestItem {
                payload_id: payload,
                data_dependencies: vec![library.clone()],
                task_options: Some(named),
                ..Default::default()
            }],
        )
        .await
        .expect("submit");
    let applications = client
        .applications()
        .list(
            Vec::<Vec<armonik::applications::filter::Field>>::new(),
            armonik::applications::Sort::default(),
            0,
            10,
        )
        .await
        .expect("applications");
    assert_eq!(applications.applications.len(), 1);
    assert_eq!(applications.applications[0].name, "pricer");
    assert_eq!(applications.applications[0].version, "1.2.0");

    let import = client
        .results()
        .import(session.clone(), [("some-id", b"opaque".to_vec())])
        .await
        .expect_err("no object storage");
    let status = request_error_status(import);
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(status.message().contains("ImportResultsData"), "{status:?}");
    // The legacy Submitter service (deprecated in the client too) is not served.
    #[allow(deprecated)]
    let legacy = client
        .submitter()
        .get_service_configuration()
        .await
        .expect_err("not served");
    let status = request_error_status(legacy);
    assert_eq!(status.code(), Code::Unimplemented);
    assert!(
        status
            .message()
            .contains("submitter.Submitter/GetServiceConfiguration"),
        "{status:?}"
    );
}

#[tokio::test]
async fn dev_stops_at_once_on_sigterm_with_an_event_stream_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut dev = Dev::start(&dir.path().join("dev"));
    let mut client = dev.client().await;
    let (session, _) = echo_session(&mut client).await;
    let stream = client
        .events()
        .subscribe(
            session,
            Vec::<Vec<task_filter::Field>>::new(),
            Vec::<Vec<results::filter::Field>>::new(),
            Vec::<events::EventsEnum>::new(),
        )
        .await
        .expect("subscribe");
    let mut stream = std::pin::pin!(stream);
    dev.terminate();
    // The stream ends with the server, instead of holding its shutdown.
    let drained = async { while stream.next().await.is_some() {} };
    tokio::time::timeout(Duration::from_secs(4), drained)
        .await
        .expect("the event stream ends when dev stops");
    let status = dev
        .wait_exit(Duration::from_secs(4))
        .expect("dev exits in time");
    assert!(status.success(), "{status:?}");
}

/// FNV-1a 64, as the hostile guest's `taint` survey writes it.
fn fnv1a(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// The embedded agent reuses attempts' folders and the files of their input copies
/// (`src/local/task_folders.rs`). One task after another (parallelism 1), each surveys its
/// folder, then spoils it, one task in two with plain files only (its inputs overwritten,
/// files left: a folder keeps such files in place for its next attempt), the other also with
/// a second name of its payload, a directory, and a write it never finishes. Every task must
/// still see exactly its own inputs with their stored bytes, and the stored results never
/// change.
#[tokio::test(flavor = "multi_thread")]
async fn reused_task_folders_show_each_task_only_its_own_inputs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dev = Dev::start_with(&dir.path().join("data"), &["--parallelism", "1"]);
    let mut client = dev.client().await;
    let (session, library) = guest_session(&mut client, "hostile").await;
    let wasm = std::fs::read(guest("hostile")).expect("guest");
    let payloads = [
        (
            create(&mut client, &session, "payload", b"taint").await,
            b"taint".as_slice(),
        ),
        (
            create(&mut client, &session, "files", b"taint-files").await,
            b"taint-files".as_slice(),
        ),
    ];
    let shared_bytes = b"shared".repeat(1000);
    let shared = create(&mut client, &session, "shared", &shared_bytes).await;

    let mut items = Vec::new();
    let mut expected = Vec::new();
    for n in 0..12 {
        // Lengths differ from task to task, so a reused file too long or too short shows.
        let own_bytes = format!("own-{n}-").repeat(1 + n * 300).into_bytes();
        let own = create(&mut client, &session, &format!("own-{n}"), &own_bytes).await;
        let output = create_metadata(&mut client, &session, &format!("output-{n}")).await;
        let (payload, mode) = &payloads[n % 2];
        let mut survey: Vec<String> = [
            (&library, wasm.as_slice()),
            (payload, *mode),
            (&shared, shared_bytes.as_slice()),
            (&own, own_bytes.as_slice()),
        ]
        .iter()
        .map(|(id, bytes)| format!("{id} {} {}", bytes.len(), fnv1a(bytes)))
        .collect();
        survey.sort();
        items.push(tasks::submit::RequestItem {
            expected_output_keys: vec![output.clone()],
            data_dependencies: vec![library.clone(), shared.clone(), own],
            payload_id: payload.clone(),
            task_options: Some(options(Some(&library))),
        });
        expected.push((output, survey.join("\n")));
    }
    client
        .tasks()
        .submit(&session, None, items)
        .await
        .expect("submit");
    let outputs: Vec<String> = expected.iter().map(|(id, _)| id.clone()).collect();
    wait_completed(&mut client, &session, &outputs).await;

    for (n, (output, survey)) in expected.iter().enumerate() {
        let seen = String::from_utf8(download(&mut client, &session, output).await).expect("UTF-8");
        assert_eq!(&seen, survey, "task {n} saw another folder than its own");
    }
}

/// The bytes of result `id`.
async fn download(client: &mut armonik::Client, session: &str, id: &str) -> Vec<u8> {
    let chunks: Vec<Vec<u8>> = client
        .results()
        .download(session, id)
        .await
        .expect("download")
        .map(|chunk| chunk.expect("chunk"))
        .collect()
        .await;
    chunks.concat()
}

/// A `dev --data-dir` stopped while a task runs leaves that task's folder; task folders are
/// named by a counter that starts again: the first task of the next `dev` on the same
/// folder must see only its own inputs, not the stopped task's.
#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_dev_shows_no_task_the_folder_of_a_stopped_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    {
        let mut dev = Dev::start_with(&data, &["--parallelism", "1"]);
        let mut client = dev.client().await;
        let (session, library) = guest_session(&mut client, "hostile").await;
        let payload = create(&mut client, &session, "payload", b"sleep 60000").await;
        let output = create_metadata(&mut client, &session, "output").await;
        submit_one(&mut client, &session, &library, payload, output).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        dev.terminate();
        dev.wait_exit(Duration::from_secs(20));
    }
    let dev = Dev::start_with(&data, &["--parallelism", "1"]);
    let mut client = dev.client().await;
    let (session, library) = guest_session(&mut client, "hostile").await;
    let wasm = std::fs::read(guest("hostile")).expect("guest");
    let payload = create(&mut client, &session, "payload", b"taint").await;
    let output = create_metadata(&mut client, &session, "output").await;
    let mut survey: Vec<String> = [(&library, wasm.as_slice()), (&payload, b"taint".as_slice())]
        .iter()
        .map(|(id, bytes)| format!("{id} {} {}", bytes.len(), fnv1a(bytes)))
        .collect();
    survey.sort();
    submit_one(&mut client, &session, &library, payload, output.clone()).await;
    wait_completed(&mut client, &session, std::slice::from_ref(&output)).await;
    let seen = String::from_utf8(download(&mut client, &session, &output).await).expect("UTF-8");
    assert_eq!(seen, survey.join("\n"));
}

/// Submits one task of the session's component: `payload` in, `output` out.
async fn submit_one(
    client: &mut armonik::Client,
    session: &str,
    library: &str,
    payload: String,
    output: String,
) {
    client
        .tasks()
        .submit(
            session,
            None,
            vec![tasks::submit::RequestItem {
                expected_output_keys: vec![output],
                data_dependencies: vec![library.to_owned()],
                payload_id: payload,
                task_options: Some(options(Some(library))),
            }],
        )
        .await
        .expect("submit");
}

/// A `dev --data-dir` keeps its files, emptied, in `<data-dir>/empty-files` when it stops, and
/// the next `dev` on that folder takes its files from there: the same inodes serve again, and
/// the task still sees only its own inputs.
#[tokio::test(flavor = "multi_thread")]
async fn a_dev_on_a_kept_data_dir_leaves_its_files_empty_for_the_next() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let empty_files = || {
        let mut inodes: Vec<u64> = std::fs::read_dir(data.join("empty-files"))
            .expect("the empty files")
            .map(|entry| {
                let meta = entry.expect("entry").metadata().expect("stat");
                assert!(meta.is_file() && meta.len() == 0, "{meta:?}");
                meta.ino()
            })
            .collect();
        inodes.sort_unstable();
        inodes
    };
    let echo_once = |text: &'static [u8]| {
        let data = data.clone();
        async move {
            let mut dev = Dev::start_with(&data, &["--parallelism", "1"]);
            let mut client = dev.client().await;
            let (session, library) = guest_session(&mut client, "echo").await;
            let payload = create(&mut client, &session, "payload", text).await;
            let output = create_metadata(&mut client, &session, "output").await;
            submit_one(&mut client, &session, &library, payload, output.clone()).await;
            wait_completed(&mut client, &session, std::slice::from_ref(&output)).await;
            assert_eq!(download(&mut client, &session, &output).await, text);
            dev.terminate();
            let status = dev.wait_exit(Duration::from_secs(20)).expect("exits");
            assert!(status.success(), "{status}");
        }
    };
    echo_once(b"first").await;
    let first = empty_files();
    assert!(!first.is_empty(), "the task's files are kept");
    let spares = std::fs::read_dir(data.join("spares"))
        .expect("spares")
        .count();
    assert_eq!(spares, 0, "no spare is left holding anything");
    echo_once(b"second").await;
    let second = empty_files();
    assert_eq!(
        second, first,
        "the first dev's files served the second, no new one"
    );
}
