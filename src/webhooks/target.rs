//! Which URLs webhooks may call. Layer required `https://`; a self-hosted server also has to
//! keep registrations from pointing its calls at its own network (SSRF). Unless
//! `webhooks.allow_private_targets` is set: literal addresses and `localhost` are refused at
//! registration and before every call, host names are resolved through `PublicResolver` (which
//! drops non-public addresses, so a name that later resolves inwards fails then), and redirects
//! are never followed.

use std::net::{IpAddr, SocketAddr};

use crate::config::WebhookSettings;

/// Longest accepted target URL.
pub const MAX_URL_LEN: usize = 2048;

/// Why a target URL is refused (the message of the 422).
pub fn check(url: &str, settings: &WebhookSettings) -> Result<url::Url, String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!(
            "The target_url must be at most {MAX_URL_LEN} characters."
        ));
    }
    let parsed = url::Url::parse(url).map_err(|_| "The target_url must be an absolute URL.")?;
    match parsed.scheme() {
        "https" => {}
        "http" if settings.allow_http => {}
        _ => return Err("The target_url must be an https:// URL.".into()),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("The target_url must not carry credentials.".into());
    }
    let public = match parsed.host() {
        None => return Err("The target_url must name a host.".into()),
        Some(url::Host::Ipv4(ip)) => is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => is_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name != "localhost" && !name.ends_with(".localhost")
        }
    };
    if !public && !settings.allow_private_targets {
        return Err("The target_url must be a public address.".into());
    }
    Ok(parsed)
}

/// Not loopback, private, link-local, shared, documentation, unspecified or multicast.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                // 100.64.0.0/10 (carrier-grade NAT) and 198.18.0.0/15 (benchmarking).
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || v6.is_unique_local()
                || v6.is_unicast_link_local())
        }
    }
}

/// Resolves host names to their public addresses only.
pub struct PublicResolver;

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|addr| is_public(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(allow_http: bool, allow_private_targets: bool) -> WebhookSettings {
        WebhookSettings {
            timeout_ms: 1000,
            retry_schedule_ms: vec![],
            lease_ms: 2000,
            poll_interval_ms: 1000,
            max_in_flight: 1,
            max_per_app: 1,
            allow_http,
            allow_private_targets,
        }
    }

    #[test]
    fn requires_https_unless_allowed() {
        let strict = settings(false, false);
        assert!(check("https://hooks.example.com/layer", &strict).is_ok());
        assert!(check("http://hooks.example.com/layer", &strict).is_err());
        assert!(check("http://hooks.example.com/layer", &settings(true, false)).is_ok());
        assert!(check("ftp://hooks.example.com/", &settings(true, true)).is_err());
        assert!(check("not a url", &strict).is_err());
        assert!(check("https://user:pw@hooks.example.com/", &strict).is_err());
        assert!(check(
            &format!("https://a.com/{}", "x".repeat(MAX_URL_LEN)),
            &strict
        )
        .is_err());
    }

    #[test]
    fn refuses_private_targets_unless_allowed() {
        let strict = settings(false, false);
        for url in [
            "https://127.0.0.1/",
            "https://localhost:8443/",
            "https://api.localhost/",
            "https://10.1.2.3/",
            "https://192.168.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://0.0.0.0/",
            "https://100.64.0.1/",
        ] {
            assert!(check(url, &strict).is_err(), "{url}");
            assert!(check(url, &settings(false, true)).is_ok(), "{url}");
        }
        assert!(check("https://8.8.8.8/", &strict).is_ok());
        assert!(check("https://[2001:4860:4860::8888]/", &strict).is_ok());
    }
}
