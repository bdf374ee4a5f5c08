//! Hosted fields: the card-input frames the vault serves from its own origin under `/fields/v1/`,
//! so that a merchant's page embeds them and never holds a card number (see docs/hosted-fields.md).
//!
//! The vault does not build them: `[fields] dir` names the built npm package's `dist/` directory
//! (`npm run build`), whose `frame/frame.js`, `frame/frame.css` and `wasm/fieldseal_bg.wasm` are
//! read once at start. The frame page itself is written here, with the Subresource Integrity
//! hash (SHA-256) of each of those files, and is served only to the merchant origins listed in
//! `[fields] origins`: its `Content-Security-Policy` names the one origin that asked as the only
//! `frame-ancestors`. Nothing third-party is loaded: every source is the vault's own origin.
//!
//! These routes are not part of the JSON API and not in its OpenAPI document: they answer HTML,
//! JavaScript, WebAssembly and fonts to browsers, and their contract is the frame's message
//! protocol, written down in docs/hosted-fields.md.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64ct::{Base64, Encoding};
use serde::Deserialize;
use serde_json::json;

use crate::config::ConfigError;

/// Where the frames' files are and who may embed them (`[fields]` in the settings file).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FieldsSettings {
    /// The built npm package's `dist/` directory (`FIELDSEAL_FIELDS_DIR`). Unset: hosted fields
    /// are off and `/fields/v1/` answers 404.
    pub dir: Option<PathBuf>,
    /// The merchant origins allowed to frame the fields, such as `https://shop.example`
    /// (`FIELDSEAL_FIELDS_ORIGINS`, comma-separated). `https`, or `http` on a loopback host only.
    pub origins: Vec<String>,
    /// A directory of self-hosted `.woff2` fonts the frames may use, served at
    /// `/fields/v1/fonts/{file}` (`FIELDSEAL_FIELDS_FONTS_DIR`).
    pub fonts_dir: Option<PathBuf>,
}

impl FieldsSettings {
    /// Applies the `FIELDSEAL_FIELDS_*` environment variables.
    pub(crate) fn apply_env(&mut self) -> Result<(), ConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("FIELDSEAL_FIELDS_DIR") {
            self.dir = Some(v.into());
        }
        if let Some(v) = var("FIELDSEAL_FIELDS_ORIGINS") {
            self.origins = v
                .split(',')
                .map(str::trim)
                .filter(|o| !o.is_empty())
                .map(str::to_owned)
                .collect();
        }
        if let Some(v) = var("FIELDSEAL_FIELDS_FONTS_DIR") {
            self.fonts_dir = Some(v.into());
        }
        Ok(())
    }
}

/// Why the hosted fields cannot be served as configured: the vault refuses to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FieldsError {
    /// A file the frames need is missing or unreadable.
    #[error("hosted fields: cannot read {}: {source} (build the package with `npm run build`)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An entry of `origins` is not an origin the frames can be given to.
    #[error(
        "hosted fields: {0:?} is not an allowed merchant origin (scheme://host[:port] as browsers write it: https, or http on localhost, 127.x or [::1]; lower case; no default port, no leading zero in the port; no path)"
    )]
    Origin(String),
    /// The directory is set but no origin may embed the frames, or origins without a directory.
    #[error(
        "hosted fields: `dir` and `origins` go together (the built package's dist/ directory and at least one merchant origin)"
    )]
    Incomplete,
    /// A font file name the frames could not ask for.
    #[error(
        "hosted fields: font file {0:?} is not a name of letters, digits, `-`, `_` and `.` ending in .woff2"
    )]
    Font(String),
}

impl From<FieldsError> for std::io::Error {
    fn from(e: FieldsError) -> Self {
        std::io::Error::other(e)
    }
}

/// A file the frames load, with its SRI hash, and its gzip form when the build wrote one.
struct Asset {
    bytes: Arc<[u8]>,
    gzip: Option<Arc<[u8]>>,
    content_type: &'static str,
    integrity: String,
}

