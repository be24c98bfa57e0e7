//! JSON-RPC request parsing and dispatch, in process, for every method: an input that
//! starts with `{` or `[` is sent as it is (a request or a batch); otherwise its first
//! byte picks a method and the rest is its `params`. Every answer must be a JSON-RPC
//! response; nothing may panic.
#![no_main]

#[path = "harness.rs"]
mod harness;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let h = harness::harness();
    let request = if text.starts_with('{') || text.starts_with('[') {
        text.to_string()
    } else {
        let names: Vec<&str> = h.module.method_names().collect();
        let Some((&first, rest)) = data.split_first() else { return };
        let method = names[first as usize % names.len()];
        let params = std::str::from_utf8(rest).unwrap_or("[]");
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
    };
    if let Ok((response, _)) = h.runtime.block_on(h.module.raw_json_request(&request, 1)) {
        let parsed: serde_json::Value = serde_json::from_str(response.get()).expect("a JSON response");
        assert!(parsed.is_object() || parsed.is_array(), "{parsed}");
    }
});
