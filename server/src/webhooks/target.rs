//! Where a webhook may be sent: `http`/`https` URLs whose addresses are public. Loopback,
//! private, link-local, shared (CGNAT), multicast and unspecified addresses are refused unless
//! the operator allows them (`TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS=true`). An IP literal is checked
//! at registration; every host is checked again on the address it resolves to when a request
//! is sent (the HTTP client resolves through [`GuardedResolver`]), so a name that later points
//! inside the network is still refused.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub const MAX_URL_LEN: usize = 2048;

/// Whether an address is one a webhook may not reach by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg0 & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible ::a.b.c.d
                || (seg0 == 0x64 && v6.segments()[1] == 0xff9b) // NAT64 64:ff9b::/96
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space 100.64.0.0/10
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

/// Checks a URL given at registration; the message says what is wrong.
pub fn check_url(raw: &str, allow_private: bool) -> Result<Url, String> {
    let raw = raw.trim();
    if raw.len() > MAX_URL_LEN {
        return Err(format!("a URL is at most {MAX_URL_LEN} characters"));
    }
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("the URL must be http:// or https://".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL may not carry credentials; authenticate with the signature".into());
    }
    let Some(host) = url.host() else {
        return Err("the URL has no host".into());
    };
    if allow_private {
        return Ok(url);
    }
    let refused = || {
        Err("the URL points at a loopback, private or link-local address; webhooks go to public addresses (an operator can allow private ones with TWH_WEBHOOK_ALLOW_PRIVATE_TARGETS=true)".to_owned())
    };
    match host {
        url::Host::Ipv4(ip) if is_private(IpAddr::V4(ip)) => refused(),
        url::Host::Ipv6(ip) if is_private(IpAddr::V6(ip)) => refused(),
        url::Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local") {
                refused()
            } else {
                Ok(url)
            }
        }
        _ => Ok(url),
    }
}

/// Whether a URL's literal address (if it is one) may be sent to.
pub fn literal_allowed(url: &Url, allow_private: bool) -> bool {
    if allow_private {
        return true;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !is_private(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_private(IpAddr::V6(ip)),
        _ => true,
    }
}

/// Resolves names with the system resolver and drops private addresses; a name with only
/// private addresses fails to resolve, so no connection is ever made to one.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || !is_private(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(
                    Box::new(PrivateTarget(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A host that resolved only to refused addresses.
#[derive(Debug)]
pub struct PrivateTarget(pub String);

impl std::fmt::Display for PrivateTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to loopback, private or link-local addresses, which webhooks may not reach",
            self.0
        )
    }
}

impl std::error::Error for PrivateTarget {}

pub fn resolver(allow_private: bool) -> Arc<GuardedResolver> {
    Arc::new(GuardedResolver { allow_private })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "255.255.255.255",
            "224.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip} should be private");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip} should be public");
        }
    }

    #[test]
    fn registration_checks_scheme_credentials_and_literals() {
        assert!(check_url("https://hooks.example.com/twh", false).is_ok());
        assert!(check_url("ftp://example.com/", false).is_err());
        assert!(check_url("https://user:pw@example.com/", false).is_err());
        assert!(check_url("http://127.0.0.1:9000/x", false).is_err());
        assert!(check_url("http://[::1]/x", false).is_err());
        assert!(check_url("http://localhost:3000/x", false).is_err());
        assert!(check_url("http://169.254.169.254/latest", false).is_err());
        assert!(check_url("http://127.0.0.1:9000/x", true).is_ok());
        assert!(check_url("not a url", true).is_err());
        assert!(check_url(&format!("https://e.com/{}", "a".repeat(MAX_URL_LEN)), true).is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_private_addresses_at_send_time() {
        let name: Name = "localhost".parse().unwrap();
        let refused = GuardedResolver {
            allow_private: false,
        }
        .resolve(name)
        .await;
        assert!(refused.is_err(), "localhost must not resolve for a webhook");
        let name: Name = "localhost".parse().unwrap();
        let allowed = GuardedResolver {
            allow_private: true,
        }
        .resolve(name)
        .await;
        assert!(allowed.is_ok());
    }
}
