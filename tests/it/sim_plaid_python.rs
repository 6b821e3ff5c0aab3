//! Plaid's official Python client (`plaid-python` from PyPI), pointed at the simulator, unchanged:
//! `flow.py` runs link → exchange → sync → reset_login; `options.py` sends every request option
//! the client exposes on the endpoints the simulator serves and checks the errors it raises.
//! Skipped, saying so, when the `plaid` module is not installed
//! (`python3 -m pip install plaid-python`), except in CI (see `helpers::tools`).

use crate::helpers::sim as support;
use crate::helpers::tools;

use std::path::Path;
use std::process::Command;
use support::{start, test_config};

/// Runs `tests/plaid_python/<script>` against a fresh simulator; its stdout when it passed.
async fn run(script: &str) -> Option<String> {
    if !tools::available(
        "python3",
        &["-c", "import plaid"],
        "python3 -m pip install plaid-python==46.0.0",
    ) {
        return None;
    }
    let handle = start(test_config()).await;
    let config = handle.sim().config();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/plaid_python")
        .join(script);
    let base_url = handle.base_url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .args([base_url, config.client_id, config.secret])
            .output()
            .expect("python3 runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "plaid-python script failed\nstdout: {stdout}\nstderr: {stderr}"
    );
    handle.shutdown().await;
    Some(stdout)
}

#[tokio::test]
async fn the_official_plaid_python_client_runs_link_exchange_sync_and_reset_login_against_the_simulator(
) {
    if let Some(stdout) = run("flow.py").await {
        assert!(stdout.starts_with("OK:"), "{stdout}");
    }
}

#[tokio::test]
async fn every_request_option_of_the_plaid_python_client_is_accepted_and_honoured_and_its_errors_are_plaids(
) {
    if let Some(stdout) = run("options.py").await {
        assert!(stdout.starts_with("OK:"), "{stdout}");
    }
}
