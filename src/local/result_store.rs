//! The data of the embedded agent's results: small ones in memory, the others as files.
//!
//! A result of a few bytes (a subtask's payload, a no-op task's output) kept as a file costs a
//! new inode, which on an ext4 without a journal costs about 0.8 ms once files were removed in
//! the last minutes (see `crate::local::task_folders`), more than the rest of a small task.
//! Kept in memory up to `IN_MEMORY_MAX` bytes each and `IN_MEMORY_TOTAL` in all, they cost
//! a copy. Larger results, uploads (streamed) and the larger notified files of tasks (moved,
//! not copied) stay files, so memory does not grow with a result's size.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::host_files::{Folder, NewFile, plain_name};

/// Largest result kept in memory, in bytes: payloads and outputs of small tasks, with room for
/// a few KiB of parameters or a short text.
const IN_MEMORY_MAX: usize = 64 * 1024;

/// Bytes of result data kept in memory at most, all results together: above it, small results
/// are files too (a session of a million 64 KiB payloads must not take 64 GiB of memory).
const IN_MEMORY_TOTAL: usize = 256 << 20;

/// Result data, one entry per completed result with data, named by result id.
pub(crate) struct ResultStore {
    files: Folder,
    memory: Mutex<Memory>,
}

#[derive(Default)]
struct Memory {
    data: HashMap<String, Bytes>,
    /// Sum of the lengths in `data`.
    bytes: usize,
}

impl Memory {
    /// Whether `length` more bytes fit, one result and all together.
    fn has_room(&self, length: usize) -> bool {
        length <= IN_MEMORY_MAX && self.bytes + length <= IN_MEMORY_TOTAL
    }

    /// Keeps `data` as result `id` (a fresh id), counted.
    fn insert(&mut self, id: &str, data: Bytes) {
        self.bytes += data.len();
        if let Some(replaced) = self.data.insert(id.to_owned(), data) {
            self.bytes -= replaced.len();
        }
    }
}

/// A result's data, open for reading.
pub enum ResultData {
    /// A file of the store, and its size in bytes when opened (a stored file never changes).
    File(std::fs::File, u64),
    /// Data kept in memory.
    Memory(io::Cursor<Bytes>),
}

impl Read for ResultData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::File(file, _) => file.read(buf),
            Self::Memory(cursor) => cursor.read(buf),
        }
    }
}

impl ResultData {
    /// The data's size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::File(_, size) => *size,
            Self::Memory(cursor) => cursor.get_ref().len() as u64,
        }
    }

    /// Copies the data (all of it: call it on data just opened) to `target`, from `target`'s
    /// position on, by the
    /// kernel for a file (`copy_file_range`, without the probes of both files `io::copy` makes
    /// first; by reading and writing where the kernel cannot, across file systems of older
    /// kernels). Returns the bytes copied.
    ///
    /// # Errors
    /// Reading or writing fails.
    pub fn copy_to(&mut self, target: &mut std::fs::File) -> io::Result<u64> {
        match self {
            Self::File(file, size) => {
                let mut copied = 0;
                while copied < *size {
                    let left = usize::try_from(*size - copied).unwrap_or(usize::MAX);
                    match rustix::fs::copy_file_range(&*file, None, &*target, None, left) {
                        // Some kernels answer 0 where they cannot copy (overlay file systems
                        // in containers, as std's `io::copy` notes): read and write instead.
                        Ok(0) if copied == 0 => return io::copy(file, target),
                        Ok(0) => {
                            return Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!("the result's file ended after {copied} of {size} bytes"),
                            ));
                        }
                        Ok(n) => copied += n as u64,
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) if copied == 0 => return io::copy(file, target),
                        Err(error) => return Err(error.into()),
                    }
                }
                Ok(copied)
            }
            Self::Memory(cursor) => io::copy(cursor, target),
        }
    }
}

