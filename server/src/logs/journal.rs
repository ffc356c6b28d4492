//! The request log's journal: every record is appended to the active file of a directory before the request path
//! lets go of it, so a record survives the process being killed (SIGKILL) as soon as its request has answered. The
//! log writer rotates the active file into numbered segments and moves segments into the store, deleting each once
//! the store has all of its records; while the store is unreachable the segments wait on disk, and memory stays
//! bounded whatever the load.
//!
//! The active file is a shared mapping of a file reserved at [`ACTIVE_CAPACITY`] bytes (sparse until written):
//! appending is one copy into the page cache, no system call; a killed process's pages stay in the page cache and
//! reach the disk as any write would. Each record is a frame: its length and CRC-32 (8 bytes), then its encoding
//! (`codec`). The payload is copied before the header, so a frame whose header is in place is whole unless the
//! process died while the 8 header bytes were copied; a reader stops at the first zero length (the unwritten rest)
//! and counts a frame whose CRC does not match, or that does not fit, as torn. An active file that fills up is
//! rotated by the appender.
//!
//! Segments of the first format (one JSON line per record, `*.jsonl`) are still read, so an upgrade loses nothing.
//!
//! The records appended by this process are also kept in memory beside their frames, up to [`KEPT_MAX`] records in
//! all, and handed to the store's consumer by [`Journal::take`] instead of being read back and decoded: about 4,000
//! instructions a record (tests/bench/instructions.sh) that were the same bytes turned back into the same record.
//! The file stays the truth: a segment without its kept records (another process's, one whose records outgrew the
//! budget, or a consumer that read it already) is read from disk, and a crash loses only the memory copy.

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering::Relaxed},
        Mutex, PoisonError,
    },
};

use memmap2::MmapMut;

use super::{codec, LogRecord};

const ACTIVE: &str = "active.log";
/// The first format's active file: a leftover becomes a JSON-lines segment.
const ACTIVE_JSONL: &str = "active.jsonl";
/// The next active file while a rotation makes it, outside the lock appends take; it holds no records until it is
/// renamed to [`ACTIVE`] (under that lock), so a leftover is deleted on open.
const NEXT: &str = "next.log";
/// The active file's reserved size: about 40,000 records of 800 bytes. Sparse: only written pages take disk.
pub const ACTIVE_CAPACITY: usize = 32 << 20;
/// Bytes of a new active file faulted in at once, at least: a rotation's new file gets as much as the last one
/// held (a writer's turn of appends), so the request path takes page faults only for what a turn writes beyond
/// that. Not more: a page of this file costs the kernel about as much to fault in ahead as on demand (most of it
/// is the filesystem filling the page of a sparse file, perf: `filemap_fault`), and a page faulted in but never
/// written is that work thrown away (half as much again cost about 0.8% of tollgate's CPU at c=50 in
/// tests/bench/run.sh's layout, perf).
const PREFAULT_MIN: usize = 256 << 10;
/// Bytes faulted in per call while prefaulting: each call returns to user space, where a worker woken meanwhile on
/// the same core gets it back (tens of microseconds a piece).
const PREFAULT_PIECE: usize = 64 << 10;
/// A frame's header: payload length and CRC-32 of the payload, little endian.
const HEADER: usize = 8;
/// Records kept in memory for the store's consumer, in all (the active file's and the closed segments'): about
/// 8 MB of records; beyond it records are only on disk until [`Journal::take`] frees some.
const KEPT_MAX: usize = 8_000;
/// The journal's id and the number its next segment gets (`<id> <number>`, replaced atomically): the id names
/// the store's cursor for this journal, and segment numbers never repeat under one id, even once every segment
/// is deleted, so a cursor never skips a new segment. Lost or unreadable: a new id (an empty cursor).
const STATE: &str = "journal-state";

#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    id: String,
    /// The active file, appended to under this lock; `None` when a rotation could not make a new one (appends
    /// then try again, and fail, counted, until one can be made).
    active: Mutex<Option<Active>>,
    /// Held by [`Journal::rotate`] for all of its work (one rotation at a time, over the one spare file), never by
    /// appends.
    rotating: Mutex<()>,
    /// Records in the active file (rotation skips an empty one).
    in_active: AtomicU64,
    /// Bytes written to the active file, for [`Journal::size`].
    active_bytes: AtomicU64,
    /// The number the next segment gets.
    next_segment: AtomicU64,
    /// Bytes reserved for each active file ([`ACTIVE_CAPACITY`]; smaller in tests).
    capacity: usize,
    /// The buffer segments are read into, kept between reads: a fresh megabyte per turn would be fresh pages for
    /// the kernel to zero each time.
    read_buffer: Mutex<Vec<u8>>,
    /// Closed segments' records as appended, by segment number, oldest first, for [`Journal::take`].
    kept: Mutex<Vec<(u64, Kept)>>,
    /// Records held in `kept`: with the active file's, at most [`KEPT_MAX`].
    kept_closed: AtomicU64,
    /// Records the last closed file kept: the next file's room.
    kept_last: AtomicU64,
}

