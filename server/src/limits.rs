//! Abuse limits of the standalone server (docs/limits.md): the connection cap, header and body
//! timeouts, per-client-IP and per-API-key request rates, and the password hashing pool's size, with
//! the `serve` options that set them.
//!
//! Rates are GCRA token buckets (`governor`), one per IP and one per API key. Keys are stored in
//! constant size — an IP (IPv6 by /64, what one subscriber gets) or a 64-bit keyed hash of the API
//! key — and idle buckets are pruned, so clients cycling through made-up keys cannot grow memory
//! without bound.

use clap::Args;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::HeaderMap;
use license_api::password::HashLimits;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

/// The `serve` options for limits; every one also reads an environment variable.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Open connections at once; further clients wait in the listen backlog.
    #[arg(long, env = "LICENSE_SERVER_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Seconds a client has to send a request's headers; also closes idle keep-alive connections.
    #[arg(long, env = "LICENSE_SERVER_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body once its headers arrived.
    #[arg(long, env = "LICENSE_SERVER_BODY_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_seconds: u64,
    /// Requests per second allowed from one client IP (0: no limit).
    #[arg(long, env = "LICENSE_SERVER_RATE_PER_IP", default_value_t = 20)]
    pub rate_per_ip: u32,
    /// Requests one client IP may send at once (the bucket size; at least the rate).
    #[arg(long, env = "LICENSE_SERVER_BURST_PER_IP", default_value_t = 40)]
    pub burst_per_ip: u32,
    /// Requests per second allowed with one API key, from all its clients together (0: no limit).
    #[arg(long, env = "LICENSE_SERVER_RATE_PER_KEY", default_value_t = 200)]
    pub rate_per_key: u32,
    /// Requests one API key may send at once (the bucket size; at least the rate).
    #[arg(long, env = "LICENSE_SERVER_BURST_PER_KEY", default_value_t = 400)]
    pub burst_per_key: u32,
    /// Take the client IP from the last X-Forwarded-For entry (only behind a proxy that sets it).
    #[arg(long, env = "LICENSE_SERVER_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Password verifications running at once, each on its own thread with 19 MiB (0: one per CPU).
    #[arg(long, env = "LICENSE_SERVER_HASH_THREADS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub hash_threads: u16,
    /// Milliseconds a user-based activation waits for a hashing thread before answering 429.
    #[arg(long, env = "LICENSE_SERVER_HASH_WAIT_MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub hash_wait_ms: u64,
}

impl LimitArgs {
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections as usize,
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            per_ip: RateLimit::new(self.rate_per_ip, self.burst_per_ip),
            per_key: RateLimit::new(self.rate_per_key, self.burst_per_key),
            trust_forwarded_for: self.trust_forwarded_for,
        }
    }

    pub fn hashing(&self) -> HashLimits {
        let default = HashLimits::default();
        HashLimits {
            threads: if self.hash_threads == 0 {
                default.threads
            } else {
                usize::from(self.hash_threads)
            },
            wait: Some(Duration::from_millis(self.hash_wait_ms)),
        }
    }
}

/// A sustained rate with a burst allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `None` for a rate of 0 (no limit); a burst below the rate is raised to it.
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        Some(Self {
            per_second,
            burst: NonZeroU32::new(burst).unwrap_or(per_second).max(per_second),
        })
    }

    fn quota(self) -> Quota {
        Quota::per_second(self.per_second).allow_burst(self.burst)
    }
}

/// Everything the HTTP server enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub per_ip: Option<RateLimit>,
    pub per_key: Option<RateLimit>,
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    /// The `serve` defaults.
    fn default() -> Self {
        Self {
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            per_ip: RateLimit::new(20, 40),
            per_key: RateLimit::new(200, 400),
            trust_forwarded_for: false,
        }
    }
}

/// The per-IP and per-API-key buckets of one server.
pub struct RateLimiters {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_key: Option<DefaultKeyedRateLimiter<u64>>,
    /// Randomly keyed per process, so clients cannot aim API keys at one bucket.
    key_hasher: std::collections::hash_map::RandomState,
    trust_forwarded_for: bool,
    clock: DefaultClock,
}

