//! Abuse limits of the standalone server (docs/limits.md): the connection caps (global and per
//! client address), header and body timeouts, per-client-IP and per-API-key request rates, password
//! checks per address and per username, and the password hashing pool's size, with the `serve`
//! options that set them.
//!
//! Rates are GCRA token buckets (`governor`). Keys are stored in constant size — an IP (IPv6 by /64,
//! what one subscriber gets) or a 64-bit keyed hash of the API key or username — and idle buckets are
//! pruned, so clients cycling through made-up keys cannot grow memory without bound.
//!
//! The per-IP bucket is taken before a request is read; the per-key bucket only once the request's
//! signature verified (the key ships inside every copy of the vendor's application, so charging it
//! for unverified requests would let anyone spend a vendor's budget).

use clap::Args;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::HeaderMap;
use license_api::auth::{Claimant, Via};
use license_api::error::ApiError;
use license_api::password::HashLimits;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The `serve` options for limits; every one also reads an environment variable.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Open connections at once; further clients wait in the listen backlog.
    #[arg(long, env = "LICENSE_SERVER_MAX_CONNECTIONS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Open connections from one client address (IPv6: one /64), counted from accept, before any
    /// header arrived; beyond it a connection is answered 429 and closed (0: no limit). At most half
    /// of --max-connections. Not applied with --trust-forwarded-for, where every connection comes
    /// from the proxy.
    #[arg(long, env = "LICENSE_SERVER_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: u32,
    /// Seconds a client has to send a request's headers; also closes idle keep-alive connections.
    #[arg(long, env = "LICENSE_SERVER_HEADER_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body once its headers arrived.
    #[arg(long, env = "LICENSE_SERVER_BODY_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout_seconds: u64,
    /// Requests per second allowed from one client IP (0: no limit).
    #[arg(long, env = "LICENSE_SERVER_RATE_PER_IP", default_value_t = DEFAULT_RATE_PER_IP)]
    pub rate_per_ip: u32,
    /// Requests one client IP may send at once (the bucket size; at least the rate).
    #[arg(long, env = "LICENSE_SERVER_BURST_PER_IP", default_value_t = DEFAULT_BURST_PER_IP)]
    pub burst_per_ip: u32,
    /// Requests per second allowed with one API key, from all its clients together (0: no limit).
    #[arg(long, env = "LICENSE_SERVER_RATE_PER_KEY", default_value_t = 200)]
    pub rate_per_key: u32,
    /// Requests one API key may send at once (the bucket size; at least the rate).
    #[arg(long, env = "LICENSE_SERVER_BURST_PER_KEY", default_value_t = 400)]
    pub burst_per_key: u32,
    /// Password checks per minute from one client IP, the burst as large (0: no limit).
    #[arg(long, env = "LICENSE_SERVER_PASSWORD_CHECKS_PER_IP", default_value_t = 60)]
    pub password_checks_per_ip: u32,
    /// Password checks per minute for one username, from every address together, the burst as large
    /// (0: no limit).
    #[arg(long, env = "LICENSE_SERVER_PASSWORD_CHECKS_PER_USER", default_value_t = 10)]
    pub password_checks_per_user: u32,
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
            max_connections_per_ip: self.max_connections_per_ip as usize,
            header_timeout: Duration::from_secs(self.header_timeout_seconds),
            body_timeout: Duration::from_secs(self.body_timeout_seconds),
            per_ip: RateLimit::new(self.rate_per_ip, self.burst_per_ip),
            per_key: RateLimit::new(self.rate_per_key, self.burst_per_key),
            passwords_per_ip: NonZeroU32::new(self.password_checks_per_ip),
            passwords_per_user: NonZeroU32::new(self.password_checks_per_user),
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

/// LicenseSpring documents 200 requests per 10 s per IP: a bucket of 200 refilling at 20/s admits
/// every sequence within that, and a quarter more absorbs network jitter bunching a client's requests.
pub const DEFAULT_RATE_PER_IP: u32 = 25;
/// See [`DEFAULT_RATE_PER_IP`]; an SDK's start-up sends about 50 requests within one second.
pub const DEFAULT_BURST_PER_IP: u32 = 250;