/// One file's records as appended. `whole` is false once one was not kept (the budget was spent): the file's records
/// must then be read from disk, and the ones here are only dropped, when the log writer takes or removes the
/// segment (not on the request path, except where a rotation by the appender fails).
#[derive(Debug, Default)]
struct Kept {
    records: Vec<LogRecord>,
    whole: bool,
}

/// A record the journal could not take, and why.
#[derive(Debug)]
pub struct Refused {
    pub error: std::io::Error,
    pub record: Box<LogRecord>,
}

/// The mapped active file and how far it is written.
#[derive(Debug)]
struct Active {
    file: File,
    map: MmapMut,
    len: usize,
    /// The records of the frames written so far.
    kept: Kept,
}

impl Active {
    fn create(path: &Path, capacity: usize, prefault: usize) -> std::io::Result<Active> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        file.set_len(capacity as u64)?;
        // SAFETY: the file is the journal's own, just created in its directory and never truncated or written by
        // anything else while mapped (rotation unmaps before it truncates); a mapping's pages are the page
        // cache's, so a record copied here outlives this process.
        let map = unsafe { MmapMut::map_mut(&file)? };
        // No readahead on this mapping's faults: the file is written front to back and never read through the map,
        // and a fault's readahead filled (and zeroed) pages past the one asked for that the cut at close threw
        // away again (perf: `page_cache_ra_order` was most of a rotation's time, the truncate's page cache
        // deletions most of the rest). A failure only leaves readahead on.
        let _ = map.advise(memmap2::Advice::Random);
        // Fault the first pages in, writable, now (on the log writer's turn) rather than one trap at a time on the
        // request path; a failure (an older kernel) only leaves them to be faulted on demand. In pieces: one call
        // for all of them ran for milliseconds without a point where the scheduler could hand the CPU back to a
        // worker woken meanwhile (a worker sharing the core waited it out: c=1 p99 went from 0.3 to 2 ms); after each
        // piece the thread yields, since the scheduler lets a running thread finish its slice before a woken one.
        let end = prefault.max(PREFAULT_MIN).min(capacity);
        for start in (0..end).step_by(PREFAULT_PIECE) {
            if map.advise_range(memmap2::Advice::PopulateWrite, start, PREFAULT_PIECE.min(end - start)).is_err() {
                break;
            }
            std::thread::yield_now();
        }
        Ok(Active { file, map, len: 0, kept: Kept { records: Vec::new(), whole: true } })
    }

    /// Copies one frame in: payload first, header last.
    fn append(&mut self, payload: &[u8]) -> bool {
        let end = self.len + HEADER + payload.len();
        if end > self.map.len() {
            return false;
        }
        self.map[self.len + HEADER..end].copy_from_slice(payload);
        self.map[self.len..self.len + HEADER].copy_from_slice(&header(payload));
        self.len = end;
        true
    }

    /// Unmaps the file and cuts it to what was written.
    fn close(self) -> std::io::Result<()> {
        let Active { file, map, len, kept: _ } = self;
        drop(map);
        file.set_len(len as u64)
    }
}

/// The little-endian `u32` at `at` (a header's length or CRC); `bytes` holds at least `at + 4` bytes.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn header(payload: &[u8]) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    h
}

/// One frame read from a file.
pub(crate) enum Frame<'a> {
    Record(&'a [u8]),
    /// A header that does not fit the file or whose CRC does not match: torn by a crash; nothing after it is read.
    Torn,
}

/// The frames of a frames file, up to the first zero length (the unwritten rest) or the first torn one.
pub(crate) fn frames(bytes: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    let mut at = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || at + HEADER > bytes.len() {
            // A few bytes after the last frame that cannot be a header: torn too, unless they are zeros.
            if !done && bytes[at.min(bytes.len())..].iter().any(|&b| b != 0) {
                done = true;
                return Some(Frame::Torn);
            }
            return None;
        }
        let (len, crc) = (u32_at(bytes, at) as usize, u32_at(bytes, at + 4));
        if len == 0 {
            done = true;
            return (crc != 0).then_some(Frame::Torn);
        }
        let payload = bytes.get(at + HEADER..at + HEADER + len);
        match payload {
            Some(p) if crc32fast::hash(p) == crc => {
                at += HEADER + len;
                Some(Frame::Record(p))
            }
            _ => {
                done = true;
                Some(Frame::Torn)
            }
        }
    })
}

