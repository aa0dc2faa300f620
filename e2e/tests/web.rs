//! The web app in a real browser against the real stack: voting-api serves the built
//! pages (`web/dist`) and points them at realtime-service; `web/tests/browser.spec.mjs`
//! drives Debian's Chromium through `playwright-core` as a presenter, a big screen and three
//! phones. Its output is streamed as it runs; screenshots go to `target/screenshots`.
//!
//! Needs what `scripts/test` installs: `node`, `web/node_modules` (`npm ci`), the build in
//! `web/dist` (`npm run build`) and `/usr/bin/chromium`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pollstream_testkit::stack::Stack;

/// The aggregator's flush interval for this stack; the browser test's timing checks use it.
const FLUSH_INTERVAL_MS: u64 = 1_000;

/// Longest the browser test may take before it counts as hung.
const BROWSER_TEST_TIMEOUT: Duration = Duration::from_secs(300);

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ is inside the repository")
        .to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_works_in_a_real_browser_against_the_stack() {
    let repository = repository();
    let web = repository.join("web");
    let dist = web.join("dist");
    for (needed, hint) in [
        (
            dist.join("index.html"),
            "build the web app: `npm ci && npm run build` in web/",
        ),
        (
            web.join("node_modules/playwright-core"),
            "install web/'s packages: `npm ci` in web/",
        ),
        (
            PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())),
            "install Debian's chromium",
        ),
    ] {
        assert!(
            needed.exists(),
            "{} is missing: {hint} (scripts/test does all of this)",
            needed.display()
        );
    }

    let stack = Stack::start_serving_web("web", FLUSH_INTERVAL_MS, &dist).await;
    let page_url = format!("{}/", stack.api);
    let screenshots = repository.join("target/screenshots");
    // The full checks are the default; POLLSTREAM_WEB_FULL=0 leaves out those that need
    // realtime-service's presence counts.
    let full = std::env::var("POLLSTREAM_WEB_FULL").unwrap_or_else(|_| "1".into());
    let started = Instant::now();
    let mut browser_test = tokio::process::Command::new("node")
        .arg(web.join("tests/browser.spec.mjs"))
        .current_dir(&web)
        .env("POLLSTREAM_WEB_URL", &page_url)
        .env("POLLSTREAM_WEB_FULL", &full)
        .env("POLLSTREAM_SCREENSHOTS", &screenshots)
        .env("FLUSH_INTERVAL_MS", FLUSH_INTERVAL_MS.to_string())
        .kill_on_drop(true)
        .spawn()
        .expect("starting node (scripts/test installs it)");
    let status = tokio::time::timeout(BROWSER_TEST_TIMEOUT, browser_test.wait())
        .await
        .unwrap_or_else(|_| {
            panic!("the browser test did not finish within {BROWSER_TEST_TIMEOUT:?}")
        })
        .expect("waiting for the browser test");
    eprintln!(
        "browser test against {page_url}: {status} after {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshots.display()
    );
    assert!(
        status.success(),
        "web/tests/browser.spec.mjs failed ({status}): its steps are above; service logs in {}",
        stack.log_path("voting-api").parent().unwrap().display()
    );
    stack.stop().await;
}
