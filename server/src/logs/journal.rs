//! The request log's journal: every record is appended, as one JSON line and one `write(2)`, to the active file of
//! a directory before the request path lets go of it, so a record survives the process being killed (SIGKILL) as
//! soon as its request has answered. The log writer rotates the active file into numbered segments and moves
//! segments into the store, deleting each once the store has all of its records; while the store is unreachable
//! the segments wait on disk, and memory stays bounded whatever the load.
//!
//! A crash can tear the last line of the active file; reading a segment skips and counts such lines.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex,
    },
};

use super::LogRecord;

const ACTIVE: &str = "active.jsonl";
/// The journal's id and the number its next segment gets (`<id> <number>`, replaced atomically): the id names
/// the store's cursor for this journal, and segment numbers never repeat under one id, even once every segment
/// is deleted, so a cursor never skips a new segment. Lost or unreadable: a new id (an empty cursor).
const STATE: &str = "journal-state";

#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    id: String,
    /// The active file, appended to under this lock (one `write(2)` per record).
    active: Mutex<File>,
    /// Records in the active file (rotation skips an empty one).
    in_active: AtomicU64,
    /// The number the next segment gets.
    next_segment: AtomicU64,
}

/// One closed segment, in the order it must be written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    pub number: u64,
    pub path: PathBuf,
}

/// What reading a segment gave.
#[derive(Debug, Default)]
pub struct Taken {
    pub records: Vec<LogRecord>,
    /// Lines that were not a record (torn by a crash).
    pub unreadable: usize,
}

/// Replaces the state file (write a temporary file, then rename: a reader sees the old state or the new one).
fn save_state(dir: &Path, id: &str, next: u64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{STATE}.tmp"));
    std::fs::write(&tmp, format!("{id} {next}"))?;
    std::fs::rename(tmp, dir.join(STATE))
}

fn segment_number(name: &str) -> Option<u64> {
    name.strip_prefix("segment-")?.strip_suffix(".jsonl")?.parse().ok()
}