/// Where the frames of `bytes` end, by their lengths alone: at the first zero length, or where a torn frame's length
/// says it ends (within the file), plus any bytes other than zeros after that; a reader then counts the torn frame.
pub(crate) fn written_len(bytes: &[u8]) -> usize {
    let at = frame_ends(bytes).last().unwrap_or(0);
    // A torn tail's bytes stay; zeros after the last frame go.
    let tail = bytes[at..].iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    at + tail
}

/// Where each frame of `bytes` ends, by the lengths alone (no CRC), up to the first zero length; a torn frame's
/// end is clipped to `bytes`.
fn frame_ends(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at + HEADER > bytes.len() {
            return None;
        }
        let len = u32_at(bytes, at) as usize;
        if len == 0 {
            return None;
        }
        at = (at + HEADER + len).min(bytes.len());
        Some(at)
    })
}

/// Whether an active file left at `path` (by a killed process, or a rotation that failed) holds frames: if so it
/// is cut to what was written and must become a segment; if it holds none it is removed.
fn holds_records(path: &Path) -> std::io::Result<bool> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let len = written_len(&bytes);
    if len == 0 {
        std::fs::remove_file(path)?;
        return Ok(false);
    }
    OpenOptions::new().write(true).open(path)?.set_len(len as u64)?;
    Ok(true)
}

/// One closed segment, in the order it must be written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    pub number: u64,
    pub path: PathBuf,
}

impl Segment {
    /// A segment of the first format: JSON lines.
    fn is_jsonl(&self) -> bool {
        self.path.extension().is_some_and(|e| e == "jsonl")
    }
}

/// What reading a segment gave.
#[derive(Debug, Default)]
pub struct Taken {
    pub records: Vec<LogRecord>,
    /// Frames or lines that were not a record (torn by a crash, or corrupt).
    pub unreadable: usize,
}

/// Replaces the state file (write a temporary file, then rename: a reader sees the old state or the new one).
fn save_state(dir: &Path, id: &str, next: u64) -> std::io::Result<()> {
    let tmp = dir.join(format!("{STATE}.tmp"));
    std::fs::write(&tmp, format!("{id} {next}"))?;
    std::fs::rename(tmp, dir.join(STATE))
}

fn segment_number(name: &str) -> Option<u64> {
    let number = name.strip_prefix("segment-")?;
    number.strip_suffix(".log").or_else(|| number.strip_suffix(".jsonl"))?.parse().ok()
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("segment-{number:012}.log"))
}

