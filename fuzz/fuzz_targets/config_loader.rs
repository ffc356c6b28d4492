//! LiteLLM `config.yaml` text through `Config::load_str` and the routing table build: no panic and the checks of
//! `tollgate::fuzzing::load_config`. Input that is not UTF-8 is skipped (a config file must be text).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(broken) = tollgate::fuzzing::load_config(yaml) {
        panic!("config loader: {broken}\nyaml: {yaml:?}");
    }
});
