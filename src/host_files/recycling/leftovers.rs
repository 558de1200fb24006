//! The files a task folder keeps in place for its next attempt ([`Spares::recycle`]), which
//! write that attempt's inputs before its guest runs (why: `crate::local::task_folders`).

use std::io;
use std::sync::Arc;

use rustix::fs::RenameFlags;

use super::{Spares, fill_over};
use crate::host_files::{Folder, plain_name};

/// The files an emptied task folder kept in place ([`Spares::recycle`]): checked as spares
/// are, open, and counted with them against `MAX_KEPT_BYTES` and the open-files bound. They
/// serve the next attempt in that folder ([`write`](Self::write)), before its guest runs;
/// what is not used then goes to the spares ([`settle`](Self::settle)), so the guest sees
/// only its inputs.
#[derive(Debug)]
#[must_use = "leftovers must be settled before the guest runs, or go with their folder"]
pub struct Leftovers {
    spares: Arc<Spares>,
    files: Vec<Leftover>,
}

/// A file kept in place: its name in the folder, open, and the bytes it holds.
#[derive(Debug)]
pub(super) struct Leftover {
    name: String,
    file: std::fs::File,
    size: u64,
    /// Named as one of the attempt's inputs ([`Leftovers::reserve`]): it serves that input
    /// only.
    reserved: bool,
}

impl Leftover {
    /// A file of `size` bytes kept in place as `name`, counted already with the spares.
    pub(super) fn new(name: String, file: std::fs::File, size: u64) -> Self {
        Self {
            name,
            file,
            size,
            reserved: false,
        }
    }
}

impl Leftovers {
    /// No leftovers: a new folder's.
    pub fn none(spares: &Arc<Spares>) -> Self {
        Self {
            spares: spares.clone(),
            files: Vec::new(),
        }
    }

    /// Adds `leftover`, counted already.
    pub(super) fn keep(&mut self, leftover: Leftover) {
        self.files.push(leftover);
    }

    /// Whether none is left.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether a leftover is named `name`.
    #[cfg(test)]
    pub(in crate::host_files) fn holds(&self, name: &str) -> bool {
        self.files.iter().any(|l| l.name == name)
    }

