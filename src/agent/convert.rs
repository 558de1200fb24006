//! Conversions between the WIT types the guest sees and the ArmoniK protobuf messages.

use std::time::Duration;

use crate::bindings::types as wit;
use crate::proto::v1 as pb;
use crate::proto::v1::agent as pb_agent;
use crate::proto::v1::result_status::ResultStatus;

/// ArmoniK task options as the guest sees them; options are sorted by key so a guest sees
/// the same order every time.
pub fn task_options_to_wit(options: &pb::TaskOptions) -> wit::TaskOptions {
    let mut pairs: Vec<(String, String)> = options
        .options
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    pairs.sort_unstable();
    wit::TaskOptions {
        options: pairs,
        max_duration_ms: options.max_duration.as_ref().map(|d| {
            duration_from_proto(d)
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX)
        }),
        max_retries: options.max_retries,
        priority: options.priority,
        partition_id: options.partition_id.clone(),
        application_name: options.application_name.clone(),
        application_version: options.application_version.clone(),
        application_namespace: options.application_namespace.clone(),
        application_service: options.application_service.clone(),
        engine_type: options.engine_type.clone(),
    }
}

/// Guest task options as ArmoniK's message.
pub fn task_options_from_wit(options: wit::TaskOptions) -> pb::TaskOptions {
    pb::TaskOptions {
        options: options.options.into_iter().collect(),
        max_duration: options.max_duration_ms.map(|ms| {
            let d = Duration::from_millis(ms);
            prost_types::Duration {
                seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
            }
        }),
        max_retries: options.max_retries,
        priority: options.priority,
        partition_id: options.partition_id,
        application_name: options.application_name,
        application_version: options.application_version,
        application_namespace: options.application_namespace,
        application_service: options.application_service,
        engine_type: options.engine_type,
    }
}

/// A protobuf duration as a std one; negative durations count as zero.
pub fn duration_from_proto(duration: &prost_types::Duration) -> Duration {
    let seconds = u64::try_from(duration.seconds).unwrap_or(0);
    let nanos = u32::try_from(duration.nanos).unwrap_or(0);
    Duration::from_secs(seconds) + Duration::from_nanos(u64::from(nanos))
}

/// Result metadata from the agent, as the guest sees it.
pub fn result_metadata_to_wit(metadata: pb_agent::ResultMetaData) -> wit::ResultMetadata {
    let status = match ResultStatus::try_from(metadata.status) {
        Ok(ResultStatus::Created) => wit::ResultStatus::Created,
        Ok(ResultStatus::Completed) => wit::ResultStatus::Completed,
        Ok(ResultStatus::Aborted) => wit::ResultStatus::Aborted,
        Ok(ResultStatus::Deleted) => wit::ResultStatus::Deleted,
        Ok(ResultStatus::Notfound) => wit::ResultStatus::NotFound,
        Ok(ResultStatus::Unspecified) | Err(_) => wit::ResultStatus::Unspecified,
    };
    let created_at_unix_ms = metadata.created_at.map_or(0, |t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos) / 1_000_000)
    });
    wit::ResultMetadata {
        session_id: metadata.session_id,
        result_id: metadata.result_id,
        name: metadata.name,
        status,
        created_at_unix_ms,
    }
}

/// A guest task definition as a `SubmitTasks` creation.
pub fn task_creation_from_wit(
    task: wit::TaskDefinition,
) -> pb_agent::submit_tasks_request::TaskCreation {
    pb_agent::submit_tasks_request::TaskCreation {
        expected_output_keys: task.expected_output_ids,
        data_dependencies: task.data_dependencies,
        payload_id: task.payload_id,
        task_options: task.options.map(task_options_from_wit),
    }
}

/// A task the agent accepted through `SubmitTasks`.
pub fn submitted_task_to_wit(
    info: pb_agent::submit_tasks_response::TaskInfo,
) -> wit::SubmittedTask {
    wit::SubmittedTask {
        task_id: info.task_id,
        payload_id: info.payload_id,
        data_dependencies: info.data_dependencies,
        expected_output_ids: info.expected_output_ids,
    }
}

/// A task the agent accepted through the legacy `CreateTask`.
pub fn created_task_to_wit(info: pb_agent::create_task_reply::TaskInfo) -> wit::SubmittedTask {
    wit::SubmittedTask {
        task_id: info.task_id,
        payload_id: info.payload_id,
        data_dependencies: info.data_dependencies,
        expected_output_ids: info.expected_output_keys,
    }
}

