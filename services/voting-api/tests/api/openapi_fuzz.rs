//! The OpenAPI document tells the truth: schemathesis fuzzes a running voting-api from the
//! document it serves, with every check (statuses, content types, response schemas, valid
//! data accepted, invalid data refused, auth enforced, `405` with `Allow`, ...), and must
//! find nothing.
//!
//! schemathesis is pinned in `scripts/python-tools.txt`; `scripts/test` installs it into
//! `.run/venv` (`ensure_python_tools` in `scripts/lib.sh`). The run is reproducible (fixed
//! seed) and bounded; `FUZZ_SEED` and `FUZZ_MAX_EXAMPLES` change it for a deeper local run.
//! Refusals the document cannot express (a duplicate option differing only in case, a
//! `closesAt` in the past, `maxChoices` above the option count) are declared per operation in
//! `schemathesis.toml` beside this file.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::helpers::spawn_app_with;

/// Where `scripts/test` installs schemathesis's `st` command.
fn schemathesis() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.run/venv/bin/st")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_gap_between_the_document_and_the_server() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "schemathesis is not installed at {}: run `scripts/test` (it installs the version \
         pinned in scripts/python-tools.txt into .run/venv)",
        st.display()
    );
    // Unlimited rate limits: the fuzzer sends thousands of requests from one address and a
    // `429` would hide what the route really answers (`429` stays documented).
    let app = spawn_app_with(&[
        ("RATE_LIMIT_AUTH_PER_IP", "0"),
        ("RATE_LIMIT_GUEST_PER_IP", "0"),
        ("RATE_LIMIT_VOTES_PER_VOTER", "0"),
        ("RATE_LIMIT_VOTES_PER_IP", "0"),
    ])
    .await;
    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/schemathesis.toml");
    let seed = std::env::var("FUZZ_SEED").unwrap_or_else(|_| "20251".to_owned());
    let examples = std::env::var("FUZZ_MAX_EXAMPLES").unwrap_or_else(|_| "30".to_owned());
    let work_dir = std::env::temp_dir().join(format!("voting-api-fuzz-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&work_dir).unwrap();
    let started = Instant::now();
    let run = tokio::process::Command::new(&st)
        .arg("--config-file")
        .arg(&config)
        .arg("--no-color")
        .arg("run")
        .arg(format!("{}{}", app.address, voting_api::OPENAPI_PATH))
        .args(["--url", &app.address])
        .args(["--checks", "all"])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", app.token("fuzzer")),
        ])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--workers", "2", "--generation-database", "none"])
        .args(["--request-timeout", "10"])
        .current_dir(&work_dir)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .expect("schemathesis ran for more than 5 minutes")
        .expect("schemathesis could not be started");
    let _ = std::fs::remove_dir_all(&work_dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("schemathesis took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        output.status.success(),
        "schemathesis found gaps between the OpenAPI document and the server ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