/// Everything the HTTP server enforces.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_connections: usize,
    /// Open connections from one client address (0: no limit).
    pub max_connections_per_ip: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub per_ip: Option<RateLimit>,
    pub per_key: Option<RateLimit>,
    /// Password checks per minute from one client IP.
    pub passwords_per_ip: Option<NonZeroU32>,
    /// Password checks per minute for one username.
    pub passwords_per_user: Option<NonZeroU32>,
    pub trust_forwarded_for: bool,
}

impl Limits {
    /// No rate or per-address limit, only the connection cap and the timeouts: for embedding, where
    /// limits are the deployment's policy.
    pub fn unlimited() -> Self {
        Self {
            max_connections_per_ip: 0,
            per_ip: None,
            per_key: None,
            passwords_per_ip: None,
            passwords_per_user: None,
            ..Self::default()
        }
    }

    /// The per-address connection cap in force: at most half the global cap, so one address never
    /// takes every connection whatever the two options say; none behind a trusted proxy, whose
    /// address every connection has.
    pub fn connections_per_ip(&self) -> Option<usize> {
        (self.max_connections_per_ip > 0 && !self.trust_forwarded_for)
            .then(|| self.max_connections_per_ip.min(self.max_connections / 2).max(1))
    }
}

impl Default for Limits {
    /// The `serve` defaults.
    fn default() -> Self {
        Self {
            max_connections: 512,
            max_connections_per_ip: 64,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            per_ip: RateLimit::new(DEFAULT_RATE_PER_IP, DEFAULT_BURST_PER_IP),
            per_key: RateLimit::new(200, 400),
            passwords_per_ip: NonZeroU32::new(60),
            passwords_per_user: NonZeroU32::new(10),
            trust_forwarded_for: false,
        }
    }
}

type Buckets<K> = Option<DefaultKeyedRateLimiter<K>>;

/// The rate buckets of one server: requests per IP and per verified API key, password checks per IP
/// and per username.
pub struct RateLimiters {
    per_ip: Buckets<IpAddr>,
    per_key: Buckets<u64>,
    passwords_per_ip: Buckets<IpAddr>,
    passwords_per_user: Buckets<u64>,
    /// Randomly keyed per process, so clients cannot aim API keys or usernames at one bucket.
    hasher: std::collections::hash_map::RandomState,
    trust_forwarded_for: bool,
    clock: DefaultClock,
}

impl RateLimiters {
    pub fn new(limits: &Limits) -> Self {
        fn keyed<K: Clone + std::hash::Hash + Eq>(quota: Option<Quota>) -> Buckets<K> {
            quota.map(DefaultKeyedRateLimiter::keyed)
        }
        Self {
            per_ip: keyed(limits.per_ip.map(RateLimit::quota)),
            per_key: keyed(limits.per_key.map(RateLimit::quota)),
            passwords_per_ip: keyed(limits.passwords_per_ip.map(Quota::per_minute)),
            passwords_per_user: keyed(limits.passwords_per_user.map(Quota::per_minute)),
            hasher: Default::default(),
            trust_forwarded_for: limits.trust_forwarded_for,
            clock: DefaultClock::default(),
        }
    }

