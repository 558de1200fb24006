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
            let recycled = self
                .spares
                .recycle(&folder, IN_PLACE)
                .and_then(|leftovers| Ok((leftovers, folder.listing_size()?)));
            match recycled {
                Ok((mut leftovers, size)) => {
                    let mut pool = self.pool();
                    // Data deleted while the files were moved: `forget_copies` may have
                    // emptied the spares before they came, so they are emptied again. Checked
                    // under the pool's lock, which `forget_copies` takes once it counted the
                    // new generation: the leftovers are emptied here or there.
                    let current = copies == self.copies() || {
                        self.spares.empty_all();
                        leftovers.empty().is_ok()
                    };
                    if current && size <= MAX_REUSED_LISTING.max(pool.new_listing.saturating_mul(4))
                    {
                        pool.folders.push((folder, leftovers));
                        return;
                    }
                    // Its listing stays long: removed below.
                }
                Err(error) => {
                    tracing::warn!(folder = %folder.path().display(), %error, "cannot empty a task's data folder");
                }
            }
        }
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
mod tests {
    use std::os::unix::fs::MetadataExt as _;

    use super::*;

    /// Task folders in a new temporary folder of `dir`, with that folder's handle.
    fn folders_in(dir: &std::path::Path) -> (tempfile::TempDir, Folder, TaskFolders) {
        let dir = tempfile::tempdir_in(dir).expect("tempdir");
        let root = Folder::create(dir.path(), true).expect("root");
        let folders = TaskFolders::new(&root, None).expect("task folders");
        (dir, root, folders)
    }

    fn folders() -> (tempfile::TempDir, Folder, TaskFolders) {
        folders_in(&std::env::temp_dir())
    }

    fn inode(folder: &Folder) -> u64 {
        std::fs::metadata(folder.path()).expect("stat").ino()
    }

    fn is_empty(folder: &Folder) -> bool {
        std::fs::read_dir(folder.path())
            .expect("list")
            .next()
            .is_none()
    }

    /// The content of each file among the spares of the task folders in `dir`.
    fn spare_contents(dir: &std::path::Path) -> Vec<Vec<u8>> {
        std::fs::read_dir(dir.join("spares"))
            .expect("spares")
            .map(|entry| entry.expect("entry").path())
            .filter(|path| path.is_file())
            .map(|path| std::fs::read(path).expect("read"))
            .collect()
    }

    /// A folder taken again after an attempt that left `names` in it, each holding `bytes`:
    /// with those files kept in place.
    fn taken_with_kept(folders: &TaskFolders, names: &[&str], bytes: &[u8]) -> (Folder, Leftovers) {
        let folder = take(folders);
        for name in names {
            folder.write(name, bytes).expect("write");
        }
        folders.give_back(folder, true, folders.copies());
        let (folder, leftovers) = folders.take().expect("take");
        assert!(!leftovers.is_empty(), "the files stayed in place");
        (folder, leftovers)
    }

    /// A folder taken for an attempt, with nothing left of an earlier one once settled.
    fn take(folders: &TaskFolders) -> Folder {
        let (folder, leftovers) = folders.take().expect("take");
        folders
            .settle(leftovers, &folder, folders.copies())
            .expect("settle");
        folder
    }

    #[test]
    fn a_folder_comes_back_empty_for_the_next_attempt() {
        let (_dir, _root, folders) = folders();
        let folder = take(&folders);
        let first = inode(&folder);
        for name in ["payload", "dep", "out"] {
            folder.write(name, b"bytes").expect("write");
        }
        folders.give_back(folder, true, folders.copies());
        let again = take(&folders);
        assert_eq!(inode(&again), first, "the emptied folder serves again");
        assert!(is_empty(&again));
    }

    /// The files a folder kept serve its next attempt's inputs; the guest then finds its
    /// inputs and nothing else.
    #[test]
    fn kept_files_serve_the_next_inputs_and_nothing_else_stays() {
        let (dir, root, folders) = folders();
        let store = ResultStore::new(root.subfolder("results").expect("results"));
        store.write("blob", b"the component").expect("write");
        store.write("payload-2", b"").expect("write");
        let (folder, mut leftovers) = folders.take().expect("take");
        let copies = folders.copies();
        folders
            .copy_inputs(&store, ["blob", "payload-2"], &folder, &mut leftovers)
            .expect("copy");
        folders.settle(leftovers, &folder, copies).expect("settle");
        folder.write("output", b"a result").expect("write");
        folders.give_back(folder, true, copies);

        // Of the blob's size: the blob's file would serve it, were it not reserved for the blob.
        store.write("payload-3", b"next payload!").expect("write");
        let (folder, mut leftovers) = folders.take().expect("take");
        let copies = folders.copies();
        assert!(!leftovers.is_empty(), "the files stayed in place");
        let file_inode = |name: &str| {
            std::fs::metadata(folder.path().join(name))
                .expect("stat")
                .ino()
        };
        let blob = file_inode("blob");
        let others = [file_inode("payload-2"), file_inode("output")];
        // The payload listed first: it must not take the blob's file.
        folders
            .copy_inputs(&store, ["payload-3", "blob"], &folder, &mut leftovers)
            .expect("copy");
        folders.settle(leftovers, &folder, copies).expect("settle");
        let mut names = folder.file_names().expect("names");
        names.sort();
        assert_eq!(names, ["blob", "payload-3"]);
        assert_eq!(folder.read("blob").expect("read"), b"the component");
        assert_eq!(folder.read("payload-3").expect("read"), b"next payload!");
        assert_eq!(
            file_inode("blob"),
            blob,
            "the blob's copy is written where it was"
        );
        assert!(
            others.contains(&file_inode("payload-3")),
            "the payload is written over a file kept in place"
        );
        let spares = std::fs::read_dir(dir.path().join("spares"))
            .expect("spares")
            .count();
        assert_eq!(spares, 1, "the file not used is a spare");
    }

