//! The tuple text parser: never panics, errors point inside the input, and
//! whatever parses prints back to text that parses to the same tuple and
//! survives the store's record codec.
#![no_main]

use holdfast::model::{ObjectRef, Schema, Tuple};
use holdfast::service::{decode_record, encode_change, Change};
use holdfast::store::Op;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    match Tuple::parse(s) {
        Ok(t) => {
            let text = t.to_string();
            assert_eq!(Tuple::parse(&text).as_ref(), Ok(&t), "printed form `{text}` does not parse back");
            let _ = Schema::builtin().validate(&t, |_| true);
            let _ = Schema::builtin().validate(&t, |_| false);
            let Op::Put { key, value } = encode_change(&Change::PutTuple(t.clone(), None)) else {
                panic!("a tuple write is a put")
            };
            assert_eq!(decode_record(&key, &value), Ok(Change::PutTuple(t, None)));
        }
        Err(e) => {
            assert!(e.position <= s.len(), "position {} beyond input of {} bytes", e.position, s.len());
            assert!(e.to_string().len() < 2048, "error message is bounded");
        }
    }
    if let Ok(o) = ObjectRef::parse(s) {
        assert_eq!(ObjectRef::parse(&o.to_string()), Ok(o));
    }
});