impl ResultStore {
    /// A store keeping its files in `files`, with nothing in memory yet.
    pub(crate) fn new(files: Folder) -> Self {
        Self {
            files,
            memory: Mutex::default(),
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // Every update of the map and its count is complete before anything that could panic.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `data` as result `id` (a fresh id: nothing is stored under it yet).
    ///
    /// # Errors
    /// `id` is not a plain name, or writing the file fails (nothing is left behind then).
    pub(crate) fn write(&self, id: &str, data: &[u8]) -> io::Result<()> {
        let id = plain_name(id)?;
        let mut memory = self.memory();
        if memory.has_room(data.len()) {
            memory.insert(id, Bytes::copy_from_slice(data));
            return Ok(());
        }
        drop(memory);
        self.files.write(id, data)
    }

    /// Opens result `id`'s data.
    ///
    /// # Errors
    /// `NotFound` when nothing is stored under `id` (a result completed without data reads
    /// as empty: callers decide); others when its file cannot be opened.
    pub(crate) fn open(&self, id: &str) -> io::Result<ResultData> {
        let id = plain_name(id)?;
        if let Some(data) = self.memory().data.get(id) {
            return Ok(ResultData::Memory(io::Cursor::new(data.clone())));
        }
        let (file, size) = self.files.open_file_sized(id)?;
        Ok(ResultData::File(file, size))
    }

    /// Removes result `id`'s data, if any.
    ///
    /// # Errors
    /// `id` is not a plain name, or its file cannot be removed.
    pub(crate) fn remove(&self, id: &str) -> io::Result<()> {
        {
            let mut memory = self.memory();
            if let Some(data) = memory.data.remove(id) {
                memory.bytes -= data.len();
            }
        }
        self.files.remove_file(id)
    }

    /// Writes every result held in memory to its file (which then serves it), so that the
    /// store's folder holds them all.
    ///
    /// # Errors
    /// Files cannot be written: every result not written, with why, one per line (those stay
    /// in memory); the others are written.
    pub(crate) fn write_all_to_files(&self) -> anyhow::Result<()> {
        let mut memory = self.memory();
        let mut failed = Vec::new();
        for (id, data) in std::mem::take(&mut memory.data) {
            if let Err(error) = self.files.write(&id, &data) {
                failed.push(format!("result {id} not written: {error}"));
                memory.data.insert(id, data);
            }
        }
        memory.bytes = memory.data.values().map(Bytes::len).sum();
        if failed.is_empty() {
            return Ok(());
        }
        failed.sort();
        anyhow::bail!("{}", failed.join("\n"))
    }

    /// A file to fill (an upload), to be named with [`NewFile::persist`] once whole.
    ///
    /// # Errors
    /// The file cannot be made.
    pub(crate) fn new_file(&self) -> io::Result<NewFile<'_>> {
        self.files.new_file()
    }

    /// Takes the file `id` of an attempt's `folder` (whose guest returned: nothing writes to
    /// it any more) as result `id`'s data: a small one is read into memory and its file left
    /// for the folder's recycling; a larger one is moved into the store. Returns its size.
    ///
    /// # Errors
    /// As [`Folder::move_file`]: not a regular file, already stored (`AlreadyExists`), or I/O.
    pub(crate) fn take_in(&self, folder: &Folder, id: &str) -> io::Result<u64> {
        let id = plain_name(id)?;
        if self.memory().data.contains_key(id) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("result `{id}` already has data"),
            ));
        }
        let (file, size) = folder.open_file_sized(id)?;
        if usize::try_from(size).is_ok_and(|size| self.memory().has_room(size)) {
            // Bounded: a file grown since its size was read is moved instead.
            let mut data = Vec::with_capacity(IN_MEMORY_MAX.min(size as usize));
            file.take(IN_MEMORY_MAX as u64 + 1).read_to_end(&mut data)?;
            let mut memory = self.memory();
            if memory.has_room(data.len()) && !self.files.is_file(id) {
                let size = data.len() as u64;
                memory.insert(id, Bytes::from(data));
                return Ok(size);
            }
        }
        folder.move_file(id, &self.files, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ResultStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let files = Folder::create(&dir.path().join("results"), true).expect("folder");
        (dir, ResultStore::new(files))
    }

    fn read(store: &ResultStore, id: &str) -> io::Result<Vec<u8>> {
        let mut data = Vec::new();
        store.open(id)?.read_to_end(&mut data)?;
        Ok(data)
    }

    #[test]
    fn small_results_stay_in_memory_and_large_ones_are_files() {
        let (dir, store) = store();
        let large = vec![7u8; IN_MEMORY_MAX + 1];
        store.write("small", b"part 1").expect("write");
        store.write("empty", b"").expect("write");
        store.write("large", &large).expect("write");
        assert!(!dir.path().join("results/small").exists());
        assert!(!dir.path().join("results/empty").exists());
        assert!(dir.path().join("results/large").is_file());
        assert_eq!(read(&store, "small").expect("small"), b"part 1");
        assert_eq!(read(&store, "empty").expect("empty"), b"");
        assert_eq!(read(&store, "large").expect("large"), large);
        assert_eq!(
            read(&store, "absent").expect_err("absent").kind(),
            io::ErrorKind::NotFound
        );
        for id in ["small", "large"] {
            store.remove(id).expect("remove");
            assert_eq!(
                read(&store, id).expect_err("removed").kind(),
                io::ErrorKind::NotFound
            );
        }
        assert!(!dir.path().join("results/large").exists());
        assert_eq!(store.memory().bytes, 0);
    }

    #[test]
    fn memory_past_its_total_spills_to_files() {
        let (dir, store) = store();
        let chunk = vec![1u8; IN_MEMORY_MAX];
        let fit = IN_MEMORY_TOTAL / IN_MEMORY_MAX;
        for n in 0..=fit {
            store.write(&n.to_string(), &chunk).expect("write");
        }
        assert_eq!(store.memory().bytes, fit * IN_MEMORY_MAX);
        assert!(dir.path().join(format!("results/{fit}")).is_file());
        assert!(!dir.path().join("results/0").exists());
        store.write_all_to_files().expect("written");
        assert_eq!(
            std::fs::read(dir.path().join("results/0")).expect("0"),
            chunk
        );
        assert_eq!(store.memory().bytes, 0);
        assert_eq!(read(&store, "1").expect("from its file"), chunk);
        // Freed memory serves again.
        store.remove("0").expect("remove");
        store.write("again", &chunk).expect("write");
        assert!(!dir.path().join("results/again").exists());
        assert_eq!(read(&store, &fit.to_string()).expect("spilled"), chunk);
    }

    #[test]
    fn results_that_cannot_be_written_out_stay_in_memory_and_are_named() {
        let (dir, store) = store();
        store.write("a", b"first").expect("write");
        store.write("b", b"second").expect("write");
        // Files cannot be made in a folder removed under its handle.
        std::fs::remove_dir(dir.path().join("results")).expect("remove");
        let error = store
            .write_all_to_files()
            .expect_err("no folder")
            .to_string();
        assert_eq!(error.lines().count(), 2, "{error}");
        assert!(
            error.contains("result a not written") && error.contains("result b"),
            "{error}"
        );
        assert_eq!(read(&store, "a").expect("kept"), b"first");
        assert_eq!(store.memory().bytes, 11);
    }

    #[test]
    fn outputs_past_the_memory_total_are_moved_as_files() {
        let (dir, store) = store();
        let chunk = vec![1u8; IN_MEMORY_MAX];
        for n in 0..IN_MEMORY_TOTAL / IN_MEMORY_MAX {
            store.write(&n.to_string(), &chunk).expect("write");
        }
        let folder = Folder::create(&dir.path().join("task"), true).expect("folder");
        folder.write("out", b"small").expect("write");
        assert_eq!(store.take_in(&folder, "out").expect("take"), 5);
        assert!(!folder.is_file("out"), "moved");
        assert!(dir.path().join("results/out").is_file());
        assert_eq!(read(&store, "out").expect("out"), b"small");
    }

    #[test]
    fn a_notified_file_is_taken_once_and_never_over_a_stored_result() {
        let (dir, store) = store();
        let folder = Folder::create(&dir.path().join("task"), true).expect("folder");
        // A small one is read, its file left for the folder's recycling; a large one moved.
        folder.write("out", b"output").expect("write");
        assert_eq!(store.take_in(&folder, "out").expect("take"), 6);
        assert_eq!(read(&store, "out").expect("out"), b"output");
        assert!(folder.is_file("out"));
        assert!(!dir.path().join("results/out").exists());
        let large = vec![3u8; IN_MEMORY_MAX + 1];
        folder.write("large", &large).expect("write");
        assert_eq!(
            store.take_in(&folder, "large").expect("take"),
            large.len() as u64
        );
        assert!(!folder.is_file("large"));
        assert_eq!(read(&store, "large").expect("large"), large);
        // Only regular files, never through a link.
        std::os::unix::fs::symlink(dir.path().join("results/large"), folder.path().join("l"))
            .expect("symlink");
        std::fs::create_dir(folder.path().join("d")).expect("dir");
        for planted in ["l", "d", "absent"] {
            assert!(store.take_in(&folder, planted).is_err(), "{planted}");
            assert!(store.open(planted).is_err(), "{planted}");
        }
        store.write("kept", b"first").expect("write");
        folder.write("kept", b"second").expect("write");
        let error = store.take_in(&folder, "kept").expect_err("stored");
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(read(&store, "kept").expect("kept"), b"first");
        // Names are confined as for every host file operation.
        assert!(store.write("../x", b"small").is_err());
        assert!(store.write("../x", &[0; IN_MEMORY_MAX + 1]).is_err());
        assert!(store.open("../x").is_err());
    }
}
