//! Guest stdout and stderr, turned into `tracing` events carrying the task and session ids.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The longest line kept whole: a guest that writes megabytes without a newline is logged in
/// pieces of this size instead of growing host memory.
const MAX_LINE: usize = 16 * 1024;

/// Which guest stream a line came from.
#[derive(Debug, Clone, Copy)]
pub enum Stream {
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error.
    Stderr,
}

/// Where a task's output goes: its ids, shared by both streams.
#[derive(Debug)]
pub struct TaskIds {
    /// ArmoniK session id.
    pub session_id: String,
    /// ArmoniK task id.
    pub task_id: String,
}

/// A WASI output stream that logs each line the guest writes.
#[derive(Clone)]
pub struct GuestLog {
    ids: Arc<TaskIds>,
    stream: Stream,
}

impl GuestLog {
    /// The `stream` of the task `ids`.
    pub fn new(ids: Arc<TaskIds>, stream: Stream) -> Self {
        Self { ids, stream }
    }

    fn writer(&self) -> LineWriter {
        LineWriter {
            log: self.clone(),
            line: Vec::new(),
        }
    }

    /// Logs one line. The guest's text is the last field, a string value: the text format
    /// quotes it with its control characters and quotes escaped, the JSON formats escape it,
    /// so it can neither start a record of its own nor pass for the host's task and session
    /// ids, which come first.
    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.as_ref();
        let (session_id, task_id) = (&self.ids.session_id, &self.ids.task_id);
        match self.stream {
            Stream::Stdout => {
                tracing::info!(target: "guest", %session_id, %task_id, stream = "stdout", line, "guest output")
            }
            Stream::Stderr => {
                tracing::warn!(target: "guest", %session_id, %task_id, stream = "stderr", line, "guest output")
            }
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.writer())
    }

    // Logging never blocks, so the stream is written synchronously rather than through the
    // default adapter, which spawns a task per stream.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.writer())
    }
}

/// Splits what the guest writes into lines.
struct LineWriter {
    log: GuestLog,
    line: Vec<u8>,
}

impl LineWriter {
    fn push(&mut self, mut bytes: &[u8]) {
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&bytes[..end]);
            self.flush_line();
            bytes = &bytes[end + 1..];
        }
        self.line.extend_from_slice(bytes);
        while self.line.len() >= MAX_LINE {
            let rest = self.line.split_off(MAX_LINE);
            self.flush_line();
            self.line = rest;
        }
    }

    fn flush_line(&mut self) {
        let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
        self.log.emit(line);
        self.line.clear();
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.flush_line();
        }
    }
}

#[async_trait::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
