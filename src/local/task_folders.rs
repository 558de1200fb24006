//! The data folders of the embedded agent's attempts, and the copies of their inputs.
//!
//! Each attempt gets a folder holding nothing but copies of its payload and dependencies, as
//! ArmoniK's agent gives it (copies: a task that writes to an input must not change the
//! result). The folders and the copies' files are reused from attempt to attempt instead of
//! being removed and made anew: on an ext4 without a journal (these machines' disks), making
//! a file or folder costs about 0.8 ms once files were removed in the last minutes, since the
//! inode allocator then skips every inode freed in that time (`recently_deleted` in the
//! kernel's `fs/ext4/ialloc.c`); moving and truncating a file costs about 30 µs. The spares
//! serve both the copies of inputs and the files the guest writes through the host
//! (`data-folder`); small results are then kept in memory (`result_store`), so their files
//! return as spares. So in steady state an attempt of small tasks makes no file and removes
//! none; one writing through WASI makes one file per output.
//!
//! Reuse never lets one attempt see another's data: a folder is reused only after its guest
//! returned (no file operation of it is pending) and once emptied; a file only when nothing
//! can read or write it any more, and it is overwritten and cut before it is renamed into a
//! folder (see `host_files::recycling`).

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::host_files::{EmptyFiles, Folder, Leftovers, Spares};
use crate::local::result_store::{ResultData, ResultStore};

/// Spare files kept at most: the inputs of a fan-in task of up to this many dependencies (the
/// sum of a 10,000-way fan-out, say) come back as spares, for the next such task, instead of
/// being removed (which slows every file made in the next minutes on ext4, see above). What
/// they hold is bounded apart (`host_files::Spares`): most are a few bytes. The empty files
/// kept for the next process (`host_files::EmptyFiles`) are bounded alike.
pub(crate) const MAX_SPARES: usize = 16_384;

/// The listing size (`Folder::listing_size`) past which an emptied folder is removed instead
/// of reused: four 4 KiB ext4 blocks, the entries of about 200 inputs (named by UUIDs), or
/// four times a new folder's where that is more (ext4 with larger blocks). An ext4 directory
/// keeps the blocks of its largest listing, and every later listing of it, two per attempt,
/// reads them all: the folder of a 10,000-way fan-in's task (about 600 KiB) made each no-op
/// attempt after it in the same process 40% slower (`dev`, measured). Making a folder anew
/// costs less, once. (tmpfs and btrfs report a size that shrinks with the listing.)
const MAX_REUSED_LISTING: u64 = 16 << 10;

/// Files an emptied folder keeps in place for its next attempt, at most (more, and they all
/// become spares): a task's payload, library blob, a few dependencies and outputs. Each such
/// file then serves that attempt's inputs with at most a rename inside the folder, where a
/// spare costs two across folders (out of the folder, then into the next), each taking the
/// file system's rename lock and looking the name up in the spares' large folder; one that
/// keeps its name (a task's library blob) is not renamed at all.
const IN_PLACE: usize = 16;

/// The attempts' folders (`<dir>/tasks/<n>`) and the spare files (`<dir>/spares`), which no
/// task sees.
pub(crate) struct TaskFolders {
    root: Folder,
    spares: Arc<Spares>,
    pool: Mutex<Pool>,
    /// The generation of copies: one more each time results' data is deleted
    /// ([`forget_copies`](Self::forget_copies)).
    copies: AtomicU64,
}

#[derive(Default)]
struct Pool {
    /// Emptied folders, ready for an attempt, with the files each kept in place.
    folders: Vec<(Folder, Leftovers)>,
    /// The number in the next folder's name.
    next: u64,
    /// The listing size of a new folder, once one was made.
    new_listing: u64,
}

