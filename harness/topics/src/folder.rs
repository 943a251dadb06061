//! The data folder of durable topics: a format marker, a lock that keeps a
//! second process out, and the store beside them.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// What `FORMAT` holds in a folder this version reads and writes.
pub const FORMAT: &str = "marketing-pipeline harness data 1";

/// A data folder, locked for this process while the value lives.
pub struct DataFolder {
    path: PathBuf,
    /// Held open: the lock goes with it, also when the process is killed.
    _lock: File,
}

impl DataFolder {
    /// Opens `path` (creating it), checks that it holds this version's
    /// data, and takes its lock.
    pub fn open(path: &Path) -> Result<DataFolder> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating the data folder {}", path.display()))?;
        let format_file = path.join("FORMAT");
        match std::fs::read_to_string(&format_file) {
            Ok(text) if text.trim() == FORMAT => {}
            Ok(text) => bail!(
                "{} holds data in another format ({:?}; this harness reads {FORMAT:?}): start \
                 the harness that wrote it, or give this one another --data-dir, or delete it \
                 with --fresh",
                path.display(),
                text.trim()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::fs::read_dir(path)?.next().is_some() {
                    bail!(
                        "{} is not empty and is not a harness data folder (it has no FORMAT \
                         file): give --data-dir an empty or new folder",
                        path.display()
                    );
                }
            }
            Err(e) => return Err(e).context(format!("reading {}", format_file.display())),
        }
        let lock = lock(path)?;
        if !format_file.exists() {
            std::fs::write(&format_file, format!("{FORMAT}\n"))
                .with_context(|| format!("writing {}", format_file.display()))?;
        }
        Ok(DataFolder {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the store keeps its files.
    pub fn store(&self) -> PathBuf {
        self.path.join("store")
    }
}

/// Takes `LOCK` in `path`, writing this process's id into it so that a
/// refused second process can say who holds it.
fn lock(path: &Path) -> Result<File> {
    let lock_path = path.join("LOCK");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => String::new(),
                pid => format!(" (process {pid})"),
            };
            bail!(
                "another harness{holder} is using the data folder {}: it holds {}. Stop it, \
                 or give this one another --data-dir",
                path.display(),
                lock_path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).context(format!("locking {}", lock_path.display()))
        }
    }
    file.set_len(0)?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// What `--fresh` would delete in `path`, in a line, or `None` when there
/// is nothing; refuses a folder that is not a harness data folder.
pub fn contents(path: &Path) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    if !path.join("FORMAT").exists() {
        if std::fs::read_dir(path)?.next().is_none() {
            return Ok(None);
        }
        bail!(
            "{} is not a harness data folder (it has no FORMAT file): --fresh deletes only \
             harness data",
            path.display()
        );
    }
    Ok(Some(format!(
        "{} ({} MiB of topics, commits, deployments and schemas)",
        path.display(),
        folder_bytes(path) >> 20
    )))
}

/// Deletes a harness data folder, once nothing holds its lock.
pub fn remove(path: &Path) -> Result<()> {
    if contents(path)?.is_none() {
        return Ok(());
    }
    // Refused while a running harness holds it.
    drop(lock(path)?);
    std::fs::remove_dir_all(path).with_context(|| format!("deleting {}", path.display()))
}

/// The bytes of the files under `path`.
pub fn folder_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => folder_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("topics-folder-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        path
    }

    #[test]
    fn a_second_open_is_refused_while_the_first_holds_the_lock() {
        let path = scratch("lock");
        let first = DataFolder::open(&path).unwrap();
        let error = DataFolder::open(&path).err().unwrap().to_string();
        assert!(error.contains("another harness"), "{error}");
        assert!(error.contains(&std::process::id().to_string()), "{error}");
        assert!(remove(&path).is_err(), "--fresh waits for the holder");
        drop(first);
        DataFolder::open(&path).unwrap();
        std::fs::remove_dir_all(&path).unwrap();
    }

    #[test]
    fn another_format_or_a_foreign_folder_is_refused_with_what_to_do() {
        let path = scratch("format");
        drop(DataFolder::open(&path).unwrap());
        std::fs::write(path.join("FORMAT"), "marketing-pipeline harness data 99\n").unwrap();
        let error = DataFolder::open(&path).err().unwrap().to_string();
        assert!(error.contains("another format"), "{error}");
        assert!(error.contains("--fresh"), "{error}");
        remove(&path).unwrap();
        assert!(!path.exists());

        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(path.join("notes.txt"), "mine").unwrap();
        let error = DataFolder::open(&path).err().unwrap().to_string();
        assert!(error.contains("not a harness data folder"), "{error}");
        assert!(
            remove(&path).is_err(),
            "--fresh never deletes what is not ours"
        );
        assert!(path.join("notes.txt").exists());
        std::fs::remove_dir_all(&path).unwrap();
    }
}
