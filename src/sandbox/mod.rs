//! The sandbox: one wasmtime engine and linker per process, and a fresh store and instance
//! per task (made ahead of it when the component allows, see `ahead`).

mod ahead;
pub mod applications;
pub mod compile_cache;
pub mod components;
pub mod data_folder;
pub mod guest_log;
pub mod limits;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap,
    UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::agent::bridge::{AgentBridge, DeadlineReached, Ledger};
use crate::bindings::types::TaskContext;
use crate::bindings::{WorkerPre, armonik};
use crate::host_files::Folder;
use crate::sandbox::data_folder::DataFolder;
use crate::sandbox::guest_log::{GuestLog, Stream, TaskIds};
use crate::sandbox::limits::{MemoryLimitExceeded, TaskLimiter};

/// Where the task's data folder appears inside the guest.
pub const GUEST_DATA_FOLDER: &str = "/data";

/// How often the epoch advances. A guest is checked against its deadline, and yields to the
/// async runtime (so HealthCheck and cancellation stay prompt), once per tick; 10 ms is
/// Spin's choice too and costs nothing measurable.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Core instances, memories and tables one task's component may use in the instance pool.
/// Rust and C components use a handful; componentize-py's use about twenty.
const CORE_INSTANCES_PER_TASK: u32 = 64;
const MEMORIES_PER_TASK: u32 = 16;
const TABLES_PER_TASK: u32 = 64;

/// The default of [`SandboxConfig::keep_resident`], 256 MiB: an interpreter's heap image
/// (componentize-py's is 12.7 MiB, componentize-js's 9.1 MiB), whose pages its tasks write
/// scattered across it (about 200 and 80; faulting those back cost each Python task about a
/// millisecond), and the buffers of a task moving tens of MiB (a Python guest's 64 MiB echo
/// grows its memory by about 130 MiB, 33,000 pages that each task faulted in afresh: the echo
/// ran at 0.56x the Python SDK worker's throughput, 1.08x with them kept; BENCHMARKS.md). A
/// memory that never grows past its start (a Rust or C guest's is about 1 MiB) is reset whole
/// whatever this is, so small tasks pay nothing for it.
pub const DEFAULT_KEEP_RESIDENT: usize = 256 << 20;

/// The same for pooled tables (function references): small, 1 MiB covers them.
const TABLE_KEEP_RESIDENT: usize = 1 << 20;

/// Settings of the sandbox that hold for every task.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Tasks that may run at once; sizes the instance pool.
    pub max_concurrent_tasks: u32,
    /// Linear memory one task may use, all its memories together.
    pub memory_limit: usize,
    /// Whether to try the pooling instance allocator (falling back to on-demand allocation
    /// where it cannot reserve its address space).
    pub pooling: bool,
    /// Whether to make the next instance of a component while no task needs it (see
    /// `ahead`): for a process that runs task after task, not for one that runs a single task.
    pub instantiate_ahead: bool,
    /// Bytes at the start of each pooled linear memory kept resident between tasks: reset in
    /// place after a task (copied back from the component's memory image, or zeroed), so the
    /// next task of that slot does not fault those pages in again; the rest of a memory that
    /// grew past it is given back to the kernel. The cost: a memory that grew to this size
    /// keeps it in RAM while the worker lives (per pool slot used, so about twice this with
    /// the instance made ahead), and the reset writes it whole after each task (about 25 ms
    /// for 256 MiB here, after the reply). Wasmtime's `linear_memory_keep_resident`.
    pub keep_resident: usize,
}

/// Why a task did not return normally.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The task ran past its max duration and was stopped.
    #[error("the task exceeded its max duration of {0:?} and was stopped")]
    Deadline(Duration),
    /// The guest trapped (panic, out of bounds, stack overflow, memory limit...). The message
    /// carries the trap and its wasm backtrace.
    #[error("the task trapped: {0}")]
    Trap(String),
    /// The sandbox could not be set up (for example the data folder cannot be opened).
    #[error("cannot set up the task's sandbox: {0}")]
    Setup(String),
}

/// The plain per-task state held by the store.
pub struct TaskState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: TaskLimiter,
    bridge: AgentBridge,
    files: DataFolder,
}

