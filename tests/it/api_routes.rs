//! `api::ROUTES` agrees with `schema/openapi.yaml` and with the router.

use std::collections::BTreeSet;

use holdfast::api::ROUTES;
use yaml_rust2::{Yaml, YamlLoader};

use super::api_support::{acme_state, call, ADMIN};

fn openapi_routes() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/openapi.yaml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_hash().expect("paths") {
        for (method, _) in item.as_hash().unwrap() {
            let m = method.as_str().unwrap();
            if ["get", "put", "post", "delete", "patch"].contains(&m) {
                out.insert((m.to_uppercase(), path.as_str().unwrap().to_string()));
            }
        }
    }
    assert!(!matches!(doc["components"], Yaml::BadValue), "components are described");
    out
}

#[test]
fn routes_equal_the_openapi_document() {
    let ours: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    assert_eq!(ours.len(), ROUTES.len(), "no duplicates in ROUTES");
    let doc = openapi_routes();
    let missing: Vec<_> = ours.difference(&doc).collect();
    let extra: Vec<_> = doc.difference(&ours).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not in openapi.yaml: {missing:?}; not in ROUTES: {extra:?}");
}

/// Every operation has an operationId, unique, in camelCase.
#[test]
fn operation_ids_are_unique_and_camel_case() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema/openapi.yaml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let mut seen = BTreeSet::new();
    for (path, item) in doc["paths"].as_hash().expect("paths") {
        for (method, op) in item.as_hash().unwrap() {
            let m = method.as_str().unwrap();
            if !["get", "put", "post", "delete", "patch"].contains(&m) {
                continue;
            }
            let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{m} {path:?} has no operationId"));
            assert!(
                id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && id.chars().all(|c| c.is_ascii_alphanumeric()),
                "{m} {path:?}: operationId `{id}` is not camelCase"
            );
            assert!(seen.insert(id.to_string()), "operationId `{id}` is used twice");
        }
    }
    assert_eq!(seen.len(), ROUTES.len());
}

#[tokio::test]
async fn every_route_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let state = acme_state(dir.path());
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{tenant}", "acme")
            .replace("{subject}", "user:alice")
            .replace("{application}", "deploy-mcp")
            .replace(['{', '}'], "");
        let body = (*method != "GET" && *method != "DELETE").then(|| serde_json::json!({}));
        let (status, _, b) = call(&state, method, &concrete, Some(ADMIN), body).await;
        assert_ne!(status, 405, "{method} {path}: {b}");
        assert_ne!(b["error"]["code"], "unknown_route", "{method} {path}: {b}");
        assert!(status < 500, "{method} {path}: {status} {b}");
    }
}
