//! Files of task folders reused for later tasks' files instead of being removed and made anew
//! (why: `crate::local::task_folders`).
//!
//! A file a guest had in its folder is reused (`host_files::reuse`) only when nothing can ever read or write it
//! again but the host: it is a regular file with a single link (no other name the guest gave
//! it), and the kernel grants a write lease on it, which it does only when no descriptor
//! other than ours is open on it anywhere, for reading or writing, and nothing maps it
//! (`fcntl(2)`, `F_SETLEASE`). A write that a guest's output stream left running when the
//! guest returned (wasmtime-wasi runs it on a blocking thread that outlives the store) holds
//! such a descriptor until it ends. Anything else is removed.
//!
//! A spare keeps its bytes and blocks until it serves again, in a folder no task sees: it is
//! then overwritten from its start and cut at the end of the new content, before it gets its
//! new name, so no byte of an earlier task can follow the new one's. Keeping the blocks, and
//! picking a spare of the size to be written (a task's library blob, copied into every
//! task's folder, lands on the previous copy), spares ext4 the freeing, the discard and the
//! new allocation of those blocks that emptying each spare cost per task. What they keep is
//! bounded (`MAX_KEPT_BYTES`), emptied when results are deleted ([`Spares::empty_all`]), and
//! emptied into the empty files kept for the next process when the host exits cleanly
//! ([`Spares::release_all`], `host_files::empty_files`).

use std::io::{self, Seek as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cap_std::fs::OpenOptions;

use super::reuse::unreachable_by_others;
use super::{EmptyFiles, Folder};

mod leftovers;

use leftovers::Leftover;
pub use leftovers::Leftovers;

/// Files kept for reuse, in a folder no task sees: files of task folders taken by
/// [`Spares::recycle`], handed out again, overwritten, by [`Folder::write`] and its kin in the
/// folders given them ([`Folder::with_spares`]).
#[derive(Debug)]
pub struct Spares {
    folder: Folder,
    list: Mutex<List>,
    /// The number in the next spare's name.
    next: AtomicU64,
    /// Spares kept at most; the others are removed.
    max: usize,
    /// Leftover files open at most, all folders together ([`max_open`]).
    max_open: usize,
    /// Where spares go, emptied, when the process is done with them, and where its new files
    /// come from before any is made.
    empty_files: Option<EmptyFiles>,
}

/// A spare taken for a new file: its name among the spares, open for writing, and its size
/// in bytes when opened.
pub(super) struct Spare {
    name: String,
    file: std::fs::File,
    size: u64,
}

/// Bytes of content the spares keep at most, all together: a spare that would pass it is
/// emptied instead. Enough for the library blobs and inputs of the tasks running at once (a
/// Python component is about 40 MB); a task reading a 1 GiB input must not leave 1 GiB of
/// disk held by its spare.
const MAX_KEPT_BYTES: u64 = 256 << 20;

#[derive(Debug, Default)]
struct List {
    /// Names of the files in `folder`, with their sizes in bytes.
    names: Vec<(String, u64)>,
    /// The sum of those sizes.
    bytes: u64,
    /// Leftover files open now, or reserved by a folder being recycled.
    open: usize,
}

/// Leftover files kept open at most, all task folders together: a quarter of the soft limit
/// of open files (`RLIMIT_NOFILE`), the rest being for the instances, the results' files and
/// the connections; each idle folder keeps its files open, and a host running many attempts
/// at once must not run out of descriptors (`EMFILE`) for them. Past it, folders keep no
/// files in place: their files become spares, closed.
fn max_open() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit / 4).unwrap_or(usize::MAX)
    })
}

impl Spares {
    /// Spares kept in `folder`, emptied first (what an earlier process left there is not
    /// known to be unused), at most `max` of them; new files are taken from `empty_files`
    /// while it has some, and the spares go there at [`release_all`](Self::release_all).
    ///
    /// # Errors
    /// The folder cannot be emptied.
    pub fn new(folder: Folder, max: usize, empty_files: Option<EmptyFiles>) -> io::Result<Self> {
        folder.remove_contents()?;
        Ok(Self {
            folder,
            list: Mutex::default(),
            next: AtomicU64::new(0),
            max,
            max_open: max_open(),
            empty_files,
        })
    }

    /// A name for a new spare, unique in the folder.
    fn next_name(&self) -> String {
        (self.next.fetch_add(1, Ordering::Relaxed) + 1).to_string()
    }

