//! Request bodies of `POST /v1/chat/completions`, `POST /v1/embeddings` and `POST /v1/completions`: no panic, the
//! property checks of `tollgate::fuzzing::parse_chat` / `parse_embeddings` / `parse_completion`, and (through
//! libFuzzer's `-timeout`) no input that takes seconds, so parsing stays linear in the body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Err(broken) = tollgate::fuzzing::parse_chat(body) {
        panic!("chat request parser: {broken}\nbody: {}", String::from_utf8_lossy(body));
    }
    if let Err(broken) = tollgate::fuzzing::parse_embeddings(body) {
        panic!("embeddings request parser: {broken}\nbody: {}", String::from_utf8_lossy(body));
    }
    if let Err(broken) = tollgate::fuzzing::parse_completion(body) {
        panic!("completions request parser: {broken}\nbody: {}", String::from_utf8_lossy(body));
    }
});
