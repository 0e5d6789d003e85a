//! The layers stay clean (STYLE.md, "A pure core"): the model and the engine
//! know nothing of storage, the service, the API, HTTP or async runtimes,
//! and the API reaches state only through the service.

use std::path::PathBuf;

/// Every `.rs` file below `src/{dir}`.
fn rs_files(dir: &str) -> Vec<PathBuf> {
    let mut stack = vec![PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src")).join(dir)];
    let mut out = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// Fails on the first line of `files` whose code (comments aside) names one
/// of `forbidden`.
fn assert_none_used(layer: &str, files: &[PathBuf], forbidden: &[&str]) {
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for f in forbidden {
                assert!(
                    !code.contains(f),
                    "{}:{}: the {layer} layer must not use `{f}`: {line}",
                    path.display(),
                    i + 1
                );
            }
        }
    }
}

#[test]
fn model_and_engine_import_no_outer_layer() {
    let mut forbidden = Vec::new();
    for f in ["axum", "fjall", "tokio", "hyper"] {
        forbidden.push(format!("{f}::"));
        forbidden.push(format!("use {f}"));
    }
    for layer in ["store", "service", "api", "ui", "policy", "query", "explain"] {
        forbidden.push(format!("crate::{layer}"));
    }
    let forbidden: Vec<&str> = forbidden.iter().map(String::as_str).collect();
    for layer in ["model", "engine"] {
        let files = rs_files(layer);
        assert!(files.len() >= 3, "found the {layer} layer's files ({})", files.len());
        assert_none_used(layer, &files, &forbidden);
    }
}

/// The API reaches state only through the service (snapshots and the one
/// write door) and the query layers: never the store or the engine.
#[test]
fn the_api_goes_through_the_service() {
    let files = rs_files("api");
    assert!(files.len() >= 10, "found the API's files ({})", files.len());
    assert_none_used("API", &files, &["crate::store", "crate::engine", "fjall", ".store()"]);
}

/// The admin UI is the API layer in HTML: it reaches state through the
/// service and the query/explain/policy layers (and the API's own helpers),
/// never the store or the engine; and HTML stays in the UI.
#[test]
fn the_ui_goes_through_the_service_and_html_stays_in_it() {
    let files = rs_files("ui");
    assert!(files.len() >= 5, "found the UI's files ({})", files.len());
    assert_none_used("UI", &files, &["crate::store", "crate::engine", "fjall", ".store()"]);
    let mut inner = Vec::new();
    for layer in ["model", "engine", "store", "service", "query", "explain", "policy", "api"] {
        inner.extend(rs_files(layer));
    }
    // The API merges the UI's routes and keeps its sessions; nothing else
    // below names it, and no layer but the UI renders HTML.
    let (api, below): (Vec<_>, Vec<_>) = inner.into_iter().partition(|p| p.to_string_lossy().contains("/src/api/"));
    assert_none_used("inner", &below, &["crate::ui", "maud", "text/html"]);
    assert_none_used("API", &api, &["maud", "text/html"]);
}
