//! The `local` backend, the embedded default: a file-backed DA store. Batch `n` (from 1)
//! is the file `batch-{n:012}.bin` in its directory, written whole or not at all
//! (temporary file, fsync, rename, fsync of the directory), so a crash leaves the
//! previous batches and no torn one. The node serves it over its RPC.

use std::path::{Path, PathBuf};

use alloy_primitives::keccak256;
use std::sync::Mutex;

use crate::codec::MAX_BATCH_BYTES;
use crate::{DaBackend, DaError, DaRef};

/// A file-backed DA store (see the module documentation).
#[derive(Debug)]
pub struct LocalDa {
    dir: PathBuf,
    /// The newest batch.
    latest: Mutex<Option<DaRef>>,
}

fn file_name(height: u64) -> String {
    format!("batch-{height:012}.bin")
}

fn io(what: &str, path: &Path, e: std::io::Error) -> DaError {
    DaError::Io(format!("{what} {}: {e}", path.display()))
}

impl LocalDa {
    /// Opens (creating) the store in `dir`; leftover temporary files of an interrupted
    /// write are removed.
    pub fn open(dir: &Path) -> Result<Self, DaError> {
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        let mut newest: Option<u64> = None;
        for entry in std::fs::read_dir(dir).map_err(|e| io("reading", dir, e))? {
            let entry = entry.map_err(|e| io("reading", dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Some(n) = name.strip_prefix("batch-").and_then(|s| s.strip_suffix(".bin")) else { continue };
            if let Ok(n) = n.parse::<u64>() {
                newest = newest.max(Some(n));
            }
        }
        let store = Self { dir: dir.to_path_buf(), latest: Mutex::new(None) };
        if let Some(n) = newest {
            let bytes = store.fetch(n)?.ok_or_else(|| DaError::Io(format!("batch {n} vanished")))?;
            *store.lock() = Some(DaRef::local(n, &bytes));
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<DaRef>> {
        self.latest.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl DaRef {
    fn local(height: u64, bytes: &[u8]) -> Self {
        Self { backend: "local".into(), height, commitment: keccak256(bytes), size: bytes.len() as u64 }
    }
}

impl DaBackend for LocalDa {
    fn name(&self) -> &'static str {
        "local"
    }

    fn post(&self, batch: &[u8]) -> Result<DaRef, DaError> {
        if batch.len() > MAX_BATCH_BYTES {
            return Err(DaError::TooLarge { size: batch.len(), limit: MAX_BATCH_BYTES });
        }
        // One writer at a time: heights are consecutive.
        let mut latest = self.lock();
        let height = latest.as_ref().map_or(1, |r| r.height + 1);
        let path = self.dir.join(file_name(height));
        let tmp = self.dir.join(format!("{}.tmp", file_name(height)));
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(|e| io("creating", &tmp, e))?;
            f.write_all(batch).map_err(|e| io("writing", &tmp, e))?;
            f.sync_all().map_err(|e| io("syncing", &tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| io("renaming", &tmp, e))?;
        std::fs::File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io("syncing", &self.dir, e))?;
        let r = DaRef::local(height, batch);
        *latest = Some(r.clone());
        Ok(r)
    }

    fn fetch(&self, height: u64) -> Result<Option<Vec<u8>>, DaError> {
        let path = self.dir.join(file_name(height));
        match std::fs::metadata(&path) {
            Ok(m) if m.len() > MAX_BATCH_BYTES as u64 => {
                return Err(DaError::TooLarge { size: m.len() as usize, limit: MAX_BATCH_BYTES })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path, e)),
        }
        std::fs::read(&path).map(Some).map_err(|e| io("reading", &path, e))
    }

    fn latest(&self) -> Result<Option<DaRef>, DaError> {
        Ok(self.lock().clone())
    }
}
