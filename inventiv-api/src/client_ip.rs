//! The client's address: the TCP peer, or, when the peer is one of the
//! configured trusted proxies (`INVENTIV_TRUSTED_PROXIES`), the address that
//! proxy put in `X-Forwarded-For`. Throttles and sessions key on it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::error::ApiError;
use crate::state::AppState;

/// The address of the client that sent the request.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// The client behind `peer`: the right-most `X-Forwarded-For` entry that is
/// not a trusted proxy, walking back only while each hop is trusted. Headers
/// from untrusted peers are ignored (anyone can write them).
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no peer address")))?;
        Ok(ClientIp(resolve(
            peer,
            &parts.headers,
            &state.config.trusted_proxies,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.7, 10.0.0.2"),
        );
        let proxies = [ip("10.0.0.1"), ip("10.0.0.2")];
        // An untrusted peer: its header is ignored.
        assert_eq!(
            resolve(ip("198.51.100.1"), &headers, &proxies),
            ip("198.51.100.1")
        );
        // Behind the trusted proxies: the first untrusted hop from the right,
        // not what the client wrote first.
        assert_eq!(
            resolve(ip("10.0.0.1"), &headers, &proxies),
            ip("203.0.113.7")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &proxies),
            ip("10.0.0.1")
        );
    }
}
