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
    // Drop this flow's screenshots of an earlier run (only its own: the
    // folder is shared with the other browser tests, which may be running).
    let numbered = |name: &str| {
        name.len() > 3 && name.as_bytes()[..2].iter().all(u8::is_ascii_digit) && name.as_bytes()[2] == b'-'
    };
    for e in std::fs::read_dir(&shots).into_iter().flatten().filter_map(Result::ok) {
        if numbered(&e.file_name().to_string_lossy()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
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
    // This flow's screenshots are numbered (`01-sign-in.png`); other browser
    // tests save theirs in the same folder under other names.
    let taken = std::fs::read_dir(&shots)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| numbered(&e.file_name().to_string_lossy()))
        .count();
    assert_eq!(taken, 14, "numbered screenshots in {shots}");
    server.shutdown().await.unwrap();
}
