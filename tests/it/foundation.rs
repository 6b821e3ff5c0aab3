//! The service skeleton: schema, start-up, probes, configuration errors, shutdown.

use std::time::Duration;

use plaidhook::app::Role;
use reqwest::StatusCode;
use sqlx::Connection;
use testkit::{settings_with, spawn_app, spawn_app_with, TestDatabase};

const DOMAIN_TABLES: &[&str] = &[
    "accounts",
    "alert_deliveries",
    "alerts",
    "item_status_history",
    "items",
    "leases",
    "link_sessions",
    "outbox",
    "plaid_api_calls",
    "rate_limit_grants",
    "sync_runs",
    "sync_staging",
    "transactions",
    "webhook_keys",
    "webhook_spool",
];

#[tokio::test]
async fn migrations_apply_to_an_empty_database_and_create_the_whole_domain() {
    let database = TestDatabase::new();
    let settings = settings_with(&[("PLAIDHOOK__DATABASE__URL", &database.url)]).unwrap();
    plaidhook::store::migrate(&settings.database).await.unwrap();
    // Applying again is a no-op, not an error.
    plaidhook::store::migrate(&settings.database).await.unwrap();

    let mut conn = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "select table_name::text from information_schema.tables \
         where table_schema = 'public' and table_name <> '_sqlx_migrations' order by 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, DOMAIN_TABLES);

    let amount_type: String = sqlx::query_scalar(
        "select data_type::text from information_schema.columns \
         where table_name = 'transactions' and column_name = 'amount'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(amount_type, "numeric", "money is numeric, never float");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn an_item_status_outside_the_state_machine_is_refused_by_the_schema() {
    let database = TestDatabase::new();
    let settings = settings_with(&[("PLAIDHOOK__DATABASE__URL", &database.url)]).unwrap();
    plaidhook::store::migrate(&settings.database).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&database.url).await.unwrap();
    let insert = |status: &'static str| {
        format!(
            "insert into items (id, plaid_item_id, access_token_ciphertext, access_token_nonce, \
             access_token_key_id, status) values (gen_random_uuid(), '{status}-item', '\\x00', '\\x00', 'k1', '{status}')"
        )
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(insert("login_required")))
        .execute(&mut conn)
        .await
        .unwrap();
    let refused = sqlx::raw_sql(sqlx::AssertSqlSafe(insert("sleepy")))
        .execute(&mut conn)
        .await;
    assert!(refused.is_err(), "an unknown status must be rejected");
    conn.close().await.unwrap();
}

