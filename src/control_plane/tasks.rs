//! The Tasks service (ArmoniK.Api `tasks_service.proto`; behaviour of ArmoniK.Core
//! `Common/src/gRPC/Services/GrpcTasksService.cs`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use armonik::server::{RequestContext, TasksService};
use armonik::tasks;
use tonic::Status;

use super::ControlPlane;
use super::filters::{self, Compiled, expression};
use super::objects::{options_in, task_raw, task_summary, task_value};
use crate::local::client::{TaskCreation, TaskView};

impl ControlPlane {
    /// The tasks matching a filter, one page of them sorted, and how many matched.
    fn find_tasks(
        &self,
        filter: tasks::filter::Or,
        sort: Option<&tasks::Sort>,
        page: i32,
        page_size: i32,
    ) -> Result<(Vec<(TaskView, tasks::Raw)>, i32), Status> {
        let all = self
            .agent
            .task_views()
            .into_iter()
            .map(|view| {
                let raw = task_raw(&view);
                (view, raw)
            })
            .collect();
        let filter = Compiled::new(expression!(filter), |f| {
            task_value(&tasks::Raw::default(), f)
        })?;
        filters::page(
            all,
            filter,
            sort.map(|s| (&s.field, &s.direction)),
            page,
            page_size,
            |(_, raw), field| task_value(raw, field),
        )
    }
}

/// Drops the error message unless asked for (`with_errors`), as ArmoniK.Core does.
fn without_errors(raw: &mut tasks::Raw, with_errors: bool) {
    if !with_errors {
        raw.output = tasks::Output::Success;
    }
}

impl TasksService for ControlPlane {
    async fn list(
        self: Arc<Self>,
        request: tasks::list::Request,
        _: RequestContext,
    ) -> Result<tasks::list::Response, Status> {
        let (found, total) = self.find_tasks(
            request.filters,
            Some(&request.sort),
            request.page,
            request.page_size,
        )?;
        let tasks = found
            .into_iter()
            .map(|(_, mut raw)| {
                without_errors(&mut raw, request.with_errors);
                task_summary(raw)
            })
            .collect();
        Ok(tasks::list::Response {
            tasks,
            page: request.page,
            page_size: request.page_size,
            total,
        })
    }

    async fn list_detailed(
        self: Arc<Self>,
        request: tasks::list_detailed::Request,
        _: RequestContext,
    ) -> Result<tasks::list_detailed::Response, Status> {
        let (found, total) = self.find_tasks(
            request.filters,
            Some(&request.sort),
            request.page,
            request.page_size,
        )?;
        let tasks = found
            .into_iter()
            .map(|(_, mut raw)| {
                without_errors(&mut raw, request.with_errors);
                raw
            })
            .collect();
        Ok(tasks::list_detailed::Response {
            tasks,
            page: request.page,
            page_size: request.page_size,
            total,
        })
    }

    async fn get(
        self: Arc<Self>,
        request: tasks::get::Request,
        _: RequestContext,
    ) -> Result<tasks::get::Response, Status> {
        Ok(tasks::get::Response {
            task: task_raw(&self.agent.task_view(&request.task_id)?),
        })
    }

    async fn cancel(
        self: Arc<Self>,
        request: tasks::cancel::Request,
        _: RequestContext,
    ) -> Result<tasks::cancel::Response, Status> {
        self.agent.cancel_tasks(&request.task_ids)?;
        let tasks = request
            .task_ids
            .iter()
            .map(|id| Ok(task_summary(task_raw(&self.agent.task_view(id)?))))
            .collect::<Result<_, Status>>()?;
        Ok(tasks::cancel::Response { tasks })
    }

    async fn get_result_ids(
        self: Arc<Self>,
        request: tasks::get_result_ids::Request,
        _: RequestContext,
    ) -> Result<tasks::get_result_ids::Response, Status> {
        let mut task_results = HashMap::new();
        for id in request.task_ids {
            let view = self.agent.task_view(&id)?;
            task_results.insert(id, view.task.expected_outputs);
        }
        Ok(tasks::get_result_ids::Response { task_results })
    }

    async fn count_status(
        self: Arc<Self>,
        request: tasks::count_status::Request,
        _: RequestContext,
    ) -> Result<tasks::count_status::Response, Status> {
        let (found, _) = self.find_tasks(request.filters, None, 0, i32::MAX)?;
        let mut counts: BTreeMap<i32, (armonik::TaskStatus, i32)> = BTreeMap::new();
        for (_, raw) in found {
            let entry = counts
                .entry(raw.status.clone() as i32)
                .or_insert((raw.status, 0));
            entry.1 += 1;
        }
        Ok(tasks::count_status::Response {
            status: counts
                .into_values()
                .map(|(status, count)| armonik::StatusCount { status, count })
                .collect(),
        })
    }

    async fn submit(
        self: Arc<Self>,
        request: tasks::submit::Request,
        _: RequestContext,
    ) -> Result<tasks::submit::Response, Status> {
        let options = request.task_options.map(options_in);
        let creations = request
            .items
            .into_iter()
            .map(|item| TaskCreation {
                payload_id: item.payload_id,
                data_dependencies: item.data_dependencies,
                expected_outputs: item.expected_output_keys,
                options: item.task_options.map(options_in),
            })
            .collect();
        let submitted =
            self.agent
                .submit_tasks(&request.session_id, options.as_ref(), creations)?;
        Ok(tasks::submit::Response {
            items: submitted
                .into_iter()
                .map(|task| tasks::submit::ResponseItem {
                    task_id: task.id,
                    expected_output_ids: task.expected_outputs,
                    data_dependencies: task.data_dependencies,
                    payload_id: task.payload_id,
                })
                .collect(),
        })
    }
}
