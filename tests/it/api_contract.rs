//! The management API against its own OpenAPI document, with schemathesis (PyPI): every
//! operation, positive and negative data, the stateful phase following the document's links
//! from the Item list to each Item operation, every check. Any finding fails the test, with
//! schemathesis' report in the message; so does an Item operation the stateful phase never
//! reached with a real Item.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use reqwest::Method;
use serde_json::Value;
use testkit::api::{start, TOKEN};
use uuid::Uuid;

use crate::helpers::tools;

#[tokio::test]
async fn the_management_api_does_what_its_openapi_document_says() {
    if !tools::available(
        "schemathesis",
        &["--version"],
        "python3 -m pip install schemathesis==4.32.5",
    ) {
        return;
    }
    let h = start(&[]).await;
    // Items for the stateful phase to reach through the links: healthy ones (removal takes
    // some of them out), and one in ITEM_LOGIN_REQUIRED (an update-mode link token, a repair).
    for n in 0..6 {
        h.link_item(&format!("user-contract-{n}")).await;
    }
    let (broken, broken_plaid) = h.link_item("user-contract-broken").await;
    h.app.sim().reset_login(&broken_plaid);
    h.item_until(broken, std::time::Duration::from_secs(20), |i| {
        i["status"] == "login_required"
    })
    .await;
    let (status, _) = h.call(Method::GET, "/api/v1/items", None).await;
    assert_eq!(status, 200);

    let schema = h.app.internal_url("/api/openapi.json");
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    let events =
        std::env::temp_dir().join(format!("plaidhook-schemathesis-{}.ndjson", Uuid::new_v4()));
    let events_path = events.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("schemathesis")
            .arg("--config-file")
            .arg(config)
            .args(["run", &schema])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .args(["--report", "ndjson", "--report-ndjson-path"])
            .arg(&events_path)
            .env("NO_COLOR", "1")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found a difference between the API and its document\n{stdout}\n{stderr}"
    );
    let reached = reached_by_links(&std::fs::read_to_string(&events).unwrap());
    let _ = std::fs::remove_file(&events);
    let (_, spec) = h.call(Method::GET, "/api/openapi.json", None).await;
    for (path, methods) in spec["paths"].as_object().unwrap() {
        if !path.contains("{item_id}") {
            continue;
        }
        for method in methods.as_object().unwrap().keys() {
            let operation = (method.to_uppercase(), path.clone());
            assert!(
                reached.contains(&operation),
                "the stateful phase never reached {operation:?} with a real Item; reached: {reached:?}\n{stdout}"
            );
        }
    }
    h.app.stop().await.unwrap();
}

/// The operations a stateful step reached through a link with an Item that exists (anything
/// but 404): `(METHOD, path template)`.
fn reached_by_links(ndjson: &str) -> BTreeSet<(String, String)> {
    let mut reached = BTreeSet::new();
    for line in ndjson.lines() {
        let event: Value = serde_json::from_str(line).unwrap();
        let finished = &event["ScenarioFinished"];
        if finished["phase"] != "stateful" {
            continue;
        }
        let recorder = &finished["recorder"];
        let Some(cases) = recorder["cases"].as_object() else {
            continue;
        };
        for (id, case) in cases {
            let status = &recorder["interactions"][id]["response"]["status_code"];
            if case["is_transition_applied"] == true && status.is_u64() && status != 404 {
                let value = &case["value"];
                reached.insert((
                    value["method"].as_str().unwrap().to_owned(),
                    value["path"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    reached
}
