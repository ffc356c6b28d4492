//! A request log journal file (a segment, or a killed process's active file) read as the log writer reads it: no
//! panic, and the properties of `tollgate::fuzzing::journal_file`.
//!
//! Input format: the file's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = tollgate::fuzzing::journal_file(data) {
        panic!("journal file: {broken}\nbytes: {data:?}");
    }
});
