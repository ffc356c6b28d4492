//! An upstream's AWS eventstream (Bedrock's ConverseStream) through the framer: no panic and the framing invariants
//! of `tollgate::fuzzing::eventstream_frames`.
//!
//! Input format: the first byte is the chunk size (0 counts as 1), the rest is the stream's bytes. (A separator
//! byte, as `sse_framer` uses, would be a byte the binary stream could never hold, its CRCs included.)
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&size, stream)) = data.split_first() else { return };
    let chunks: Vec<&[u8]> = stream.chunks(usize::from(size.max(1))).collect();
    if let Err(broken) = tollgate::fuzzing::eventstream_frames(&chunks) {
        panic!("eventstream framer: {broken}\nchunks: {chunks:?}");
    }
});