impl WasiView for TaskState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// One task to run in the sandbox.
pub struct TaskRun {
    /// What the guest is told about the task.
    pub context: TaskContext,
    /// The task's data folder on the host, preopened as [`GUEST_DATA_FOLDER`] and reached by
    /// the `data-folder` interface.
    pub data_folder: Arc<Folder>,
    /// The task's agent bridge.
    pub bridge: AgentBridge,
    /// Task and session ids, for the guest's logs.
    pub ids: Arc<TaskIds>,
    /// The task's time budget.
    pub max_duration: Duration,
    /// When the budget ends.
    pub deadline: Instant,
}

/// What one task cost the sandbox, for its summary record and the metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunStats {
    /// Time from the task's start in the sandbox until its instance was ready to call:
    /// instantiating it, or binding the one made ahead (and waiting for it if it was still
    /// being made); zero when the task never got that far.
    pub instantiation: Duration,
    /// Peak linear memory of the task, all its memories together, in bytes.
    pub memory_peak: usize,
    /// Whether the task ran in an instance made ahead of it (see `ahead`).
    pub made_ahead: bool,
}

/// A task's end in the sandbox.
pub struct Finished {
    /// The guest's own result, or why it has none.
    pub outcome: Result<Result<(), String>, RunError>,
    /// What the task did through the agent.
    pub ledger: Ledger,
    /// What it cost.
    pub stats: RunStats,
}

/// The engine and linker shared by every task of the process.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<TaskState>,
    config: SandboxConfig,
    /// One permit per instance the pool holds. A task's permit is returned only once its
    /// store is torn down, after its reply (see [`retire`]), so a task never finds the pool
    /// full because the previous one is still being cleaned up: at worst it waits for that.
    instances: Arc<Semaphore>,
    /// The instance made ahead of its task, if any.
    ahead: ahead::Ahead,
}

