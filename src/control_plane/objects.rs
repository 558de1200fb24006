//! The local graph's records as ArmoniK API v3 objects (the `armonik` crate's types), and the
//! value of each field the List calls filter and sort on.

use std::time::SystemTime;

use armonik::{ResultStatus, SessionStatus as ApiSessionStatus, TaskOptionField, TaskStatus};
use prost::Message;
use prost_types::{Duration, Timestamp};
use tonic::Status;

use super::filters::Value;
use crate::local::client::TaskView;
use crate::local::records::{ResultRecord, ResultState, SessionRecord, SessionStatus, TaskState};
use crate::proto::v1::TaskOptions;

/// A message of one proto package as the wire-identical message of another (the host's own
/// protos and the `armonik` crate's).
fn rewire<A: Message, B: Message + Default>(message: &A) -> B {
    // Both are generated from the same ArmoniK.Api proto: decoding what one encodes
    // cannot fail; an empty message would only hide a bug in a test, never lose data.
    B::decode(message.encode_to_vec().as_slice()).unwrap_or_default()
}

/// The host's task options as the crate's.
pub fn options_out(options: &TaskOptions) -> armonik::TaskOptions {
    rewire::<_, armonik::api::v3::TaskOptions>(options).into()
}

/// The crate's task options as the host's. The crate reads an unset max duration as its
/// "infinite" one (315,576,000,000 s): it is unset again here, so that the options under it
/// (the request's, the session's) still apply.
pub fn options_in(options: armonik::TaskOptions) -> TaskOptions {
    let unset = armonik::TaskOptions::default().max_duration;
    let mut options: TaskOptions = rewire(&armonik::api::v3::TaskOptions::from(options));
    if options
        .max_duration
        .is_some_and(|d| d.seconds == unset.seconds && d.nanos == unset.nanos)
    {
        options.max_duration = None;
    }
    options
}

/// A time as a protobuf timestamp.
pub fn timestamp(time: SystemTime) -> Timestamp {
    time.into()
}

fn between(from: Option<SystemTime>, to: Option<SystemTime>) -> Option<Duration> {
    let elapsed = to?.duration_since(from?).ok()?;
    Duration::try_from(elapsed).ok()
}

/// A session status as ArmoniK's.
pub fn session_status(status: SessionStatus) -> ApiSessionStatus {
    match status {
        SessionStatus::Running => ApiSessionStatus::Running,
        SessionStatus::Paused => ApiSessionStatus::Paused,
        SessionStatus::Cancelled => ApiSessionStatus::Cancelled,
        SessionStatus::Closed => ApiSessionStatus::Closed,
        SessionStatus::Purged => ApiSessionStatus::Purged,
        SessionStatus::Deleted => ApiSessionStatus::Deleted,
    }
}

/// A session as ArmoniK's `SessionRaw`.
pub fn session_raw(session: &SessionRecord) -> armonik::sessions::Raw {
    let ended = session.cancelled_at.or(session.closed_at);
    armonik::sessions::Raw {
        session_id: session.id.clone(),
        status: session_status(session.status),
        client_submission: session.client_submission,
        worker_submission: session.worker_submission,
        partition_ids: session.partitions.clone(),
        default_task_options: options_out(&session.defaults),
        created_at: Some(timestamp(session.created_at)),
        cancelled_at: session.cancelled_at.map(timestamp),
        closed_at: session.closed_at.map(timestamp),
        purged_at: session.purged_at.map(timestamp),
        deleted_at: session.deleted_at.map(timestamp),
        duration: between(Some(session.created_at), ended),
    }
}

/// A result status as ArmoniK's.
pub fn result_status(state: ResultState) -> ResultStatus {
    match state {
        ResultState::Created => ResultStatus::Created,
        ResultState::Completed => ResultStatus::Completed,
        ResultState::Aborted => ResultStatus::Aborted,
        ResultState::Deleted => ResultStatus::Deleted,
    }
}

/// A result as ArmoniK's `ResultRaw`.
pub fn result_raw(id: &str, result: &ResultRecord) -> armonik::results::Raw {
    armonik::results::Raw {
        session_id: result.session_id.clone(),
        name: result.name.clone(),
        owner_task_id: result.owner_task_id.clone(),
        status: result_status(result.state),
        created_at: Some(timestamp(result.created_at)),
        completed_at: result.completed_at.map(timestamp),
        result_id: id.to_owned(),
        size: i64::try_from(result.size).unwrap_or(i64::MAX),
        created_by: result.created_by.clone(),
        opaque_id: Vec::new(),
        manual_deletion: false,
    }
}

/// A task's status as ArmoniK's (ArmoniK.Api `task_status.proto`).
pub fn task_status(view: &TaskView) -> TaskStatus {
    if view.paused {
        return TaskStatus::Paused;
    }
    state_status(view.task.state, view.waiting)
}

