//! The Events service (ArmoniK.Api `events_service.proto`; behaviour of ArmoniK.Core
//! `Common/src/gRPC/Services/GrpcEventsService.cs` and `WatchToGrpc.cs`): what the session
//! already has is replayed first (ArmoniK's Python client subscribes after its results may be
//! complete and relies on it), then every change; the stream ends only when the client leaves.

use std::sync::Arc;

use armonik::events::{self, EventsEnum, Update};
use armonik::server::{EventsService, RequestContext};
use futures::{Stream, StreamExt};
use tonic::Status;

use super::ControlPlane;
use super::filters::{Compiled, expression};
use super::objects::{result_raw, result_status, result_value, state_status, task_raw, task_value};
use crate::local::agent::LocalAgent;
use std::sync::atomic::Ordering;

use crate::local::graph::{Event, MAX_UNREAD_EVENTS};

/// What a subscriber asked for.
struct Subscription {
    session_id: String,
    kinds: Vec<EventsEnum>,
    tasks: Compiled<armonik::tasks::Field>,
    results: Compiled<armonik::results::Field>,
}

impl Subscription {
    fn wants(&self, kind: EventsEnum) -> bool {
        self.kinds.is_empty() || self.kinds.contains(&kind)
    }

    /// The event as ArmoniK's, if the subscriber wants it; the filters apply to the task or
    /// result as it is now, with the event's status.
    fn update(&self, agent: &LocalAgent, event: Event) -> Result<Option<Update>, Status> {
        // The task as it is now, with the event's status.
        let task_matches = |raw: &mut armonik::tasks::Raw, status: armonik::TaskStatus| {
            raw.status = status;
            self.tasks.matches(raw, task_value)
        };
        let result_matches = |id: &str, status: Option<armonik::ResultStatus>| {
            // Without a filter a status or owner change is sent without looking its result
            // up: one event per change, thousands a second.
            if self.results.matches_all() {
                return Ok(true);
            }
            let Ok(result) = agent.any_result(id) else {
                return Ok(false);
            };
            let mut raw = result_raw(id, &result);
            if let Some(status) = status {
                raw.status = status;
            }
            self.results.matches(&raw, result_value)
        };
        Ok(match event {
            Event::NewTask(id, state) if self.wants(EventsEnum::NewTask) => {
                let Ok(view) = agent.task_view(&id) else {
                    return Ok(None);
                };
                let status = state_status(state, view.waiting);
                let mut raw = task_raw(&view);
                if !task_matches(&mut raw, status.clone())? {
                    return Ok(None);
                }
                let task = &view.task;
                Some(Update::NewTask(events::NewTask {
                    task_id: id,
                    payload_id: task.payload_id.clone(),
                    origin_task_id: task.first_id.clone(),
                    status,
                    expected_output_keys: task.expected_outputs.clone(),
                    data_dependencies: task.data_dependencies.clone(),
                    retry_of_ids: raw.retry_of_ids,
                    parent_task_ids: raw.parent_task_ids,
                }))
            }
            Event::TaskStatus(id, state) if self.wants(EventsEnum::TaskStatusUpdate) => {
                let status = state_status(state, false);
                // Without a filter the task is not looked up (as for results above).
                if !self.tasks.matches_all() {
                    let Ok(view) = agent.task_view(&id) else {
                        return Ok(None);
                    };
                    if !task_matches(&mut task_raw(&view), status.clone())? {
                        return Ok(None);
                    }
                }
                Some(Update::TaskStatusUpdate(events::TaskStatusUpdate {
                    task_id: id,
                    status,
                }))
            }
            Event::NewResult(id, state) if self.wants(EventsEnum::NewResult) => {
                let status = result_status(state);
                if !result_matches(&id, Some(status.clone()))? {
                    return Ok(None);
                }
                // Gone (its session deleted while the event waited): not sent, as a task's.
                let Ok(result) = agent.any_result(&id) else {
                    return Ok(None);
                };
                let owner_id = result.owner_task_id;
                Some(Update::NewResult(events::NewResult {
                    result_id: id,
                    owner_id,
                    status,
                }))
            }
            Event::ResultStatus(id, state) if self.wants(EventsEnum::ResultStatusUpdate) => {
                let status = result_status(state);
                result_matches(&id, Some(status.clone()))?.then_some(Update::ResultStatusUpdate(
                    events::ResultStatusUpdate {
                        result_id: id,
                        status,
                    },
                ))
            }
            Event::ResultOwner(id, previous, current)
                if self.wants(EventsEnum::ResultOwnerUpdate) =>
            {
                result_matches(&id, None)?.then_some(Update::ResultOwnerUpdate(
                    events::ResultOwnerUpdate {
                        result_id: id,
                        previous_owner_id: previous,
                        current_owner_id: current,
                    },
                ))
            }
            _ => None,
        })
    }
}

impl EventsService for ControlPlane {
    async fn subscribe(
        self: Arc<Self>,
        request: events::subscribe::Request,
        _: RequestContext,
    ) -> Result<impl Stream<Item = Result<events::subscribe::Response, Status>> + Send, Status>
    {
        let subscription = Subscription {
            kinds: request
                .returned_events
                .into_iter()
                .filter(|k| *k != EventsEnum::Unspecified)
                .collect(),
            tasks: Compiled::new(expression!(request.task_filters), |f| {
                task_value(&armonik::tasks::Raw::default(), f)
            })?,
            results: Compiled::new(expression!(request.result_filters), |f| {
                result_value(&armonik::results::Raw::default(), f)
            })?,
            session_id: request.session_id,
        };
        let (receiver, overflowed) = self.agent.subscribe(&subscription.session_id)?;
        let agent = self.agent.clone();
        let mut stop = self.stop.clone();
        // Ends with the server: a stream that never ends on its own would hold its shutdown.
        let stopped = async move {
            let _ = stop.wait_for(|stopped| *stopped).await;
        };
        let overflow = futures::stream::once(async move {
            overflowed.load(Ordering::Relaxed).then(|| {
                Err(Status::resource_exhausted(format!(
                    "this subscriber left more than {MAX_UNREAD_EVENTS} events unread and was dropped; subscribe again (what exists is replayed first)"
                )))
            })
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(receiver)
            .map(move |event| match subscription.update(&agent, event) {
                Ok(Some(update)) => Some(Ok(events::subscribe::Response {
                    session_id: subscription.session_id.clone(),
                    update,
                })),
                Ok(None) => None,
                // A filter that does not apply: tonic ends the stream with this status.
                Err(status) => Some(Err(status)),
            })
            .chain(overflow)
            .filter_map(|item| async move { item })
            .take_until(stopped);
        Ok(stream)
    }
}
