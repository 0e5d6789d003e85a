//! The admin UI end to end in headless Chromium (Debian's `chromium`),
//! driven by Playwright for Python (`tests/ui/admin_flow.py`) against a real
//! server on 127.0.0.1:0 with the worked example loaded. Screenshots of each
//! page go to `target/ui-screenshots/`. `.ci/run` installs both; elsewhere
//! the test is skipped, with a message, when either is missing — under
//! `CI=true` that is a failure.

use super::api_support::{acme_state, Server, ADMIN, READER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_flow_in_headless_chromium() {
    if !super::api_support::browser_available("admin_flow_in_headless_chromium") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(acme_state(dir.path())).await;
    let root = env!("CARGO_MANIFEST_DIR");
    let shots = format!("{root}/target/ui-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let args = [
        format!("{root}/tests/ui/admin_flow.py"),
        format!("http://{}", server.addr),
        ADMIN.to_string(),
        READER.to_string(),
        shots.clone(),
        format!("{root}/examples/acme.yaml"),
    ];
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output())
        .await
        .unwrap()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser flow failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("ok: 14 screenshots"), "{stdout}");
    let taken = std::fs::read_dir(&shots).unwrap().count();
    assert_eq!(taken, 14, "screenshots in {shots}");
    server.shutdown().await.unwrap();
}
