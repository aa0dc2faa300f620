//! The web app's copy of the OpenAPI document, `web/src/api/openapi.json`, is the document
//! this service serves at `/api/v1/openapi.json`. The web app's API types are generated from
//! that copy (`npm run gen:api` in `web/`), so a route or schema changed here without the copy
//! following fails this test rather than leaving the web app on stale types.
//!
//! `UPDATE_FIXTURES=1 cargo test -p voting-api --test web_openapi_copy` rewrites the copy;
//! then run `npm run gen:api` in `web/` and commit both files.

use std::path::PathBuf;

fn web_copy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../web/src/api/openapi.json")
}

#[test]
fn the_web_apps_copy_of_the_openapi_document_is_the_served_one() {
    let (_, document) = voting_api::api();
    let served = serde_json::to_value(&document).expect("the OpenAPI document is JSON");
    let path = web_copy();
    if std::env::var_os("UPDATE_FIXTURES").is_some_and(|value| value == "1") {
        let mut text = serde_json::to_string_pretty(&served).expect("the document prints");
        text.push('\n');
        std::fs::write(&path, text)
            .unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
        return;
    }
    let copy: serde_json::Value = std::fs::read_to_string(&path)
        .map_err(|err| err.to_string())
        .and_then(|text| serde_json::from_str(&text).map_err(|err| err.to_string()))
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    assert!(
        copy == served,
        "{} is not the document voting-api serves: run \
         `UPDATE_FIXTURES=1 cargo test -p voting-api --test web_openapi_copy`, then \
         `npm run gen:api` in web/, and commit both files",
        path.display()
    );
}
