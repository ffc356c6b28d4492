//! An upstream's response body or stream chunk through the relays' reader of usage, model and finish reasons
//! (`server/src/pipeline/peek/`): no panic, and the same reading as serde_json's derive
//! (`tollgate::fuzzing::response_peek`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = tollgate::fuzzing::response_peek(data) {
        panic!("response peek: {broken}\ninput: {:?}", String::from_utf8_lossy(data));
    }
});
