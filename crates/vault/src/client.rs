//! Where a request came from: the TCP peer, or, when the peer is a configured trusted proxy, the
//! address that proxy says it forwarded for (`X-Forwarded-For`). A forwarded address from any
//! other peer is ignored: a client could otherwise name any address it likes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::http::HeaderMap;

/// A request's client address, as the access log and the audit log record it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The TCP peer (none when the server was not given it, as in router tests).
    pub peer: Option<SocketAddr>,
    /// The address a trusted proxy forwarded for.
    pub forwarded: Option<IpAddr>,
    /// The SHA-256 of the client certificate the connection presented (mutual TLS).
    pub cert_sha256: Option<[u8; 32]>,
}

/// The SHA-256 of the client certificate of a mutual-TLS connection (a request extension the
/// listener sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCert(pub [u8; 32]);

impl ClientAddr {
    /// Reads the forwarded address only if `peer` is one of `trusted_proxies`: the rightmost
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (entries further left were
    /// written by whoever sent the request, and prove nothing).
    pub fn from_request(
        peer: Option<SocketAddr>,
        headers: &HeaderMap,
        trusted_proxies: &[IpAddr],
    ) -> Self {
        let trusted = |ip: &IpAddr| trusted_proxies.contains(&canonical(*ip));
        let forwarded = peer
            .filter(|p| trusted(&p.ip()))
            .and_then(|_| {
                let mut hops: Vec<IpAddr> = Vec::new();
                for value in headers.get_all("x-forwarded-for") {
                    let text = value.to_str().ok()?;
                    for hop in text.split(',') {
                        hops.push(hop.trim().parse().ok()?);
                    }
                }
                hops.into_iter().rev().find(|ip| !trusted(ip))
            })
            .map(canonical);
        Self {
            peer,
            forwarded,
            cert_sha256: None,
        }
    }

    /// The address that counts: the forwarded one if any, else the peer's.
    pub fn ip(&self) -> IpAddr {
        self.forwarded
            .or_else(|| self.peer.map(|p| canonical(p.ip())))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.forwarded, self.peer) {
            (Some(fwd), Some(peer)) => write!(f, "{fwd} via {}", peer.ip()),
            (_, Some(peer)) => write!(f, "{}", canonical(peer.ip())),
            _ => f.write_str("unknown"),
        }
    }
}

/// An IPv4 address mapped into IPv6 (a dual-stack listener's view) as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_address_only_from_a_trusted_proxy() {
        let proxy: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let stranger: SocketAddr = "198.51.100.7:4000".parse().unwrap();
        let trusted = ["10.0.0.5".parse().unwrap(), "10.0.0.6".parse().unwrap()];
        let h = headers(&["203.0.113.9, 192.0.2.1", "10.0.0.6"]);
        let via = ClientAddr::from_request(Some(proxy), &h, &trusted);
        assert_eq!(via.ip(), "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(via.to_string(), "192.0.2.1 via 10.0.0.5");
        let direct = ClientAddr::from_request(Some(stranger), &h, &trusted);
        assert_eq!(direct.ip(), stranger.ip());
        assert_eq!(direct.forwarded, None);
        // A header that does not parse names nobody.
        let bad = ClientAddr::from_request(Some(proxy), &headers(&["nonsense"]), &trusted);
        assert_eq!(bad.ip(), proxy.ip());
        let mapped: SocketAddr = "[::ffff:10.0.0.5]:1".parse().unwrap();
        let via = ClientAddr::from_request(Some(mapped), &headers(&["192.0.2.3"]), &trusted);
        assert_eq!(via.ip(), "192.0.2.3".parse::<IpAddr>().unwrap());
    }
}
