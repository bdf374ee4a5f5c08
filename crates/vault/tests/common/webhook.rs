//! A webhook receiver for the vault's alerts: a plain HTTP/1.1 server on 127.0.0.1 that keeps
//! each post and answers with the statuses a test gives, and the signature a receiver computes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fieldseal_core::at_rest::hmac_sha256;
use fieldseal_core::encoding::hex;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// One post the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A webhook receiver: answers the n-th post with `statuses[n]` (200 past the list).
pub struct Receiver {
    pub url: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: JoinHandle<()>,
}

impl Receiver {
    pub async fn start(statuses: &[u16]) -> Self {
        Self::on(TcpListener::bind("127.0.0.1:0").await.unwrap(), statuses)
    }

    pub fn on(listener: TcpListener, statuses: &[u16]) -> Self {
        let url = format!("http://{}/hooks/fieldseal", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let statuses = statuses.to_vec();
        let n = Arc::new(AtomicUsize::new(0));
        let task = {
            let got = Arc::clone(&got);
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (got, n, statuses) = (Arc::clone(&got), Arc::clone(&n), statuses.clone());
                    tokio::spawn(async move {
                        if let Some(r) =
                            read_request(stream, |i| statuses.get(i).copied().unwrap_or(200), &n)
                                .await
                        {
                            got.lock().unwrap().push(r);
                        }
                    });
                }
            })
        };
        Self { url, got, task }
    }

    pub fn all(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// The posts of `kind` so far.
    pub fn of(&self, kind: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.json()["kind"] == kind)
            .collect()
    }

    /// Waits (at most `secs`) for `n` posts of `kind`.
    pub async fn wait(&self, kind: &str, n: usize, secs: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.of(kind);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{n} {kind} alerts expected within {secs} s; got {:?}",
                self.all().iter().map(Received::json).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request and answers it with `status(index of the post)`.
async fn read_request(
    mut stream: TcpStream,
    status: impl Fn(usize) -> u16,
    n: &AtomicUsize,
) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..read]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8(buf[..end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_owned();
    assert!(
        request_line.starts_with("POST /hooks/fieldseal HTTP/1.1"),
        "{request_line}"
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())?;
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    let code = status(n.fetch_add(1, Ordering::SeqCst));
    let answer = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(answer.as_bytes()).await.ok()?;
    Some(Received {
        headers,
        body,
        at: Instant::now(),
    })
}

/// `v1=` and the hex HMAC-SHA256 of `TIMESTAMP.BODY` under `secret`: what a receiver computes.
pub fn expected_signature(secret: &str, r: &Received) -> String {
    let mut message = r.header("X-Fieldseal-Timestamp").as_bytes().to_vec();
    message.push(b'.');
    message.extend_from_slice(&r.body);
    format!("v1={}", hex(&hmac_sha256(secret.as_bytes(), &message)))
}
