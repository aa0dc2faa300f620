//! The web app's unit tests (Vitest, `web/tests/unit`) as part of the suite: among them the
//! checks that its API types are the ones generated from voting-api's OpenAPI document and
//! that its join-code and ballot rules give the Rust rules' answers
//! (`web/tests/fixtures/rules.json`). Nothing is started; Vitest's output is passed through.
//!
//! Needs what `scripts/test` installs: `node` and `web/node_modules` (`npm ci` in web/).

use std::path::{Path, PathBuf};
use std::process::Command;

fn web() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is inside the repository")
        .join("web")
}

#[test]
fn the_web_apps_unit_tests_pass() {
    let web = web();
    let vitest = web.join("node_modules/vitest/vitest.mjs");
    assert!(
        vitest.exists(),
        "{} is missing: install web/'s packages, `npm ci` in web/ (scripts/test does)",
        vitest.display()
    );
    let status = Command::new("node")
        .arg(&vitest)
        .args(["run", "--reporter=dot"])
        .current_dir(&web)
        .env("CI", "true")
        .status()
        .expect("starting node (scripts/test installs it)");
    assert!(
        status.success(),
        "the web app's unit tests failed ({status}): their report is above; \
         `npx vitest run` in web/ runs them alone"
    );
}
