//! SCIM tokens, discovery, the main responses as snapshots (ids and times
//! redacted), paging, errors in the SCIM shape, and durability.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use holdfast::api::{ApiConfig, AppState};
use holdfast::service::Holdfast;
use holdfast::store::Durability;
use serde_json::{json, Value};

use super::api_support::{call, fixed_now, keys, raw, ADMIN, READER};
use super::scim_support::{q, scim, scim_state, SCIM};

/// Redacts generated ids, times and revisions, then snapshots.
fn snap(name: &str, v: &Value, ids: &[&str]) {
    let mut text = v.to_string();
    for (i, id) in ids.iter().enumerate() {
        text = text.replace(id, &format!("[id{i}]"));
    }
    let v: Value = serde_json::from_str(&text).unwrap();
    insta::assert_json_snapshot!(name, v, {
        ".**.created" => "[time]",
        ".**.lastModified" => "[time]",
        ".**.revision" => "[revision]",
    });
}

#[tokio::test]
async fn tokens_are_shown_once_listed_by_id_and_revocable() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, id) = scim_state(dir.path()).await;
    assert!(token.starts_with("hf_scim_") && id.starts_with("st_"));
    let (status, _, list) = call(&state, "GET", "/v1/tenants/acme/scim-tokens", Some(READER), None).await;
    assert_eq!(status, 200);
    assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
    assert_eq!(list["tokens"][0]["id"], id.as_str());
    assert!(!list.to_string().contains(&token[8..]), "the token is never listed");
    // A read-only key cannot create one; another tenant's cannot either.
    let (status, _, _) = call(&state, "POST", "/v1/tenants/acme/scim-tokens", Some(READER), None).await;
    assert_eq!(status, 403);
    // API keys are not SCIM tokens, and SCIM tokens are not API keys.
    let (status, b) = scim(&state, ADMIN, "GET", "Users", None).await;
    assert_eq!(status, 401, "{b}");
    snap("scim_err_401", &b, &[]);
    let (status, _, _) = call(&state, "GET", "/v1/tenants/acme/roles", Some(&token), None).await;
    assert_eq!(status, 401);
    // A token of acme does not open another tenant.
    let (status, _) = scim(&state, &token, "GET", "/scim/v2/other/Users", None).await;
    assert_eq!(status, 401);
    // The feed names the token by id, never by value.
    let (_, _, feed) = call(&state, "GET", "/v1/tenants/acme/changes?since=1", Some(ADMIN), None).await;
    assert_eq!(feed["changes"][0]["ops"][0], json!({"op": "scim_token_created", "id": id}));
    assert!(!feed.to_string().contains(&token[8..]));
    // Revoke: the token stops working at once.
    let (status, _, _) = call(&state, "DELETE", &format!("/v1/tenants/acme/scim-tokens/{id}"), Some(ADMIN), None).await;
    assert_eq!(status, 200);
    assert_eq!(scim(&state, &token, "GET", "Users", None).await.0, 401);
    let (status, _, _) = call(&state, "DELETE", &format!("/v1/tenants/acme/scim-tokens/{id}"), Some(ADMIN), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn tokens_and_provisioned_users_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (token, uid) = {
        let (state, token, _) = scim_state(dir.path()).await;
        let (_, u) =
            scim(&state, &token, "POST", "Users", Some(json!({"userName": "frank@acme.example", "active": false})))
                .await;
        state.holdfast().flush().unwrap();
        (token, u["id"].as_str().unwrap().to_string())
    };
    let hf = Holdfast::open(dir.path(), Durability::Buffered).unwrap();
    let state = AppState::with_config(Arc::new(hf), keys(), ApiConfig { clock: fixed_now, ..ApiConfig::default() });
    let (status, u) = scim(&state, &token, "GET", &format!("Users/{uid}"), None).await;
    assert_eq!(status, 200, "{u}");
    assert_eq!((u["userName"].clone(), u["active"].clone()), (json!("frank@acme.example"), json!(false)));
}

