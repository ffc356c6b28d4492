//! The append-only spool of request log records the store could not take yet: JSON lines in one file, appended
//! under a lock (writes are whole lines, so a crash leaves at most a torn last line, which replay skips and
//! counts). Replay takes the file over by renaming it, so records appended meanwhile go to a fresh file.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

use super::LogRecord;

#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    /// Serializes appends and the rename that starts a replay.
    lock: Mutex<()>,
}

/// What a replay read back from the spool.
#[derive(Debug, Default)]
pub struct Taken {
    pub records: Vec<LogRecord>,
    /// Lines that were not a record (a torn last line after a crash).
    pub unreadable: usize,
}

impl Spool {
    pub fn new(path: impl Into<PathBuf>) -> Spool {
        Spool { path: path.into(), lock: Mutex::new(()) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file a replay works on: it survives a failed replay and is replayed first next time.
    fn replaying(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".replaying");
        PathBuf::from(p)
    }

    /// Appends `records`, one JSON line each, and flushes them to the operating system.
    pub fn append(&self, records: &[LogRecord]) -> std::io::Result<()> {
        let mut text = Vec::with_capacity(records.len() * 512);
        for r in records {
            serde_json::to_writer(&mut text, r).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        let _guard = self.lock.lock().map_err(|_| std::io::Error::other("spool lock poisoned"))?;
        let mut file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(&text)?;
        file.flush()
    }

    /// Bytes waiting in the spool (both files).
    pub fn size(&self) -> u64 {
        [self.path.clone(), self.replaying()].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
    }

    /// Takes the records to replay: the file of an unfinished replay if there is one, else the spool (renamed so
    /// appends continue in a fresh file). `None` when there is nothing to replay.
    pub fn take(&self) -> std::io::Result<Option<Taken>> {
        let replaying = self.replaying();
        if !replaying.exists() {
            let _guard = self.lock.lock().map_err(|_| std::io::Error::other("spool lock poisoned"))?;
            match std::fs::rename(&self.path, &replaying) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let mut taken = Taken::default();
        for line in BufReader::new(File::open(&replaying)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(record) => taken.records.push(record),
                Err(_) => taken.unreadable += 1,
            }
        }
        Ok(Some(taken))
    }

    /// The records [`Spool::take`] gave are in the store: forget them.
    pub fn done(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.replaying()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> LogRecord {
        LogRecord {
            request_id: id.into(),
            model_group: "m".into(),
            route: "/v1/chat/completions".into(),
            ..LogRecord::default()
        }
    }

    fn temp() -> PathBuf {
        std::env::temp_dir().join(format!("tollgate-spool-{}.jsonl", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn records_round_trip_and_appends_during_a_replay_go_to_a_fresh_file() {
        let spool = Spool::new(temp());
        assert!(matches!(spool.take(), Ok(None)), "nothing spooled yet");
        assert!(spool.append(&[record("a"), record("b")]).is_ok());
        let taken = spool.take().ok().flatten().unwrap_or_default();
        assert_eq!(taken.records.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert!(spool.append(&[record("c")]).is_ok(), "appends continue while a replay runs");
        // The replay failed (no `done`): the same records come back first.
        let again = spool.take().ok().flatten().unwrap_or_default();
        assert_eq!(again.records.len(), 2);
        assert!(spool.done().is_ok());
        let next = spool.take().ok().flatten().unwrap_or_default();
        assert_eq!(next.records.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(), ["c"]);
        assert!(spool.done().is_ok());
        assert_eq!(spool.size(), 0);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_counted() {
        let spool = Spool::new(temp());
        assert!(spool.append(&[record("a")]).is_ok());
        let mut f = OpenOptions::new().append(true).open(spool.path()).unwrap_or_else(|e| unreachable!("{e}"));
        let _ = f.write_all(b"{\"request_id\":\"b\",\"start");
        let taken = spool.take().ok().flatten().unwrap_or_default();
        assert_eq!((taken.records.len(), taken.unreadable), (1, 1));
        let _ = spool.done();
    }
}