impl Sandbox {
    /// Builds the engine (pooling allocator when the machine allows it, copy-on-write memory
    /// images, epoch interruption) and the linker with WASI and the agent interface.
    pub fn new(mut config: SandboxConfig) -> anyhow::Result<Self> {
        let engine = match Engine::new(&engine_config(&config, config.pooling)) {
            Ok(engine) => engine,
            Err(error) => {
                // The pool reserves its address space up front; where that fails (small
                // virtual address space, strict overcommit), on-demand allocation still works,
                // only slower to instantiate.
                tracing::warn!(%error, "pooling allocator unavailable, falling back to on-demand allocation");
                config.pooling = false;
                Engine::new(&engine_config(&config, false))?
            }
        };
        spawn_epoch_ticker(&engine);

        let mut linker = Linker::new(&engine);
        // Every WASI 0.2 interface is linked (componentize-py imports sockets even when unused);
        // what a task may reach is decided by its WasiCtx: one folder, no network, no env.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        armonik::worker::agent::add_to_linker::<TaskState, HasSelf<AgentBridge>>(
            &mut linker,
            |state| &mut state.bridge,
        )?;
        armonik::worker::types::add_to_linker::<TaskState, HasSelf<AgentBridge>>(
            &mut linker,
            |state| &mut state.bridge,
        )?;
        data_folder::add_to_linker(&mut linker)?;
        Ok(Self {
            engine,
            linker,
            instances: Arc::new(Semaphore::new(config.max_concurrent_tasks.max(1) as usize)),
            ahead: ahead::Ahead::new()?,
            config,
        })
    }

    /// The process's engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The sandbox's settings, `pooling` as it turned out (false after a fallback).
    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// Resolves a component's imports once, so that a task only instantiates.
    pub fn prepare(&self, component: &Component) -> anyhow::Result<WorkerPre<TaskState>> {
        let pre = self.linker.instantiate_pre(component)?;
        Ok(WorkerPre::new(pre)?)
    }

    /// A fresh store for one task: its WASI context, agent bridge and data folder, the memory
    /// limit, and the deadline (checked at each epoch tick, where the guest also yields).
    pub fn new_store(
        &self,
        wasi: WasiCtx,
        bridge: AgentBridge,
        files: DataFolder,
        deadline: Instant,
    ) -> Store<TaskState> {
        let mut store = Store::new(
            &self.engine,
            TaskState {
                wasi,
                table: ResourceTable::new(),
                limiter: TaskLimiter::new(self.config.memory_limit),
                bridge,
                files,
            },
        );
        store.limiter(|state| &mut state.limiter);
        // What one host call may copy out of the guest (wasmtime's default is 128 MiB, which
        // traps a single large `write`): the task's whole memory, which bounds it anyway.
        store.set_hostcall_fuel(self.config.memory_limit);
        self.set_deadline(&mut store, deadline);
        store
    }

    /// Stops the store's guest at `deadline`, checked at each epoch tick, where the guest
    /// also yields.
    fn set_deadline(&self, store: &mut Store<TaskState>, deadline: Instant) {
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            Ok(if Instant::now() >= deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
    }

    /// Makes an instance of `pre` in the background for the next task of this component
    /// (see `ahead`), unless one is ready or being made.
    pub fn make_ahead(self: &Arc<Self>, pre: &WorkerPre<TaskState>) {
        ahead::Ahead::make(self, pre);
    }

    /// Runs one task in a fresh store and instance: the guest's own result (or why it has
    /// none), the ledger of what it did through the agent, and what it cost. With
    /// `instantiate_ahead`, the instance is the one made ahead for this component when there
    /// is one, and the next is made once this task is done.
    pub async fn run(self: &Arc<Self>, pre: &WorkerPre<TaskState>, task: TaskRun) -> Finished {
        let bridge = task.bridge;
        let not_started = |error, mut bridge: AgentBridge| Finished {
            outcome: Err(error),
            ledger: bridge.take_ledger(),
            stats: RunStats::default(),
        };
        let files = DataFolder::new(task.data_folder.clone(), self.config.memory_limit);
        let wasi = match wasi_context(task.data_folder.path(), &task.ids) {
            Ok(wasi) => wasi,
            Err(error) => return not_started(error, bridge),
        };
        let Ok(instance) = self.instances.clone().acquire_owned().await else {
            // Never closed; stated for completeness rather than unwrapped.
            return not_started(
                RunError::Setup("the instance pool is closed".into()),
                bridge,
            );
        };
        let started = std::time::Instant::now();
        // Waiting for one being made is bounded by the task's own deadline.
        let ready = tokio::time::timeout_at(task.deadline, self.ahead.take(pre))
            .await
            .ok()
            .flatten();
        let made_ahead = ready.is_some();
        let (mut store, worker) = match ready {
            Some(ready) => {
                let mut store = ready.store;
                ahead::bind(self, &mut store, wasi, bridge, files, task.deadline);
                (store, Some(ready.worker))
            }
            None => (self.new_store(wasi, bridge, files, task.deadline), None),
        };
        let mut instantiation = Duration::ZERO;
        let call = async {
            let worker = match worker {
                Some(worker) => worker,
                None => pre.instantiate_async(&mut store).await?,
            };
            instantiation = started.elapsed();
            let returned = worker
                .armonik_worker_task()
                .call_process(&mut store, &task.context)
                .await?;
            finish_writes(&mut store).await?;
            Ok(returned)
        };
        // The epoch deadline stops wasm code; this stops everything else the task may be
        // waiting on (a WASI sleep or poll, a pending write, an agent call).
        let outcome = match tokio::time::timeout_at(task.deadline, call).await {
            Ok(returned) => returned.map_err(|error| classify(error, task.max_duration)),
            Err(_elapsed) => Err(RunError::Deadline(task.max_duration)),
        };
        let ledger = store.data_mut().bridge.take_ledger();
        let stats = RunStats {
            instantiation,
            memory_peak: store.data().limiter.used(),
            made_ahead,
        };
        retire(store, instance);
        if self.config.instantiate_ahead {
            self.make_ahead(pre);
        }
        Finished {
            outcome,
            ledger,
            stats,
        }
    }
}

/// Waits until every write the guest issued through an output stream it left open has landed
/// in its file. wasmtime-wasi runs a stream's write on the blocking pool and answers `flush`
/// at once, so without this the host could check, reply and commit while the file is still
/// short, and the write land after ArmoniK has read it.
///
/// # Errors
/// A trap when a pending write failed: what the task wrote is not what it meant to write.
async fn finish_writes(store: &mut Store<TaskState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::{DynOutputStream, StreamError};
    for entry in store.data_mut().table.iter_mut() {
        if let Some(stream) = entry.downcast_mut::<DynOutputStream>() {
            stream.ready().await;
            if let Err(StreamError::LastOperationFailed(error)) = stream.check_write() {
                return Err(error.context("a write the task left pending failed"));
            }
        }
    }
    Ok(())
}