    /// The address a request's limits count against: the TCP peer, or the proxy's report of it.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip(peer, headers, self.trust_forwarded_for)
    }

    /// Takes one request from the client address's bucket; `Err` holds how long until it would be
    /// allowed.
    pub fn check_ip(&self, client: IpAddr) -> Result<(), Duration> {
        self.take(&self.per_ip, &bucket_ip(client))
    }

    /// Takes one request from a verified caller's bucket: its API key's, or its OAuth client's (the
    /// same rate; a key and a client of the same name have a bucket each). A bucket refills at least
    /// once a second, so the `Retry-After: 1` a bare [`ApiError::TooManyRequests`] gets is right.
    pub fn check_caller(&self, caller: &Via) -> Result<(), ApiError> {
        let key = match caller {
            Via::ApiKey(key) => self.hasher.hash_one(("key", key.as_str())),
            Via::OAuthClient(client) => self.hasher.hash_one(("client", client.as_str())),
            Via::ManagementKey(key) => self.hasher.hash_one(("management", key.as_str())),
            // The command line does not pass through the rate limits.
            Via::Cli(_) => return Ok(()),
        };
        self.take(&self.per_key, &key).map_err(|_| ApiError::TooManyRequests)
    }

    /// Takes one password or client-secret check from the client address's bucket and the username's
    /// or client id's (the per-user rate; a user and a client of the same name have a bucket each).
    pub fn check_password(&self, client: IpAddr, claimant: Claimant<'_>) -> Result<(), ApiError> {
        let user = match claimant {
            Claimant::User(username) => self.hasher.hash_one(("user", username.as_str())),
            Claimant::Client(id) => self.hasher.hash_one(("client", id.as_str())),
        };
        self.take(&self.passwords_per_ip, &bucket_ip(client))
            .and_then(|()| self.take(&self.passwords_per_user, &user))
            .map_err(|_| ApiError::TooManyRequests)
    }

    fn take<K>(&self, buckets: &Buckets<K>, key: &K) -> Result<(), Duration>
    where
        K: Clone + std::hash::Hash + Eq,
    {
        match buckets {
            Some(limiter) => limiter
                .check_key(key)
                .map_err(|not_until| not_until.wait_time_from(self.clock.now())),
            None => Ok(()),
        }
    }

    /// Forgets buckets that are full again (idle clients); call periodically.
    pub fn prune(&self) {
        fn prune<K: Clone + std::hash::Hash + Eq>(buckets: &Buckets<K>) {
            if let Some(limiter) = buckets {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        prune(&self.per_ip);
        prune(&self.per_key);
        prune(&self.passwords_per_ip);
        prune(&self.passwords_per_user);
    }
}

/// Open connections per client address, counted from accept (before a header arrived, so sockets
/// that never send one count too).
pub struct AddressSlots {
    cap: Option<usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// What a newly accepted connection may do.
pub enum Admit {
    /// Serve it; the slot frees when dropped.
    Serve(AddressSlot),
    /// Its address is at the cap: answer 429 and close. Refusals hold a slot too, up to a second cap's
    /// worth, so a client reconnecting in a loop cannot pile up lingering sockets.
    Refuse(AddressSlot),
    /// Close it without a word: its address already has twice the cap open.
    Close,
}

/// One connection's place in its address's count.
pub struct AddressSlot {
    slots: Option<(Arc<AddressSlots>, IpAddr)>,
}

impl AddressSlots {
    pub fn new(cap: Option<usize>) -> Arc<Self> {
        Arc::new(Self {
            cap,
            open: Mutex::new(HashMap::new()),
        })
    }

    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Admit {
        let Some(cap) = self.cap else {
            return Admit::Serve(AddressSlot { slots: None });
        };
        let ip = bucket_ip(peer);
        let mut open = self.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= cap.saturating_mul(2) {
            return Admit::Close;
        }
        *count += 1;
        let slot = AddressSlot {
            slots: Some((self.clone(), ip)),
        };
        if *count > cap {
            Admit::Refuse(slot)
        } else {
            Admit::Serve(slot)
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Counts hold no invariant a panic could break half-way.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some((slots, ip)) = &self.slots {
            let mut open = slots.lock();
            if let Some(count) = open.get_mut(ip) {
                *count -= 1;
                if *count == 0 {
                    // Only addresses with open connections are kept.
                    open.remove(ip);
                }
            }
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
pub fn bucket_ip(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use license_api::ids::{ApiKeyId, OAuthClientId, Username};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ip_bucket_empties_after_the_burst_and_names_the_wait() {
        let limiters = RateLimiters::new(&Limits {
            per_ip: RateLimit::new(1, 3),
            ..Limits::unlimited()
        });
        for _ in 0..3 {
            assert!(limiters.check_ip(ip("192.0.2.1")).is_ok());
        }
        let wait = limiters.check_ip(ip("192.0.2.1")).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiters.check_ip(ip("192.0.2.2")).is_ok());
    }

    /// LicenseSpring's documented 200 requests per 10 s per IP, all at once, pass the defaults.
    #[test]
    fn the_default_ip_bucket_admits_the_documented_window_at_once() {
        let limiters = RateLimiters::new(&Limits::default());
        for i in 0..200 {
            assert!(limiters.check_ip(ip("192.0.2.1")).is_ok(), "request {i}");
        }
    }

    #[test]
    fn key_bucket_is_shared_across_ips() {
        let limiters = RateLimiters::new(&Limits {
            per_key: RateLimit::new(1, 2),
            ..Limits::unlimited()
        });
        let key = |id: &str| Via::ApiKey(ApiKeyId::parse(id).unwrap());
        let k1 = key("k1");
        assert!(limiters.check_caller(&k1).is_ok());
        assert!(limiters.check_caller(&k1).is_ok());
        assert!(matches!(limiters.check_caller(&k1), Err(ApiError::TooManyRequests)));
        assert!(limiters.check_caller(&key("k2")).is_ok());
        // An OAuth client has a bucket of its own, even under the same name.
        let client = Via::OAuthClient(OAuthClientId::parse("k1").unwrap());
        assert!(limiters.check_caller(&client).is_ok());
        assert!(limiters.check_caller(&client).is_ok());
        assert!(limiters.check_caller(&client).is_err());
    }

    #[test]
    fn password_checks_are_bounded_per_address_and_per_username() {
        let limiters = RateLimiters::new(&Limits {
            passwords_per_ip: NonZeroU32::new(3),
            passwords_per_user: NonZeroU32::new(2),
            ..Limits::unlimited()
        });
        let user = |s: &str| Username::parse(s).unwrap();
        // One username from many addresses: its own bucket runs out.
        assert!(limiters
            .check_password(ip("192.0.2.1"), Claimant::User(&user("ann@example.com")))
            .is_ok());
        assert!(limiters
            .check_password(ip("192.0.2.2"), Claimant::User(&user("Ann@Example.com")))
            .is_ok());
        assert!(limiters
            .check_password(ip("192.0.2.3"), Claimant::User(&user("ann@example.com")))
            .is_err());
        // One address trying many usernames: the address's bucket runs out.
        for name in ["a@x.io", "b@x.io", "c@x.io"] {
            assert!(limiters
                .check_password(ip("192.0.2.9"), Claimant::User(&user(name)))
                .is_ok());
        }
        assert!(limiters
            .check_password(ip("192.0.2.9"), Claimant::User(&user("d@x.io")))
            .is_err());
        assert!(limiters
            .check_password(ip("192.0.2.10"), Claimant::User(&user("d@x.io")))
            .is_ok());
        // An OAuth client's secret checks have the per-user bound, in a bucket of their own.
        let client = OAuthClientId::parse("d@x.io").unwrap();
        for i in 0..2 {
            assert!(limiters
                .check_password(ip(&format!("192.0.2.{}", 20 + i)), Claimant::Client(&client))
                .is_ok());
        }
        assert!(limiters
            .check_password(ip("192.0.2.30"), Claimant::Client(&client))
            .is_err());
    }

    #[test]
    fn client_is_the_proxys_report_only_when_trusted() {
        let h = headers(&[("x-forwarded-for", "203.0.113.7")]);
        let trusting = RateLimiters::new(&Limits {
            trust_forwarded_for: true,
            ..Limits::unlimited()
        });
        assert_eq!(trusting.client(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        assert_eq!(
            RateLimiters::new(&Limits::unlimited()).client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn no_per_address_connection_cap_behind_a_proxy() {
        assert_eq!(Limits::default().connections_per_ip(), Some(64));
        let proxied = Limits {
            trust_forwarded_for: true,
            ..Limits::default()
        };
        assert_eq!(proxied.connections_per_ip(), None);
        assert_eq!(Limits::unlimited().connections_per_ip(), None);
    }

    #[test]
    fn one_address_gets_at_most_half_the_connections() {
        let small = |max_connections| Limits {
            max_connections,
            ..Limits::default()
        };
        assert_eq!(small(32).connections_per_ip(), Some(16));
        assert_eq!(small(1).connections_per_ip(), Some(1));
        assert_eq!(small(10_000).connections_per_ip(), Some(64));
    }

    #[test]
    fn connections_beyond_an_addresss_cap_are_refused_then_closed() {
        let slots = AddressSlots::new(Some(2));
        let a = ip("192.0.2.1");
        let served: Vec<_> = (0..2).map(|_| slots.admit(a)).collect();
        assert!(served.iter().all(|s| matches!(s, Admit::Serve(_))));
        let refused: Vec<_> = (0..2).map(|_| slots.admit(a)).collect();
        assert!(refused.iter().all(|s| matches!(s, Admit::Refuse(_))));
        assert!(matches!(slots.admit(a), Admit::Close));
        assert!(matches!(slots.admit(ip("192.0.2.2")), Admit::Serve(_)));
        drop(refused);
        drop(served);
        assert!(slots.lock().get(&a).is_none(), "closed connections are forgotten");
        assert!(matches!(slots.admit(a), Admit::Serve(_)));
        assert!(matches!(AddressSlots::new(None).admit(a), Admit::Serve(_)));
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