/// A task state as ArmoniK's status: a pending task is `Creating` while it `waiting`s for a
/// dependency, then `Submitted`.
pub fn state_status(state: TaskState, waiting: bool) -> TaskStatus {
    match state {
        TaskState::Pending if waiting => TaskStatus::Creating,
        TaskState::Pending => TaskStatus::Submitted,
        TaskState::Running => TaskStatus::Processing,
        TaskState::Completed => TaskStatus::Completed,
        TaskState::Error => TaskStatus::Error,
        TaskState::Timeout => TaskStatus::Timeout,
        TaskState::Retried => TaskStatus::Retried,
        TaskState::Cancelling => TaskStatus::Cancelling,
        TaskState::Cancelled => TaskStatus::Cancelled,
    }
}

/// The ids of the earlier attempts of a task (`<first id>###<n>` is the n-th retry).
fn retry_of_ids(view: &TaskView) -> Vec<String> {
    let first = &view.task.first_id;
    (0..view.task.retry)
        .map(|n| match n {
            0 => first.clone(),
            n => format!("{first}###{n}"),
        })
        .collect()
}

fn output(view: &TaskView) -> armonik::tasks::Output {
    match view.task.state {
        TaskState::Error | TaskState::Timeout | TaskState::Retried | TaskState::Cancelled => {
            armonik::tasks::Output::Error(view.task.message.clone().unwrap_or_default())
        }
        _ => armonik::tasks::Output::Success,
    }
}

/// A task as ArmoniK's `TaskDetailed`.
pub fn task_raw(view: &TaskView) -> armonik::tasks::Raw {
    let task = &view.task;
    armonik::tasks::Raw {
        task_id: task.id.clone(),
        session_id: task.session_id.clone(),
        owner_pod_id: String::new(),
        initial_task_id: task.first_id.clone(),
        parent_task_ids: parents(view),
        data_dependencies: task.data_dependencies.clone(),
        expected_output_ids: task.expected_outputs.clone(),
        retry_of_ids: retry_of_ids(view),
        status: task_status(view),
        status_message: task.message.clone().unwrap_or_default(),
        options: options_out(&task.options),
        created_at: Some(timestamp(task.created_at)),
        submitted_at: Some(timestamp(task.created_at)),
        received_at: task.started_at.map(timestamp),
        acquired_at: task.started_at.map(timestamp),
        fetched_at: task.started_at.map(timestamp),
        started_at: task.started_at.map(timestamp),
        processed_at: task
            .ended_at
            .filter(|_| task.started_at.is_some())
            .map(timestamp),
        ended_at: task.ended_at.map(timestamp),
        creation_to_end_duration: between(Some(task.created_at), task.ended_at),
        processing_to_end_duration: between(task.started_at, task.ended_at),
        received_to_end_duration: between(task.started_at, task.ended_at),
        pod_ttl: None,
        output: output(view),
        pod_hostname: String::new(),
        payload_id: task.payload_id.clone(),
        created_by: task.created_by.clone(),
    }
}