/// Tears a finished task's store down after its reply has gone out. Dropping a store resets
/// its pooled memories and tables (about a tenth of a small task's cost in the worker): the
/// yield lets the runtime write the reply first, so that cost is off the task's latency.
fn retire(store: Store<TaskState>, instance: OwnedSemaphorePermit) {
    tokio::spawn(async move {
        tokio::task::yield_now().await;
        drop(store);
        drop(instance);
    });
}

/// The engine configuration; `pooling` picks the instance allocator.
fn engine_config(config: &SandboxConfig, pooling: bool) -> Config {
    let mut wasm = Config::new();
    // Deadlines: cheaper than fuel (~10% vs 2-3x) and enough to stop any loop.
    wasm.epoch_interruption(true);
    if pooling {
        // One more than the tasks: the instance made ahead. Saturated rather than wrapped:
        // a pool too large to reserve falls back to on-demand allocation (`Sandbox::new`).
        let tasks = config
            .max_concurrent_tasks
            .max(1)
            .saturating_add(u32::from(config.instantiate_ahead));
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(tasks)
            .total_core_instances(tasks.saturating_mul(CORE_INSTANCES_PER_TASK))
            .total_memories(tasks.saturating_mul(MEMORIES_PER_TASK))
            .total_tables(tasks.saturating_mul(TABLES_PER_TASK))
            .total_stacks(tasks)
            // No single memory can outgrow the task's whole budget.
            .max_memory_size(config.memory_limit)
            .linear_memory_keep_resident(config.keep_resident)
            .table_keep_resident(TABLE_KEEP_RESIDENT)
            // Not the PAGEMAP_SCAN reset (which would reset only the pages a task wrote), for
            // two reasons found in wasmtime 48's `sys/unix/pagemap.rs` (wasmtime PR #14357):
            // it leaves alone a written page that is swapped out (not `PRESENT`), so on a
            // machine with swap the next task of the slot could read what the previous one
            // wrote; and it stops after 32 runs of written pages and gives back everything
            // after, which is every interpreter heap (see `DEFAULT_KEEP_RESIDENT`).
            .pagemap_scan(wasmtime::Enabled::No);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    wasm
}

/// Advances the engine's epoch every [`EPOCH_TICK`] for as long as the engine lives.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .map(drop)
        .unwrap_or_else(|error| tracing::error!(%error, "cannot start the epoch ticker"));
}

/// The task's WASI context: its data folder and nothing else of the host (no other files, no
/// network, no environment, no arguments); stdout and stderr go to the host's logs.
pub fn wasi_context(data_folder: &Path, ids: &Arc<TaskIds>) -> Result<WasiCtx, RunError> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(GuestLog::new(ids.clone(), Stream::Stdout))
        .stderr(GuestLog::new(ids.clone(), Stream::Stderr))
        // File calls run on the task's own thread instead of hopping to the blocking pool:
        // reads and writes of the local data folder are short, and the hop costs more.
        .allow_blocking_current_thread(true)
        .preopened_dir(data_folder, GUEST_DATA_FOLDER, FsPerms::ReadWrite)
        .map_err(|error| {
            RunError::Setup(format!(
                "cannot open the data folder {}: {error}",
                data_folder.display()
            ))
        })?;
    Ok(builder.build())
}

/// Sorts an error out of instantiation or the `process` call.
fn classify(error: wasmtime::Error, max_duration: Duration) -> RunError {
    if matches!(error.downcast_ref::<Trap>(), Some(Trap::Interrupt))
        || error.downcast_ref::<DeadlineReached>().is_some()
    {
        return RunError::Deadline(max_duration);
    }
    if let Some(limit) = error.downcast_ref::<MemoryLimitExceeded>() {
        return RunError::Trap(format!("{limit}\n{error:?}"));
    }
    // `{:?}` gives the trap message followed by the wasm backtrace.
    RunError::Trap(format!("{error:?}"))
}