    /// Results' data deleted while a folder waits in the pool: the files it kept are emptied
    /// at once (they may copy that data), and the folder still serves.
    #[test]
    fn files_kept_in_place_are_emptied_when_data_is_deleted() {
        let (dir, _root, folders) = folders();
        let folder = take(&folders);
        let path = folder.path().to_owned();
        folder.write("input", b"deleted data").expect("write");
        folders.give_back(folder, true, folders.copies());
        folders.forget_copies();
        assert_eq!(std::fs::read(path.join("input")).expect("kept"), b"");
        let again = take(&folders);
        assert_eq!(again.path(), path);
        assert!(is_empty(&again));
        let spares = spare_contents(dir.path());
        assert!(
            spares.iter().all(Vec::is_empty),
            "a spare keeps the deleted data: {spares:?}"
        );
    }

    /// Results' data deleted while an attempt's inputs are copied: the files its folder kept
    /// that it did not use go to the spares emptied.
    #[test]
    fn files_kept_in_place_and_not_used_are_emptied_when_data_is_deleted_meanwhile() {
        let (dir, root, folders) = folders();
        let store = ResultStore::new(root.subfolder("results").expect("results"));
        store.write("payload", b"p").expect("write");
        let (folder, mut leftovers) = taken_with_kept(&folders, &["one", "two"], b"deleted data");
        let copies = folders.copies();
        folders
            .copy_inputs(&store, ["payload"], &folder, &mut leftovers)
            .expect("copy");
        folders.forget_copies();
        folders.settle(leftovers, &folder, copies).expect("settle");
        assert_eq!(folder.file_names().expect("names"), ["payload"]);
        let spares = spare_contents(dir.path());
        assert!(
            spares.iter().all(Vec::is_empty),
            "a spare keeps the deleted data: {spares:?}"
        );
    }

    #[test]
    fn a_folder_whose_listing_grew_long_is_made_anew() {
        // In the repository's file system rather than `TMPDIR`, which is often a tmpfs, where
        // a listing shrinks as its entries go and the folder is rightly reused.
        let (dir, root, folders) = folders_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")));
        let folder = take(&folders);
        let path = folder.path().to_owned();
        // The inputs of a fan-in, named as results are.
        let inputs: Vec<String> = (0..1_000)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        for input in &inputs {
            folder.write(input, b"1").expect("write");
        }
        let grown = folder.listing_size().expect("size");
        // Whether this file system keeps a directory's size once its entries are gone.
        let probe = root.subfolder("probe").expect("probe");
        let new = probe.listing_size().expect("size");
        for input in &inputs[..500] {
            probe.write(input, b"").expect("write");
        }
        for input in &inputs[..500] {
            probe.remove_file(input).expect("remove");
        }
        let keeps_size = probe.listing_size().expect("size") > new;
        folders.give_back(folder, true, folders.copies());
        let next = take(&folders);
        assert!(is_empty(&next));
        assert_eq!(
            std::fs::read_dir(dir.path().join("spares"))
                .expect("spares")
                .count(),
            inputs.len(),
            "the inputs' files become spares"
        );
        if keeps_size {
            assert_ne!(next.path(), path, "a folder of {grown} bytes is reused");
            assert!(!path.exists(), "{} is left", path.display());
            let size = next.listing_size().expect("size");
            assert!(
                size <= new,
                "the next attempt lists {size} bytes, a new folder {new}"
            );
        } else {
            assert_eq!(next.path(), path, "a folder whose listing shrank is reused");
        }
    }

    #[test]
    fn a_folder_whose_guest_did_not_return_is_removed() {
        let (_dir, _root, folders) = folders();
        let folder = take(&folders);
        let path = folder.path().to_owned();
        folder.write("out", b"partial").expect("write");
        folders.give_back(folder, false, folders.copies());
        assert!(!path.exists(), "{} is left", path.display());
        let next = take(&folders);
        assert!(is_empty(&next));
    }