/// The legacy `CreateTask` stream for `tasks`, in ArmoniK's grammar: an init request with the
/// default options, then per task a header, its payload in chunks of at most `chunk_size`
/// bytes (at least one chunk, even for an empty payload, as the agent requires) and a
/// completion marker, and finally `last_task`.
pub fn create_task_stream(
    tasks: Vec<wit::TaskRequest>,
    defaults: Option<wit::TaskOptions>,
    token: &str,
    chunk_size: usize,
) -> Vec<pb_agent::CreateTaskRequest> {
    use pb_agent::create_task_request::{InitRequest, Type};
    let chunk_size = chunk_size.max(1);
    let message = |r#type| pb_agent::CreateTaskRequest {
        r#type: Some(r#type),
        communication_token: token.to_owned(),
    };
    let init_task = |r#type| {
        Type::InitTask(pb::InitTaskRequest {
            r#type: Some(r#type),
        })
    };
    let chunk = |r#type| {
        Type::TaskPayload(pb::DataChunk {
            r#type: Some(r#type),
        })
    };

    let mut stream = vec![message(Type::InitRequest(InitRequest {
        task_options: defaults.map(task_options_from_wit),
    }))];
    for task in tasks {
        stream.push(message(init_task(pb::init_task_request::Type::Header(
            pb::TaskRequestHeader {
                expected_output_keys: task.expected_output_ids,
                data_dependencies: task.data_dependencies,
            },
        ))));
        let mut pieces = task.payload.chunks(chunk_size).peekable();
        if pieces.peek().is_none() {
            stream.push(message(chunk(pb::data_chunk::Type::Data(Vec::new()))));
        }
        for piece in pieces {
            stream.push(message(chunk(pb::data_chunk::Type::Data(piece.to_vec()))));
        }
        stream.push(message(chunk(pb::data_chunk::Type::DataComplete(true))));
    }
    stream.push(message(init_task(pb::init_task_request::Type::LastTask(
        true,
    ))));
    stream
}

/// The task options and the tasks (header, payload) of a legacy CreateTask stream.
pub type ParsedTasks = (
    Option<pb::TaskOptions>,
    Vec<(pb::TaskRequestHeader, Vec<u8>)>,
);

/// Reads the legacy CreateTask grammar: an init request, then per task a header, data chunks
/// and a completion marker, then `last_task`.
pub fn parse_create_task(stream: Vec<pb_agent::CreateTaskRequest>) -> Result<ParsedTasks, String> {
    use pb::{data_chunk, init_task_request};
    use pb_agent::create_task_request::Type;
    let mut messages = stream.into_iter().map(|m| m.r#type);
    let options = match messages.next() {
        Some(Some(Type::InitRequest(init))) => init.task_options,
        _ => return Err("CreateTask must start with an init request".into()),
    };
    let mut tasks = Vec::new();
    loop {
        let header = match messages.next() {
            Some(Some(Type::InitTask(init))) => match init.r#type {
                Some(init_task_request::Type::Header(header)) => header,
                Some(init_task_request::Type::LastTask(true)) => break,
                _ => return Err("expected a task header or last_task".into()),
            },
            _ => return Err("the stream ended before last_task".into()),
        };
        let mut payload = Vec::new();
        loop {
            match messages.next() {
                Some(Some(Type::TaskPayload(chunk))) => match chunk.r#type {
                    Some(data_chunk::Type::Data(data)) => payload.extend_from_slice(&data),
                    Some(data_chunk::Type::DataComplete(true)) => break,
                    _ => return Err("malformed payload chunk".into()),
                },
                _ => return Err("a task payload is not terminated by data_complete".into()),
            }
        }
        tasks.push((header, payload));
    }
    Ok((options, tasks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_round_trip() {
        let options = pb::TaskOptions {
            options: [("b".into(), "2".into()), ("a".into(), "1".into())].into(),
            max_duration: Some(prost_types::Duration {
                seconds: 3,
                nanos: 500_000_000,
            }),
            max_retries: 2,
            priority: 1,
            partition_id: "p".into(),
            ..Default::default()
        };
        let wit = task_options_to_wit(&options);
        assert_eq!(wit.options[0].0, "a");
        assert_eq!(wit.max_duration_ms, Some(3500));
        assert_eq!(task_options_from_wit(wit), options);
    }

    #[test]
    fn create_task_stream_follows_the_grammar() {
        let tasks = vec![
            wit::TaskRequest {
                payload: vec![7; 5],
                data_dependencies: vec!["d".into()],
                expected_output_ids: vec!["o".into()],
            },
            wit::TaskRequest {
                payload: Vec::new(),
                data_dependencies: Vec::new(),
                expected_output_ids: vec!["p".into()],
            },
        ];
        let stream = create_task_stream(tasks, None, "tok", 2);
        // init, (header, 3 chunks, complete), (header, 1 empty chunk, complete), last
        assert_eq!(stream.len(), 1 + 5 + 3 + 1);
        assert!(stream.iter().all(|m| m.communication_token == "tok"));
        use pb_agent::create_task_request::Type;
        let empty_chunk = &stream[7].r#type;
        assert!(matches!(
            empty_chunk,
            Some(Type::TaskPayload(pb::DataChunk {
                r#type: Some(pb::data_chunk::Type::Data(d))
            })) if d.is_empty()
        ));
    }

    #[test]
    fn legacy_stream_is_parsed_and_malformed_ones_rejected() {
        use crate::bindings::types::TaskRequest;
        let stream = crate::agent::convert::create_task_stream(
            vec![TaskRequest {
                payload: vec![1, 2, 3],
                data_dependencies: vec!["d".into()],
                expected_output_ids: vec!["o".into()],
            }],
            None,
            "token",
            2,
        );
        let (_, tasks) = parse_create_task(stream.clone()).expect("valid stream");
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].1, vec![1, 2, 3]);
        assert_eq!(tasks[0].0.expected_output_keys, vec!["o".to_owned()]);
        let truncated = stream[..stream.len() - 1].to_vec();
        assert!(parse_create_task(truncated).is_err());
        assert!(parse_create_task(stream[1..].to_vec()).is_err());
    }
}