    fn list(&self) -> MutexGuard<'_, List> {
        // A push or a pop and its count cannot panic half-way.
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Empties `folder` (see `Folder::recycle_contents`) for its next attempt. When it
    /// holds at most `in_place` files, all reusable, they stay where they are: returned as
    /// [`Leftovers`], for that attempt's inputs. Otherwise its files become spares while
    /// there is room. A file whose content would pass `MAX_KEPT_BYTES`, in all, is emptied.
    /// No file stays in place when the leftovers of all folders would then keep more than
    /// [`max_open`] open.
    ///
    /// # Errors
    /// As `Folder::recycle_contents`, a leftover file that cannot be emptied cannot be
    /// removed either, or the folder's times cannot be set.
    pub fn recycle(self: &Arc<Self>, folder: &Folder, in_place: usize) -> io::Result<Leftovers> {
        let (room, in_place) = {
            let mut list = self.list();
            // Reserved before the files are opened, so that folders recycled at once on
            // several threads do not pass the bound together.
            let in_place = in_place.min(self.max_open.saturating_sub(list.open));
            list.open += in_place;
            (self.max.saturating_sub(list.names.len()), in_place)
        };
        let recycled = folder.recycle_contents(&self.folder, || self.next_name(), in_place, room);
        let kept = recycled.as_ref().map_or(0, |r| r.in_place.len());
        self.list().open -= in_place - kept;
        let recycled = recycled?;
        for (name, size) in recycled.spares {
            if let Some(size) = self.count(size, || self.empty(&name)) {
                self.list().names.push((name, size));
            }
        }
        let mut leftovers = Leftovers::none(self);
        // Every file is counted or closed, even after a removal failed: the leftovers then
        // go (their folder is not reused), and count nothing more once dropped.
        let mut removed = Ok(());
        for (name, file, size) in recycled.in_place {
            match self.count(size, || file.set_len(0).is_ok()) {
                Some(size) => leftovers.keep(Leftover::new(name, file, size)),
                None => {
                    drop(file);
                    self.forget(0, 1);
                    removed = removed.and(folder.remove_file(&name));
                }
            }
        }
        removed?;
        // The folder serves another attempt: times its guest set on it must not reach it
        // (`relatime` keeps an access time set ahead of the modification time).
        // Through ".": the folder's handle is open for lookups only (`O_PATH`).
        rustix::fs::utimensat(
            &folder.dir,
            ".",
            &NOW,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(leftovers)
    }

    /// Stops counting `files` leftovers holding `bytes` in all, once they are a task's files,
    /// removed or closed.
    fn forget(&self, bytes: u64, files: usize) {
        let mut list = self.list();
        list.bytes -= bytes;
        list.open -= files;
    }

    /// Counts `size` bytes more as kept, or, when that would pass `MAX_KEPT_BYTES`, empties
    /// the file with `empty` and counts nothing. The size counted, `None` when `empty` failed.
    fn count(&self, size: u64, empty: impl FnOnce() -> bool) -> Option<u64> {
        // Checked and counted under one lock: folders are emptied on several threads.
        let mut list = self.list();
        if list.bytes + size <= MAX_KEPT_BYTES {
            list.bytes += size;
            return Some(size);
        }
        drop(list);
        empty().then_some(0)
    }

    /// A spare taken off the list, open for writing: among the last few kept, one of `size`
    /// bytes if there is one (it is overwritten in place, no block freed or allocated), else
    /// the last; with none, one of the empty files. A spare that cannot be opened (removed
    /// behind this list's back) is dropped for the next one.
    pub(super) fn take(&self, size: Option<u64>) -> Option<Spare> {
        loop {
            let (name, shared) = match self.take_name(size) {
                Some(name) => (name, false),
                None => {
                    let name = self.next_name();
                    let taken = self.empty_files.as_ref()?.take(&self.folder, &name);
                    (taken.then_some(name)?, true)
                }
            };
            let opened = self
                .folder
                .open_regular_stat(&name, OpenOptions::new().write(true));
            // One of the empty files passed through a folder other processes of this user
            // could reach: it must pass what a task's file passes to become a spare.
            let opened = match opened {
                Ok((file, _)) if shared => unreachable_by_others(file)
                    .filter(|(_, stat)| stat.st_uid == rustix::process::geteuid().as_raw())
                    .ok_or_else(|| io::Error::other("an empty file others can reach")),
                other => other,
            };
            match opened {
                Ok((file, stat)) => {
                    return Some(Spare {
                        name,
                        file,
                        size: u64::try_from(stat.st_size).unwrap_or(u64::MAX),
                    });
                }
                Err(error) => {
                    tracing::debug!(spare = %name, %error, "a spare file cannot be opened");
                    let _ = self.folder.remove_file(&name);
                }
            }
        }
    }

    fn take_name(&self, size: Option<u64>) -> Option<String> {
        /// How far back to look: the spares a few tasks before gave back.
        const LOOK_BACK: usize = 16;
        let mut list = self.list();
        let names = &mut list.names;
        let fits = size.and_then(|size| {
            let start = names.len().saturating_sub(LOOK_BACK);
            names[start..]
                .iter()
                .rposition(|(_, kept)| *kept == size)
                .map(|i| start + i)
        });
        let (name, size) = match fits {
            Some(i) => names.swap_remove(i),
            None => names.pop()?,
        };
        list.bytes -= size;
        Some(name)
    }

    /// Fills `spare` with `fill`, from its start, then cuts it where `fill` stopped and
    /// renames it to `name` in `target`, replacing atomically whatever file or link is there
    /// (as [`Folder::write`] does). Returns what `fill` returns.
    ///
    /// # Errors
    /// `fill` fails, or the rename does (`name` is a directory, say); the spare is removed
    /// then, and `target` is untouched.
    pub(super) fn fill_into<T>(
        &self,
        spare: Spare,
        target: &Folder,
        name: &str,
        fill: impl FnOnce(&mut std::fs::File) -> io::Result<T>,
    ) -> io::Result<T> {
        let Spare {
            name: spare,
            mut file,
            size,
        } = spare;
        let filled = fill_over(&mut file, size, fill).and_then(|filled| {
            drop(file);
            rustix::fs::renameat(&self.folder.dir, spare.as_str(), &target.dir, name)?;
            Ok(filled)
        });
        if filled.is_err() {
            let _ = self.folder.remove_file(&spare);
        }
        filled
    }

    /// Ends the spares: each is emptied and moved into the empty files, for the next process
    /// (removed without them, or when that fails); whatever else is in the folder is removed.
    ///
    /// # Errors
    /// A spare cannot be removed.
    pub fn release_all(&self) -> io::Result<()> {
        let names = {
            let mut list = self.list();
            let names = std::mem::take(&mut list.names);
            // What leftovers hold still counts, until they are used or dropped.
            list.bytes -= names.iter().map(|(_, size)| size).sum::<u64>();
            names
        };
        if let Some(empty_files) = &self.empty_files {
            // What other processes kept since this one looked counts against the bound.
            empty_files.look_again();
            for (name, size) in names {
                if size == 0 || self.empty(&name) {
                    match empty_files.keep(&self.folder, &name) {
                        Ok(true) => {}
                        // Full: the rest are removed below.
                        Ok(false) => break,
                        Err(error) => {
                            tracing::debug!(%error, "the spares cannot be kept as empty files");
                            break;
                        }
                    }
                }
            }
        }
        self.folder.remove_contents()
    }

    /// Empties every spare (their content copies results that were just deleted: it must not
    /// outlive them on disk).
    pub fn empty_all(&self) {
        let mut list = self.list();
        let mut emptied = 0;
        list.names.retain_mut(|(name, size)| {
            let kept = *size == 0 || self.empty(name);
            emptied += std::mem::take(size);
            kept
        });
        // What leftovers hold still counts, until they are emptied too.
        list.bytes -= emptied;
    }

    /// Empties the spare `name`; one that cannot be emptied is removed (`false`).
    fn empty(&self, name: &str) -> bool {
        let emptied = self
            .folder
            .open_regular(name, OpenOptions::new().write(true))
            .and_then(|file| file.set_len(0));
        if let Err(error) = emptied {
            // Gone already (the folder removed with a temporary data folder, say): nothing of
            // it is left to empty.
            if error.kind() == io::ErrorKind::NotFound {
                return false;
            }
            tracing::warn!(spare = %name, %error, "cannot empty a spare file: removed");
            let _ = self.folder.remove_file(name);
            return false;
        }
        true
    }
}

/// Fills `file`, which held `size` bytes, with `fill` from its start, then cuts it where
/// `fill` stopped: no byte of the earlier content may follow the new one's. Its access and
/// modification times are set to now: a guest may have set them (WASI `set-times`), and a
/// time an earlier task chose must not reach the next (64 bits each, read with `stat`).
/// Returns what `fill` returns.
fn fill_over<T>(
    file: &mut std::fs::File,
    size: u64,
    fill: impl FnOnce(&mut std::fs::File) -> io::Result<T>,
) -> io::Result<T> {
    let filled = fill(file)?;
    // `fill` writes sequentially: the file grew past `size` only by writing up to `end`.
    let end = file.stream_position()?;
    if size > end {
        file.set_len(end)?;
    }
    rustix::fs::futimens(&*file, &NOW)?;
    Ok(filled)
}

/// Access and modification times set to the time of the call.
const NOW: rustix::fs::Timestamps = {
    let now = rustix::fs::Timespec {
        tv_sec: 0,
        tv_nsec: rustix::fs::UTIME_NOW,
    };
    rustix::fs::Timestamps {
        last_access: now,
        last_modification: now,
    }
};

#[cfg(test)]
mod tests;
