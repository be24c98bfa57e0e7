//! A checksummed append-only record log. Two write-ahead logs use it: the admission
//! log (every accepted transaction is appended and `fdatasync`ed, in groups, before its
//! hash is returned) and the fragment log (every preconfirmation fragment is made
//! durable before it is published).
//!
//! It is a plain append-only file, separate from the redb store, so admissions never
//! wait for redb's single writer (a block commit). Records are
//! `[len: u32 LE][crc32(payload): u32 LE][payload]`; recovery reads records until the
//! first short or corrupt one (a torn tail from a crash) and truncates there. The log
//! never needs deletions: on restart every recovered transaction is validated again
//! (those already in a block fail the nonce check). [`RecordLog::rewrite`] compacts it to
//! the live pool atomically (write a temporary file, fsync, rename, fsync the folder).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Records above this size are treated as corruption (transactions are far smaller).
const MAX_RECORD: usize = 4 * 1024 * 1024;
const HEADER: usize = 8;

pub struct RecordLog {
    path: PathBuf,
    file: File,
    bytes: u64,
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::Io { op, reason: format!("{}: {e}", path.display()) }
}

impl RecordLog {
    /// Opens (or creates) the log and returns the intact records it holds, in order.
    pub fn open(path: &Path) -> Result<(Self, Vec<Vec<u8>>), StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err("create log folder", path))?;
        }
        let existed = path.exists();
        let mut file =
            OpenOptions::new().read(true).append(true).create(true).open(path).map_err(err("open log", path))?;
        if !existed {
            // The new file's name must survive a crash too.
            sync_parent(path)?;
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(err("read log", path))?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while data.len() - at >= HEADER {
            let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
            let crc = u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
            let end = at + HEADER + len;
            if len > MAX_RECORD || end > data.len() || crc32fast::hash(&data[at + HEADER..end]) != crc {
                break;
            }
            records.push(data[at + HEADER..end].to_vec());
            at = end;
        }
        if at < data.len() {
            tracing::warn!(path = %path.display(), kept = at, dropped = data.len() - at, "truncating a torn tail of the transaction log");
            file.set_len(at as u64).map_err(err("truncate log", path))?;
            file.sync_all().map_err(err("sync log", path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(err("seek log", path))?;
        Ok((Self { path: path.to_path_buf(), file, bytes: at as u64 }, records))
    }

    /// Appends records and makes them durable (one `fdatasync`).
    pub fn append<'a>(&mut self, records: impl IntoIterator<Item = &'a [u8]>) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        for r in records {
            encode(&mut buf, r);
        }
        self.file.write_all(&buf).map_err(err("append log", &self.path))?;
        self.file.sync_data().map_err(err("sync log", &self.path))?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    /// Replaces the whole log with `records`, atomically.
    pub fn rewrite<'a>(&mut self, records: impl IntoIterator<Item = &'a [u8]>) -> Result<(), StoreError> {
        let tmp = self.path.with_extension("compacting");
        let mut buf = Vec::new();
        for r in records {
            encode(&mut buf, r);
        }
        {
            let mut f = File::create(&tmp).map_err(err("create log", &tmp))?;
            f.write_all(&buf).map_err(err("write log", &tmp))?;
            f.sync_all().map_err(err("sync log", &tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err("replace log", &self.path))?;
        sync_parent(&self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path).map_err(err("open log", &self.path))?;
        self.bytes = buf.len() as u64;
        Ok(())
    }

    /// Bytes in the log file.
    pub fn len_bytes(&self) -> u64 {
        self.bytes
    }
}

/// Makes a change to `path`'s folder (a created, renamed or deleted file) durable.
pub fn sync_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            File::open(dir).and_then(|d| d.sync_all()).map_err(err("sync log folder", dir))
        }
        _ => Ok(()),
    }
}

fn encode(buf: &mut Vec<u8>, record: &[u8]) {
    buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
    buf.extend_from_slice(record);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopen_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pool.wal");
        {
            let (mut log, recovered) = RecordLog::open(&path).expect("open");
            assert!(recovered.is_empty());
            log.append([b"one".as_slice(), b"two".as_slice()]).expect("append");
            log.append([b"three".as_slice()]).expect("append");
        }
        // a crash mid-append: half a record at the end
        let mut f = OpenOptions::new().append(true).open(&path).expect("open raw");
        f.write_all(&[9, 0, 0, 0, 1, 2]).expect("torn write");
        drop(f);
        let (mut log, recovered) = RecordLog::open(&path).expect("reopen");
        assert_eq!(recovered, vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]);
        log.append([b"four".as_slice()]).expect("append after truncation");
        drop(log);
        let (_, recovered) = RecordLog::open(&path).expect("reopen");
        assert_eq!(recovered.len(), 4);
    }

    #[test]
    fn a_corrupt_record_ends_recovery_and_rewrite_compacts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pool.wal");
        let (mut log, _) = RecordLog::open(&path).expect("open");
        log.append([b"aaaa".as_slice(), b"bbbb".as_slice()]).expect("append");
        drop(log);
        let mut data = std::fs::read(&path).expect("read");
        let last = data.len() - 1;
        data[last] ^= 0xff; // flip a payload bit of the second record
        std::fs::write(&path, data).expect("write");
        let (mut log, recovered) = RecordLog::open(&path).expect("reopen");
        assert_eq!(recovered, vec![b"aaaa".to_vec()]);
        log.rewrite([b"zz".as_slice()]).expect("rewrite");
        assert_eq!(log.len_bytes(), 10);
        log.append([b"yy".as_slice()]).expect("append");
        drop(log);
        let (_, recovered) = RecordLog::open(&path).expect("reopen");
        assert_eq!(recovered, vec![b"zz".to_vec(), b"yy".to_vec()]);
    }
}
