//! An upstream's HTTP/1.1 response (head and body) through tollgate's own client's reader
//! (`server/src/upstream/plain/`): no panic and the properties of `tollgate::fuzzing::upstream_response`.
//!
//! Input format: the response's bytes, where each 0xFF byte marks a chunk boundary (the byte itself is not part of
//! the response), so corpus files stay readable HTTP and the fuzzer explores chunkings by inserting 0xFF.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chunks: Vec<&[u8]> = data.split(|&b| b == 0xFF).collect();
    if let Err(broken) = tollgate::fuzzing::upstream_response(&chunks) {
        panic!("upstream response reader: {broken}\nchunks: {chunks:?}");
    }
});
