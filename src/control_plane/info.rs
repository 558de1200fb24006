//! What the control plane says about itself: HealthChecks, Versions, Partitions and
//! Applications (ArmoniK.Api `health_checks_service.proto`, `versions_service.proto`,
//! `partitions_service.proto`, `applications_service.proto`).

use std::sync::Arc;

use armonik::server::{
    ApplicationsService, HealthChecksService, PartitionsService, RequestContext, VersionsService,
};
use armonik::{applications, health_checks, partitions, versions};
use tonic::Status;

use super::ControlPlane;
use super::filters::{self, Compiled, Value, expression};

/// The ArmoniK.Api version whose protos the control plane serves (the `armonik` crate's).
const API_VERSION: &str = "3.29.4";

impl HealthChecksService for ControlPlane {
    async fn check(
        self: Arc<Self>,
        _: health_checks::check::Request,
        _: RequestContext,
    ) -> Result<health_checks::check::Response, Status> {
        // Everything runs in this process: if it answers, its parts are there.
        let healthy = |name: &str| health_checks::ServiceHealth {
            name: name.to_owned(),
            message: "in process".to_owned(),
            health: health_checks::Status::Healthy,
        };
        Ok(health_checks::check::Response {
            services: ["database", "object", "queue"].map(healthy).into(),
        })
    }
}

impl VersionsService for ControlPlane {
    async fn list(
        self: Arc<Self>,
        _: versions::list::Request,
        _: RequestContext,
    ) -> Result<versions::list::Response, Status> {
        Ok(versions::list::Response {
            core: format!("armonik-wasm {}", env!("CARGO_PKG_VERSION")),
            api: API_VERSION.to_owned(),
        })
    }
}

fn partition(id: &str) -> partitions::Raw {
    partitions::Raw {
        partition_id: id.to_owned(),
        parent_partition_ids: Vec::new(),
        pod_reserved: 0,
        // One worker: this process.
        pod_max: 1,
        pod_configuration: Default::default(),
        preemption_percentage: 0,
        priority: 1,
    }
}

fn partition_value(p: &partitions::Raw, field: &partitions::Field) -> Result<Value, Status> {
    use partitions::Field as F;
    Ok(match field {
        F::Id => Value::Str(p.partition_id.clone()),
        F::ParentPartitionIds => Value::Array(p.parent_partition_ids.clone()),
        F::PodReserved => Value::Num(p.pod_reserved),
        F::PodMax => Value::Num(p.pod_max),
        F::PreemptionPercentage => Value::Num(p.preemption_percentage),
        F::Priority => Value::Num(p.priority),
        F::Unspecified => {
            return Err(Status::invalid_argument(
                "a partitions filter or sort names no field",
            ));
        }
    })
}

impl PartitionsService for ControlPlane {
    async fn list(
        self: Arc<Self>,
        request: partitions::list::Request,
        _: RequestContext,
    ) -> Result<partitions::list::Response, Status> {
        let all = self.partitions.iter().map(|p| partition(p)).collect();
        let filter = Compiled::new(expression!(request.filters), |f| {
            partition_value(&partition(""), f)
        })?;
        let (partitions, total) = filters::page(
            all,
            filter,
            Some((&request.sort.field, &request.sort.direction)),
            request.page,
            request.page_size,
            partition_value,
        )?;
        Ok(partitions::list::Response {
            partitions,
            page: request.page,
            page_size: request.page_size,
            total,
        })
    }

    async fn get(
        self: Arc<Self>,
        request: partitions::get::Request,
        _: RequestContext,
    ) -> Result<partitions::get::Response, Status> {
        if !self.partitions.contains(&request.partition_id) {
            return Err(Status::not_found(format!(
                "partition `{}` not found; this server has {}",
                request.partition_id,
                self.partitions.join(", ")
            )));
        }
        Ok(partitions::get::Response {
            partition: partition(&request.partition_id),
        })
    }
}

fn application_value(a: &applications::Raw, field: &applications::Field) -> Result<Value, Status> {
    use applications::Field as F;
    Ok(Value::Str(match field {
        F::Name => a.name.clone(),
        F::Version => a.version.clone(),
        F::Namespace => a.namespace.clone(),
        F::Service => a.service.clone(),
        F::Unspecified => {
            return Err(Status::invalid_argument(
                "an applications filter or sort names no field",
            ));
        }
    }))
}

impl ApplicationsService for ControlPlane {
    async fn list(
        self: Arc<Self>,
        request: applications::list::Request,
        _: RequestContext,
    ) -> Result<applications::list::Response, Status> {
        // The applications are those the tasks name, each once (ArmoniK.Core groups tasks
        // by their application options).
        let mut all: Vec<applications::Raw> = Vec::new();
        for view in self.agent.task_views() {
            let o = &view.task.options;
            let app = applications::Raw {
                name: o.application_name.clone(),
                version: o.application_version.clone(),
                namespace: o.application_namespace.clone(),
                service: o.application_service.clone(),
            };
            if !app.name.is_empty() && !all.contains(&app) {
                all.push(app);
            }
        }
        // Sorted on several fields at once, in their order, before the page is cut.
        let fields = &request.sort.fields;
        let key = |a: &applications::Raw| -> Vec<String> {
            fields
                .iter()
                .filter_map(|f| match application_value(a, f) {
                    Ok(Value::Str(s)) => Some(s),
                    _ => None,
                })
                .collect()
        };
        all.sort_by_key(key);
        if matches!(request.sort.direction, armonik::SortDirection::Desc) {
            all.reverse();
        }
        let filter = Compiled::new(expression!(request.filters), |f| {
            application_value(&applications::Raw::default(), f)
        })?;
        let (applications, total) = filters::page(
            all,
            filter,
            None,
            request.page,
            request.page_size,
            application_value,
        )?;
        Ok(applications::list::Response {
            applications,
            page: request.page,
            page_size: request.page_size,
            total,
        })
    }
}
