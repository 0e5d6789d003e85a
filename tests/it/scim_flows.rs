//! The request sequences Okta and Microsoft Entra ID send when they
//! provision a user into an application — create, add to a group, remove
//! from it, deactivate, reactivate, delete — replayed against the worked
//! example, checking after each step what `POST /check` and effective
//! access answer. In the worked example `group:engineering` is bound to
//! `pr-writer` on `github-mcp`, so membership grants `pr:write` there.
//!
//! Request shapes follow the IdPs' published SCIM documentation: Okta's
//! "SCIM 2.0" reference (developer.okta.com) and Entra's "Tutorial: Develop
//! and plan provisioning for a SCIM endpoint" (learn.microsoft.com).

use serde_json::{json, Value};

use super::scim_support::{access, last_change, pr_write, q, scim, scim_state};

const GITHUB_BINDING: &str = "application:github-mcp#pr-writer@group:engineering";

fn granted() -> (String, String) {
    ("allow".into(), "granted".into())
}

#[tokio::test]
async fn okta_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, token_id) = scim_state(dir.path()).await;
    let s = &state;

    // Okta checks the connection, then looks the user up by userName.
    let (status, b) = scim(s, &token, "GET", "Users?startIndex=1&count=2", None).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["totalResults"], 3, "alice, bob, carol from the policy are visible");
    let (status, b) = scim(s, &token, "GET", "Groups?startIndex=1&count=100", None).await;
    assert_eq!((status, b["totalResults"].clone()), (200, json!(3)));
    let find = format!("Users?filter={}&startIndex=1&count=100", q(r#"userName eq "dora@acme.example""#));
    let (status, b) = scim(s, &token, "GET", &find, None).await;
    assert_eq!((status, b["totalResults"].clone(), b["Resources"].clone()), (200, json!(0), json!([])));

    // 1. Create the user.
    let (status, user) = scim(
        s,
        &token,
        "POST",
        "Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "dora@acme.example",
            "name": {"givenName": "Dora", "familyName": "Diaz"},
            "emails": [{"primary": true, "value": "dora@acme.example", "type": "work"}],
            "displayName": "Dora Diaz",
            "locale": "en-US",
            "externalId": "00ujl29u0le5T6Aj10h7",
            "groups": [],
            "password": "1mz050nq",
            "active": true
        })),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    assert!(user.get("password").is_none(), "a password is never kept");
    let id = user["id"].as_str().unwrap().to_string();
    let subject = format!("user:{id}");
    assert_eq!(last_change(s).await["actor"], format!("scim:{token_id}"));
    assert_eq!(pr_write(s, &subject).await, ("deny".into(), "no_binding".into()));
    assert!(access(s, &subject).await.is_empty());
    // The lookup Okta repeats now finds it.
    let (_, b) = scim(s, &token, "GET", &find, None).await;
    assert_eq!((b["totalResults"].clone(), b["Resources"][0]["id"].clone()), (json!(1), json!(id)));

    // 2. Push group membership: Okta finds the group, then PATCHes members.
    let (_, b) = scim(s, &token, "GET", &format!("Groups?filter={}", q(r#"displayName eq "Engineering""#)), None).await;
    assert_eq!(b["Resources"][0]["id"], "engineering", "an existing group's displayName is its name");
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "add", "path": "members", "value": [{"value": id, "display": "dora@acme.example"}]}]});
    let (status, g) = scim(s, &token, "PATCH", "Groups/engineering", Some(add.clone())).await;
    assert_eq!(status, 200, "{g}");
    let members: Vec<&str> = g["members"].as_array().unwrap().iter().map(|m| m["value"].as_str().unwrap()).collect();
    assert!(members.contains(&id.as_str()) && members.contains(&"alice"), "{members:?}");
    assert_eq!(pr_write(s, &subject).await, granted());
    assert_eq!(access(s, &subject).await, [format!("{GITHUB_BINDING} (active)")]);
    let change = last_change(s).await;
    assert_eq!(
        change["ops"].as_array().unwrap().last().unwrap()["tuple"],
        format!("group:engineering#member@{subject}")
    );
    // Okta retries: adding again changes nothing.
    let (status, _) = scim(s, &token, "PATCH", "Groups/engineering", Some(add)).await;
    assert_eq!(status, 200);
    assert_eq!(access(s, &subject).await.len(), 1);

    // 3. Remove from the group.
    let remove = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]});
    let (status, _) = scim(s, &token, "PATCH", "Groups/engineering", Some(remove)).await;
    assert_eq!(status, 200);
    assert_eq!(pr_write(s, &subject).await, ("deny".into(), "no_binding".into()));
    assert!(access(s, &subject).await.is_empty());

    // Back in the group for the rest of the lifecycle.
    let add = json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": id}]}]});
    assert_eq!(scim(s, &token, "PATCH", "Groups/engineering", Some(add)).await.0, 200);
    assert_eq!(pr_write(s, &subject).await, granted());

    // 4. Deactivate: Okta's PATCH without a path. Suspended, not deleted.
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": false}}]});
    let (status, u) = scim(s, &token, "PATCH", &format!("Users/{id}"), Some(deactivate)).await;
    assert_eq!((status, u["active"].clone()), (200, json!(false)), "{u}");
    assert_eq!(pr_write(s, &subject).await, ("deny".into(), "subject_suspended".into()));
    assert_eq!(access(s, &subject).await, [format!("{GITHUB_BINDING} (suspended)")]);
    let (_, u) = scim(s, &token, "GET", &format!("Users/{id}"), None).await;
    assert_eq!((u["active"].clone(), u["groups"][0]["value"].clone()), (json!(false), json!("engineering")));

    // 5. Reactivate.
    let reactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "value": {"active": true}}]});
    let (status, u) = scim(s, &token, "PATCH", &format!("Users/{id}"), Some(reactivate)).await;
    assert_eq!((status, u["active"].clone()), (200, json!(true)));
    assert_eq!(pr_write(s, &subject).await, granted());
    assert_eq!(access(s, &subject).await, [format!("{GITHUB_BINDING} (active)")]);

    // Okta's profile push: a full PUT that omits `active` keeps the state.
    let mut put = u.clone();
    put.as_object_mut().unwrap().remove("active");
    put["name"]["familyName"] = json!("Díaz");
    let (status, u) = scim(s, &token, "PUT", &format!("Users/{id}"), Some(put)).await;
    assert_eq!((status, u["active"].clone(), u["name"]["familyName"].clone()), (200, json!(true), json!("Díaz")));
    assert_eq!(pr_write(s, &subject).await, granted());

    // 6. Delete: the user, its memberships and bindings go in one batch.
    let (status, _) = scim(s, &token, "DELETE", &format!("Users/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(pr_write(s, &subject).await, ("deny".into(), "unknown_subject".into()));
    assert!(access(s, &subject).await.is_empty());
    let (status, b) = scim(s, &token, "GET", &format!("Users/{id}"), None).await;
    assert_eq!((status, b["status"].clone()), (404, json!("404")));
    let change = last_change(s).await;
    let ops: Vec<String> = change["ops"].as_array().unwrap().iter().map(|o| o["op"].as_str().unwrap().into()).collect();
    assert_eq!(ops, ["delete", "delete_object"], "{change}");
    // alice was never touched.
    assert_eq!(pr_write(s, "user:alice").await, granted());
}

#[tokio::test]
async fn entra_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, _) = scim_state(dir.path()).await;
    let s = &state;

    // Entra matches on userName first (its default matching attribute).
    let user_name = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1";
    let (status, b) =
        scim(s, &token, "GET", &format!("Users?filter={}", q(&format!("userName eq \"{user_name}\""))), None).await;
    assert_eq!((status, b["totalResults"].clone()), (200, json!(0)));

    // 1. Create (core + enterprise schema, `meta` and empty `roles` included).
    let (status, user) = scim(
        s,
        &token,
        "POST",
        "Users",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": user_name,
            "active": true,
            "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b@testuser.com"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": [],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Engineering"}
        })),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_string();
    let subject = format!("user:{id}");
    assert_ne!(id, "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef", "the id is ours; the IdP's key is externalId");
    assert_eq!(user["externalId"], "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef");
    assert_eq!(user["schemas"][1], "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User");
    assert_eq!(pr_write(s, &subject).await, ("deny".into(), "no_binding".into()));
    // Entra's other lookups: by externalId, and by work email, combined with `and`.
    let by_ext = q(
        r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" and emails[type eq "work"].value eq "test_user_fd0ea19b@testuser.com""#,
    );
    let (_, b) = scim(s, &token, "GET", &format!("Users?filter={by_ext}"), None).await;
    assert_eq!((b["totalResults"].clone(), b["Resources"][0]["id"].clone()), (json!(1), json!(id)));
    // A duplicate userName, in another case, is refused.
    let (status, b) = scim(s, &token, "POST", "Users", Some(json!({"userName": user_name.to_uppercase()}))).await;
    assert_eq!((status, b["scimType"].clone(), b["status"].clone()), (409, json!("uniqueness"), json!("409")));

    // 2. Entra finds the group without its members, then adds one.
    let path = format!("Groups?excludedAttributes=members&filter={}", q(r#"displayName eq "Engineering""#));
    let (_, b) = scim(s, &token, "GET", &path, None).await;
    assert_eq!(b["Resources"][0]["id"], "engineering");
    assert!(b["Resources"][0].get("members").is_none(), "{b}");
    let add = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": id}]}]});
    let (status, _) = scim(s, &token, "PATCH", "Groups/engineering", Some(add)).await;
    assert_eq!(status, 200);
    assert_eq!(pr_write(s, &subject).await, granted());
    assert_eq!(access(s, &subject).await, [format!("{GITHUB_BINDING} (active)")]);

    // 3. Remove: Entra's form names the member in a value array.
    let remove = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": id}]}]});
    let (status, _) = scim(s, &token, "PATCH", "Groups/engineering", Some(remove)).await;
    assert_eq!(status, 200);
    assert_eq!(pr_write(s, &subject).await, ("deny".into(), "no_binding".into()));
    assert!(access(s, &subject).await.is_empty());
    let add = json!({"Operations": [{"op": "Add", "path": "members", "value": [{"value": id}]}]});
    assert_eq!(scim(s, &token, "PATCH", "Groups/engineering", Some(add)).await.0, 200);

    // Attribute updates as Entra sends them: `Replace`, filtered paths.
    let update = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]});
    let (status, u) = scim(s, &token, "PATCH", &format!("Users/{id}"), Some(update)).await;
    assert_eq!(status, 200, "{u}");
    assert_eq!(
        (u["emails"][0]["value"].clone(), u["name"]["familyName"].clone()),
        (json!("updatedEmail@microsoft.com"), json!("updatedFamilyName"))
    );

    // 4. Deactivate: `Replace` with the boolean as a string.
    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "False"}]});
    let (status, u) = scim(s, &token, "PATCH", &format!("Users/{id}"), Some(deactivate)).await;
    assert_eq!((status, u["active"].clone()), (200, json!(false)));
    assert_eq!(pr_write(s, &subject).await, ("deny".into(), "subject_suspended".into()));
    assert_eq!(access(s, &subject).await, [format!("{GITHUB_BINDING} (suspended)")]);
    let by_name = format!("Users?filter={}", q(&format!("userName eq \"{user_name}\"")));
    let (_, b) = scim(s, &token, "GET", &by_name, None).await;
    assert_eq!(b["Resources"][0]["active"], false, "a filtered GET shows the disabled user with `active`");

    // 5. Reactivate.
    let reactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "Replace", "path": "active", "value": "True"}]});
    let (status, u) = scim(s, &token, "PATCH", &format!("Users/{id}"), Some(reactivate)).await;
    assert_eq!((status, u["active"].clone()), (200, json!(true)));
    assert_eq!(pr_write(s, &subject).await, granted());

    // 6. Hard delete (Entra sends it 30 days after a soft delete).
    let (status, _) = scim(s, &token, "DELETE", &format!("Users/{id}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(pr_write(s, &subject).await, ("deny".into(), "unknown_subject".into()));
    let (_, g) = scim(s, &token, "GET", "Groups/engineering", None).await;
    let members: Vec<Value> = g["members"].as_array().unwrap().iter().map(|m| m["value"].clone()).collect();
    assert_eq!(members, [json!("alice"), json!("bob")]);
    let (status, _) = scim(s, &token, "DELETE", &format!("Users/{id}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn groups_created_over_scim_grant_once_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (state, token, _) = scim_state(dir.path()).await;
    let s = &state;
    // Entra creates the group, then the user, then adds it.
    let (status, g) = scim(
        s,
        &token,
        "POST",
        "Groups",
        Some(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "Release Managers",
        "meta": {"resourceType": "Group"}})),
    )
    .await;
    assert_eq!(status, 201, "{g}");
    let gid = g["id"].as_str().unwrap().to_string();
    let (_, u) = scim(s, &token, "POST", "Users", Some(json!({"userName": "erin@acme.example", "active": true}))).await;
    let uid = u["id"].as_str().unwrap().to_string();
    let add = json!({"Operations": [{"op": "Add", "path": "members", "value": [{"value": uid}]}]});
    assert_eq!(scim(s, &token, "PATCH", &format!("Groups/{gid}"), Some(add)).await.0, 200);
    // Nested: Release Managers inside on-call (a group member, typed).
    let nest = json!({"Operations": [{"op": "add", "path": "members", "value": [{"value": gid, "type": "Group"}]}]});
    assert_eq!(scim(s, &token, "PATCH", "Groups/on-call", Some(nest)).await.0, 200);
    let deploy = json!({"subject": format!("user:{uid}"), "application": "deploy-mcp", "scope": "deploy:prod"});
    let (_, _, b) =
        super::api_support::call(s, "POST", "/v1/tenants/acme/check", Some(super::api_support::ADMIN), Some(deploy))
            .await;
    assert_eq!(b["decision"], "step_up", "on-call's MFA binding reaches erin through the nested group: {b}");
    // Bind the SCIM group to a role in Holdfast: membership now grants it.
    let bind = json!({"subject": format!("group:{gid}"), "role": "auditor"});
    let (status, _, b) =
        super::api_support::call(s, "POST", "/v1/tenants/acme/bindings", Some(super::api_support::ADMIN), Some(bind))
            .await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(access(s, &format!("user:{uid}")).await.len(), 2);
    // Deleting a bound group is refused, unless forced.
    let (status, b) = scim(s, &token, "DELETE", &format!("Groups/{gid}"), None).await;
    assert_eq!(status, 409, "{b}");
    assert!(b["detail"].as_str().unwrap().contains("force=true"), "{b}");
    let (status, _) = scim(s, &token, "DELETE", &format!("Groups/{gid}?force=true"), None).await;
    assert_eq!(status, 204);
    assert!(access(s, &format!("user:{uid}")).await.is_empty());
    let (_, g) = scim(s, &token, "GET", "Groups/on-call", None).await;
    assert!(!g["members"].as_array().unwrap().iter().any(|m| m["value"] == gid.as_str()));
}