impl Journal {
    /// Opens (creating) the journal in `dir`. An active file left by a previous process becomes a segment, so its
    /// records are replayed.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Journal> {
        Self::open_with(dir.into(), ACTIVE_CAPACITY)
    }

    fn open_with(dir: PathBuf, capacity: usize) -> std::io::Result<Journal> {
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
        let (id, mut next) = match state {
            Some((id, next)) => (id, next.max(highest + 1)),
            None => (uuid::Uuid::now_v7().simple().to_string(), highest + 1),
        };
        save_state(&dir, &id, next)?;
        // Leftovers of a previous process: the first format's active file, then this format's, each becomes the
        // next segment (cut to what was written) if it holds anything.
        let old = dir.join(ACTIVE_JSONL);
        if std::fs::metadata(&old).is_ok_and(|m| m.len() > 0) {
            save_state(&dir, &id, next + 1)?;
            std::fs::rename(&old, dir.join(format!("segment-{next:012}.jsonl")))?;
            next += 1;
        }
        let _ = std::fs::remove_file(&old);
        let _ = std::fs::remove_file(dir.join(NEXT));
        let active_path = dir.join(ACTIVE);
        if holds_records(&active_path)? {
            save_state(&dir, &id, next + 1)?;
            std::fs::rename(&active_path, segment_path(&dir, next))?;
            next += 1;
        }
        let active = Active::create(&active_path, capacity, PREFAULT_MIN)?;
        Ok(Journal {
            capacity,
            read_buffer: Mutex::new(Vec::new()),
            kept: Mutex::new(Vec::new()),
            kept_closed: AtomicU64::new(0),
            kept_last: AtomicU64::new(0),
            dir,
            id,
            active: Mutex::new(Some(active)),
            rotating: Mutex::new(()),
            in_active: AtomicU64::new(0),
            active_bytes: AtomicU64::new(0),
            next_segment: AtomicU64::new(next),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends `record` as one frame: one copy into the mapped active file (rotated first if it is full); the
    /// record itself is kept for [`Journal::take`] while the budget lasts.
    pub fn append(&self, record: LogRecord) -> Result<(), Refused> {
        thread_local! {
            /// The encoding buffer of the thread appending: no allocation per record.
            static PAYLOAD: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(1024));
        }
        PAYLOAD.with(|buffer| {
            let mut payload = buffer.borrow_mut();
            payload.clear();
            codec::encode(&record, &mut payload);
            let appended = self.append_encoded(&payload, record);
            // A huge record (a long error message) does not leave its buffer behind.
            if payload.capacity() > 64 << 10 {
                *payload = Vec::with_capacity(1024);
            }
            appended
        })
    }

    fn append_encoded(&self, payload: &[u8], record: LogRecord) -> Result<(), Refused> {
        let refuse = |error, record| Err(Refused { error, record: Box::new(record) });
        if payload.len() + HEADER > self.capacity {
            let error =
                std::io::Error::other(format!("a record of {} bytes does not fit a journal file", payload.len()));
            return refuse(error, record);
        }
        let mut active = match self.lock_active() {
            Ok(active) => active,
            Err(error) => return refuse(error, record),
        };
        let appended = match active.as_mut() {
            Some(file) => file.append(payload),
            None => false,
        };
        if !appended {
            if let Err(error) = self.rotate_locked(&mut active) {
                return refuse(error, record);
            }
            let taken = match active.as_mut() {
                Some(file) => file.append(payload),
                None => return refuse(std::io::Error::other("no active journal file"), record),
            };
            if !taken {
                return refuse(std::io::Error::other("a new journal file did not take a record"), record);
            }
        }
        self.in_active.fetch_add(1, Relaxed);
        self.active_bytes.fetch_add((payload.len() + HEADER) as u64, Relaxed);
        if let Some(file) = active.as_mut() {
            self.keep(&mut file.kept, record);
        }
        Ok(())
    }

    /// Keeps `record` with its file's records while the budget lasts; past it, the file's records are no longer
    /// whole (a file's records are taken from memory whole or not at all).
    fn keep(&self, kept: &mut Kept, record: LogRecord) {
        if kept.whole && kept.records.len() as u64 + self.kept_closed.load(Relaxed) < KEPT_MAX as u64 {
            if kept.records.capacity() == 0 {
                // Records are large: growing by doubling copied each one about twice more. Room for half as many
                // again as the last file held (a writer's turn of appends).
                let last = self.kept_last.load(Relaxed) as usize;
                kept.records.reserve_exact((last + last / 2).clamp(16, KEPT_MAX));
            }
            kept.records.push(record);
        } else {
            kept.whole = false;
        }
    }

    /// Files a closed file's records under the segment `number` the file was renamed to.
    fn keep_segment(&self, number: u64, kept: Kept) {
        self.kept_closed.fetch_add(kept.records.len() as u64, Relaxed);
        self.kept_last.store(kept.records.len() as u64, Relaxed);
        self.kept.lock().unwrap_or_else(PoisonError::into_inner).push((number, kept));
    }

    /// The kept records of segment `number`, no longer counted.
    fn unkeep(&self, number: u64) -> Option<Kept> {
        let mut segments = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let at = segments.iter().position(|(n, _)| *n == number)?;
        let (_, kept) = segments.remove(at);
        self.kept_closed.fetch_sub(kept.records.len() as u64, Relaxed);
        Some(kept)
    }

    /// Closes the active file as the next segment (if it holds anything) and starts a new one.
    ///
    /// Why the file work happens outside the lock every append takes: making the next file (sizing it and
    /// faulting its first pages in) and cutting the full one to its length take milliseconds (strace: about
    /// 2.5 ms a turn, most of it the prefault), and under the lock an append arriving meanwhile (a request's end)
    /// waited for all of it, once per log writer turn. Under the lock there are only two renames: the full file to
    /// its segment, the new one to [`ACTIVE`].
    pub fn rotate(&self) -> std::io::Result<()> {
        let _rotating = self.rotating.lock().map_err(|_| std::io::Error::other("journal rotation lock poisoned"))?;
        {
            let mut active = self.lock_active()?;
            match active.as_ref() {
                Some(_) if self.in_active.load(Relaxed) == 0 => return Ok(()),
                Some(_) => {}
                // A failed rotation left no active file: its salvage, as an append would do it.
                None => return self.rotate_locked(&mut active),
            }
        }
        let prefault = self.active_bytes.load(Relaxed) as usize;
        let next_path = self.dir.join(NEXT);
        // A leftover of a rotation that failed before its renames.
        let _ = std::fs::remove_file(&next_path);
        let next = Active::create(&next_path, self.capacity, prefault)?;
        let discard = |next: Active| {
            drop(next);
            let _ = std::fs::remove_file(&next_path);
        };
        let number = self.spend_segment_number()?;
        let mut active = self.lock_active()?;
        let full = match active.take() {
            Some(full) if full.len > 0 => full,
            // Emptied meanwhile (an appender rotated a full file); or none left (its rotation failed): as before.
            other => {
                *active = other;
                discard(next);
                return if active.is_some() { Ok(()) } else { self.rotate_locked(&mut active) };
            }
        };
        if let Err(e) = std::fs::rename(self.dir.join(ACTIVE), segment_path(&self.dir, number)) {
            *active = Some(full);
            discard(next);
            return Err(e);
        }
        self.active_emptied();
        let mut full = full;
        self.keep_segment(number, std::mem::take(&mut full.kept));
        let renamed = std::fs::rename(&next_path, self.dir.join(ACTIVE));
        // Without its rename the new file would be deleted as a leftover on open: appends must not use it. No
        // active file: the next append makes one (and fails, counted, while it cannot).
        *active = renamed.is_ok().then_some(next);
        drop(active);
        // The segment is whole already (a reader stops at the first zero length); cutting it only frees the rest.
        let closed = full.close();
        renamed.and(closed)
    }

    fn lock_active(&self) -> std::io::Result<std::sync::MutexGuard<'_, Option<Active>>> {
        self.active.lock().map_err(|_| std::io::Error::other("journal lock poisoned"))
    }

    /// The number of the next segment, saved as spent before the segment exists: a crash in between leaves a gap,
    /// never a repeat.
    fn spend_segment_number(&self) -> std::io::Result<u64> {
        let number = self.next_segment.fetch_add(1, Relaxed);
        save_state(&self.dir, &self.id, number + 1)?;
        Ok(number)
    }

    /// The active file's counts start again: its records left it (as a segment) or it was replaced.
    fn active_emptied(&self) {
        self.in_active.store(0, Relaxed);
        self.active_bytes.store(0, Relaxed);
    }

    fn rotate_locked(&self, active: &mut Option<Active>) -> std::io::Result<()> {
        let active_path = self.dir.join(ACTIVE);
        let mut prefault = PREFAULT_MIN;
        if let Some(mut full) = active.take() {
            prefault = full.len + full.len / 2;
            if full.len > 0 {
                let number = self.spend_segment_number()?;
                let kept = std::mem::take(&mut full.kept);
                full.close()?;
                std::fs::rename(&active_path, segment_path(&self.dir, number))?;
                self.keep_segment(number, kept);
            } else {
                drop(full);
                std::fs::remove_file(&active_path)?;
            }
            self.active_emptied();
        } else if holds_records(&active_path)? {
            // An earlier rotation failed after unmapping the file (a truncate or rename refused): its records are
            // still there; they become a segment as a killed process's would, and appends go on in a new file.
            let number = self.spend_segment_number()?;
            std::fs::rename(&active_path, segment_path(&self.dir, number))?;
            self.active_emptied();
        }
        *active = Some(Active::create(&active_path, self.capacity, prefault)?);
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

    /// The records of `segment` for the store's consumer: those kept in memory when they are all there (no
    /// decoding), else read from disk. Either way the memory copy is given up.
    pub fn take(&self, segment: &Segment) -> std::io::Result<Taken> {
        match self.unkeep(segment.number) {
            Some(Kept { records, whole: true }) => Ok(Taken { records, unreadable: 0 }),
            _ => self.read(segment),
        }
    }

    pub fn read(&self, segment: &Segment) -> std::io::Result<Taken> {
        let mut taken = Taken::default();
        if segment.is_jsonl() {
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
            return Ok(taken);
        }
        self.with_frames(segment, |bytes| {
            // Records are large: growing the vector by doubling copied each one about twice more.
            taken.records.reserve_exact(frame_ends(bytes).count());
            for frame in frames(bytes) {
                match frame {
                    Frame::Record(payload) => match codec::decode(payload) {
                        Ok(record) => taken.records.push(record),
                        Err(_) => taken.unreadable += 1,
                    },
                    Frame::Torn => taken.unreadable += 1,
                }
            }
        })?;
        Ok(taken)
    }

    /// Reads a frames segment into the kept read buffer and gives it to `f`.
    fn with_frames<T>(&self, segment: &Segment, f: impl FnOnce(&[u8]) -> T) -> std::io::Result<T> {
        let mut buffer = self.read_buffer.lock().unwrap_or_else(PoisonError::into_inner);
        buffer.clear();
        File::open(&segment.path)?.read_to_end(&mut buffer)?;
        let result = f(&buffer);
        Ok(result)
    }

    /// Records in `segment` (and any frame or line torn by a crash): what [`Journal::read`] would give, without
    /// decoding.
    pub fn count(&self, segment: &Segment) -> std::io::Result<u64> {
        if segment.is_jsonl() {
            let mut n = 0;
            for line in BufReader::new(File::open(&segment.path)?).split(b'\n') {
                n += u64::from(line?.iter().any(|b| !b.is_ascii_whitespace()));
            }
            return Ok(n);
        }
        self.with_frames(segment, |bytes| frames(bytes).count() as u64)
    }

    /// Every consumer (the store and each callback) has every record of `segment`.
    pub fn remove(&self, segment: &Segment) -> std::io::Result<()> {
        // A segment the store's cursor had passed is removed without being taken.
        drop(self.unkeep(segment.number));
        match std::fs::remove_file(&segment.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Bytes waiting in the journal (what the active file holds, and the segments; not the id or the callbacks'
    /// cursors).
    pub fn size(&self) -> u64 {
        let segments: u64 = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_str().is_some_and(|n| segment_number(n).is_some()))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        segments + self.active_bytes.load(Relaxed)
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
            assert!(journal.append(record(id)).is_ok());
        }
        assert!(journal.rotate().is_ok());
        assert!(journal.append(record("c")).is_ok());
        assert!(journal.rotate().is_ok());
        let segments = journal.segments().unwrap_or_default();
        assert_eq!(segments.len(), 2);
        let first = journal.read(&segments[0]).unwrap_or_default();
        assert_eq!(ids(&first), ["a", "b"]);
        assert_eq!(journal.count(&segments[0]).ok(), Some(2));
        assert_eq!(ids(&journal.read(&segments[1]).unwrap_or_default()), ["c"]);
        assert!(journal.remove(&segments[0]).is_ok() && journal.remove(&segments[1]).is_ok());
        assert_eq!(journal.size(), 0);
        assert!(!dir.join(NEXT).exists(), "the spare became the active file");
        assert!(journal.append(record("d")).is_ok(), "appends go on in the renamed spare");
        assert!(journal.rotate().is_ok());
        let segments = journal.segments().unwrap_or_default();
        assert_eq!(ids(&journal.read(&segments[0]).unwrap_or_default()), ["d"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A rotation that stopped before its renames leaves the spare behind: it never held records (appends reach
    /// it only once it is the active file), so the next process deletes it and replays the active file alone.
    #[test]
    fn a_spare_left_by_an_interrupted_rotation_is_deleted_and_the_active_file_replayed() {
        let dir = temp();
        {
            let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
            assert!(journal.append(record("kept")).is_ok());
            let spare = Active::create(&dir.join(NEXT), 1 << 20, PREFAULT_MIN);
            assert!(spare.is_ok());
        }
        let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!dir.join(NEXT).exists());
        let segments = journal.segments().unwrap_or_default();
        assert_eq!(segments.len(), 1);
        assert_eq!(ids(&journal.read(&segments[0]).unwrap_or_default()), ["kept"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Appends and rotations from several threads at once: every record lands in exactly one segment, in each
    /// thread's order.
    #[test]
    fn rotations_beside_appends_lose_and_repeat_nothing() {
        let dir = temp();
        let journal = std::sync::Arc::new(Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}")));
        let appenders: Vec<_> = (0..3)
            .map(|t| {
                let journal = journal.clone();
                std::thread::spawn(move || {
                    (0..400).for_each(|i| assert!(journal.append(record(&format!("{t}-{i}"))).is_ok()))
                })
            })
            .collect();
        let rotator = {
            let journal = journal.clone();
            std::thread::spawn(move || (0..50).for_each(|_| assert!(journal.rotate().is_ok())))
        };
        appenders.into_iter().chain([rotator]).for_each(|t| assert!(t.join().is_ok()));
        assert!(journal.rotate().is_ok());
        let mut seen: Vec<String> = Vec::new();
        for segment in journal.segments().unwrap_or_default() {
            let taken = journal.read(&segment).unwrap_or_default();
            assert_eq!(taken.unreadable, 0);
            seen.extend(taken.records.into_iter().map(|r| r.request_id));
        }
        assert_eq!(seen.len(), 1200);
        for t in 0..3 {
            let order: Vec<usize> =
                seen.iter().filter_map(|id| id.strip_prefix(&format!("{t}-"))?.parse().ok()).collect();
            assert_eq!(order, (0..400).collect::<Vec<_>>(), "thread {t}");
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    fn encoded_len(record: &LogRecord) -> usize {
        let mut bytes = Vec::new();
        codec::encode(record, &mut bytes);
        bytes.len()
    }

    #[test]
    fn a_killed_process_leaves_its_records_to_the_next_one_and_a_torn_frame_is_counted() {
        let dir = temp();
        let torn_at = {
            let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
            assert!(journal.append(record("a")).is_ok());
            assert!(journal.rotate().is_ok());
            assert!(journal.append(record("b")).is_ok());
            HEADER + encoded_len(&record("b"))
        };
        // The process died while copying the next frame's header: a length, and a CRC that does not match.
        let file = OpenOptions::new().write(true).open(dir.join(ACTIVE)).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(std::os::unix::fs::FileExt::write_all_at(&file, &[40, 0, 0, 0, 1, 2, 3, 4], torn_at as u64).is_ok());
        let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let segments = journal.segments().unwrap_or_default();
        assert_eq!(segments.len(), 2, "the old active file became a segment after the old ones");
        assert_eq!(ids(&journal.read(&segments[0]).unwrap_or_default()), ["a"]);
        let second = journal.read(&segments[1]).unwrap_or_default();
        assert_eq!((ids(&second), second.unreadable), (vec!["b"], 1));
        assert_eq!(journal.count(&segments[1]).ok(), Some(2), "the torn frame counts");
        let kept = std::fs::metadata(&segments[1].path).map(|m| m.len()).unwrap_or(0);
        assert_eq!(kept, (torn_at + HEADER + 40) as u64, "cut to the frames' extent, not the reserved size");
        assert!(journal.append(record("d")).is_ok() && journal.rotate().is_ok());
        let numbers: Vec<u64> = journal.segments().unwrap_or_default().iter().map(|s| s.number).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]) && numbers.len() == 3, "{numbers:?}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn records_left_by_a_failed_rotation_become_a_segment_and_appends_go_on() {
        let dir = temp();
        let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(journal.append(record("a")).is_ok());
        // A rotation that unmapped the file and then failed leaves no active file, and "a" on disk.
        if let Ok(mut active) = journal.active.lock() {
            drop(active.take());
        }
        assert!(journal.append(record("b")).is_ok(), "a new active file is made");
        assert_eq!(journal.in_active.load(Relaxed), 1, "the salvaged file's records are counted there, not here");
        assert!(journal.rotate().is_ok());
        let segments = journal.segments().unwrap_or_default();
        let read: Vec<Vec<String>> = segments
            .iter()
            .map(|s| journal.read(s).unwrap_or_default().records.into_iter().map(|r| r.request_id).collect())
            .collect();
        assert_eq!(read, [vec!["a".to_owned()], vec!["b".to_owned()]]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_first_formats_json_lines_are_still_read_after_an_upgrade() {
        let dir = temp();
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let line = |id: &str| serde_json::to_string(&record(id)).unwrap_or_default();
        let segment = format!("{}\n{}\n", line("a"), line("b"));
        assert!(std::fs::write(dir.join("segment-000000000001.jsonl"), segment).is_ok());
        let active = format!("{}\n{{\"request_id\":\"torn", line("c"));
        assert!(std::fs::write(dir.join(ACTIVE_JSONL), active).is_ok());
        let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        assert!(journal.append(record("d")).is_ok() && journal.rotate().is_ok());
        let segments = journal.segments().unwrap_or_default();
        let taken: Vec<Taken> = segments.iter().map(|s| journal.read(s).unwrap_or_default()).collect();
        let got: Vec<(Vec<&str>, usize)> = taken.iter().map(|t| (ids(t), t.unreadable)).collect();
        assert_eq!(got, [(vec!["a", "b"], 0), (vec!["c"], 1), (vec!["d"], 0)]);
        let counts: Vec<u64> = segments.iter().map(|s| journal.count(s).unwrap_or(0)).collect();
        assert_eq!(counts, [2, 2, 1]);
        assert!(!dir.join(ACTIVE_JSONL).exists());
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Overwrites a segment's frames with a torn header: what is read from disk is then no record at all.
    fn tear(segment: &Segment) {
        assert!(std::fs::write(&segment.path, [0xff_u8; 16]).is_ok());
    }

    #[test]
    fn the_store_takes_this_process_records_from_memory_and_anything_else_from_disk() {
        let dir = temp();
        let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        for id in ["a", "b"] {
            assert!(journal.append(record(id)).is_ok());
        }
        assert!(journal.rotate().is_ok());
        let segments = journal.segments().unwrap_or_default();
        // The file no longer says what the records were: only the memory copy can give them.
        tear(&segments[0]);
        let taken = journal.take(&segments[0]).unwrap_or_default();
        assert_eq!((ids(&taken), taken.unreadable), (vec!["a", "b"], 0));
        assert_eq!(journal.kept_closed.load(Relaxed), 0, "taking gives the memory copy up");
        let again = journal.take(&segments[0]).unwrap_or_default();
        assert_eq!((again.records.len(), again.unreadable), (0, 1), "a second take reads the file");

        // A segment the cursor had passed is removed untaken: its memory goes too.
        assert!(journal.append(record("c")).is_ok() && journal.rotate().is_ok());
        assert_eq!(journal.kept_closed.load(Relaxed), 1);
        let segments = journal.segments().unwrap_or_default();
        assert!(segments.iter().all(|s| journal.remove(s).is_ok()));
        assert_eq!(journal.kept_closed.load(Relaxed), 0);
        assert!(journal.kept.lock().map(|k| k.is_empty()).unwrap_or(false));

        // A later process has only the files.
        assert!(journal.append(record("d")).is_ok());
        drop(journal);
        let reopened = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let segments = reopened.segments().unwrap_or_default();
        assert_eq!(ids(&reopened.take(&segments[0]).unwrap_or_default()), ["d"]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn past_the_budget_a_files_records_come_from_disk_whole() {
        let dir = temp();
        let journal = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let n = KEPT_MAX + 5;
        (0..n).for_each(|i| assert!(journal.append(record(&format!("r{i}"))).is_ok()));
        assert!(journal.rotate().is_ok());
        assert!(journal.kept_closed.load(Relaxed) <= KEPT_MAX as u64, "memory stays within the budget");
        // The next file starts with the budget spent on the first: none of its records is kept.
        assert!(journal.append(record("next")).is_ok() && journal.rotate().is_ok());
        let segments = journal.segments().unwrap_or_default();
        let first = journal.take(&segments[0]).unwrap_or_default();
        assert_eq!(first.records.len(), n, "read from disk, every record");
        assert!(first.records.iter().enumerate().all(|(i, r)| r.request_id == format!("r{i}")));
        assert_eq!(journal.kept_closed.load(Relaxed), 0, "the partial copy is given up");
        tear(&segments[1]);
        assert_eq!(journal.take(&segments[1]).map(|t| t.unreadable).ok(), Some(1), "not kept: read from disk");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_full_active_file_is_rotated_by_the_appender_and_nothing_is_lost() {
        let dir = temp();
        let per = HEADER + encoded_len(&record("r000"));
        let journal = Journal::open_with(dir.clone(), per * 10).unwrap_or_else(|e| unreachable!("{e}"));
        for i in 0..35 {
            assert!(journal.append(record(&format!("r{i:03}"))).is_ok(), "{i}");
        }
        assert_eq!(journal.size(), (per * 35) as u64);
        assert!(journal.rotate().is_ok());
        let segments = journal.segments().unwrap_or_default();
        let sizes: Vec<usize> = segments.iter().map(|s| journal.read(s).unwrap_or_default().records.len()).collect();
        assert_eq!(sizes, [10, 10, 10, 5]);
        let all: Vec<String> =
            segments.iter().flat_map(|s| journal.read(s).unwrap_or_default().records).map(|r| r.request_id).collect();
        let want: Vec<String> = (0..35).map(|i| format!("r{i:03}")).collect();
        assert_eq!(all, want);
        assert_eq!(journal.size(), (per * 35) as u64, "segments are cut to their frames");
        let huge = LogRecord { error_message: Some("x".repeat(per * 10)), ..record("big") };
        assert!(journal.append(huge).is_err(), "a record larger than a file is refused, not looped on");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn segment_numbers_never_repeat_under_one_id_even_once_every_segment_is_deleted() {
        let dir = temp();
        let first = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let id = first.id().to_owned();
        assert!(first.append(record("a")).is_ok() && first.rotate().is_ok());
        let applied = first.segments().unwrap_or_default();
        assert_eq!(applied.len(), 1);
        assert!(first.remove(&applied[0]).is_ok(), "stored and deleted");
        assert!(first.append(record("b")).is_ok());
        drop(first); // killed: "b" is in the active file
        let second = Journal::open(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(second.id(), id, "the same cursor applies");
        let leftover = second.segments().unwrap_or_default();
        assert_eq!(leftover.len(), 1);
        assert!(leftover[0].number > applied[0].number, "{leftover:?} after {applied:?}");
        assert!(second.remove(&leftover[0]).is_ok());
        assert!(second.append(record("c")).is_ok() && second.rotate().is_ok());
        assert!(second.segments().unwrap_or_default()[0].number > leftover[0].number);
        let _ = std::fs::remove_dir_all(dir);
    }
}