impl RateLimiters {
    pub fn new(limits: &Limits) -> Self {
        Self {
            per_ip: limits.per_ip.map(|r| DefaultKeyedRateLimiter::keyed(r.quota())),
            per_key: limits.per_key.map(|r| DefaultKeyedRateLimiter::keyed(r.quota())),
            key_hasher: Default::default(),
            trust_forwarded_for: limits.trust_forwarded_for,
            clock: DefaultClock::default(),
        }
    }

    /// Takes one request from the client's buckets; `Err` holds how long until it would be allowed.
    pub fn check(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), Duration> {
        if let Some(limiter) = &self.per_ip {
            let ip = bucket_ip(client_ip(peer, headers, self.trust_forwarded_for));
            limiter
                .check_key(&ip)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now()))?;
        }
        if let (Some(limiter), Some(key)) = (&self.per_key, api_key(headers)) {
            limiter
                .check_key(&self.key_hasher.hash_one(key))
                .map_err(|not_until| not_until.wait_time_from(self.clock.now()))?;
        }
        Ok(())
    }

    /// Forgets buckets that are full again (idle clients); call periodically.
    pub fn prune(&self) {
        if let Some(limiter) = &self.per_ip {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_key {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The TCP peer, or behind a trusted proxy the address it appended last to X-Forwarded-For (earlier
/// entries are whatever the client claimed).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trust_forwarded_for: bool) -> IpAddr {
    if !trust_forwarded_for {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .and_then(|last| last.trim().parse().ok())
        .unwrap_or(peer)
}

/// One bucket per IPv4 address and per IPv6 /64.
fn bucket_ip(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

/// The `apikey` parameter of an HMAC `Authorization` header; `None` when absent or malformed (the
/// request then fails authentication and only the IP bucket applies).
fn api_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    license_api::auth::parse_authorization(value).ok().map(|p| p.api_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    const AUTH: &str = r#"algorithm="hmac-sha256",headers="date",signature="x",apikey="k1""#;

    #[test]
    fn ip_bucket_empties_after_the_burst_and_names_the_wait() {
        let limiters = RateLimiters::new(&Limits {
            per_ip: RateLimit::new(1, 3),
            per_key: None,
            ..Limits::default()
        });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiters.check(a, &HeaderMap::new()).is_ok());
        }
        let wait = limiters.check(a, &HeaderMap::new()).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiters.check("192.0.2.2".parse().unwrap(), &HeaderMap::new()).is_ok());
    }

    #[test]
    fn key_bucket_is_shared_across_ips() {
        let limiters = RateLimiters::new(&Limits {
            per_ip: None,
            per_key: RateLimit::new(1, 2),
            ..Limits::default()
        });
        let h = headers(&[("authorization", AUTH)]);
        assert!(limiters.check("192.0.2.1".parse().unwrap(), &h).is_ok());
        assert!(limiters.check("192.0.2.2".parse().unwrap(), &h).is_ok());
        assert!(limiters.check("192.0.2.3".parse().unwrap(), &h).is_err());
        let other = headers(&[("authorization", &AUTH.replace("k1", "k2"))]);
        assert!(limiters.check("192.0.2.3".parse().unwrap(), &other).is_ok());
        // No parsable key: only the (disabled) IP limit applies.
        for _ in 0..5 {
            assert!(limiters.check("192.0.2.3".parse().unwrap(), &HeaderMap::new()).is_ok());
        }
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket_ip(a), bucket_ip(b));
        assert_ne!(bucket_ip(a), bucket_ip(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(bucket_ip(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted_and_takes_the_last_entry() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.7")]);
        assert_eq!(client_ip(peer, &h, false), peer);
        assert_eq!(client_ip(peer, &h, true), "203.0.113.7".parse::<IpAddr>().unwrap());
        let junk = headers(&[("x-forwarded-for", "not an ip")]);
        assert_eq!(client_ip(peer, &junk, true), peer);
    }

    #[test]
    fn zero_rate_means_no_limit() {
        assert_eq!(RateLimit::new(0, 100), None);
        let r = RateLimit::new(10, 0).unwrap();
        assert_eq!(r.burst.get(), 10);
    }
}