    /// Keeps each leftover named in `names` (the attempt's inputs, before any is written)
    /// for the input of its name: whatever order the inputs are then written in, no other
    /// takes it, and that input is written where it is (a task's library blob, in each of
    /// its attempts, lands on its previous copy without a rename).
    pub fn reserve<'a>(&mut self, names: impl IntoIterator<Item = &'a str>) {
        if self.files.is_empty() {
            return;
        }
        for name in names {
            if let Some(leftover) = self.files.iter_mut().find(|l| l.name == name) {
                leftover.reserved = true;
            }
        }
    }

    /// Writes `name` in `folder` (the folder these were left in) from a leftover, as
    /// [`Folder::write`] does from a spare: the leftover of that name if there is one,
    /// overwritten where it is; else, among those not [`reserve`](Self::reserve)d, one of
    /// `size` bytes, or the last, overwritten then renamed to `name`. With none that may
    /// serve it (none left, or only others' reserved ones), as [`Folder::write`]. No reader
    /// can see a half-written file: no guest has this folder yet.
    ///
    /// # Errors
    /// `name` is not a plain name, `fill` fails or the rename does; the leftover is removed.
    pub fn write<T>(
        &mut self,
        folder: &Folder,
        name: &str,
        size: Option<u64>,
        fill: impl FnOnce(&mut std::fs::File) -> io::Result<T>,
    ) -> io::Result<T> {
        let name = plain_name(name)?;
        let files = &self.files;
        let Some(index) = files
            .iter()
            .position(|l| l.name == name)
            .or_else(|| {
                let size = size?;
                files.iter().rposition(|l| !l.reserved && l.size == size)
            })
            .or_else(|| files.iter().rposition(|l| !l.reserved))
        else {
            return folder.write_with(name, size, fill);
        };
        let Leftover {
            name: was,
            mut file,
            size: had,
            ..
        } = self.files.swap_remove(index);
        // A task's file from now on, no longer a kept one.
        self.spares.forget(had, 1);
        let written = fill_over(&mut file, had, fill).and_then(|filled| {
            drop(file);
            if was != name {
                rustix::fs::renameat(&folder.dir, was.as_str(), &folder.dir, name)?;
            }
            Ok(filled)
        });
        if written.is_err() {
            let _ = folder.remove_file(&was);
        }
        written
    }

    /// Moves the leftovers not used into the spares (removed when the spares are full), so
    /// that the folder holds only what its attempt was given.
    ///
    /// # Errors
    /// A leftover can neither be moved nor removed: the folder must not serve.
    pub fn settle(mut self, folder: &Folder) -> io::Result<()> {
        let spares = self.spares.clone();
        // Popped one by one: those not reached when one fails still count until dropped.
        while let Some(Leftover {
            name, file, size, ..
        }) = self.files.pop()
        {
            drop(file);
            let room = spares.list().names.len() < spares.max;
            let spare = spares.next_name();
            let moved = room
                && rustix::fs::renameat_with(
                    &folder.dir,
                    name.as_str(),
                    &spares.folder.dir,
                    spare.as_str(),
                    RenameFlags::NOREPLACE,
                )
                .is_ok();
            if moved {
                let mut list = spares.list();
                list.names.push((spare, size));
                list.open -= 1;
            } else {
                spares.forget(size, 1);
                folder.remove_file(&name)?;
            }
        }
        Ok(())
    }

    /// Empties every leftover (their content may copy results that were just deleted).
    ///
    /// # Errors
    /// One cannot be emptied: the folder must not serve.
    pub fn empty(&mut self) -> io::Result<()> {
        for leftover in &mut self.files {
            leftover.file.set_len(0)?;
            self.spares.forget(leftover.size, 0);
            leftover.size = 0;
        }
        Ok(())
    }
}

