//! The built-in pages and static files: title markers, cache headers, name checks.

use kernelci_tests::TestApp;

#[tokio::test]
async fn pages_carry_titles_and_no_cache_headers() {
    let app = TestApp::start().await;
    for (path, marker) in [
        ("/viewer", "Maestro API Viewer"),
        ("/dashboard", "KernelCI Dashboard"),
        ("/manage", "Maestro API Manage"),
        ("/analytics", "KernelCI Pipeline Analytics"),
        ("/stats", "KernelCI API Statistics"),
    ] {
        let resp = app.client.get(app.url(path)).send().await.expect("get");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let h = resp.headers().clone();
        assert_eq!(
            h["cache-control"], "no-cache, no-store, must-revalidate",
            "{path}"
        );
        assert_eq!(h["pragma"], "no-cache");
        assert_eq!(h["expires"], "0");
        assert!(
            h["content-type"]
                .to_str()
                .expect("ascii")
                .starts_with("text/html")
        );
        let body = resp.text().await.expect("body");
        assert!(body.contains(&format!("<title>{marker}</title>")), "{path}");
    }
    let root = app.client.get(app.url("/")).send().await.expect("get");
    assert!(
        root.headers().get("cache-control").is_none(),
        "/ has no no-cache headers"
    );
    assert!(
        root.text()
            .await
            .expect("body")
            .contains("KernelCI API Server")
    );
    let form = app
        .client
        .get(app.url("/user/accept-invite"))
        .send()
        .await
        .expect("get");
    assert_eq!(form.status().as_u16(), 200);
    assert!(form.text().await.expect("body").contains("accept-invite"));
}

#[tokio::test]
async fn static_files_and_icons_check_names() {
    let app = TestApp::start().await;
    let cases = [
        ("/icons/ok.png", 200, "image/png"),
        ("/icons/missing.png", 404, "application/json"),
        ("/icons/a%20b.png", 400, "application/json"),
        ("/icons/ok.gif", 400, "application/json"),
        ("/static/css/kci.css", 200, "text/css; charset=utf-8"),
        ("/static/js/kci.js", 200, "text/javascript; charset=utf-8"),
        ("/static/js/other.js", 404, "application/json"),
        ("/static/js/..%2Fsecret.js", 400, "application/json"),
    ];
    for (path, status, ctype) in cases {
        let resp = app.client.get(app.url(path)).send().await.expect("get");
        assert_eq!(resp.status().as_u16(), status, "{path}");
        assert_eq!(resp.headers()["content-type"], ctype, "{path}");
    }
    let png = app
        .client
        .get(app.url("/icons/bad.png"))
        .send()
        .await
        .expect("get")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let (status, body) = app.get("/icons/nope.png", None).await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (404, Some("File not found"))
    );
}
