//! The layers stay clean: the model and the engine know nothing of storage,
//! the service, the API, HTTP or async runtimes (STYLE.md, "A pure core").

#[test]
fn model_and_engine_import_no_outer_layer() {
    let forbidden = [
        "axum",
        "fjall",
        "tokio",
        "hyper",
        "crate::store",
        "crate::service",
        "crate::api",
        "crate::policy",
        "crate::query",
        "crate::explain",
    ];
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut checked = 0;
    for layer in ["model", "engine"] {
        let mut stack = vec![std::path::PathBuf::from(root).join(layer)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|x| x != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for f in forbidden {
                        let used = code.contains(&format!("{f}::")) || code.contains(&format!("use {f}"));
                        assert!(!used, "{}:{}: the {layer} layer must not use `{f}`: {line}", path.display(), i + 1);
                    }
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 6, "found the layers' files ({checked})");
}

/// The API reaches state only through the service (snapshots and the one
/// write door) and the query layers: never the store or the engine.
#[test]
fn the_api_goes_through_the_service() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
    let mut stack = vec![std::path::PathBuf::from(dir)];
    let mut checked = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for f in ["crate::store", "crate::engine", "fjall", ".store()"] {
                    assert!(!code.contains(f), "{}:{}: the API must not use `{f}`: {line}", path.display(), i + 1);
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "found the API's files ({checked})");
}