fn read(path: &Path) -> Result<Vec<u8>, FieldsError> {
    std::fs::read(path).map_err(|source| FieldsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// CRC-32 (ISO-HDLC, the one gzip's trailer holds).
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// Whether `gz` is a gzip member whose trailer (CRC-32 and length) is that of `plain`: a `.gz`
/// left over from another build is not served (the browser's SRI check would refuse it).
fn gzip_of(gz: &[u8], plain: &[u8]) -> bool {
    let n = gz.len();
    n >= 18
        && gz.starts_with(&[0x1f, 0x8b])
        && gz[n - 8..n - 4] == crc32(plain).to_le_bytes()
        && gz[n - 4..] == (plain.len() as u32).to_le_bytes()
}

impl Asset {
    fn read(
        path: &Path,
        gzip: Option<&Path>,
        content_type: &'static str,
    ) -> Result<Self, FieldsError> {
        let bytes = read(path)?;
        let integrity = format!(
            "sha256-{}",
            Base64::encode_string(&fieldseal_core::at_rest::sha256(&bytes))
        );
        let gzip = match gzip {
            Some(p) if p.exists() => {
                let gz = read(p)?;
                if gzip_of(&gz, &bytes) {
                    Some(gz.into())
                } else {
                    tracing::warn!(file = %p.display(), "hosted fields: the .gz is not of the file next to it; serving the file uncompressed");
                    None
                }
            }
            _ => None,
        };
        Ok(Self {
            bytes: bytes.into(),
            gzip,
            content_type,
            integrity,
        })
    }

    /// A short version for the URL, so that a cached copy is never taken for a newer file.
    fn version(&self) -> String {
        self.integrity
            .trim_start_matches("sha256-")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(12)
            .collect()
    }
}

/// The loaded frames: their files and the origins that may embed them.
struct Loaded {
    origins: Vec<String>,
    page: String,
    assets: BTreeMap<&'static str, Asset>,
    fonts: BTreeMap<String, Asset>,
}

/// The hosted fields as configured: loaded at start, or off.
#[derive(Clone)]
pub struct Fields(Option<Arc<Loaded>>);

/// The field kinds a frame can hold.
const FIELDS: &[&str] = &["pan", "exp", "cvc", "name"];

/// An allowed merchant origin, checked: `scheme://host[:port]` exactly as a browser serializes a
/// page's origin (`location.origin`, the `Origin` header, the loader's `?origin=`), so that the
/// vault compares it byte for byte and writes it into `frame-ancestors` as it came. Nothing is
/// folded or normalized: an upper-case scheme or host, a default port (`:443` for https, `:80`
/// for http), a port with a leading zero, or an IPv4 address not in dotted-decimal form are
/// refused, since no browser sends them.
pub fn parse_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !rest.ends_with(']') => (h, Some(p)),
        _ => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && !host.starts_with('.')
        && !host.ends_with('.')
        && (host == "[::1]"
            || (host
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
                && ipv4_ok(host)));
    let default_port = if scheme == "https" { "443" } else { "80" };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.bytes().all(|c| c.is_ascii_digit())
            && !p.starts_with('0')
            && p.parse::<u16>().is_ok()
            && p != default_port
    });
    let loopback = host == "localhost"
        || host == "[::1]"
        || (host.starts_with("127.") && host.split('.').count() == 4 && ipv4_ok(host));
    let scheme_ok = scheme == "https" || (scheme == "http" && loopback);
    (host_ok && port_ok && scheme_ok).then(|| origin.to_owned())
}

/// A host whose last label is numeric is an IPv4 address to a browser, which writes it as four
/// decimal numbers without leading zeros: only that form is accepted. Other hosts pass.
fn ipv4_ok(host: &str) -> bool {
    let last = host.rsplit('.').next().unwrap_or_default();
    if !last.bytes().all(|c| c.is_ascii_digit()) && !last.starts_with("0x") {
        return true;
    }
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|p| {
            (1..=3).contains(&p.len())
                && p.bytes().all(|c| c.is_ascii_digit())
                && (p.len() == 1 || !p.starts_with('0'))
                && p.parse::<u8>().is_ok()
        })
}

impl Fields {
    /// Hosted fields off: every `/fields/v1/` path answers 404.
    pub fn off() -> Self {
        Self(None)
    }

