//! The data folders of the embedded agent's attempts, and the copies of their inputs.
//!
//! Each attempt gets a folder holding nothing but copies of its payload and dependencies, as
//! ArmoniK's agent gives it (copies: a task that writes to an input must not change the
//! result). The folders and the copies' files are reused from attempt to attempt instead of
//! being removed and made anew: on an ext4 without a journal (these machines' disks), making
//! a file or folder costs about 0.8 ms once files were removed in the last minutes, since the
//! inode allocator then skips every inode freed in that time (`recently_deleted` in the
//! kernel's `fs/ext4/ialloc.c`); moving and truncating a file costs about 30 µs. So in steady
//! state an attempt makes one file per output it writes and removes none.
//!
//! Reuse never lets one attempt see another's data: a folder is reused only after its guest
//! returned (no file operation of it is pending) and once emptied; a file only when nothing
//! can write to it any more, and emptied (see `host_files::recycling`).

use std::io;
use std::sync::{Mutex, MutexGuard};

use crate::host_files::Folder;

/// Spare files kept at most: enough for the inputs of the attempts running at once; a task
/// with more dependencies makes the others anew.
const MAX_SPARES: usize = 4096;

/// The attempts' folders (`<dir>/tasks/<n>`) and the spare files (`<dir>/spares`), which no
/// task sees.
pub(crate) struct TaskFolders {
    root: Folder,
    spares: Folder,
    pool: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    /// Empty folders, ready for an attempt.
    folders: Vec<Folder>,
    /// Names of the empty files in `spares`.
    spares: Vec<String>,
    /// The number in the next folder's or spare's name.
    next: u64,
}

impl Pool {
    fn name(&mut self) -> String {
        self.next += 1;
        self.next.to_string()
    }
}

impl TaskFolders {
    /// Task folders under `dir`, private to this user. What an earlier process left there
    /// (a `dev --data-dir` stopped while tasks ran) is removed: folders are named by a
    /// counter that starts again, and no task may see another's inputs.
    ///
    /// # Errors
    /// The folders cannot be made or emptied.
    pub(crate) fn new(dir: &Folder) -> io::Result<Self> {
        let root = dir.subfolder("tasks")?;
        let spares = dir.subfolder("spares")?;
        root.remove_contents()?;
        spares.remove_contents()?;
        Ok(Self {
            root,
            spares,
            pool: Mutex::default(),
        })
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        // Every update of the pool is complete before anything that could panic.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty folder for an attempt.
    ///
    /// # Errors
    /// A new folder cannot be made.
    pub(crate) fn take(&self) -> io::Result<Folder> {
        let mut pool = self.pool();
        if let Some(folder) = pool.folders.pop() {
            return Ok(folder);
        }
        let name = pool.name();
        drop(pool);
        self.root.subfolder(&name)
    }

    /// Copies the store's file `id` into `folder` (an attempt's) as `id`, in a spare file
    /// when there is one. A result completed without a file reads as empty, as in ArmoniK.
    ///
    /// # Errors
    /// The store's file is not a regular file, or I/O fails.
    pub(crate) fn copy_in(&self, store: &Folder, id: &str, folder: &Folder) -> io::Result<()> {
        let mut source = match store.open_file(id) {
            Ok(source) => Some(source),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        let spare = self.pool().spares.pop();
        if let Some(spare) = spare {
            let filled = match &mut source {
                Some(source) => self.spares.reuse_spare(&spare, folder, id, source),
                None => self
                    .spares
                    .reuse_spare(&spare, folder, id, &mut io::empty()),
            };
            if filled.is_ok() {
                return Ok(());
            }
            // A spare that cannot serve is dropped; the copy is made anew below.
            let _ = self.spares.remove_file(&spare);
        }
        match &mut source {
            Some(_) => store.copy_file(id, folder, id).map(drop),
            None => {
                folder.clear(id)?;
                folder.write(id, b"")
            }
        }
    }

    /// Takes back an attempt's folder once its attempt ended. With `guest_returned` (its
    /// guest ran to its end, so no file operation of it is pending), the folder is emptied
    /// and kept for another attempt, and the files in it that nothing can write to any more
    /// become spares; otherwise (the guest was stopped, or may still be stopping) the folder
    /// is removed.
    pub(crate) fn give_back(&self, folder: Folder, guest_returned: bool) {
        let name = folder
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned);
        if guest_returned {
            let room = MAX_SPARES.saturating_sub(self.pool().spares.len());
            let recycled = folder.recycle_contents(&self.spares, || self.pool().name(), room);
            match recycled {
                Ok(spares) => {
                    let mut pool = self.pool();
                    pool.spares.extend(spares);
                    pool.folders.push(folder);
                    return;
                }
                Err(error) => {
                    tracing::warn!(folder = %folder.path().display(), %error, "cannot empty a task's data folder");
                }
            }
        }
        drop(folder);
        if let Some(name) = name
            && let Err(error) = self.root.clear(&name)
        {
            tracing::warn!(%name, %error, "cannot remove a task's data folder");
        }
    }
}