#[tokio::test]
async fn the_app_starts_on_port_zero_and_reports_ready() {
    let app = spawn_app().await;
    assert_ne!(app.internal_addr.port(), 0);
    assert_ne!(app.public_addr.unwrap().port(), 0);

    assert_eq!(
        app.wait_ready(Duration::from_secs(15)).await,
        StatusCode::OK
    );
    let ready: serde_json::Value = app
        .http
        .get(app.internal_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["checks"]["database"], "ok");
    assert_eq!(ready["checks"]["broker"], "connected");

    let health = app
        .http
        .get(app.public_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let request_id = health
        .headers()
        .get("x-request-id")
        .expect("a request id on every response");
    assert!(uuid::Uuid::parse_str(request_id.to_str().unwrap()).is_ok());

    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_id_sent_by_the_caller_is_kept() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.internal_url("/healthz"))
        .header("x-request-id", "caller-chosen-id")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "caller-chosen-id");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_reports_not_ready_when_the_database_is_unreachable() {
    let app = spawn_app_with(
        Role::All,
        &[
            // Nothing listens on port 1; the pool connects lazily so the app still starts.
            (
                "PLAIDHOOK__DATABASE__URL",
                "postgres://postgres@127.0.0.1:1/plaidhook",
            ),
            ("PLAIDHOOK__DATABASE__MIGRATE_ON_START", "false"),
            ("PLAIDHOOK__DATABASE__ACQUIRE_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let response = app
        .http
        .get(app.internal_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"], "unreachable");
    // The process itself is alive.
    let health = app
        .http
        .get(app.internal_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn readyz_reports_not_ready_until_the_schema_has_every_migration_of_the_binary() {
    use sqlx::migrate::MigrateDatabase;

    // `migrate_on_start = false` and no `plaidhook migrate` yet: the database answers, but
    // every query would fail on a missing table.
    let database = TestDatabase::new();
    sqlx::Postgres::create_database(&database.url)
        .await
        .unwrap();
    let app = spawn_app_with(
        Role::Serve,
        &[
            ("PLAIDHOOK__DATABASE__URL", &database.url),
            ("PLAIDHOOK__DATABASE__MIGRATE_ON_START", "false"),
        ],
    )
    .await;
    let response = app
        .http
        .get(app.internal_url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["schema"], "behind");

    // The operator runs the migrations: the same process becomes ready.
    let settings = settings_with(&[("PLAIDHOOK__DATABASE__URL", &database.url)]).unwrap();
    plaidhook::store::migrate(&settings.database).await.unwrap();
    assert_eq!(
        app.wait_ready(Duration::from_secs(15)).await,
        StatusCode::OK
    );
    let body: serde_json::Value = app
        .http
        .get(app.internal_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["checks"]["schema"], "current");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn with_the_broker_down_an_ingress_stays_ready_and_a_worker_does_not() {
    let dead_broker = [(
        "PLAIDHOOK__RABBITMQ__URL",
        "amqp://guest:guest@127.0.0.1:1/%2f",
    )];
    let ingress = spawn_app_with(Role::Serve, &dead_broker).await;
    let worker = spawn_app_with(Role::Worker, &dead_broker).await;

    // The ingress spools webhooks while the broker is away, so it keeps taking traffic.
    assert_eq!(
        ingress.wait_ready(Duration::from_secs(15)).await,
        StatusCode::OK
    );
    let body: serde_json::Value = ingress
        .http
        .get(ingress.internal_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["checks"]["broker"], "disconnected");
    // A worker has nothing to consume from.
    assert_eq!(
        worker.wait_ready(Duration::from_secs(1)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        worker.public_addr.is_none(),
        "a worker has no public listener"
    );

    ingress.stop().await.unwrap();
    worker.stop().await.unwrap();
}

#[tokio::test]
async fn each_bad_config_value_fails_with_a_message_naming_the_setting() {
    let cases: &[(&str, &str, &str)] = &[
        ("PLAIDHOOK__PUBLIC__PORT", "notaport", "public.port"),
        ("PLAIDHOOK__PUBLIC__PORT", "70000", "public.port"),
        ("PLAIDHOOK__PUBLIC__HOST", "not a host", "public.host"),
        (
            "PLAIDHOOK__PLAID__ENVIRONMENT",
            "staging",
            "plaid.environment",
        ),
        ("PLAIDHOOK__PLAID__ENVIRONMENT", "custom", "plaid.base_url"),
        ("PLAIDHOOK__PLAID__SECRET", " ", "plaid.secret"),
        (
            "PLAIDHOOK__DATABASE__URL",
            "mysql://localhost/plaidhook",
            "database.url",
        ),
        (
            "PLAIDHOOK__RABBITMQ__URL",
            "http://localhost",
            "rabbitmq.url",
        ),
        (
            "PLAIDHOOK__RABBITMQ__PUBLISH_TIMEOUT_MS",
            "20000",
            "rabbitmq.publish_timeout_ms",
        ),
        ("PLAIDHOOK__RABBITMQ__PREFETCH", "0", "rabbitmq.prefetch"),
        (
            "PLAIDHOOK__WEBHOOK__MAX_BODY_BYTES",
            "10",
            "webhook.max_body_bytes",
        ),
        ("PLAIDHOOK__TELEMETRY__FORMAT", "xml", "telemetry.format"),
        // The public development key must never seal a real Plaid access token.
        (
            "PLAIDHOOK__PLAID__ENVIRONMENT",
            "production",
            "tokens.active_key_id",
        ),
        (
            "PLAIDHOOK__TOKENS__ACTIVE_KEY_ID",
            "missing",
            "tokens.active_key_id",
        ),
        (
            "PLAIDHOOK__TOKENS__KEYS__DEV",
            "dG9vIHNob3J0",
            "tokens.keys.dev",
        ),
    ];
    for (key, value, named) in cases {
        let error =
            settings_with(&[(key, value)]).expect_err(&format!("{key}={value} must be refused"));
        let message = format!("{error:#}");
        assert!(
            message.contains(named),
            "{key}={value}: message {message:?} does not name `{named}`"
        );
    }
    // And the defaults themselves are valid.
    settings_with(&[]).expect("config/default.toml + config/test.toml are valid");
}

#[tokio::test]
async fn a_setting_no_one_reads_stops_the_start_and_is_named_with_its_likely_meaning() {
    // The singular `TOKEN` would otherwise be dropped and every API call would answer 401.
    let error = settings_with(&[("PLAIDHOOK__API__TOKEN__ADMIN", "ab12")])
        .expect_err("an unknown key must be refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("`api.token`") && message.contains("did you mean `api.tokens`?"),
        "{message}"
    );
    // Unknown sections, and unknown keys inside the flattened [sim] table, are caught too.
    for (key, named) in [
        ("PLAIDHOOK__WEBHOOKS__MAX_AGE_SECS", "`webhooks`"),
        ("PLAIDHOOK__SYNC__PAGE_SIZES", "`sync.page_sizes`"),
        ("PLAIDHOOK__SIM__SEDE", "`sim.sede`"),
    ] {
        let error = settings_with(&[(key, "1")]).expect_err(key);
        assert!(format!("{error:#}").contains(named), "{key}: {error:#}");
    }
    // A key of a map (`api.tokens.<name>`) or of the simulator's settings is not unknown.
    settings_with(&[
        ("PLAIDHOOK__API__TOKENS__ADMIN", &"ab".repeat(32)),
        ("PLAIDHOOK__SIM__SEED", "7"),
    ])
    .expect("known keys are accepted");
}

#[tokio::test]
async fn a_named_environment_without_its_file_stops_the_start() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_plaidhook"))
        .args(["--environment", "staging", "--config-dir"])
        .arg(testkit::config_dir())
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("environment `staging`") && stderr.contains("staging.toml"),
        "stderr: {stderr}"
    );
    // A file written in TOML with a misspelt key is refused the same way as a variable.
    let dir = std::env::temp_dir().join(format!("plaidhook-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("staging.toml"), "[sync]\npage_sise = 100\n").unwrap();
    let loaded = plaidhook::config::Settings::load_from(&dir, "staging", Vec::new());
    std::fs::remove_dir_all(&dir).unwrap();
    let error = loaded.expect_err("misspelt key");
    assert!(
        format!("{error:#}").contains("did you mean `sync.page_size`?"),
        "{error:#}"
    );
}

#[tokio::test]
async fn the_binary_refuses_to_start_on_a_bad_setting_and_says_which() {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_plaidhook"))
        .arg("serve")
        .env("PLAIDHOOK__INTERNAL__PORT", "eighty")
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("internal.port"), "stderr: {stderr}");
}

#[tokio::test]
async fn every_subcommand_has_help() {
    for subcommand in [
        "serve",
        "worker",
        "all",
        "migrate",
        "sim",
        "demo",
        "dead-letters",
        "reseal-tokens",
        "topology",
    ] {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_plaidhook"))
            .args([subcommand, "--help"])
            .output()
            .await
            .unwrap();
        assert!(output.status.success(), "{subcommand} --help failed");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains("Usage: plaidhook"),
            "{subcommand}: {stdout}"
        );
    }
}

#[tokio::test]
async fn shutdown_stops_both_listeners() {
    let app = spawn_app().await;
    let internal = app.internal_url("/healthz");
    let public = app.public_url("/healthz");
    let http = app.http.clone();
    app.stop().await.unwrap();
    assert!(http.get(internal).send().await.is_err());
    assert!(http.get(public).send().await.is_err());
}

#[tokio::test]
async fn a_worker_stopped_before_the_broker_ever_answered_exits_cleanly() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let database = TestDatabase::new();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_plaidhook"))
        .args(["--environment", "test", "--config-dir"])
        .arg(testkit::config_dir())
        .arg("worker")
        .env("PLAIDHOOK__DATABASE__URL", &database.url)
        // Nothing listens on port 1: the connection attempt is still pending at the stop.
        .env(
            "PLAIDHOOK__RABBITMQ__URL",
            "amqp://guest:guest@127.0.0.1:1/%2f",
        )
        .env("PLAIDHOOK__TELEMETRY__FILTER", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let listening = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            // The internal listener starts after the signal handler is installed.
            let found = line.contains("listener=\"internal\"");
            seen.push(line);
            if found {
                return;
            }
        }
    })
    .await;
    assert!(listening.is_ok(), "the worker started: {seen:?}");
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            seen.push(line);
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("the worker stops on SIGTERM");
    assert!(rest.success(), "exit status {rest:?}: {seen:#?}");
    assert!(
        !seen.iter().any(|line| line.contains("panicked")),
        "{seen:#?}"
    );
}

#[tokio::test]
async fn a_taken_listener_port_fails_start_up_naming_the_setting_that_moves_it() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let database = TestDatabase::new();
    for (variable, role) in [
        ("PLAIDHOOK__INTERNAL__PORT", Role::Worker),
        ("PLAIDHOOK__PUBLIC__PORT", Role::Serve),
    ] {
        let settings = settings_with(&[
            ("PLAIDHOOK__DATABASE__URL", database.url.as_str()),
            (variable, port.as_str()),
        ])
        .unwrap();
        let error = plaidhook::app::Application::build(settings, role)
            .await
            .err()
            .expect("a taken port is refused");
        let message = format!("{error:#}");
        assert!(
            message.contains(&format!("127.0.0.1:{port}")) && message.contains(variable),
            "{message}"
        );
    }
}
