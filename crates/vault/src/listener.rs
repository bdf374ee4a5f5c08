//! The listener: accepts connections up to `max_connections`, serves HTTP/1.1 (over TLS when
//! configured, see [`crate::tls`]) on each under a
//! header-read timeout (a client sending its header a byte at a time is closed when it runs out),
//! and on shutdown stops accepting and lets the requests in flight finish. Plain HTTP is served
//! only on a loopback address unless `allow_plain_http` is set.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_service::Service;

use crate::client::ClientCert;
use crate::config::Settings;

/// The listener's limits, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// The longest a client may take to send a request's header (each request on a connection).
    pub header_read_timeout: Duration,
    /// How long the requests in flight get to finish at shutdown.
    pub shutdown_grace: Duration,
}

impl Limits {
    /// The limits the settings name.
    pub fn from_settings(s: &Settings) -> Self {
        Self {
            max_connections: s.max_connections.max(1),
            header_read_timeout: Duration::from_millis(s.header_read_timeout_ms.max(1)),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Refuses to serve plain HTTP on an address other than loopback unless allowed: API keys and
/// revealed values would cross the network in the clear.
pub fn check_plain_http(
    addr: SocketAddr,
    tls: bool,
    allow_plain_http: bool,
) -> std::io::Result<()> {
    if tls || addr.ip().is_loopback() || allow_plain_http {
        return Ok(());
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!(
            "refusing to serve plain HTTP on {addr}: API keys and revealed values would cross the \
             network in the clear. Set tls_cert_file and tls_key_file, listen on a loopback \
             address (127.0.0.1, ::1) behind a TLS proxy, or set allow_plain_http = true (FIELDSEAL_ALLOW_PLAIN_HTTP=true) if the \
             network is protected otherwise"
        ),
    ))
}

/// Serves `app` on `listener` (over TLS with `tls`) until `shutdown` resolves, then waits for the
/// connections' requests in flight (at most [`Limits::shutdown_grace`]). A TLS handshake must end
/// within the header-read timeout too.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(client = %peer.ip(), max = limits.max_connections, "connection closed: max_connections reached");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let service = move |cert: Option<ClientCert>| {
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                if let Some(c) = cert {
                    req.extensions_mut().insert(c);
                }
                let mut app = app.clone();
                async move { Ok::<_, Infallible>(app.call(req).await.unwrap_or_else(|e| match e {})) }
            })
        };
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let result = match acceptor {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(tcp), service(None)))
                        .await
                }
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp));
                    match handshake.await {
                        Ok(Ok(stream)) => {
                            let cert = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|chain| chain.first())
                                .map(|c| ClientCert(fieldseal_core::at_rest::sha256(c)));
                            watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service(cert)))
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(client = %peer.ip(), error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(client = %peer.ip(), "TLS handshake timed out");
                            return;
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(client = %peer.ip(), error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("connections still open after the shutdown grace period: closed");
        }
    }
    Ok(())
}