impl Journal {
    /// Opens (creating) the journal in `dir`. An active file left by a previous process becomes a segment, so its
    /// records are replayed.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Journal> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut highest = 0;
        for entry in std::fs::read_dir(&dir)? {
            if let Some(n) = entry?.file_name().to_str().and_then(segment_number) {
                highest = highest.max(n);
            }
        }
        let state = std::fs::read_to_string(dir.join(STATE)).ok().and_then(|text| {
            let (id, next) = text.trim().split_once(' ')?;
            Some((id.to_owned(), next.parse::<u64>().ok()?)).filter(|(id, _)| !id.is_empty())
        });
        let (id, next) = match state {
            Some((id, next)) => (id, next.max(highest + 1)),
            None => (uuid::Uuid::now_v7().simple().to_string(), highest + 1),
        };
        let active_path = dir.join(ACTIVE);
        let leftover = std::fs::metadata(&active_path).is_ok_and(|m| m.len() > 0);
        let next = if leftover {
            save_state(&dir, &id, next + 1)?;
            std::fs::rename(&active_path, dir.join(format!("segment-{next:012}.jsonl")))?;
            next + 1
        } else {
            save_state(&dir, &id, next)?;
            next
        };
        let active = OpenOptions::new().create(true).append(true).open(&active_path)?;
        Ok(Journal {
            dir,
            id,
            active: Mutex::new(active),
            in_active: AtomicU64::new(0),
            next_segment: AtomicU64::new(next),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends `record` as one line with one write.
    pub fn append(&self, record: &LogRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self.active.lock().map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        file.write_all(&line)?;
        self.in_active.fetch_add(1, Relaxed);
        Ok(())
    }

    /// Closes the active file as the next segment (if it holds anything) and starts a new one.
    pub fn rotate(&self) -> std::io::Result<()> {
        let mut file = self.active.lock().map_err(|_| std::io::Error::other("journal lock poisoned"))?;
        if self.in_active.load(Relaxed) == 0 {
            return Ok(());
        }
        let number = self.next_segment.fetch_add(1, Relaxed);
        // The number is spent before the segment exists: a crash in between leaves a gap, never a repeat.
        save_state(&self.dir, &self.id, number + 1)?;
        let active_path = self.dir.join(ACTIVE);
        std::fs::rename(&active_path, self.dir.join(format!("segment-{number:012}.jsonl")))?;
        *file = OpenOptions::new().create(true).append(true).open(&active_path)?;
        self.in_active.store(0, Relaxed);
        Ok(())
    }

    /// The closed segments, oldest first.
    pub fn segments(&self) -> std::io::Result<Vec<Segment>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if let Some(number) = entry.file_name().to_str().and_then(segment_number) {
                out.push(Segment { number, path: entry.path() });
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn read(&self, segment: &Segment) -> std::io::Result<Taken> {
        let mut taken = Taken::default();
        for line in BufReader::new(File::open(&segment.path)?).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(record) => taken.records.push(record),
                Err(_) => taken.unreadable += 1,
            }
        }
        Ok(taken)
    }

    /// Lines holding something in `segment` (its records, and any line torn by a crash): what [`Journal::read`]
    /// would give, without parsing.
    pub fn count(&self, segment: &Segment) -> std::io::Result<u64> {
        let mut n = 0;
        for line in BufReader::new(File::open(&segment.path)?).split(b'\n') {
            n += u64::from(line?.iter().any(|b| !b.is_ascii_whitespace()));
        }
        Ok(n)
    }

    /// Every consumer (the store and each callback) has every record of `segment`.
    pub fn remove(&self, segment: &Segment) -> std::io::Result<()> {
        match std::fs::remove_file(&segment.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Bytes waiting in the journal (active file and segments; not the id or the callbacks' cursors).
    pub fn size(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(|n| n == ACTIVE || segment_number(n).is_some()))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
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
        std::env::temp_dir().join(format!("tollgate-journal-{}", uuid::Uuid::new_v4().simple()))
    }

    fn ids(taken: &Taken) -> Vec<&str> {
        taken.records.iter().map(|r| r.request_id.as_str()).collect()
    }

    #[test]
    fn records_rotate_into_ordered_segments_and_are_removed_once_stored() {
        let dir = temp();
        let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(journal.rotate().is_ok(), "an empty active file is not rotated");
        assert!(journal.segments().unwrap_or_default().is_empty());
        for id in ["a", "b"] {
            assert!(journal.append(&record(id)).is_ok());
        }
        assert!(journal.rotate().is_ok());
        assert!(journal.append(&record("c")).is_ok());
        assert!(journal.rotate().is_ok());
        let segments = journal.segments().unwrap_or_default();
        assert_eq!(segments.len(), 2);
        let first = journal.read(&segments[0]).unwrap_or_default();
        assert_eq!(ids(&first), ["a", "b"]);
        assert_eq!(journal.count(&segments[0]).ok(), Some(2));
        assert_eq!(ids(&journal.read(&segments[1]).unwrap_or_default()), ["c"]);
        assert!(journal.remove(&segments[0]).is_ok() && journal.remove(&segments[1]).is_ok());
        assert_eq!(journal.size(), 0);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_killed_process_leaves_its_records_to_the_next_one_and_a_torn_line_is_counted() {
        let dir = temp();
        {
            let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
            assert!(journal.append(&record("a")).is_ok());
            assert!(journal.rotate().is_ok());
            assert!(journal.append(&record("b")).is_ok());
            // The process dies mid-write: half a line follows.
            let mut f = OpenOptions::new().append(true).open(dir.join(ACTIVE)).unwrap_or_else(|e| unreachable!("{e}"));
            let _ = f.write_all(b"{\"request_id\":\"c\",\"sta");
        }
        let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let segments = journal.segments().unwrap_or_default();
        assert_eq!(segments.len(), 2, "the old active file became a segment after the old ones");
        assert_eq!(ids(&journal.read(&segments[0]).unwrap_or_default()), ["a"]);
        let second = journal.read(&segments[1]).unwrap_or_default();
        assert_eq!((ids(&second), second.unreadable), (vec!["b"], 1));
        assert_eq!(journal.count(&segments[1]).ok(), Some(2), "the torn line counts as a line");
        assert!(journal.append(&record("d")).is_ok() && journal.rotate().is_ok());
        let numbers: Vec<u64> = journal.segments().unwrap_or_default().iter().map(|s| s.number).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]) && numbers.len() == 3, "{numbers:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn segment_numbers_never_repeat_under_one_id_even_once_every_segment_is_deleted() {
        let dir = temp();
        let first = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let id = first.id().to_owned();
        assert!(first.append(&record("a")).is_ok() && first.rotate().is_ok());
        let applied = first.segments().unwrap_or_default();
        assert_eq!(applied.len(), 1);
        assert!(first.remove(&applied[0]).is_ok(), "stored and deleted");
        assert!(first.append(&record("b")).is_ok());
        drop(first); // killed: "b" is in the active file
        let second = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(second.id(), id, "the same cursor applies");
        let leftover = second.segments().unwrap_or_default();
        assert_eq!(leftover.len(), 1);
        assert!(leftover[0].number > applied[0].number, "{leftover:?} after {applied:?}");
        assert!(second.remove(&leftover[0]).is_ok());
        assert!(second.append(&record("c")).is_ok() && second.rotate().is_ok());
        assert!(second.segments().unwrap_or_default()[0].number > leftover[0].number);
        let _ = std::fs::remove_dir_all(dir);
    }
}
