//! External tools some tests run (Plaid's Python client, schemathesis), installed from PyPI.
//!
//! A developer without them sees the test say SKIPPED and how to install the tool; CI sets
//! `PLAIDHOOK_REQUIRE_TOOLS=1` (in `.ci/run`, which installs them), so there a missing tool
//! fails the test instead of skipping it.

use std::process::Command;

/// Whether `program args...` runs and succeeds; when not, says how to install it, and panics
/// if tools are required.
pub fn available(program: &str, args: &[&str], install: &str) -> bool {
    let runs = Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success());
    if !runs {
        let required = std::env::var("PLAIDHOOK_REQUIRE_TOOLS").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "`{program}` is required (PLAIDHOOK_REQUIRE_TOOLS=1); install it with `{install}`"
        );
        eprintln!("SKIPPED: `{program}` is not available; install it with `{install}`");
    }
    runs
}
