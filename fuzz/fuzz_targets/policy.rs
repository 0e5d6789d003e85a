//! The policy file parser and validator: YAML (or JSON) in, findings or a
//! compiled policy out; never a panic. A policy that compiles loads into a
//! memory-only tenant (or fails with a write error), and its assertions run.
#![no_main]

use holdfast::model::Timestamp;
use holdfast::policy::{self, assertions, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let report = validate::validate_text(text, "fuzz.yaml");
    let _ = report.render();
    let _ = serde_json::to_string(&report.to_json());
    match policy::compile(text, "fuzz.yaml") {
        Ok(p) => {
            if let Ok(hf) = policy::instantiate(&p) {
                if let Some(t) = hf.tenant(&p.tenant) {
                    let st = t.read();
                    for a in &p.file.assertions {
                        let r = assertions::run_assertion(&st.facts(), "fuzz.yaml", a, Timestamp(1_780_272_000));
                        let _ = r.outcome();
                    }
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
