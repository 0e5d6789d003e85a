//! The JSON request bodies of the main endpoints, through the API's own
//! parser (`parse_json`, which classifies errors as 400 or 422) and the
//! conversions handlers apply next (tuples, validity windows, contexts).
#![no_main]

use holdfast::api::error::parse_json;
use holdfast::api::wire::{
    ApplicationIn, BatchCheckRequest, BindingIn, CheckRequest, RoleBindingIn, RoleIn, SubjectIn, Window,
    WriteTuplesRequest,
};
use holdfast::model::Timestamp;
use libfuzzer_sys::fuzz_target;

const NOW: Timestamp = Timestamp(1_780_272_000);

fn status_ok(e: &holdfast::api::ApiError) {
    let s = e.code.status().as_u16();
    assert!((400..500).contains(&s), "a body error must be a 4xx, got {s} for {}", e.message);
}

fuzz_target!(|data: &[u8]| {
    match parse_json::<WriteTuplesRequest>(data) {
        Ok(req) => {
            for t in req.writes.iter().chain(&req.deletes).chain(req.preconditions.iter().map(|p| &p.tuple)) {
                if let Err(e) = t.parse() {
                    status_ok(&e);
                }
            }
        }
        Err(e) => status_ok(&e),
    }
    match parse_json::<CheckRequest>(data) {
        Ok(req) => {
            let _ = req.context.unwrap_or_default().resolve(NOW);
        }
        Err(e) => status_ok(&e),
    }
    match parse_json::<BatchCheckRequest>(data) {
        Ok(req) => {
            for c in req.checks {
                let _ = c.context.unwrap_or_default().resolve(NOW);
            }
        }
        Err(e) => status_ok(&e),
    }
    match parse_json::<BindingIn>(data) {
        Ok(b) => {
            let w = Window {
                conditions: b.conditions,
                expires_at: b.expires_at,
                expires_in: b.expires_in,
                not_before: b.not_before,
            };
            match w.resolve(NOW) {
                Ok(Some(c)) => {
                    // What is answered and stored must serialize.
                    let json = serde_json::to_vec(&c).expect("resolved conditions serialize");
                    let back: holdfast::model::Conditions = serde_json::from_slice(&json).expect("and read back");
                    assert_eq!(back, c);
                }
                Ok(None) => {}
                Err(e) => status_ok(&e),
            }
        }
        Err(e) => status_ok(&e),
    }
    if let Err(e) = parse_json::<RoleBindingIn>(data) {
        status_ok(&e);
    }
    if let Err(e) = parse_json::<RoleIn>(data) {
        status_ok(&e);
    }
    if let Err(e) = parse_json::<ApplicationIn>(data) {
        status_ok(&e);
    }
    if let Err(e) = parse_json::<SubjectIn>(data) {
        status_ok(&e);
    }
});
