//! A callback's place in the journal, kept in a small file of the journal directory (`callback-<name>.cursor`) and
//! replaced atomically (write a temporary file, sync it, rename it over the old one) after each delivered batch, so
//! a crash leaves either the old position or the new one, never a torn file.

use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

/// Everything before record `records` of segment `segment` has been delivered (or was not for this callback).
/// A finished segment moves the cursor to `(segment + 1, 0)`, so "the callback has passed segment `n`" is
/// `segment > n`. Segment numbers restart with a new journal id, which makes a cursor of another id void.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkCursor {
    pub journal_id: String,
    pub segment: u64,
    pub records: u64,
}

impl SinkCursor {
    /// The start of the journal `journal_id`.
    pub fn start(journal_id: &str) -> SinkCursor {
        SinkCursor { journal_id: journal_id.to_owned(), segment: 0, records: 0 }
    }

    /// The cursor stored at `path`; `None` when there is none (a new callback) or it cannot be read as one.
    pub fn load(path: &Path) -> std::io::Result<Option<SinkCursor>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the file at `path` with this cursor: written beside it, synced, renamed over it.
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        let tmp = tmp_path(path);
        let mut file = File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// `callback-<name>.cursor` in `dir`, the name reduced to letters, digits, `-` and `_`.
pub fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    dir.join(format!("callback-{safe}.cursor"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_cursor_round_trips_through_its_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("tollgate-cursor-{}", uuid::Uuid::new_v4().simple()));
        assert!(std::fs::create_dir_all(&dir).is_ok());
        let path = cursor_path(&dir, "my hook/1");
        assert_eq!(path.file_name().and_then(|n| n.to_str()), Some("callback-my_hook_1.cursor"));
        assert_eq!(SinkCursor::load(&path).ok(), Some(None), "no file: a new callback");
        let cursor = SinkCursor { journal_id: "j1".into(), segment: 7, records: 42 };
        assert!(cursor.store(&path).is_ok());
        assert_eq!(SinkCursor::load(&path).ok().flatten(), Some(cursor.clone()));
        let next = SinkCursor { segment: 8, records: 0, ..cursor };
        assert!(next.store(&path).is_ok(), "replaces the old one");
        assert_eq!(SinkCursor::load(&path).ok().flatten(), Some(next.clone()));
        let names: Vec<_> = std::fs::read_dir(&dir).into_iter().flatten().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names.len(), 1, "only the cursor file: {names:?}");
        assert!(std::fs::write(&path, b"{\"journal_id\":").is_ok());
        assert_eq!(SinkCursor::load(&path).ok(), Some(None), "an unreadable file counts as none");
        let _ = std::fs::remove_dir_all(dir);
    }
}