    /// Results' data deleted while an attempt ran: the copies in its folder may hold that
    /// data, so they are removed with the folder instead of kept as spares (which keep their
    /// bytes until they serve again).
    #[test]
    fn copies_taken_before_data_was_deleted_do_not_become_spares() {
        let (dir, _root, folders) = folders();
        let copies = folders.copies();
        let folder = take(&folders);
        let path = folder.path().to_owned();
        folder.write("input", b"deleted data").expect("write");
        folders.forget_copies();
        folders.give_back(folder, true, copies);
        assert!(!path.exists(), "{} is left", path.display());
        let spares = spare_contents(dir.path());
        assert!(
            spares.iter().all(Vec::is_empty),
            "a spare keeps the deleted data: {spares:?}"
        );
        // A folder taken after the deletion is kept as before.
        let folder = take(&folders);
        let kept = inode(&folder);
        folder.write("input", b"data").expect("write");
        folders.give_back(folder, true, folders.copies());
        assert_eq!(inode(&take(&folders)), kept);
    }

    /// A folder given back gets fresh times: those its guest set (ahead of now, which
    /// `relatime` keeps) do not reach its next attempt, even when its files stay in place.
    #[test]
    fn a_folder_given_back_does_not_keep_the_times_its_guest_set() {
        let (_dir, _root, folders) = folders();
        let folder = take(&folders);
        folder.write("kept", b"x").expect("write");
        let ahead = std::time::SystemTime::now() + std::time::Duration::from_secs(1 << 20);
        std::fs::File::open(folder.path())
            .and_then(|dir| {
                let times = std::fs::FileTimes::new()
                    .set_accessed(ahead)
                    .set_modified(ahead);
                dir.set_times(times)
            })
            .expect("set times");
        folders.give_back(folder, true, folders.copies());
        let (folder, leftovers) = folders.take().expect("take");
        assert!(!leftovers.is_empty(), "the file stayed in place");
        let meta = std::fs::metadata(folder.path()).expect("stat");
        for time in [meta.accessed(), meta.modified()] {
            assert!(
                time.expect("time") < ahead,
                "the folder kept its guest's time"
            );
        }
        drop(leftovers);
    }

    /// Results' data deleted while an attempt's inputs are copied, and a leftover that can
    /// neither be moved nor removed: settling fails, and the spares are emptied all the same.
    #[test]
    fn a_failed_settle_still_empties_the_spares_after_a_deletion() {
        let (dir, _root, folders) = folders();
        let (folder, leftovers) = taken_with_kept(&folders, &["kept"], b"x");
        let copies = folders.copies();
        folders.forget_copies();
        // Spares holding data, made after the deletion: more files than stay in place.
        let other = take(&folders);
        for i in 0..=IN_PLACE {
            other.write(&i.to_string(), b"data").expect("write");
        }
        folders.give_back(other, true, folders.copies());
        // A folder in the leftover's place, not removed as a file, and every name a spare
        // could take next already used (spares are numbered): it cannot move either.
        std::fs::remove_file(folder.path().join("kept")).expect("remove");
        std::fs::create_dir(folder.path().join("kept")).expect("folder");
        let spares = dir.path().join("spares");
        for n in 1..=1_000 {
            if !spares.join(n.to_string()).exists() {
                std::fs::create_dir(spares.join(n.to_string())).expect("taken name");
            }
        }
        folders
            .settle(leftovers, &folder, copies)
            .expect_err("a folder is not removed as a file");
        let spares = spare_contents(dir.path());
        assert_eq!(spares.len(), IN_PLACE + 1);
        assert!(
            spares.iter().all(Vec::is_empty),
            "a spare keeps data: {spares:?}"
        );
    }

    /// An input listed twice (a payload that is also a data dependency) is copied once: it
    /// uses one kept file, and the other goes to the spares.
    #[test]
    fn an_input_listed_twice_is_copied_once() {
        let (dir, root, folders) = folders();
        let store = ResultStore::new(root.subfolder("results").expect("results"));
        store.write("input", b"i").expect("write");
        let (folder, mut leftovers) = taken_with_kept(&folders, &["one", "two"], b"x");
        let copies = folders.copies();
        folders
            .copy_inputs(&store, ["input", "input"], &folder, &mut leftovers)
            .expect("copy");
        folders.settle(leftovers, &folder, copies).expect("settle");
        assert_eq!(folder.file_names().expect("names"), ["input"]);
        assert_eq!(folder.read("input").expect("read"), b"i");
        let spares = std::fs::read_dir(dir.path().join("spares"))
            .expect("spares")
            .count();
        assert_eq!(spares, 1, "one kept file served, the other is a spare");
    }
}