    /// Reads the frames' files and checks the settings; `Ok(off)` when `dir` is unset.
    pub fn load(settings: &FieldsSettings) -> Result<Self, FieldsError> {
        let Some(dir) = &settings.dir else {
            if settings.origins.is_empty() {
                return Ok(Self::off());
            }
            return Err(FieldsError::Incomplete);
        };
        if settings.origins.is_empty() {
            return Err(FieldsError::Incomplete);
        }
        let origins = settings
            .origins
            .iter()
            .map(|o| parse_origin(o).ok_or_else(|| FieldsError::Origin(o.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut assets = BTreeMap::new();
        // With each, the gzip form `npm run build` writes into frame/, served to browsers that
        // accept it.
        for (name, rel, content_type) in [
            (
                "frame.js",
                "frame/frame.js",
                "text/javascript; charset=utf-8",
            ),
            ("frame.css", "frame/frame.css", "text/css; charset=utf-8"),
            (
                "fieldseal_bg.wasm",
                "wasm/fieldseal_bg.wasm",
                "application/wasm",
            ),
        ] {
            let gz = dir.join("frame").join(format!("{name}.gz"));
            assets.insert(name, Asset::read(&dir.join(rel), Some(&gz), content_type)?);
        }
        let mut fonts = BTreeMap::new();
        if let Some(fonts_dir) = &settings.fonts_dir {
            let entries = std::fs::read_dir(fonts_dir).map_err(|source| FieldsError::Read {
                path: fonts_dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| FieldsError::Read {
                    path: fonts_dir.clone(),
                    source,
                })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".woff2") {
                    continue;
                }
                if !font_name_ok(&name) {
                    return Err(FieldsError::Font(name));
                }
                fonts.insert(name, Asset::read(&entry.path(), None, "font/woff2")?);
            }
        }
        let page = frame_page(&assets);
        Ok(Self(Some(Arc::new(Loaded {
            origins,
            page,
            assets,
            fonts,
        }))))
    }

    /// Whether hosted fields are on.
    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// The routes under `/fields/v1/`, with the access log and request ids of the API's.
    pub(crate) fn router(self, observed: crate::http::Observe) -> Router {
        Router::new()
            .route("/fields/v1/frame.html", get(frame))
            .route("/fields/v1/fonts/{file}", get(font))
            .route("/fields/v1/{file}", get(asset))
            .layer(middleware::from_fn_with_state(
                observed,
                crate::http::observe,
            ))
            .with_state(self)
    }
}

fn font_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name.ends_with(".woff2")
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// The frame page: no inline script or style; the field is built by frame.js.
fn frame_page(assets: &BTreeMap<&'static str, Asset>) -> String {
    let tag = |name: &str| {
        assets
            .get(name)
            .map(|a| (a.version(), a.integrity.clone()))
            .unwrap_or_default()
    };
    let (js_v, js_i) = tag("frame.js");
    let (css_v, css_i) = tag("frame.css");
    let (wasm_v, wasm_i) = tag("fieldseal_bg.wasm");
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"fieldseal-wasm\" content=\"fieldseal_bg.wasm?v={wasm_v}\" data-integrity=\"{wasm_i}\">\n\
         <title>Secure card field</title>\n\
         <link rel=\"stylesheet\" href=\"frame.css?v={css_v}\" integrity=\"{css_i}\">\n\
         <script type=\"module\" src=\"frame.js?v={js_v}\" integrity=\"{js_i}\"></script>\n\
         </head>\n<body></body>\n</html>\n"
    )
}

/// The frame's strict policy: its own origin only, framed by the one merchant origin that asked.
fn frame_csp(ancestor: &str) -> String {
    format!(
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
         connect-src 'self'; font-src 'self'; img-src 'none'; object-src 'none'; base-uri 'none'; \
         form-action 'none'; require-trusted-types-for 'script'; trusted-types 'none'; \
         frame-ancestors {ancestor}"
    )
}

#[derive(Deserialize)]
struct FrameQuery {
    field: Option<String>,
    origin: Option<String>,
}

/// A refusal the browser shows in the frame's place: plain text, never frameable.
fn refuse(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        message,
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": { "code": "not_found", "message": "no such endpoint" } })),
    )
        .into_response()
}