#[tokio::test]
async fn discovery_and_main_responses() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, _) = scim_state(dir.path()).await;
    let s = &state;
    let (status, spc) = scim(s, &token, "GET", "ServiceProviderConfig", None).await;
    assert_eq!(status, 200);
    snap("scim_service_provider_config", &spc, &[]);
    let (_, rts) = scim(s, &token, "GET", "ResourceTypes", None).await;
    snap("scim_resource_types", &rts, &[]);
    let (status, rt) = scim(s, &token, "GET", "ResourceTypes/User", None).await;
    assert_eq!((status, rt["schema"].clone()), (200, json!("urn:ietf:params:scim:schemas:core:2.0:User")));
    let (_, schemas) = scim(s, &token, "GET", "Schemas", None).await;
    assert_eq!(schemas["totalResults"], 2);
    let names: Vec<&str> =
        schemas["Resources"][0]["attributes"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names[..3], ["userName", "name", "displayName"]);
    let (status, _) = scim(s, &token, "GET", "Schemas/urn:ietf:params:scim:schemas:core:2.0:Group", None).await;
    assert_eq!(status, 200);

    // A user that existed before SCIM, as SCIM sees it.
    let (_, alice) = scim(s, &token, "GET", "Users/alice", None).await;
    snap("scim_existing_user_alice", &alice, &[]);
    let (_, eng) = scim(s, &token, "GET", "Groups/engineering", None).await;
    snap("scim_existing_group_engineering", &eng, &[]);

    let (status, created) = scim(
        s,
        &token,
        "POST",
        "Users",
        Some(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "gina@acme.example", "externalId": "00u-gina",
        "name": {"givenName": "Gina", "familyName": "Gray", "formatted": "Gina Gray"},
        "emails": [{"value": "gina@acme.example", "type": "work", "primary": "true"}],
        "active": "True"})),
    )
    .await;
    assert_eq!(status, 201);
    let uid = created["id"].as_str().unwrap().to_string();
    snap("scim_user_created", &created, &[&uid]);
    // The Holdfast view of the same user.
    let (_, _, hf_user) = call(s, "GET", &format!("/v1/tenants/acme/users/{uid}"), Some(ADMIN), None).await;
    assert_eq!((hf_user["name"].clone(), hf_user["email"].clone()), (json!("Gina Gray"), json!("gina@acme.example")));

    let (status, group) = scim(
        s,
        &token,
        "POST",
        "Groups",
        Some(json!({
        "displayName": "Platform", "members": [{"value": uid}, {"value": "engineering", "type": "Group"}]})),
    )
    .await;
    assert_eq!(status, 201, "{group}");
    let gid = group["id"].as_str().unwrap().to_string();
    snap("scim_group_created", &group, &[&uid, &gid]);
    // Rename (PATCH), then replace the members (PUT).
    let rename = json!({"Operations": [{"op": "Replace", "path": "displayName", "value": "Platform Team"}]});
    let (_, g) = scim(s, &token, "PATCH", &format!("Groups/{gid}"), Some(rename)).await;
    assert_eq!((g["displayName"].clone(), g["members"].as_array().unwrap().len()), (json!("Platform Team"), 2));
    let (_, g) = scim(
        s,
        &token,
        "PUT",
        &format!("Groups/{gid}"),
        Some(json!({"displayName": "Platform Team", "members": [{"value": "carol"}]})),
    )
    .await;
    assert_eq!(
        g["members"],
        json!([{"value": "carol", "type": "User", "$ref": format!("http://127.0.0.1:8080{SCIM}/Users/carol")}])
    );
    let (_, _, hf_group) = call(s, "GET", &format!("/v1/tenants/acme/groups/{gid}"), Some(ADMIN), None).await;
    assert_eq!(
        (hf_group["name"].clone(), hf_group["members"].clone()),
        (json!("Platform Team"), json!(["user:carol"]))
    );

    let (_, list) = scim(
        s,
        &token,
        "GET",
        &format!("Users?filter={}&attributes=userName,active", q(r#"userName sw "gina""#)),
        None,
    )
    .await;
    snap("scim_user_list_filtered", &list, &[&uid]);
}

#[tokio::test]
async fn paging_and_projection() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, _) = scim_state(dir.path()).await;
    let (_, b) = scim(&state, &token, "GET", "Users?startIndex=2&count=1", None).await;
    assert_eq!(
        (b["totalResults"].clone(), b["startIndex"].clone(), b["itemsPerPage"].clone()),
        (json!(3), json!(2), json!(1))
    );
    assert_eq!(b["Resources"][0]["id"], "bob");
    let (_, b) = scim(&state, &token, "GET", "Users?count=0", None).await;
    assert_eq!((b["totalResults"].clone(), b["Resources"].clone()), (json!(3), json!([])));
    let (_, b) = scim(&state, &token, "GET", "Users?startIndex=10", None).await;
    assert_eq!(b["Resources"], json!([]));
    let (_, g) = scim(&state, &token, "GET", "Groups/engineering?excludedAttributes=members", None).await;
    assert!(g.get("members").is_none() && g["id"] == "engineering");
    let (_, u) = scim(&state, &token, "GET", "Users/alice?attributes=emails.value", None).await;
    assert_eq!(u["emails"], json!([{"value": "alice@acme.example"}]));
    assert!(u.get("userName").is_none() && u["id"] == "alice");
    // POST .search: per type, and across users and groups.
    let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "displayName sw \"b\"", "attributes": ["displayName"], "startIndex": 1, "count": 10});
    let (status, b) = scim(&state, &token, "POST", "Users/.search", Some(search.clone())).await;
    assert_eq!((status, b["totalResults"].clone(), b["Resources"][0]["id"].clone()), (200, json!(1), json!("bob")));
    let (_, b) = scim(&state, &token, "POST", ".search", Some(json!({"filter": "displayName co \"e\""}))).await;
    let ids: Vec<&str> = b["Resources"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["alice", "bob", "carol", "engineering", "sre"]);
}

