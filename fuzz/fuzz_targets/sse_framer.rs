//! An upstream's SSE stream through the framer the relay uses: no panic and the framing invariants of
//! `tollgate::fuzzing::sse_frames`.
//!
//! Input format: the stream's bytes, where each 0xFF byte marks a chunk boundary (the byte itself is not part of
//! the stream), so corpus files stay readable SSE text and the fuzzer explores chunkings by inserting 0xFF.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chunks: Vec<&[u8]> = data.split(|&b| b == 0xFF).collect();
    if let Err(broken) = tollgate::fuzzing::sse_frames(&chunks) {
        panic!("SSE framer: {broken}\nchunks: {chunks:?}");
    }
});