impl Drop for Leftovers {
    /// Leftovers dropped unused (their folder removed with them) no longer count as kept.
    fn drop(&mut self) {
        if !self.files.is_empty() {
            let bytes = self.files.iter().map(|l| l.size).sum();
            self.spares.forget(bytes, self.files.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::Arc;

    use super::super::tests::{folders, inode, is_empty};
    use super::*;

    /// The sizes of the files in `folder`, by name.
    fn sizes(folder: &Folder) -> Vec<(String, u64)> {
        let mut sizes: Vec<(String, u64)> = std::fs::read_dir(folder.path())
            .expect("list")
            .map(|entry| {
                let entry = entry.expect("entry");
                let name = entry.file_name().into_string().expect("UTF-8");
                (name, entry.metadata().expect("stat").len())
            })
            .collect();
        sizes.sort();
        sizes
    }

    /// A folder of a few reusable files keeps them in place: the next attempt's inputs are
    /// written over them (the one of the same name where it is, the others renamed), and what
    /// is not used goes to the spares, so the folder holds only the new inputs, byte-exact.
    /// What they hold counts with the spares' bytes all along.
    #[test]
    fn files_kept_in_place_serve_the_next_inputs() {
        let (_root, task, spares) = folders();
        let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
        task.write("blob", &[1; 4096]).expect("write");
        task.write("payload", b"a long earlier payload")
            .expect("write");
        task.write("output", b"out").expect("write");
        let blob = inode(&task, "blob");
        let payload = inode(&task, "payload");
        let mut leftovers = spares.recycle(&task, 16).expect("recycle");
        assert_eq!(leftovers.files.len(), 3);
        assert_eq!(spares.list().bytes, 4096 + 22 + 3);
        assert!(is_empty(&spares.folder));

        // Shorter than before, and the same name: where it was, cut.
        leftovers
            .write(&task, "blob", Some(100), |f| f.write_all(&[2; 100]))
            .expect("blob");
        assert_eq!(
            inode(&task, "blob"),
            blob,
            "the blob is written where it was"
        );
        // Another name, of the earlier payload's size: that file, renamed.
        leftovers
            .write(&task, "next", Some(22), |f| {
                f.write_all(b"the next payload, 22 b")
            })
            .expect("payload");
        assert_eq!(inode(&task, "next"), payload);
        assert_eq!(spares.list().bytes, 3, "only the leftover not used counts");
        leftovers.settle(&task).expect("settle");
        assert_eq!(
            sizes(&task),
            [("blob".to_owned(), 100), ("next".to_owned(), 22)]
        );
        assert_eq!(task.read("blob").expect("read"), [2; 100]);
        assert_eq!(task.read("next").expect("read"), b"the next payload, 22 b");
        assert_eq!(spares.list().names, [("1".to_owned(), 3)]);
        assert_eq!(spares.folder.read("1").expect("spare"), b"out");
        assert_eq!(spares.list().bytes, 3);
    }

    /// Leftovers that are emptied or dropped unused hold and count nothing more; a name that
    /// is not plain is refused without using one.
    #[test]
    fn leftovers_emptied_or_dropped_count_nothing() {
        let (_root, task, spares) = folders();
        let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
        task.write("secret", b"deleted data").expect("write");
        task.write("other", b"more").expect("write");
        let mut leftovers = spares.recycle(&task, 16).expect("recycle");
        leftovers.empty().expect("empty");
        assert_eq!(spares.list().bytes, 0);
        assert_eq!(task.file_size("secret"), Some(0));
        let refused = leftovers.write(&task, "../escape", None, |f| f.write_all(b"x"));
        refused.expect_err("not a plain name");
        assert_eq!(leftovers.files.len(), 2);
        drop(leftovers);
        assert_eq!(spares.list().bytes, 0);

        task.write("secret", b"deleted data").expect("write");
        let leftovers = spares.recycle(&task, 16).expect("recycle");
        // `other` still there, emptied above.
        assert_eq!(spares.list().bytes, 12);
        drop(leftovers);
        assert_eq!(spares.list().bytes, 0, "dropped leftovers count no more");
        assert_eq!(spares.list().open, 0, "dropped leftovers are closed");
    }

    /// A leftover whose fill fails is removed, and the target name is untouched or gone;
    /// with no leftover left, a write takes a spare as before.
    #[test]
    fn a_leftover_that_cannot_serve_is_removed() {
        let (_root, task, spares) = folders();
        let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
        task.write("kept", b"before").expect("write");
        let mut leftovers = spares.recycle(&task, 16).expect("recycle");
        let failed = leftovers.write(&task, "new", None, |file| {
            file.write_all(b"half")?;
            Err::<(), _>(io::Error::other("the source broke"))
        });
        assert_eq!(
            failed.expect_err("fill failed").to_string(),
            "the source broke"
        );
        assert!(is_empty(&task), "the leftover was removed");
        assert_eq!(spares.list().open, 0);
        assert_eq!(spares.list().bytes, 0);
        let task = task.with_spares(spares.clone());
        leftovers
            .write(&task, "new", None, |f| f.write_all(b"fresh"))
            .expect("written without leftovers");
        assert_eq!(task.read("new").expect("read"), b"fresh");
    }

    /// Leftovers not used, with no room among the spares, are removed; with one that cannot
    /// be removed either, settling fails, and what the others hold stops counting all the
    /// same.
    #[test]
    fn leftovers_that_cannot_become_spares_are_removed() {
        let (_root, task, spares) = folders();
        let spares = Arc::new(Spares::new(spares, 1, None).expect("spares"));
        for name in ["a", "b", "c"] {
            task.write(name, name.as_bytes()).expect("write");
        }
        let leftovers = spares.recycle(&task, 16).expect("recycle");
        assert_eq!(spares.list().bytes, 3);
        leftovers.settle(&task).expect("settle");
        assert!(is_empty(&task));
        assert_eq!(spares.list().names.len(), 1, "one spare had room");
        assert_eq!(spares.list().bytes, 1);
        assert_eq!(
            std::fs::read_dir(spares.folder.path())
                .expect("list")
                .count(),
            1
        );

        let (_root, task, spares) = folders();
        let spares = Arc::new(Spares::new(spares, 0, None).expect("spares"));
        for name in ["a", "b", "c"] {
            task.write(name, b"12345").expect("write");
        }
        let leftovers = spares.recycle(&task, 16).expect("recycle");
        assert_eq!(spares.list().bytes, 15);
        // Folders in their place (a guest cannot do this once its attempt ended; a fault in
        // the host or another process could): they can be neither moved nor removed as files.
        for name in ["a", "b", "c"] {
            std::fs::remove_file(task.path().join(name)).expect("remove");
            std::fs::create_dir(task.path().join(name)).expect("folder");
        }
        leftovers
            .settle(&task)
            .expect_err("a folder is not removed as a file");
        assert_eq!(spares.list().bytes, 0, "what was not reached still counted");
        assert_eq!(spares.list().open, 0, "and was closed");
    }

    /// A leftover reserved for an input of its name serves only it, whatever order the
    /// inputs come in: an input of its size written first takes another; with only reserved
    /// ones left, another input is a new file. Without the reservation, the size decides.
    #[test]
    fn a_reserved_leftover_serves_only_its_input() {
        let (_root, task, spares) = folders();
        let spares = Arc::new(Spares::new(spares, 10, None).expect("spares"));
        let fill = |bytes: &'static [u8]| move |f: &mut std::fs::File| f.write_all(bytes);
        task.write("blob", b"blob v1").expect("write");
        task.write("old", b"1").expect("write");
        let blob = inode(&task, "blob");
        let old = inode(&task, "old");

        let mut leftovers = spares.recycle(&task, 16).expect("recycle");
        leftovers.reserve(["payload", "blob", "extra"]);
        leftovers
            .write(&task, "payload", Some(7), fill(b"payload"))
            .expect("payload");
        assert_eq!(inode(&task, "payload"), old, "the free leftover serves");
        leftovers
            .write(&task, "extra", Some(7), fill(b"extra.."))
            .expect("extra");
        assert_ne!(inode(&task, "extra"), blob, "a new file, not the blob's");
        leftovers
            .write(&task, "blob", Some(7), fill(b"blob v2"))
            .expect("blob");
        assert_eq!(
            inode(&task, "blob"),
            blob,
            "the blob is written where it was"
        );
        assert!(leftovers.is_empty());
        leftovers.settle(&task).expect("settle");
        assert_eq!(task.read("blob").expect("read"), b"blob v2");
        assert_eq!(task.read("payload").expect("read"), b"payload");
        assert_eq!(task.read("extra").expect("read"), b"extra..");

        // Not reserved: the payload of the blob's size takes the blob's file, not another.
        task.remove_file("extra").expect("remove");
        task.write("payload", b"1").expect("write");
        let mut leftovers = spares.recycle(&task, 16).expect("recycle");
        leftovers
            .write(&task, "next", Some(7), fill(b"payload"))
            .expect("payload");
        assert_eq!(inode(&task, "next"), blob);
        leftovers.settle(&task).expect("settle");
        assert_eq!(spares.list().open, 0);

        // A reserved leftover whose fill fails is removed, and counts nothing more.
        let mut leftovers = spares.recycle(&task, 16).expect("recycle");
        leftovers.reserve(["next"]);
        let failed = leftovers.write(&task, "next", Some(7), |_| {
            Err::<(), _>(io::Error::other("the source broke"))
        });
        failed.expect_err("fill failed");
        assert_eq!(task.file_size("next"), None, "the leftover was removed");
        assert!(leftovers.is_empty());
        assert_eq!(spares.list().open, 0);
        assert_eq!(spares.list().bytes, 1, "the spare alone counts");
    }
}
