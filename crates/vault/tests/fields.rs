//! Hosted fields: the vault serves the card field frames (`/fields/v1/`) only to the merchant
//! origins its settings list, with a strict CSP whose only `frame-ancestors` is the origin that
//! asked, SRI hashes of the files it read at start, and nothing from anywhere else; a wrong
//! `[fields]` setting stops the start.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use base64ct::{Base64, Encoding};
use common::{Server, TempDir, init, settings};
use fieldseal_vault::fields::{Fields, FieldsError, FieldsSettings};
use serde_json::Value;

const SHOP: &str = "http://127.0.0.1:9443";
const JS: &[u8] = b"console.log('frame');\n";
/// `printf "console.log('frame');\n" | gzip -9n`
const JS_GZ: &[u8] = &[
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x4b, 0xce, 0xcf, 0x2b, 0xce, 0xcf,
    0x49, 0xd5, 0xcb, 0xc9, 0x4f, 0xd7, 0x50, 0x4f, 0x2b, 0x4a, 0xcc, 0x4d, 0x55, 0xd7, 0xb4, 0xe6,
    0x02, 0x00, 0x6d, 0x30, 0xeb, 0x5d, 0x16, 0x00, 0x00, 0x00,
];

/// A built package's dist/ as the vault reads it: the frame's JS and CSS, the wasm.
fn dist(dir: &Path) -> std::path::PathBuf {
    let d = dir.join("dist");
    std::fs::create_dir_all(d.join("frame")).unwrap();
    std::fs::create_dir_all(d.join("wasm")).unwrap();
    std::fs::write(d.join("frame/frame.js"), JS).unwrap();
    std::fs::write(d.join("frame/frame.js.gz"), JS_GZ).unwrap();
    // A .gz of another file: never served.
    std::fs::write(d.join("frame/frame.css.gz"), JS_GZ).unwrap();
    std::fs::write(d.join("frame/frame.css"), b"input { color: black }\n").unwrap();
    std::fs::write(d.join("wasm/fieldseal_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    d
}

fn sri(bytes: &[u8]) -> String {
    format!(
        "sha256-{}",
        Base64::encode_string(&fieldseal_core::at_rest::sha256(bytes))
    )
}

async fn server(dir: &Path, origins: &[&str]) -> Server {
    init(dir).await;
    let mut s = settings(dir);
    let fonts = dir.join("fonts");
    std::fs::create_dir_all(&fonts).unwrap();
    std::fs::write(fonts.join("Brand-Sans.woff2"), b"wOF2font").unwrap();
    s.fields = FieldsSettings {
        dir: Some(dist(dir)),
        origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        fonts_dir: Some(fonts),
    };
    Server::start_with(s).await
}

async fn get(s: &Server, path: &str) -> reqwest::Response {
    s.client.get(s.url(path)).send().await.unwrap()
}

fn frame_url(field: &str, origin: &str) -> String {
    format!(
        "/fields/v1/frame.html?field={field}&origin={}",
        origin
            .replace(':', "%3A")
            .replace('/', "%2F")
            .replace(' ', "%20")
            .replace(';', "%3B")
    )
}

#[tokio::test]
async fn off_unless_configured() {
    let dir = TempDir::new("fields-off");
    init(&dir.0).await;
    let s = Server::start(&dir.0).await;
    for path in [&frame_url("pan", SHOP), "/fields/v1/frame.js"] {
        let r = get(&s, path).await;
        assert_eq!(r.status(), 404, "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_frame_page_for_a_listed_origin_only() {
    let dir = TempDir::new("fields-page");
    let s = server(&dir.0, &[SHOP, "https://shop.example"]).await;
    for field in ["pan", "exp", "cvc", "name"] {
        let r = get(&s, &frame_url(field, SHOP)).await;
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        // Framed by the one origin that asked (not the whole list), everything else the vault's own.
        assert!(csp.ends_with(&format!("frame-ancestors {SHOP}")), "{csp}");
        assert!(!csp.contains("shop.example"), "{csp}");
        for d in [
            "default-src 'none'",
            "script-src 'self' 'wasm-unsafe-eval'",
            "style-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(csp.contains(d), "{d} in {csp}");
        }
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert!(r.headers().get("x-frame-options").is_none());
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&format!("integrity=\"{}\"", sri(JS))),
            "{html}"
        );
        assert!(html.contains(&format!("data-integrity=\"{}\"", sri(b"\0asm\x01\0\0\0"))));
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "no inline code"
        );
        assert!(
            !html.contains("http"),
            "nothing from another origin: {html}"
        );
    }
    // The origin as browsers write it, byte for byte: another spelling of a listed origin is
    // refused, not folded (no browser sends it, and it would be written into frame-ancestors).
    for spelled in [
        "HTTPS://Shop.Example",
        "https://Shop.example",
        "https://shop.example:443",
        "http://127.0.0.1:09443",
        "HTTP://127.0.0.1:9443",
    ] {
        let r = get(&s, &frame_url("pan", spelled)).await;
        assert_eq!(r.status(), 403, "{spelled}");
        assert_eq!(
            r.headers()["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'",
            "{spelled}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn fail_refused_to_other_origins_and_bad_queries() {
    let dir = TempDir::new("fields-refused");
    let s = server(&dir.0, &[SHOP]).await;
    for (path, status) in [
        (frame_url("pan", "http://127.0.0.1:9444"), 403),
        (frame_url("pan", "https://evil.example"), 403),
        (frame_url("pan", &format!("{SHOP}/")), 403),
        (frame_url("pan", &format!("{SHOP}; script-src *")), 403),
        (
            frame_url("pan", &format!("{SHOP} https://evil.example")),
            403,
        ),
        (frame_url("pan", "*"), 403),
        ("/fields/v1/frame.html?field=pan".to_owned(), 403),
        (frame_url("ssn", SHOP), 400),
        ("/fields/v1/frame.html".to_owned(), 400),
    ] {
        let r = get(&s, &path).await;
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(
            r.headers()["content-security-policy"],
            "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        let body = r.text().await.unwrap();
        assert!(!body.contains("<script"), "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn the_files_with_long_caching_and_revalidation() {
    let dir = TempDir::new("fields-files");
    let s = server(&dir.0, &[SHOP]).await;
    let r = get(&s, "/fields/v1/frame.js?v=abc").await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers()["cross-origin-resource-policy"], "same-origin");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.bytes().await.unwrap().as_ref(), JS);
    let again = s
        .client
        .get(s.url("/fields/v1/frame.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    // Gzip to a browser that accepts it (reqwest here sends no Accept-Encoding: the plain file
    // above), from the .gz the build wrote; the SRI hash is the plain file's.
    let gz = s
        .client
        .get(s.url("/fields/v1/frame.js"))
        .header("accept-encoding", "gzip, deflate, br, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "accept-encoding");
    assert_ne!(gz.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(gz.bytes().await.unwrap().as_ref(), JS_GZ);
    let css = s
        .client
        .get(s.url("/fields/v1/frame.css"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert!(
        css.headers().get("content-encoding").is_none(),
        "a stale .gz is not served"
    );
    assert_eq!(
        css.bytes().await.unwrap().as_ref(),
        b"input { color: black }\n"
    );
    let wasm = get(&s, "/fields/v1/fieldseal_bg.wasm").await;
    assert_eq!(wasm.headers()["content-type"], "application/wasm");
    let css = get(&s, "/fields/v1/frame.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    let font = get(&s, "/fields/v1/fonts/Brand-Sans.woff2").await;
    assert_eq!(font.status(), 200);
    assert_eq!(font.headers()["content-type"], "font/woff2");
    // Only the files read at start: nothing else of the directory, nothing outside it.
    for path in [
        "/fields/v1/index.js",
        "/fields/v1/frame%2Fframe.js",
        "/fields/v1/..%2F..%2Fmaster.key",
        "/fields/v1/fonts/..%2Fdist%2Fframe%2Fframe.js",
        "/fields/v1/fonts/missing.woff2",
    ] {
        let r = get(&s, path).await;
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found");
    }
    s.stop().await;
}

#[test]
fn fail_a_wrong_setting_stops_the_start() {
    let dir = TempDir::new("fields-settings");
    let d = dist(&dir.0);
    let with = |origins: &[&str], dir: Option<&Path>| FieldsSettings {
        dir: dir.map(Path::to_path_buf),
        origins: origins.iter().map(|o| (*o).to_owned()).collect(),
        fonts_dir: None,
    };
    assert!(!Fields::load(&with(&[], None)).unwrap().enabled());
    assert!(Fields::load(&with(&[SHOP], Some(&d))).unwrap().enabled());
    assert!(matches!(
        Fields::load(&with(&[], Some(&d))),
        Err(FieldsError::Incomplete)
    ));
    assert!(matches!(
        Fields::load(&with(&[SHOP], None)),
        Err(FieldsError::Incomplete)
    ));
    for bad in [
        "http://shop.example",
        "https://shop.example/checkout",
        "*",
        "https://Shop.example",
        "https://shop.example:443",
        "http://127.0.0.1:09443",
    ] {
        assert!(
            matches!(Fields::load(&with(&[bad], Some(&d))), Err(FieldsError::Origin(o)) if o == bad),
            "{bad}"
        );
    }
    std::fs::remove_file(d.join("wasm/fieldseal_bg.wasm")).unwrap();
    let err = Fields::load(&with(&[SHOP], Some(&d))).err().unwrap();
    assert!(matches!(err, FieldsError::Read { .. }));
    assert!(err.to_string().contains("npm run build"), "{err}");
}

#[tokio::test]
async fn fail_the_server_does_not_start_with_a_wrong_setting() {
    let dir = TempDir::new("fields-start");
    init(&dir.0).await;
    let mut s = settings(&dir.0);
    s.fields = FieldsSettings {
        dir: Some(dir.0.join("no-such-dist")),
        origins: vec![SHOP.to_owned()],
        fonts_dir: None,
    };
    let vault = std::sync::Arc::new(fieldseal_vault::vault::Vault::open(s).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let r = fieldseal_vault::http::serve(listener, vault, async {}).await;
    assert!(r.is_err());
}
