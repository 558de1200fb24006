//! The Results service (ArmoniK.Api `results_service.proto`; behaviour of ArmoniK.Core
//! `Common/src/gRPC/Services/GrpcResultsService.cs`). Uploads and downloads stream through
//! files of the result store: the server's memory does not grow with a result's size.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;

use armonik::results;
use armonik::server::{RequestContext, ResultsService};
use futures::{Stream, StreamExt};
use tonic::Status;

use super::ControlPlane;
use super::filters::{self, Compiled, expression};
use super::objects::{result_raw, result_value};
use crate::local::client::open_result_data;

impl ControlPlane {
    fn result_response(&self, session_id: &str, id: &str) -> Result<results::Raw, Status> {
        Ok(result_raw(id, &self.agent.session_result(session_id, id)?))
    }
}

impl ResultsService for ControlPlane {
    async fn list(
        self: Arc<Self>,
        request: results::list::Request,
        _: RequestContext,
    ) -> Result<results::list::Response, Status> {
        let all = self
            .agent
            .results()
            .iter()
            .map(|(id, r)| result_raw(id, r))
            .collect();
        let filter = Compiled::new(expression!(request.filters), |f| {
            result_value(&results::Raw::default(), f)
        })?;
        let (results, total) = filters::page(
            all,
            filter,
            Some((&request.sort.field, &request.sort.direction)),
            request.page,
            request.page_size,
            result_value,
        )?;
        Ok(results::list::Response {
            results,
            page: request.page,
            page_size: request.page_size,
            total,
        })
    }

    async fn get(
        self: Arc<Self>,
        request: results::get::Request,
        _: RequestContext,
    ) -> Result<results::get::Response, Status> {
        let result = self.agent.any_result(&request.id)?;
        Ok(results::get::Response {
            result: result_raw(&request.id, &result),
        })
    }

    async fn get_owner_task_id(
        self: Arc<Self>,
        request: results::get_owner_task_id::Request,
        _: RequestContext,
    ) -> Result<results::get_owner_task_id::Response, Status> {
        let mut result_task = HashMap::new();
        for id in request.result_ids {
            let result = self.agent.session_result(&request.session_id, &id)?;
            result_task.insert(id, result.owner_task_id);
        }
        Ok(results::get_owner_task_id::Response {
            result_task,
            session_id: request.session_id,
        })
    }

    async fn create_metadata(
        self: Arc<Self>,
        request: results::create_metadata::Request,
        _: RequestContext,
    ) -> Result<results::create_metadata::Response, Status> {
        let mut created = Vec::with_capacity(request.results.len());
        for item in request.results {
            let id = self
                .agent
                .create_result_metadata(&request.session_id, &item.name)?;
            created.push(self.result_response(&request.session_id, &id)?);
        }
        Ok(results::create_metadata::Response { results: created })
    }

    async fn create(
        self: Arc<Self>,
        request: results::create::Request,
        _: RequestContext,
    ) -> Result<results::create::Response, Status> {
        let mut created = Vec::with_capacity(request.results.len());
        for item in request.results {
            let id = self
                .agent
                .create_result(&request.session_id, &item.name, &item.data)?;
            created.push(self.result_response(&request.session_id, &id)?);
        }
        Ok(results::create::Response { results: created })
    }

    async fn import(
        self: Arc<Self>,
        _: results::import::Request,
        _: RequestContext,
    ) -> Result<results::import::Response, Status> {
        Err(Status::unimplemented(
            "ImportResultsData is not supported by armonik-wasm dev: it has no object storage to import from; upload the data with UploadResultData",
        ))
    }

    async fn delete_data(
        self: Arc<Self>,
        request: results::delete_data::Request,
        _: RequestContext,
    ) -> Result<results::delete_data::Response, Status> {
        self.agent
            .delete_data(&request.session_id, &request.result_ids)?;
        Ok(results::delete_data::Response {
            session_id: request.session_id,
            result_ids: request.result_ids,
        })
    }

    async fn get_service_configuration(
        self: Arc<Self>,
        _: results::get_service_configuration::Request,
        _: RequestContext,
    ) -> Result<results::get_service_configuration::Response, Status> {
        Ok(results::get_service_configuration::Response {
            data_chunk_max_size: i32::try_from(self.chunk_size).unwrap_or(i32::MAX),
        })
    }

    async fn download(
        self: Arc<Self>,
        request: results::download::Request,
        _: RequestContext,
    ) -> Result<impl Stream<Item = Result<results::download::Response, Status>> + Send, Status>
    {
        let file = open_result_data(&self.agent, &request.session_id, &request.result_id)?;
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let chunk_size = self.chunk_size;
        // One chunk read ahead at most: memory stays bounded whatever the result's size.
        tokio::task::spawn_blocking(move || {
            let Some(mut data) = file else {
                return;
            };
            loop {
                let mut chunk = vec![0; chunk_size];
                let read = match read_full(&mut data, &mut chunk) {
                    Ok(0) => return,
                    Ok(read) => read,
                    Err(error) => {
                        let _ = sender.blocking_send(Err(Status::internal(format!(
                            "cannot read the result's data: {error}"
                        ))));
                        return;
                    }
                };
                chunk.truncate(read);
                let response = results::download::Response { data_chunk: chunk };
                if sender.blocking_send(Ok(response)).is_err() {
                    return;
                }
            }
        });
        Ok(tokio_stream::wrappers::ReceiverStream::new(receiver))
    }

    async fn upload(
        self: Arc<Self>,
        request: impl Stream<Item = Result<results::upload::Request, Status>> + Send + 'static,
        _: RequestContext,
    ) -> Result<results::upload::Response, Status> {
        let mut request = std::pin::pin!(request);
        let (session_id, result_id) = match request.next().await {
            Some(Ok(results::upload::Request::Identifier {
                session_id,
                result_id,
            })) => (session_id, result_id),
            Some(Ok(results::upload::Request::DataChunk(_))) => {
                return Err(Status::invalid_argument(
                    "UploadResultData must start with the result's identifier, not data",
                ));
            }
            Some(Err(status)) => return Err(status),
            None => return Err(Status::invalid_argument("UploadResultData got no message")),
        };
        self.agent.check_upload(&session_id, &result_id)?;
        // Written aside and put in place only once whole: a broken upload leaves nothing.
        let mut file = self
            .agent
            .store
            .new_file()
            .map_err(|e| Status::internal(format!("cannot store the result's data: {e}")))?;
        let mut size = 0u64;
        while let Some(message) = request.next().await {
            match message? {
                results::upload::Request::DataChunk(chunk) => {
                    file.file().write_all(&chunk).map_err(|e| {
                        Status::internal(format!("cannot store the result's data: {e}"))
                    })?;
                    size += chunk.len() as u64;
                }
                results::upload::Request::Identifier { .. } => {
                    return Err(Status::invalid_argument(
                        "UploadResultData takes one identifier, then data chunks",
                    ));
                }
            }
        }
        self.agent
            .complete_upload(&session_id, &result_id, file, size)?;
        Ok(results::upload::Response {
            result: self.result_response(&session_id, &result_id)?,
        })
    }
}

/// Reads until `buffer` is full or the file ends.
fn read_full(file: &mut impl Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}
