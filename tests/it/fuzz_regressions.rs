//! Inputs the fuzz targets (`fuzz/`) found, kept as regression tests. Each
//! names its target and what went wrong before the fix.

use std::sync::Arc;

use holdfast::api::{ApiConfig, AppState};
use holdfast::model::conditions::parse_duration;
use holdfast::model::{Conditions, Context, Timestamp};
use holdfast::service::{decode_record, encode_change, Change, Holdfast};
use holdfast::store::{Durability, Op};
use serde_json::json;

use super::api_support::{call, fixed_now, keys, ADMIN};

fn conditions(json: &str) -> Result<Conditions, String> {
    serde_json::from_str(json).map_err(|e| e.to_string())
}

/// `conditions`: `{"expires_at": -5}` was accepted (a number is seconds),
/// printed as `@-5` and could not be read back: a binding carrying it made
/// the store unreadable at the next start.
#[test]
fn negative_times_are_refused() {
    for json in [r#"{"expires_at":-5}"#, r#"{"not_before":-1}"#, r#"{"expires_at":-9223372036854775808}"#] {
        let e = conditions(json).unwrap_err();
        assert!(e.contains("outside 1970-01-01T00:00:00Z"), "{json}: {e}");
    }
    assert!(serde_json::from_str::<Context>(r#"{"now":-1}"#).is_err());
    assert_eq!(conditions(r#"{"expires_at":0}"#).unwrap().expires_at, Some(Timestamp(0)));
}

/// `conditions`: a time after 9999-12-31T23:59:59Z could not be printed
/// (RFC 3339 has four-digit years): serializing failed, and the store
/// encoder silently kept the binding *without its conditions* — an MFA or IP
/// condition vanished at the next restart. `summary()` panicked.
#[test]
fn times_after_year_9999_are_refused() {
    let e = conditions(r#"{"expires_at":253402300800}"#).unwrap_err();
    assert!(e.contains("outside"), "{e}");
    let e = conditions(r#"{"mfa":{"required":true},"expires_at":9223372036854775807}"#).unwrap_err();
    assert!(e.contains("outside"), "{e}");
    // The last second that can be printed round-trips.
    let c = conditions(r#"{"mfa":{"required":true},"expires_at":253402300799}"#).unwrap();
    assert_eq!(c.expires_at, Some(Timestamp::MAX));
    assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59Z");
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(conditions(&json).unwrap(), c);
    assert!(c.summary().contains("9999-12-31T23:59:59Z"));
    let t = holdfast::model::Tuple::parse("application:app#viewer@user:a").unwrap();
    let Op::Put { key, value } = encode_change(&Change::PutTuple(t.clone(), Some(c.clone()))) else { panic!() };
    assert_eq!(decode_record(&key, &value), Ok(Change::PutTuple(t, Some(c))));
}

/// `api_bodies`: `expires_in` far in the future moved the expiry past year
/// 9999 (same failure as above); it now stops at [`Timestamp::MAX`].
#[test]
fn durations_far_in_the_future_stop_at_the_last_printable_second() {
    let d = parse_duration("100000years").unwrap();
    assert_eq!(fixed_now().plus(d), Timestamp::MAX);
    assert_eq!(Timestamp(5).plus(std::time::Duration::from_secs(u64::MAX)), Timestamp::MAX);
    assert_eq!(Timestamp(5).plus(std::time::Duration::from_secs(10)), Timestamp(15));
}

/// `api_bodies` / `api_router`: a check context with `now` at `i64::MAX` and
/// an MFA `auth_time` below zero overflowed the freshness arithmetic (a
/// panic in debug builds, a wrapped "fresh" in release). Both are refused.
#[tokio::test]
async fn extreme_context_times_are_a_422_not_a_panic() {
    let s = super::api_support::acme_state(tempfile::tempdir().unwrap().path());
    let body = json!({"subject": "user:alice", "application": "deploy-mcp", "scope": "deploy:prod",
        "context": {"now": i64::MAX, "mfa": {"present": true, "auth_time": -100}}});
    let (st, _, b) = call(&s, "POST", "/v1/tenants/acme/check", Some(ADMIN), Some(body)).await;
    assert_eq!((st, b["error"]["code"].as_str()), (422, Some("invalid_request")), "{b}");
}

/// The whole path, over HTTP and a restart: a binding with MFA and an
/// expiry 100,000 years away keeps both conditions in the store.
#[tokio::test]
async fn a_far_expiry_survives_a_restart_with_its_conditions() {
    let dir = tempfile::tempdir().unwrap();
    {
        let hf = Holdfast::open(dir.path(), Durability::Sync).unwrap();
        let s = AppState::with_config(Arc::new(hf), keys(), ApiConfig { clock: fixed_now, ..ApiConfig::default() });
        for (m, p, b) in [
            ("PUT", "/v1/tenants/t/roles/viewer", json!({"scopes": ["read"]})),
            ("PUT", "/v1/tenants/t/applications/app", json!({"scopes_supported": ["read"]})),
        ] {
            assert_eq!(call(&s, m, p, Some(ADMIN), Some(b)).await.0, 200);
        }
        let (st, _, b) = call(
            &s,
            "POST",
            "/v1/tenants/t/bindings",
            Some(ADMIN),
            Some(json!({"subject": "user:a", "role": "viewer", "application": "app",
                "conditions": {"mfa": {"required": true}}, "expires_in": "100000years"})),
        )
        .await;
        assert_eq!(st, 201, "{b}");
        assert_eq!(b["conditions"]["expires_at"], "9999-12-31T23:59:59Z", "{b}");
    }
    let hf = Holdfast::open(dir.path(), Durability::Sync).unwrap();
    let tuples = hf.tenant("t").unwrap().read().tuples();
    let (_, c) = tuples.iter().find(|(t, _)| t.relation == "viewer").unwrap();
    let c = c.as_ref().expect("the binding keeps its conditions");
    assert!(c.mfa.as_ref().is_some_and(|m| m.required), "MFA is still required: {c:?}");
    assert_eq!(c.expires_at, Some(Timestamp::MAX));
}
