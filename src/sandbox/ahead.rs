//! Instances made ahead of their task.
//!
//! Instantiating a component is most of a small task's start: a componentize-py component
//! links about fourteen core modules and runs their initialisation (over a millisecond), a
//! Rust one a few (tens of microseconds). ArmoniK's polling agent gives a worker one task at
//! a time and spends milliseconds between two (it records the outcome, acknowledges the
//! message, fetches the next task's data), so right after a task ends the sandbox makes the
//! next instance of the same component, with nothing of any task in it: an empty WASI context
//! (no folder, no stdio), an agent bridge and a `data-folder` that refuse every call, no ids.
//! The next task of that component binds its own WASI context, agent bridge, data folder and
//! deadline to it and calls it;
//! a task that arrives while that instance is being made waits for it rather than making a
//! second one.
//!
//! Each instance still serves exactly one task and is then dropped: a fresh state per task,
//! as before; only the making moved off the task's path. An instance is used only if making
//! it touched nothing that binding replaces: no WASI resource handed to the guest (preopens,
//! stdio streams; an empty folder is preopened where tasks have theirs, so that a start
//! function listing the preopens takes one), no agent call and no `data-folder` call. A component whose instantiation does any is made
//! with each task from then on, as before.

use std::collections::HashSet;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;

use wasmtime_wasi::FsPerms;

use super::{GUEST_DATA_FOLDER, Sandbox, TaskState};
use crate::agent::bridge::AgentBridge;
use crate::bindings::{Worker, WorkerPre};
use crate::sandbox::data_folder::DataFolder;

/// How long making an instance ahead may take: a component whose start-up runs longer is
/// interrupted there, and is then instantiated with its tasks (which pay for it themselves).
const MAKING_BUDGET: Duration = Duration::from_secs(10);

/// An instance made ahead, not yet bound to a task.
pub(super) struct Ready {
    /// Keeps the component alive while this waits, so its image address (the key) cannot
    /// name another component.
    _pre: WorkerPre<TaskState>,
    key: usize,
    pub(super) store: Store<TaskState>,
    pub(super) worker: Worker,
}

/// The instance made ahead, or being made.
pub(super) struct Ahead {
    slot: Mutex<Slot>,
    /// Preopened where tasks have their data folder while an instance is made (see
    /// `make_unbound`).
    empty_folder: EmptyFolder,
}

/// An empty directory already removed, held open: nothing can be made in it, and nothing is
/// left behind however the process ends (a worker or task process killed outright). It is
/// reached through `/proc/self/fd`; where that cannot be opened, no instance is made ahead.
struct EmptyFolder {
    _dir: std::fs::File,
    path: std::path::PathBuf,
}

impl EmptyFolder {
    fn new() -> std::io::Result<Self> {
        let made = tempfile::Builder::new()
            .prefix("armonik-wasm-empty-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()?;
        let dir = std::fs::File::open(made.path())?;
        made.close()?;
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&dir)).into();
        Ok(Self { _dir: dir, path })
    }
}

#[derive(Default)]
struct Slot {
    ready: Option<Ready>,
    /// The component being made now, and how to wake the tasks waiting for it.
    making: Option<(usize, Arc<Notify>)>,
    /// Components whose instantiation touched what binding replaces (by image address).
    refused: HashSet<usize>,
}

/// Identifies a loaded component while it is alive: where its compiled image is mapped.
fn key(pre: &WorkerPre<TaskState>) -> usize {
    pre.instance_pre().component().image_range().start as usize
}

impl Ahead {
    /// No instance yet.
    ///
    /// # Errors
    /// The empty folder cannot be made.
    pub(super) fn new() -> std::io::Result<Self> {
        Ok(Self {
            slot: Mutex::default(),
            empty_folder: EmptyFolder::new()?,
        })
    }

    fn slot(&self) -> MutexGuard<'_, Slot> {
        // Every update of the slot is complete before anything that could panic.
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The instance made ahead for `pre`, waiting for it if it is being made. `None` when
    /// there is none (or another component's, which is dropped).
    pub(super) async fn take(&self, pre: &WorkerPre<TaskState>) -> Option<Ready> {
        let key = key(pre);
        let notify = {
            let mut slot = self.slot();
            match slot.ready.take() {
                Some(ready) if ready.key == key => return Some(ready),
                // Another component's: its pool slot and memory go back now.
                other => drop(other),
            }
            match &slot.making {
                Some((making, notify)) if *making == key => notify.clone(),
                _ => return None,
            }
        };
        let mut notified = pin!(notify.notified());
        notified.as_mut().enable();
        // Made between the check above and `enable`: nothing to wait for.
        if self.slot().making.as_ref().is_none_or(|(k, _)| *k != key) {
            return self.take_now(key);
        }
        notified.await;
        self.take_now(key)
    }