async fn frame(
    State(fields): State<Fields>,
    query: Result<Query<FrameQuery>, QueryRejection>,
) -> Response {
    let Some(loaded) = &fields.0 else {
        return not_found();
    };
    let Ok(Query(q)) = query else {
        return refuse(StatusCode::BAD_REQUEST, "bad query");
    };
    if !q.field.as_deref().is_some_and(|f| FIELDS.contains(&f)) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "field must be one of pan, exp, cvc, name",
        );
    }
    let Some(origin) = q
        .origin
        .as_deref()
        .and_then(parse_origin)
        .filter(|o| loaded.origins.contains(o))
    else {
        return refuse(
            StatusCode::FORBIDDEN,
            "this origin may not embed the vault's card fields",
        );
    };
    let Ok(csp) = HeaderValue::from_str(&frame_csp(&origin)) else {
        return refuse(StatusCode::FORBIDDEN, "bad origin");
    };
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        loaded.page.clone(),
    )
        .into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, csp);
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    );
    response
}

fn serve_asset(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", asset.integrity);
    let cache = [
        (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        // Only the vault's own pages (the frames) may load these files.
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    let gzip = asset.gzip.as_ref().filter(|_| {
        headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|e| e.trim().eq_ignore_ascii_case("gzip") || e.trim().starts_with("gzip;"))
            })
    });
    // One validator per representation.
    let etag = if gzip.is_some() {
        format!("\"{}-gz\"", asset.integrity)
    } else {
        etag
    };
    let vary = (header::VARY, "accept-encoding");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return (
            StatusCode::NOT_MODIFIED,
            cache,
            [vary, (header::ETAG, etag.as_str())],
        )
            .into_response();
    }
    let mut response = (
        cache,
        [
            vary,
            (header::CONTENT_TYPE, asset.content_type),
            (header::ETAG, etag.as_str()),
        ],
        gzip.map_or_else(|| asset.bytes.to_vec(), |gz| gz.to_vec()),
    )
        .into_response();
    if gzip.is_some() {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

async fn asset(
    State(fields): State<Fields>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    match fields.0.as_ref().and_then(|l| l.assets.get(file.as_str())) {
        Some(a) => serve_asset(a, &headers),
        None => not_found(),
    }
}

async fn font(
    State(fields): State<Fields>,
    UrlPath(file): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    match fields.0.as_ref().and_then(|l| l.fonts.get(&file)) {
        Some(a) => serve_asset(a, &headers),
        None => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::{crc32, gzip_of, parse_origin};

    #[test]
    fn crc32_and_gzip_trailers() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // `printf 'hello\n' | gzip -9n`
        let gz = [
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0xe7, 2, 0, 0x20,
            0x30, 0x3a, 0x36, 6, 0, 0, 0,
        ];
        assert!(gzip_of(&gz, b"hello\n"));
        assert!(!gzip_of(&gz, b"hellO\n"));
        assert!(!gzip_of(&gz[..10], b"hello\n"));
    }

    #[test]
    fn origins() {
        for ok in [
            "https://shop.example",
            "https://shop.example:8443",
            "https://xn--bcher-kva.example",
            "https://10.0.0.1",
            "https://shop.example:80",
            "http://127.0.0.1:8080",
            "http://127.0.0.1",
            "http://localhost:3000",
            "http://localhost:443",
            "http://[::1]:8080",
        ] {
            assert_eq!(parse_origin(ok).as_deref(), Some(ok), "{ok}");
        }
        for bad in [
            "http://shop.example",
            "https://shop.example/",
            "https://shop.example/pay",
            "https://*.example",
            "https://shop.example:0",
            "https://shop.example:99999",
            "https://shop.example:65536",
            "https://user@shop.example",
            "shop.example",
            "*",
            "'none'",
            "https://shop.example; script-src *",
            "https://shop.example https://evil.example",
            "http://127.0.0.1.evil.example",
            "javascript://x",
            "https://",
            "https://shop.example:",
            // Not as a browser writes an origin: case, default ports, leading zeros, IPv4 forms.
            "HTTPS://Shop.Example",
            "https://Shop.example",
            "Https://shop.example",
            "HTTP://localhost:3000",
            "http://LOCALHOST:3000",
            "https://shop.example:443",
            "http://localhost:80",
            "http://127.0.0.1:80",
            "http://[::1]:80",
            "https://shop.example:0443",
            "https://shop.example:08443",
            "http://127.0.0.1:08080",
            "http://127.000.0.1:8080",
            "http://127.0.0.01:8080",
            "http://127.1:8080",
            "https://10.0.0.256",
            "https://1.2.3",
            "https://shop.0x10",
            "https://shop.example.",
        ] {
            assert!(parse_origin(bad).is_none(), "{bad}");
        }
    }
}
