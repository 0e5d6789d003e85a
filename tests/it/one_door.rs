//! Every read-modify-write is computed under the tenant's write lock: two
//! racing changes are serialised, never interleaved (issue 12).

use serde_json::json;

use crate::api_support::{acme_state, call, ADMIN};

fn revision(body: &serde_json::Value) -> u64 {
    body["revision"].as_str().and_then(|r| r.parse().ok()).unwrap_or_else(|| panic!("no revision in {body}"))
}

/// Two concurrent `PUT .../roles/racer` always leave exactly one of the two
/// scope sets, never a union nobody put.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_role_puts_leave_one_of_the_two_scope_sets() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    let a = json!({"scopes": ["deploy:read", "deploy:staging"]});
    let b = json!({"scopes": ["deploy:prod"]});
    let path = "/v1/tenants/acme/roles/racer";
    for round in 0..200 {
        // Start from either set, so both directions of the race are tried.
        let start = if round % 2 == 0 { &a } else { &b };
        assert_eq!(call(&state, "PUT", path, Some(ADMIN), Some(start.clone())).await.0, 200);
        let (s1, s2) = (state.clone(), state.clone());
        let (ba, bb) = (a.clone(), b.clone());
        let ta = tokio::spawn(async move { call(&s1, "PUT", path, Some(ADMIN), Some(ba)).await });
        let tb = tokio::spawn(async move { call(&s2, "PUT", path, Some(ADMIN), Some(bb)).await });
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        assert_eq!((ra.0, rb.0), (200, 200), "{} {}", ra.2, rb.2);
        let (_, _, got) = call(&state, "GET", path, Some(ADMIN), None).await;
        // The later commit wins whole.
        let want = if revision(&ra.2) > revision(&rb.2) { &a } else { &b };
        assert_eq!(got["scopes"], want["scopes"], "round {round}: {got}");
    }
}

/// A membership written while its subject is deleted survives only if it
/// was committed after the delete; one committed before is removed with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_membership_write_never_survives_a_subject_delete() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    for round in 0..200 {
        let user = format!("racer-{round}");
        let (st, _, body) = call(
            &state,
            "POST",
            "/v1/tenants/acme/tuples",
            Some(ADMIN),
            Some(json!({"writes": [format!("group:engineering#member@user:{user}")]})),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        let (s1, s2) = (state.clone(), state.clone());
        let (u1, u2) = (user.clone(), user.clone());
        let del = tokio::spawn(async move {
            call(&s1, "DELETE", &format!("/v1/tenants/acme/users/{u1}"), Some(ADMIN), None).await
        });
        let add = tokio::spawn(async move {
            call(&s2, "PUT", &format!("/v1/tenants/acme/groups/on-call/members/user:{u2}"), Some(ADMIN), None).await
        });
        let (d, m) = (del.await.unwrap(), add.await.unwrap());
        assert_eq!((d.0, m.0), (200, 200), "{} {}", d.2, m.2);
        let (_, _, group) = call(&state, "GET", "/v1/tenants/acme/groups/on-call", Some(ADMIN), None).await;
        let member = format!("user:{user}");
        let present = group["members"].as_array().unwrap().iter().any(|m| m == &json!(member));
        let added_after_delete = revision(&m.2) > revision(&d.2);
        assert_eq!(present, added_after_delete, "round {round}: delete {} add {}: {group}", d.2, m.2);
        let (_, _, eng) = call(&state, "GET", "/v1/tenants/acme/groups/engineering", Some(ADMIN), None).await;
        assert!(!eng["members"].as_array().unwrap().iter().any(|m| m == &json!(member)), "{eng}");
    }
}
