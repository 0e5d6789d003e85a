//! Condition parsing: CIDRs, durations, times and the JSON of `Conditions`
//! and `Context`. Never panics; whatever parses prints back to the same
//! value (that is what the store keeps), and evaluation is total.
#![no_main]

use holdfast::model::conditions::{format_duration, parse_duration, parse_net};
use holdfast::model::{Conditions, Context, MfaContext, Timestamp, Tuple};
use holdfast::service::{decode_record, encode_change, Change};
use holdfast::store::Op;
use libfuzzer_sys::fuzz_target;

fn contexts() -> Vec<Context> {
    let mut out = Vec::new();
    for now in [0, 1_780_272_000, 253_402_300_799] {
        for ip in [None, Some("10.1.2.3".parse().unwrap()), Some("2001:db8::1".parse().unwrap())] {
            for mfa in [
                None,
                Some(MfaContext { present: true, auth_time: None }),
                Some(MfaContext { present: true, auth_time: Some(Timestamp(now - 60)) }),
            ] {
                out.push(Context { ip, mfa, ..Context::at(Timestamp(now)) });
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(n) = parse_net(s) {
            assert_eq!(parse_net(&n.to_string()), Ok(n), "net `{n}` does not parse back");
        }
        if let Ok(d) = parse_duration(s) {
            let text = format_duration(d);
            assert_eq!(parse_duration(&text), Ok(d), "duration `{text}` does not parse back");
        }
        if let Ok(t) = Timestamp::parse(s) {
            let text = t.to_string();
            assert_eq!(Timestamp::parse(&text), Ok(t), "time `{text}` does not parse back");
        }
    }
    if let Ok(c) = serde_json::from_slice::<Conditions>(data) {
        let json = serde_json::to_vec(&c).expect("conditions serialize");
        let back: Conditions = serde_json::from_slice(&json).unwrap_or_else(|e| {
            panic!("serialized conditions {} do not read back: {e}", String::from_utf8_lossy(&json))
        });
        assert_eq!(back, c);
        let _ = c.summary();
        for ctx in contexts() {
            let _ = c.evaluate(&ctx);
        }
        // The stored form of a binding keeps its conditions exactly.
        let t = Tuple::parse("application:app#viewer@user:alice").unwrap();
        let stored = (!c.is_empty()).then(|| c.clone());
        let Op::Put { key, value } = encode_change(&Change::PutTuple(t.clone(), stored.clone())) else {
            panic!("a tuple write is a put")
        };
        assert_eq!(decode_record(&key, &value), Ok(Change::PutTuple(t, stored)));
    }
    if let Ok(ctx) = serde_json::from_slice::<Context>(data) {
        let json = serde_json::to_vec(&ctx).expect("context serializes");
        assert_eq!(serde_json::from_slice::<Context>(&json).ok().as_ref(), Some(&ctx));
        let c: Conditions = serde_json::from_str(
            r#"{"mfa":{"max_age":"15m"},"ip":{"allow":["10.0.0.0/8"]},"not_before":"2020-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let _ = c.evaluate(&ctx);
    }
});
