//! What `submit` sends: the component, the payload and the dependencies, checked and opened
//! before anything is sent, then uploaded in chunks.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use armonik::reexports::prost_types;
use armonik::{Client, TaskOptions};
use futures::Stream;

use super::SubmitArgs;
use super::errors::request_error;
use crate::cli::split_pair;
use crate::sandbox::components::{CONVENTION_VERSION, LIBRARY_BLOB_ID, Origin, check_header};

/// A file to upload as a result: its name in the session, its path, and the open file.
pub(super) struct Upload {
    pub(super) name: String,
    path: PathBuf,
    file: std::fs::File,
}

impl Upload {
    fn open(name: &str, path: &Path, what: &str) -> anyhow::Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read {what} {}", path.display()))?;
        // A directory opens on Linux: say so now, not halfway through the upload.
        let metadata = file
            .metadata()
            .with_context(|| format!("cannot read {what} {}", path.display()))?;
        if !metadata.is_file() {
            anyhow::bail!("{what} {} is not a regular file", path.display());
        }
        Ok(Self {
            name: name.to_owned(),
            path: path.to_owned(),
            file,
        })
    }
}

/// What the command line asks for, checked and opened before anything is sent.
pub(super) struct Inputs {
    pub(super) component: Upload,
    /// A payload file, or the bytes of `--payload-text` (empty without either).
    pub(super) payload: Result<Upload, Vec<u8>>,
    pub(super) deps: Vec<Upload>,
    /// The session's default task options.
    pub(super) session_options: TaskOptions,
    /// `--partition`.
    pub(super) partition: Option<String>,
    pub(super) output_names: Vec<String>,
}

impl Inputs {
    pub(super) fn read(args: &SubmitArgs) -> anyhow::Result<Self> {
        let mut component = Upload::open(
            &component_name(&args.component),
            &args.component,
            "the component",
        )?;
        let mut header = Vec::with_capacity(8);
        (&component.file)
            .take(8)
            .read_to_end(&mut header)
            .and_then(|_| component.file.seek(SeekFrom::Start(0)))
            .with_context(|| format!("cannot read the component {}", args.component.display()))?;
        // Only a component travels as a library: a precompiled .cwasm is native code that no
        // worker accepts from task data.
        check_header(&header, &Origin::File(args.component.clone()))?;

        let payload = match (&args.payload, &args.payload_text) {
            (Some(path), _) => Ok(Upload::open("payload", path, "the payload file")?),
            (None, Some(text)) => Err(text.clone().into_bytes()),
            (None, None) => Err(Vec::new()),
        };
        let mut deps: Vec<Upload> = Vec::new();
        for dep in &args.deps {
            let (name, path) = split_pair(dep, "--dep", "NAME=FILE")?;
            if deps.iter().any(|d| d.name == name) {
                anyhow::bail!("--dep {name} is given twice");
            }
            let what = format!("the file of --dep {name}:");
            deps.push(Upload::open(name, Path::new(path), &what)?);
        }
        for (n, name) in args.output_names.iter().enumerate() {
            if name.is_empty() || args.output_names[..n].contains(name) {
                anyhow::bail!("--output-name needs distinct, non-empty names, got `{name}`");
            }
        }
        let mut options = HashMap::new();
        for option in &args.options {
            let (key, value) = split_pair(option, "--option", "KEY=VALUE")?;
            if key == CONVENTION_VERSION || key == LIBRARY_BLOB_ID {
                anyhow::bail!("--option {key} is set by submit itself");
            }
            options.insert(key.to_owned(), value.to_owned());
        }
        let max_duration = args.max_duration;
        let session_options = TaskOptions {
            options,
            max_duration: prost_types::Duration::try_from(max_duration)
                .context("--max-duration is too long")?,
            max_retries: args.max_retries,
            priority: 1,
            partition_id: args.partition.clone().unwrap_or_default(),
            ..TaskOptions::default()
        };
        Ok(Self {
            component,
            payload,
            deps,
            session_options,
            partition: args.partition.clone(),
            output_names: args.output_names.clone(),
        })
    }
}

/// The component's result name: its file name.
fn component_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || "component".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Uploads `upload` as the result `result_id`, in chunks of `chunk_size` bytes read as they
/// are sent (never the whole file in memory).
pub(super) async fn upload_file(
    results: &mut armonik::client::Results<Client>,
    session_id: &str,
    result_id: &str,
    upload: Upload,
    chunk_size: usize,
) -> anyhow::Result<()> {
    let failed = Arc::new(Mutex::new(None));
    let chunks = file_chunks(upload.file, chunk_size, failed.clone());
    let uploaded = results
        .upload(session_id.to_owned(), result_id.to_owned(), chunks)
        .await;
    if let Some(error) = failed.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(error).with_context(|| format!("cannot read {}", upload.path.display()));
    }
    uploaded.map_err(|e| {
        anyhow::anyhow!(
            "cannot upload {} ({}): {}",
            upload.path.display(),
            upload.name,
            request_error(&e)
        )
    })?;
    tracing::debug!(name = %upload.name, %result_id, "uploaded");
    Ok(())
}

/// The file's bytes in chunks of `chunk_size` (the last one shorter), each read on a blocking
/// thread when the stream is polled. A read error ends the stream early and is left in
/// `failed`: the caller must check it before using the result.
fn file_chunks(
    file: std::fs::File,
    chunk_size: usize,
    failed: Arc<Mutex<Option<std::io::Error>>>,
) -> impl Stream<Item = Vec<u8>> + Send + 'static {
    futures::stream::unfold(Some(file), move |file| {
        let failed = failed.clone();
        async move {
            let mut file = file?;
            let read = tokio::task::spawn_blocking(move || {
                let mut chunk = Vec::with_capacity(chunk_size);
                let read = (&mut file)
                    .take(u64::try_from(chunk_size).unwrap_or(u64::MAX))
                    .read_to_end(&mut chunk);
                (file, chunk, read)
            })
            .await;
            match read {
                Ok((_, _, Ok(0))) => None,
                Ok((file, chunk, Ok(_))) => Some((chunk, Some(file))),
                Ok((_, _, Err(error))) => {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                    None
                }
                Err(error) => {
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(std::io::Error::other(error));
                    None
                }
            }
        }
    })
}