#[tokio::test]
async fn errors_use_the_scim_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, _) = scim_state(dir.path()).await;
    let s = &state;
    let (status, b) = scim(s, &token, "GET", &format!("Users?filter={}", q(r#"userName eq"#)), None).await;
    assert_eq!(status, 400);
    snap("scim_err_400_invalid_filter", &b, &[]);
    let (status, b) = scim(s, &token, "GET", "Users/nobody", None).await;
    assert_eq!(status, 404);
    snap("scim_err_404_user", &b, &[]);
    let (status, b) = scim(s, &token, "GET", "Nothing/here", None).await;
    assert_eq!((status, b["schemas"][0].clone()), (404, json!("urn:ietf:params:scim:api:messages:2.0:Error")));
    let (status, b) = scim(s, &token, "POST", "Users", Some(json!({"displayName": "no user name"}))).await;
    assert_eq!((status, b["scimType"].clone()), (400, json!("invalidValue")));
    let (status, b) = scim(s, &token, "POST", "Users", Some(json!({"userName": "alice@ACME.example"}))).await;
    assert_eq!(status, 409);
    snap("scim_err_409_uniqueness", &b, &[]);
    let bad_patch = json!({"Operations": [{"op": "replace", "path": "members[value eq", "value": []}]});
    let (status, b) = scim(s, &token, "PATCH", "Groups/engineering", Some(bad_patch)).await;
    assert_eq!((status, b["scimType"].clone()), (400, json!("invalidPath")), "{b}");
    let (status, b) = scim(
        s,
        &token,
        "PATCH",
        "Groups/engineering",
        Some(json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": "ghost"}]}]})),
    )
    .await;
    assert_eq!((status, b["scimType"].clone()), (400, json!("invalidValue")), "{b}");
    let (status, b) = scim(
        s,
        &token,
        "PATCH",
        "Users/alice",
        Some(json!({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]})),
    )
    .await;
    assert_eq!((status, b["scimType"].clone()), (400, json!("invalidValue")), "{b}");
    // Removing `active` lifts a suspension and leaves it unset.
    let off = json!({"Operations": [{"op": "replace", "path": "active", "value": false}]});
    assert_eq!(scim(s, &token, "PATCH", "Users/bob", Some(off)).await.1["active"], false);
    let (_, u) =
        scim(s, &token, "PATCH", "Users/bob", Some(json!({"Operations": [{"op": "remove", "path": "active"}]}))).await;
    assert!(u.get("active").is_none(), "{u}");
    let (_, _, st) = call(s, "GET", "/v1/tenants/acme/subjects/user:bob/status", Some(ADMIN), None).await;
    assert_eq!(st["status"], "active");
    // A group still bound by a policy binding: 409 unless forced.
    let (status, b) = scim(s, &token, "DELETE", "Groups/engineering", None).await;
    assert_eq!(status, 409);
    snap("scim_err_409_group_bound", &b, &[]);

    // Media types: `application/json` is accepted too; anything else is 415.
    let req = |ct: &str| {
        Request::post(format!("{SCIM}/Users"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", ct)
            .body(Body::from(json!({"userName": format!("h-{ct}")}).to_string()))
            .unwrap()
    };
    let (status, headers, b) = raw(s, req("application/json")).await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(headers["content-type"], "application/scim+json");
    assert_eq!(headers["location"], format!("http://127.0.0.1:8080{SCIM}/Users/{}", b["id"].as_str().unwrap()));
    let (status, _, b) = raw(s, req("text/plain")).await;
    assert_eq!((status, b["status"].clone()), (415, json!("415")));
    let bad = Request::post(format!("{SCIM}/Users"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/scim+json")
        .body(Body::from("{\"userName\":"))
        .unwrap();
    let (status, _, b) = raw(s, bad).await;
    assert_eq!((status, b["scimType"].clone()), (400, json!("invalidSyntax")));
}
