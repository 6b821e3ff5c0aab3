//! Where a webhook came from, and whether that source may send one.
//!
//! The source is the TCP peer, unless the peer is a trusted proxy: then it is the nearest
//! address in `X-Forwarded-For` (read right to left) that is not a trusted proxy. A header
//! from anyone else is ignored, so it cannot be used to pose as Plaid. The source also keys
//! the key-fetch budget (see `keys`): one sender's forged kids cannot spend another's.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

#[derive(Debug, Clone, Default)]
pub struct SourcePolicy {
    /// Empty: every source is allowed.
    allowed: Vec<IpNet>,
    trusted_proxies: Vec<IpNet>,
}

impl SourcePolicy {
    pub fn new(allowed: Vec<IpNet>, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            allowed,
            trusted_proxies,
        }
    }

    /// The webhook's source; `None` when a trusted proxy forwarded something that is not an
    /// address (such a request has no source that could be allowed).
    pub fn source(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?.ip());
        if !self.is_trusted_proxy(peer) {
            return Some(peer);
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in forwarded.iter().rev() {
            let address = canonical(hop.parse::<IpAddr>().ok()?);
            if !self.is_trusted_proxy(address) {
                return Some(address);
            }
        }
        // Only proxies on the way (or no header): the nearest of them sent it.
        Some(
            forwarded
                .first()
                .and_then(|hop| hop.parse().ok())
                .map_or(peer, canonical),
        )
    }

    /// Whether a webhook from `source` may be handled at all.
    pub fn allows(&self, source: Option<IpAddr>) -> bool {
        if self.allowed.is_empty() {
            return true;
        }
        source.is_some_and(|source| self.allowed.iter().any(|net| net.contains(&source)))
    }

    fn is_trusted_proxy(&self, address: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }
}

/// An IPv4 peer of a dual-stack listener arrives as `::ffff:a.b.c.d`; it is `a.b.c.d`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn peer(address: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(address.parse().unwrap(), 40_000))
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_source_whatever_the_header_says() {
        let policy = SourcePolicy::new(nets(&["52.21.26.131/32"]), vec![]);
        let source = policy.source(peer("203.0.113.9"), &forwarded(&["52.21.26.131"]));
        assert_eq!(source, Some("203.0.113.9".parse().unwrap()));
        assert!(!policy.allows(source));
    }

    #[test]
    fn behind_trusted_proxies_the_nearest_untrusted_hop_is_the_source() {
        let policy = SourcePolicy::new(vec![], nets(&["10.0.0.0/8"]));
        // A client-supplied first entry cannot pose as the source: the proxy appended the peer.
        let headers = forwarded(&["52.21.26.131, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(
            policy.source(peer("10.0.0.2"), &headers),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            policy.source(peer("10.0.0.2"), &forwarded(&["10.0.0.5"])),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(policy.source(peer("10.0.0.2"), &forwarded(&["junk"])), None);
        assert_eq!(
            policy.source(peer("::ffff:10.0.0.2"), &HeaderMap::new()),
            Some("10.0.0.2".parse().unwrap())
        );
    }

    #[test]
    fn an_empty_allow_list_allows_everything_and_a_missing_source_nothing_else() {
        assert!(SourcePolicy::default().allows(None));
        let policy = SourcePolicy::new(nets(&["52.0.0.0/8"]), vec![]);
        assert!(policy.allows(Some("52.88.82.239".parse().unwrap())));
        assert!(!policy.allows(None));
    }
}