impl TaskFolders {
    /// Task folders under `dir`, private to this user, whose new files come from
    /// `empty_files` first (and whose spares go there at the end). What an earlier process
    /// left there (a `dev --data-dir` stopped while tasks ran) is removed: folders are named
    /// by a counter that starts again, and no task may see another's inputs.
    ///
    /// # Errors
    /// The folders cannot be made or emptied.
    pub(crate) fn new(dir: &Folder, empty_files: Option<EmptyFiles>) -> io::Result<Self> {
        let root = dir.subfolder("tasks")?;
        root.remove_contents()?;
        let spares = Spares::new(dir.subfolder("spares")?, MAX_SPARES, empty_files)?;
        Ok(Self {
            root,
            spares: Arc::new(spares),
            pool: Mutex::default(),
            copies: AtomicU64::new(0),
        })
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        // Every update of the pool is complete before anything that could panic.
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A folder for an attempt, whose files are made from spares while there are some (the
    /// attempt's inputs, and what its guest writes through the host), with the files it kept
    /// in place from its previous attempt: they serve the inputs
    /// ([`copy_inputs`](Self::copy_inputs)), and must be [`settle`](Self::settle)d before the
    /// guest runs.
    ///
    /// # Errors
    /// A new folder cannot be made.
    pub(crate) fn take(&self) -> io::Result<(Folder, Leftovers)> {
        let mut pool = self.pool();
        if let Some(taken) = pool.folders.pop() {
            return Ok(taken);
        }
        pool.next += 1;
        let name = pool.next.to_string();
        drop(pool);
        let folder = self.root.subfolder(&name)?.with_spares(self.spares.clone());
        if let Ok(size) = folder.listing_size() {
            let mut pool = self.pool();
            pool.new_listing = pool.new_listing.max(size);
        }
        Ok((folder, Leftovers::none(&self.spares)))
    }

    /// Copies result `id`'s data from `store` into `folder` (an attempt's) as `id`, replacing
    /// a file or link there (a directory there must be cleared first), in one of `leftovers`
    /// (the folder's own) if one is left. A result completed without data reads as empty, as
    /// in ArmoniK.
    ///
    /// # Errors
    /// The store's file is not a regular file, or I/O fails.
    pub(crate) fn copy_in(
        &self,
        store: &ResultStore,
        id: &str,
        folder: &Folder,
        leftovers: Option<&mut Leftovers>,
    ) -> io::Result<()> {
        let mut source = match store.open(id) {
            Ok(source) => Some(source),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(error),
        };
        let size = source.as_ref().map_or(0, ResultData::size);
        let fill = |file: &mut std::fs::File| match &mut source {
            Some(source) => source.copy_to(file),
            None => Ok(0),
        };
        match leftovers {
            Some(leftovers) => leftovers.write(folder, id, Some(size), fill),
            None => folder.write_with(id, Some(size), fill),
        }
        .map(drop)
    }

    /// Copies the results `ids` (an attempt's payload and data dependencies) into `folder`
    /// (see [`copy_in`](Self::copy_in)), over `leftovers`, the folder's own: a leftover
    /// named as an input serves that input only, where it is (a task's library blob, in
    /// each of its attempts; `Leftovers::reserve`). An id listed twice (a payload that is
    /// also a data dependency) is copied once.
    ///
    /// # Errors
    /// As [`copy_in`](Self::copy_in); the folder then holds some of the inputs.
    pub(crate) fn copy_inputs<'a, I>(
        &self,
        store: &ResultStore,
        ids: I,
        folder: &Folder,
        leftovers: &mut Leftovers,
    ) -> io::Result<()>
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: Clone,
    {
        let ids = ids.into_iter();
        leftovers.reserve(ids.clone());
        let mut copied = std::collections::HashSet::new();
        for id in ids {
            if copied.insert(id) {
                self.copy_in(store, id, folder, Some(leftovers))?;
            }
        }
        Ok(())
    }

    /// Moves the `leftovers` of `folder` that its attempt's inputs did not use into the
    /// spares: the guest sees only its inputs. `copies` as for [`give_back`](Self::give_back).
    ///
    /// # Errors
    /// A leftover can neither be moved nor removed: the attempt must not run in this folder.
    pub(crate) fn settle(
        &self,
        leftovers: Leftovers,
        folder: &Folder,
        copies: u64,
    ) -> io::Result<()> {
        if leftovers.is_empty() {
            return Ok(());
        }
        let settled = leftovers.settle(folder);
        // Data deleted since the attempt began: what was moved may copy it, even when a
        // later leftover failed to move.
        if copies != self.copies() {
            self.spares.empty_all();
        }
        settled
    }

    /// Ends the spare files: emptied into the empty files kept for the next process, before
    /// the data folder that holds them is removed (dropping the folders does it too, when
    /// nothing else holds the agent any more).
    pub(crate) fn release(&self) {
        for (folder, leftovers) in std::mem::take(&mut self.pool().folders) {
            if let Err(error) = leftovers.settle(&folder) {
                tracing::warn!(folder = %folder.path().display(), %error, "cannot empty a task's data folder");
            }
        }
        if let Err(error) = self.spares.release_all() {
            tracing::warn!(%error, "cannot remove the spare files");
        }
    }

    /// The generation of copies now: an attempt reads it before its inputs are copied, and
    /// gives it to [`give_back`](Self::give_back).
    pub(crate) fn copies(&self) -> u64 {
        self.copies.load(Ordering::SeqCst)
    }

    /// Empties the spare files and the files the emptied folders kept in place, whose content
    /// may copy results whose data was just deleted: it must not outlive them on disk. The
    /// folders of the attempts running now may hold such copies too: their files are
    /// removed, not kept, when they come back.
    pub(crate) fn forget_copies(&self) {
        self.copies.fetch_add(1, Ordering::SeqCst);
        self.spares.empty_all();
        let mut pool = self.pool();
        for (folder, mut leftovers) in std::mem::take(&mut pool.folders) {
            match leftovers.empty() {
                Ok(()) => pool.folders.push((folder, leftovers)),
                Err(error) => {
                    tracing::warn!(folder = %folder.path().display(), %error, "cannot empty the files a task's data folder kept");
                    drop(leftovers);
                    self.remove(folder);
                }
            }
        }
    }

    /// Takes back an attempt's folder once its attempt ended. With `guest_returned` (its
    /// guest ran to its end, so no file operation of it is pending), the folder is emptied
    /// and kept for another attempt (unless its listing grew long, see
    /// [`MAX_REUSED_LISTING`]), and the files in it that nothing can write to any more become
    /// spares; otherwise (the guest was stopped, or may still be stopping), or when results'
    /// data was deleted since the folder was taken in generation `copies` (its copies may
    /// hold that data), the folder is removed with its files.
    pub(crate) fn give_back(&self, folder: Folder, guest_returned: bool, copies: u64) {
        if guest_returned && copies == self.copies() {
            match self.empty(&folder) {
                Ok(emptied) => return self.keep(folder, emptied, copies),
                Err(error) => {
                    tracing::warn!(folder = %folder.path().display(), %error, "cannot empty a task's data folder");
                }
            }
        }
        self.remove(folder);
    }

    /// Empties `folder` for its next attempt (see `Spares::recycle`): the files it keeps in
    /// place, and the size of its listing then, in bytes.
    fn empty(&self, folder: &Folder) -> io::Result<(Leftovers, u64)> {
        let leftovers = self.spares.recycle(folder, IN_PLACE)?;
        Ok((leftovers, folder.listing_size()?))
    }

    /// Puts `folder`, emptied by [`empty`](Self::empty) since it was taken in generation
    /// `copies`, in the pool; removes it instead when its listing stays long, or when data
    /// was deleted meanwhile and its leftovers cannot be emptied.
    fn keep(&self, folder: Folder, (mut leftovers, size): (Leftovers, u64), copies: u64) {
        {
            let mut pool = self.pool();
            // Data deleted while the files were moved: `forget_copies` may have emptied the
            // spares before they came, so they are emptied again. Checked under the pool's
            // lock, which `forget_copies` takes once it counted the new generation: the
            // leftovers are emptied here or there.
            let current = copies == self.copies() || {
                self.spares.empty_all();
                leftovers.empty().is_ok()
            };
            if current && size <= MAX_REUSED_LISTING.max(pool.new_listing.saturating_mul(4)) {
                pool.folders.push((folder, leftovers));
                return;
            }
        }
        // Its listing stays long, or its leftovers keep deleted data.
        self.remove(folder);
    }

    /// Removes `folder`, an attempt's, with everything in it.
    fn remove(&self, folder: Folder) {
        let name = folder
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned);
        drop(folder);
        if let Some(name) = name
            && let Err(error) = self.root.clear(&name)
        {
            tracing::warn!(%name, %error, "cannot remove a task's data folder");
        }
    }
}

impl Drop for TaskFolders {
    /// The spares hold copies of results: they go with the host, emptied into the empty
    /// files for the next process (a kept `--data-dir` keeps the results' own files only).
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests;