    fn take_now(&self, key: usize) -> Option<Ready> {
        let mut slot = self.slot();
        match slot.ready.take() {
            Some(ready) if ready.key == key => Some(ready),
            other => {
                slot.ready = other;
                None
            }
        }
    }

    /// Makes an instance of `pre` in the background, unless one is ready or being made, or
    /// the component was refused.
    pub(super) fn make(sandbox: &Arc<Sandbox>, pre: &WorkerPre<TaskState>) {
        let key = key(pre);
        let notify = {
            let mut slot = sandbox.ahead.slot();
            let ready = slot.ready.as_ref().is_some_and(|r| r.key == key);
            if ready || slot.making.is_some() || slot.refused.contains(&key) {
                return;
            }
            let notify = Arc::new(Notify::new());
            slot.making = Some((key, notify.clone()));
            notify
        };
        let sandbox = sandbox.clone();
        let pre = pre.clone();
        tokio::spawn(async move {
            // Whatever happens to the making (a panic included), the waiting tasks go on.
            let _done = Done {
                ahead: &sandbox.ahead,
                notify,
            };
            let made = make_unbound(&sandbox, &pre).await;
            let mut slot = sandbox.ahead.slot();
            match made {
                Some((store, worker)) => {
                    slot.ready = Some(Ready {
                        _pre: pre,
                        key,
                        store,
                        worker,
                    });
                }
                None => {
                    slot.refused.insert(key);
                }
            }
        });
    }
}

/// Ends a making: clears the mark and wakes the tasks waiting for it.
struct Done<'a> {
    ahead: &'a Ahead,
    notify: Arc<Notify>,
}

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.ahead.slot().making = None;
        self.notify.notify_waiters();
    }
}

/// A store and instance of `pre` bound to no task, or `None` when instantiating failed or
/// touched what binding replaces (see the module documentation).
async fn make_unbound(
    sandbox: &Sandbox,
    pre: &WorkerPre<TaskState>,
) -> Option<(Store<TaskState>, Worker)> {
    let deadline = Instant::now() + MAKING_BUDGET;
    // An empty folder where tasks have theirs: a start function that looks for its files
    // (wasi-libc lists the preopens once and keeps the answer) takes a descriptor, which
    // refuses the component below, instead of learning for good that there is no folder.
    let mut wasi = WasiCtx::builder();
    if let Err(error) = wasi.preopened_dir(
        &sandbox.ahead.empty_folder.path,
        GUEST_DATA_FOLDER,
        FsPerms::ReadOnly,
    ) {
        tracing::debug!(%error, "cannot preopen the empty folder of instances made ahead");
        return None;
    }
    let mut store = sandbox.new_store(
        wasi.build(),
        AgentBridge::unbound(),
        DataFolder::unbound(),
        deadline,
    );
    let instantiated = tokio::time::timeout_at(deadline, pre.instantiate_async(&mut store)).await;
    let worker = match instantiated {
        Ok(Ok(worker)) => worker,
        Ok(Err(error)) => {
            tracing::debug!(%error, "a component could not be instantiated ahead of its task");
            return None;
        }
        Err(_elapsed) => return None,
    };
    let state = store.data_mut();
    let touched = state.table.iter_mut().next().is_some()
        || state.bridge.was_called()
        || state.files.was_called();
    if touched {
        tracing::debug!(
            "a component's instantiation used WASI resources, the agent or data-folder: it is instantiated with each task"
        );
        return None;
    }
    Some((store, worker))
}

/// Binds a task to an instance made ahead: its WASI context, its agent bridge, its data
/// folder, its deadline.
pub(super) fn bind(
    sandbox: &Sandbox,
    store: &mut Store<TaskState>,
    wasi: WasiCtx,
    bridge: AgentBridge,
    files: DataFolder,
    deadline: Instant,
) {
    let state = store.data_mut();
    state.wasi = wasi;
    state.bridge = bridge;
    state.files = files;
    sandbox.set_deadline(store, deadline);
}
