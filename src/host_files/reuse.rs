//! Emptying a task's folder into spares, and the checks that decide which of its files may
//! be reused: only those that nothing but the host can ever read or write again (see
//! `host_files::recycling` for what spares are for).

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};

use cap_std::fs::OpenOptions;
use rustix::fs::RenameFlags;

use super::{Folder, plain_name};

/// What emptying a task folder kept of its files ([`Folder::recycle_contents`]).
#[derive(Debug, Default)]
pub(super) struct Recycled {
    /// Files left where they were, open for writing, with their sizes: all the folder held.
    pub(super) in_place: Vec<(String, std::fs::File, u64)>,
    /// Files moved into the spares: their spare names, with their sizes.
    pub(super) spares: Vec<(String, u64)>,
}

impl Folder {
    /// Empties this folder of what could reach the next task that uses it. When it holds at
    /// most `in_place` entries, all regular files that nothing else can read or write, they
    /// stay where they are, open, for the next attempt in this folder to overwrite (no
    /// rename out and back in). Otherwise each regular file that nothing else can reach is
    /// moved into `spares` under a name from `spare_name`, up to `keep` of them, and
    /// everything else (links, folders, FIFOs, files with other links or users) is removed.
    ///
    /// # Errors
    /// The folder cannot be listed or something in it cannot be removed. Spares made before
    /// the error are returned with it lost: they stay in `spares`, unused, until it is removed.
    pub(super) fn recycle_contents(
        &self,
        spares: &Folder,
        mut spare_name: impl FnMut() -> String,
        in_place: usize,
        keep: usize,
    ) -> io::Result<Recycled> {
        // Listed whole first: nothing is moved or removed while the listing runs.
        let mut entries = Vec::new();
        for entry in self.dir.entries()? {
            let entry = entry?;
            // `DirEntry::file_type` does not follow a link.
            let is_file = entry.file_type()?.is_file();
            // A name that is not UTF-8 is removed with the rest below.
            entries.push((entry.file_name().to_str().map(str::to_owned), is_file));
        }
        let mut recycled = Recycled::default();
        if entries.len() <= in_place && entries.iter().all(|(n, f)| *f && n.is_some()) {
            recycled.in_place = entries
                .iter()
                .filter_map(|(name, _)| name.as_ref())
                .map_while(|name| {
                    let (file, stat) = self.unreachable(name)?;
                    Some((name.clone(), file, u64::try_from(stat.st_size).unwrap_or(0)))
                })
                .collect();
            if recycled.in_place.len() == entries.len() {
                return Ok(recycled);
            }
            // One cannot stay: none stays, and the folder is emptied as below.
            recycled.in_place.clear();
        }
        for (name, is_file) in entries {
            let Some(name) = name else { continue };
            if recycled.spares.len() < keep && is_file {
                let spare = spare_name();
                if let Ok(Some(size)) = self.retire(&name, spares, &spare) {
                    recycled.spares.push((spare, size));
                    continue;
                }
            }
            self.clear(&name)?;
        }
        // Also the safety net for an entry the listing would have skipped (a name that is
        // not UTF-8, say): nothing of this task may stay for the next.
        self.remove_contents()?;
        Ok(recycled)
    }

    /// The regular file `name` open for writing, with its status, when nothing but this
    /// handle can reach it (see [`unreachable_by_others`]).
    fn unreachable(&self, name: &str) -> Option<(std::fs::File, rustix::fs::Stat)> {
        self.open_regular(name, OpenOptions::new().read(true).write(true))
            .ok()
            .and_then(unreachable_by_others)
    }

    /// Moves the file `name` into `spares` as `spare`, when it is a regular file with one
    /// link and no other writer; returns its size. `Ok(None)`: it is not, and stays.
    fn retire(&self, name: &str, spares: &Folder, spare: &str) -> io::Result<Option<u64>> {
        let name = plain_name(name)?;
        let Some((_file, stat)) = self.unreachable(name) else {
            return Ok(None);
        };
        rustix::fs::renameat_with(
            &self.dir,
            name,
            &spares.dir,
            plain_name(spare)?,
            RenameFlags::NOREPLACE,
        )?;
        Ok(Some(u64::try_from(stat.st_size).unwrap_or(0)))
    }
}

/// `file` (open for writing) with its status, when nothing but it can reach its file: one
/// link, and no other descriptor or mapping (see [`no_other_writer`]). The status is read once
/// the lease was granted, so the size is final: a write that was still running until then
/// (one a guest left behind) has ended, and none can start.
pub(super) fn unreachable_by_others(
    file: std::fs::File,
) -> Option<(std::fs::File, rustix::fs::Stat)> {
    if !no_other_writer(&file) {
        return None;
    }
    let stat = rustix::fs::fstat(&file).ok()?;
    (stat.st_nlink == 1).then_some((file, stat))
}

/// Whether `file` (open for writing) is the only descriptor open on its file, for reading or
/// writing, and nothing maps it: the kernel grants a write lease only then. Any failure
/// (leases disabled, a file system without them) answers no.
fn no_other_writer(file: &std::fs::File) -> bool {
    let fd: BorrowedFd<'_> = std::os::fd::AsFd::as_fd(file);
    // SAFETY: `fcntl` with `F_SETLEASE` takes an int argument and touches no memory; `fd` is
    // open for the duration of the call.
    let granted = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) } == 0;
    if granted {
        // SAFETY: as above.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    }
    granted
}