fn parents(view: &TaskView) -> Vec<String> {
    if view.task.created_by.is_empty() {
        Vec::new()
    } else {
        vec![view.task.created_by.clone()]
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A task (as [`task_raw`] gives it) as ArmoniK's `TaskSummary`.
pub fn task_summary(raw: armonik::tasks::Raw) -> armonik::tasks::Summary {
    armonik::tasks::Summary {
        count_parent_task_ids: count(raw.parent_task_ids.len()),
        count_data_dependencies: count(raw.data_dependencies.len()),
        count_expected_output_ids: count(raw.expected_output_ids.len()),
        count_retry_of_ids: count(raw.retry_of_ids.len()),
        task_id: raw.task_id,
        session_id: raw.session_id,
        owner_pod_id: raw.owner_pod_id,
        initial_task_id: raw.initial_task_id,
        status: raw.status,
        status_message: raw.status_message,
        options: raw.options,
        created_at: raw.created_at,
        submitted_at: raw.submitted_at,
        received_at: raw.received_at,
        acquired_at: raw.acquired_at,
        fetched_at: raw.fetched_at,
        started_at: raw.started_at,
        processed_at: raw.processed_at,
        ended_at: raw.ended_at,
        creation_to_end_duration: raw.creation_to_end_duration,
        processing_to_end_duration: raw.processing_to_end_duration,
        received_to_end_duration: raw.received_to_end_duration,
        pod_ttl: raw.pod_ttl,
        output: raw.output,
        pod_hostname: raw.pod_hostname,
        payload_id: raw.payload_id,
        created_by: raw.created_by,
    }
}

/// The value of a task option field.
fn option_value(options: &armonik::TaskOptions, field: &TaskOptionField) -> Result<Value, Status> {
    Ok(match field {
        TaskOptionField::MaxDuration => Value::Duration(Some(options.max_duration)),
        TaskOptionField::MaxRetries => Value::Num(options.max_retries.into()),
        TaskOptionField::Priority => Value::Num(options.priority.into()),
        TaskOptionField::PartitionId => Value::Str(options.partition_id.clone()),
        TaskOptionField::ApplicationName => Value::Str(options.application_name.clone()),
        TaskOptionField::ApplicationVersion => Value::Str(options.application_version.clone()),
        TaskOptionField::ApplicationNamespace => Value::Str(options.application_namespace.clone()),
        TaskOptionField::ApplicationService => Value::Str(options.application_service.clone()),
        TaskOptionField::ApplicationEngine => Value::Str(options.engine_type.clone()),
        TaskOptionField::Unspecified => return Err(unspecified()),
    })
}

fn unspecified() -> Status {
    Status::invalid_argument("a filter or sort names no field (unspecified)")
}

/// A generic option (`TaskOptions.options[key]`): empty when unset, as ArmoniK.Core compares.
fn generic_option(options: &armonik::TaskOptions, key: &str) -> Value {
    Value::Str(options.options.get(key).cloned().unwrap_or_default())
}

/// The value of a task field.
///
/// # Errors
/// INVALID_ARGUMENT for the unspecified field.
pub fn task_value(
    task: &armonik::tasks::Raw,
    field: &armonik::tasks::Field,
) -> Result<Value, Status> {
    use armonik::tasks::{Field, SummaryField as F};
    let date = |t: &Option<Timestamp>| Value::Date(*t);
    Ok(match field {
        Field::Summary(summary) => match summary {
            F::TaskId => Value::Str(task.task_id.clone()),
            F::SessionId => Value::Str(task.session_id.clone()),
            F::OwnerPodId => Value::Str(task.owner_pod_id.clone()),
            F::InitialTaskId => Value::Str(task.initial_task_id.clone()),
            F::Status => Value::Status(task.status.clone() as i32),
            F::CreatedAt => date(&task.created_at),
            F::SubmittedAt => date(&task.submitted_at),
            F::StartedAt => date(&task.started_at),
            F::EndedAt => date(&task.ended_at),
            F::CreationToEndDuration => Value::Duration(task.creation_to_end_duration),
            F::ProcessingToEndDuration => Value::Duration(task.processing_to_end_duration),
            F::ReceivedToEndDuration => Value::Duration(task.received_to_end_duration),
            F::PodTtl => date(&task.pod_ttl),
            F::PodHostname => Value::Str(task.pod_hostname.clone()),
            F::ReceivedAt => date(&task.received_at),
            F::AcquiredAt => date(&task.acquired_at),
            F::ProcessedAt => date(&task.processed_at),
            F::FetchedAt => date(&task.fetched_at),
            F::Error => Value::Str(match &task.output {
                armonik::tasks::Output::Error(message) => message.clone(),
                armonik::tasks::Output::Success => String::new(),
            }),
            F::PayloadId => Value::Str(task.payload_id.clone()),
            F::CreatedBy => Value::Str(task.created_by.clone()),
            F::Unspecified => return Err(unspecified()),
        },
        Field::Option(option) => option_value(&task.options, option)?,
        Field::OptionGeneric(key) => generic_option(&task.options, key),
    })
}

/// The value of a result field.
///
/// # Errors
/// INVALID_ARGUMENT for the unspecified field.
pub fn result_value(
    result: &armonik::results::Raw,
    field: &armonik::results::Field,
) -> Result<Value, Status> {
    use armonik::results::Field as F;
    Ok(match field {
        F::SessionId => Value::Str(result.session_id.clone()),
        F::Name => Value::Str(result.name.clone()),
        F::OwnerTaskId => Value::Str(result.owner_task_id.clone()),
        F::Status => Value::Status(result.status.clone() as i32),
        F::CreatedAt => Value::Date(result.created_at),
        F::CompletedAt => Value::Date(result.completed_at),
        F::ResultId => Value::Str(result.result_id.clone()),
        F::Size => Value::Num(result.size),
        F::CreatedBy => Value::Str(result.created_by.clone()),
        F::OpaqueId => Value::Str(String::new()),
        F::ManualDeletion => Value::Bool(result.manual_deletion),
        F::Unspecified => return Err(unspecified()),
    })
}

/// The value of a session field.
///
/// # Errors
/// INVALID_ARGUMENT for the unspecified field, or the options as a whole.
pub fn session_value(
    session: &armonik::sessions::Raw,
    field: &armonik::sessions::Field,
) -> Result<Value, Status> {
    use armonik::sessions::{Field, RawField as F};
    Ok(match field {
        Field::Raw(raw) => match raw {
            F::SessionId => Value::Str(session.session_id.clone()),
            F::Status => Value::Status(session.status.clone() as i32),
            F::ClientSubmission => Value::Bool(session.client_submission),
            F::WorkerSubmission => Value::Bool(session.worker_submission),
            F::PartitionIds => Value::Array(session.partition_ids.clone()),
            F::CreatedAt => Value::Date(session.created_at),
            F::CancelledAt => Value::Date(session.cancelled_at),
            F::ClosedAt => Value::Date(session.closed_at),
            F::PurgedAt => Value::Date(session.purged_at),
            F::DeletedAt => Value::Date(session.deleted_at),
            F::Duration => Value::Duration(session.duration),
            F::Options | F::Unspecified => {
                return Err(Status::invalid_argument(
                    "sessions filter or sort on the options as a whole, or on no field",
                ));
            }
        },
        Field::TaskOption(option) => option_value(&session.default_task_options, option)?,
        Field::TaskOptionGeneric(key) => generic_option(&session.default_task_options, key),
    })
}
