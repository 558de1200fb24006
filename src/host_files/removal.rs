//! Removing what a task left in its folder, whatever its shape and depth.

use std::io;

use cap_fs_ext::DirExt as _;
use cap_std::fs::Dir;

/// Entries read from a directory at a time, so none is read while the directory changes.
const BATCH: usize = 256;

/// Removes everything in `root`. Removing a tree level by level (std's and cap-std's
/// `remove_dir_all`) keeps a directory open per level: a task that leaves a tree deeper than
/// the process may open files (1,024 in a container) could never be removed. Here each
/// subfolder of a directory under `root` is first moved up into `root` itself, so only
/// `root` and one directory are ever open, and each directory is moved at most once.
pub(super) fn empty(root: &Dir) -> io::Result<()> {
    loop {
        let batch: Vec<_> = root.entries()?.take(BATCH).collect::<io::Result<_>>()?;
        if batch.is_empty() {
            return Ok(());
        }
        for entry in batch {
            let name = entry.file_name();
            // `DirEntry::file_type` does not follow a link.
            if !entry.file_type()?.is_dir() {
                root.remove_file(&name)?;
                continue;
            }
            let dir = root.open_dir_nofollow(&name)?;
            loop {
                let children: Vec<_> = dir.entries()?.take(BATCH).collect::<io::Result<_>>()?;
                if children.is_empty() {
                    break;
                }
                for child in children {
                    if child.file_type()?.is_dir() {
                        let hoisted = format!(".removing-{}", uuid::Uuid::new_v4().simple());
                        dir.rename(child.file_name(), root, hoisted)?;
                    } else {
                        dir.remove_file(child.file_name())?;
                    }
                }
            }
            drop(dir);
            root.remove_dir(&name)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use cap_std::ambient_authority;

    use super::super::Folder;
    use super::*;

    #[test]
    fn trees_deeper_than_the_open_file_limit_are_removed() {
        let root = tempfile::tempdir().expect("tempdir");
        let folder = Folder::create(&root.path().join("data"), true).expect("folder");
        // Deeper than a per-level removal could go with 1,024 descriptors (tests/limits.rs
        // removes such a tree under that limit); made through handles, since its path is
        // longer than any the kernel takes.
        let mut dir = Dir::open_ambient_dir(folder.path(), ambient_authority()).expect("dir");
        dir.create_dir("deep").expect("mkdir");
        dir = dir.open_dir("deep").expect("open");
        for level in 0..3000 {
            dir.write("f", level.to_string()).expect("file");
            dir.symlink("../f", "link").expect("link");
            dir.create_dir("d").expect("mkdir");
            dir = dir.open_dir("d").expect("open");
        }
        drop(dir);
        folder.clear("deep").expect("removed");
        assert!(
            std::fs::read_dir(folder.path())
                .expect("list")
                .next()
                .is_none()
        );
    }
}
