//! License-user passwords: argon2id hashes (PHC strings) only. An unknown user is checked against a
//! dummy hash so both answers take the same time (SPEC §2.1).
//!
//! Each verification allocates 19 MiB and keeps a core busy, so it runs on a small pool of its own
//! threads, never on the blocking pool the store shares: a flood of wrong passwords then costs at most
//! `threads × 19 MiB` and cannot starve store work. With a wait deadline configured (the standalone
//! server sets one), a verification that cannot start in time answers `429 too_many_requests`
//! ([`ApiError::TooManyRequests`]) instead of queueing without bound.

use crate::auth::Claimant;
use crate::error::ApiError;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("constant parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2id hashing of a password cannot fail")
        .to_string()
}

/// Bounds on an argon2id hash a catalog gives instead of a password: no weaker than OWASP's lightest
/// argon2id setting (7 MiB, 5 passes) by memory, and no costlier to verify than 64 MiB × 10 passes ×
/// 4 lanes, so a catalog cannot make each login slow or huge.
pub const IMPORTED_HASH_MEMORY_KIB: std::ops::RangeInclusive<u32> = 7 * 1024..=64 * 1024;
pub const IMPORTED_HASH_PASSES: std::ops::RangeInclusive<u32> = 1..=10;
pub const IMPORTED_HASH_LANES: std::ops::RangeInclusive<u32> = 1..=4;

/// Whether `phc` is an argon2id (v19) PHC string with a salt, a hash and parameters within the bounds
/// above; the reason when not.
pub fn check_imported_hash(phc: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(phc).map_err(|e| format!("not a PHC hash string ({e})"))?;
    if Algorithm::try_from(parsed.algorithm) != Ok(Algorithm::Argon2id) {
        return Err(format!("`{}` is not argon2id", parsed.algorithm));
    }
    if parsed.version.is_some_and(|v| v != 0x13) {
        return Err("only argon2 version 19 (0x13) is accepted".into());
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("the hash string has no salt or no hash".into());
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("invalid argon2 parameters ({e})"))?;
    let within = IMPORTED_HASH_MEMORY_KIB.contains(&params.m_cost())
        && IMPORTED_HASH_PASSES.contains(&params.t_cost())
        && IMPORTED_HASH_LANES.contains(&params.p_cost());
    match within {
        true => Ok(()),
        false => Err(format!(
            "argon2id parameters m={}, t={}, p={} are outside m 7168..=65536 KiB, t 1..=10, p 1..=4",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        )),
    }
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash("dummy password that matches nothing real"))
}

/// Whether `password` matches `stored`. `None` (unknown user, or no password set) still costs one hash.
pub fn verify_blocking(password: &str, stored: Option<&str>) -> bool {
    let (phc, real) = match stored {
        Some(h) => (h, true),
        None => (dummy_hash(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let ok = BLOCKS.with(|blocks| match blocks.try_borrow_mut() {
        Ok(mut blocks) => matches(password.as_bytes(), &parsed, &mut blocks),
        Err(_) => matches(password.as_bytes(), &parsed, &mut Vec::new()),
    });
    ok && real
}

/// Blocks of the baseline parameters: the most a thread keeps between verifications.
const KEPT_BLOCKS: usize = 19 * 1024;

thread_local! {
    /// Each thread's argon2 working memory, reused: allocating 19 MiB per verification lets the
    /// allocator's arenas fragment and grow to several times that per thread.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// What argon2's `verify_password` does, but hashing in `blocks` (grown to the baseline size once and
/// kept; larger stored parameters get memory of their own for the one call). Stored hashes carry
/// their own algorithm, version and parameters.
fn matches(password: &[u8], parsed: &PasswordHash<'_>, blocks: &mut Vec<Block>) -> bool {
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let (Ok(params), Ok(algorithm)) = (Params::try_from(parsed), Algorithm::try_from(parsed.algorithm)) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let needed = params.block_count();
    let mut own = Vec::new();
    let memory = if needed <= KEPT_BLOCKS {
        if blocks.len() < needed {
            blocks.resize(needed, Block::default());
        }
        &mut blocks[..needed]
    } else {
        own.resize(needed, Block::default());
        &mut own[..]
    };
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = &mut out[..expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, out, memory)
        .is_ok()
        // `Output` compares in constant time.
        && Output::new(out).is_ok_and(|computed| computed == expected)
}

/// How much password hashing may run at once, and how long a request waits for its turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLimits {
    /// Verifications running at once, each on its own dedicated thread (and 19 MiB).
    pub threads: usize,
    /// How long a request's verification may wait for a free thread before it answers 429; `None`:
    /// as long as it takes.
    pub wait: Option<Duration>,
}

impl Default for HashLimits {
    /// One thread per CPU: more cannot finish sooner, only hold more memory. No deadline: a Lambda
    /// instance serves one request at a time, so only a server sharing the pool between concurrent
    /// requests needs one, and sets it.
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            wait: None,
        }
    }
}

/// Sets the process's hashing limits; only before the first verification (later calls change nothing
/// and return `false`). Without it, the first verification starts the pool with [`HashLimits::default`].
pub fn configure(limits: HashLimits) -> bool {
    let mut applied = false;
    POOL.get_or_init(|| {
        applied = true;
        Pool::start(limits)
    });
    applied
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::start(HashLimits::default()))
}

/// For requests: whether `password` matches `stored`, the hash of `claimant`'s password or client
/// secret (see [`verify_blocking`]), computed on the hashing pool. `Err(TooManyRequests)` when the
/// request's [`Admission`](crate::auth::Admission) refuses another check for `claimant`, or no hashing
/// thread became free within the wait deadline.
pub async fn verify_limited(
    claimant: Claimant<'_>,
    password: String,
    stored: Option<String>,
) -> Result<bool, ApiError> {
    crate::auth::admit(|a| a.password_check(claimant))?;
    pool().verify(password, stored, pool().wait).await
}

/// For operator work (catalog import): like [`verify_limited`] but waits as long as it takes; any
/// failure counts as "no match".
pub async fn verify(password: String, stored: Option<String>) -> bool {
    pool().verify(password, stored, None).await.unwrap_or(false)
}

static POOL: OnceLock<Pool> = OnceLock::new();

struct Job {
    password: String,
    stored: Option<String>,
    reply: oneshot::Sender<bool>,
    /// Held until the hash is done, so a request that gave up cannot let more hashes run than threads.
    _permit: OwnedSemaphorePermit,
}

/// Dedicated hashing threads fed by a channel. The semaphore has one permit per running thread, so a
/// job never waits in the channel: it waits (bounded) for a permit, then a thread is free for it.
struct Pool {
    permits: Arc<Semaphore>,
    /// Threads actually started; with none, verifications fail as Internal rather than as 429.
    threads: usize,
    jobs: Mutex<mpsc::Sender<Job>>,
    wait: Option<Duration>,
}

impl Pool {
    fn start(limits: HashLimits) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..limits.threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("password-hash-{i}"))
                .spawn(move || worker(&rx));
            match spawned {
                Ok(_) => started += 1,
                Err(e) => tracing::error!(error = %e, "cannot start a password hashing thread"),
            }
        }
        Self {
            permits: Arc::new(Semaphore::new(started)),
            threads: started,
            jobs: Mutex::new(tx),
            wait: limits.wait,
        }
    }

    async fn verify(&self, password: String, stored: Option<String>, wait: Option<Duration>) -> Result<bool, ApiError> {
        if self.threads == 0 {
            return Err(ApiError::internal("no password hashing thread could be started"));
        }
        let acquire = self.permits.clone().acquire_owned();
        let acquired = match wait {
            Some(wait) => tokio::time::timeout(wait, acquire)
                .await
                .map_err(|_elapsed| ApiError::TooManyRequests)?,
            None => acquire.await,
        };
        let permit = acquired.map_err(|_closed| ApiError::internal("the password hashing pool is closed"))?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            password,
            stored,
            reply,
            _permit: permit,
        };
        let sent = self
            .jobs
            .lock()
            .map_err(|_| ApiError::internal("the password hashing queue is poisoned"))?
            .send(job);
        sent.map_err(|_| ApiError::internal("no password hashing thread is running"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("a password hashing thread stopped"))
    }
}

fn worker(jobs: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let next = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = next else { return };
        // The request may have ended (client gone) while the job waited: skip the 19 MiB.
        if job.reply.is_closed() {
            continue;
        }
        let ok = verify_blocking(&job.password, job.stored.as_deref());
        let _ = job.reply.send(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = hash("s3cret");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_blocking("s3cret", Some(&h)));
        assert!(!verify_blocking("S3cret", Some(&h)));
        assert!(!verify_blocking("s3cret", None));
        assert!(!verify_blocking("s3cret", Some("not a phc string")));
    }

    /// The reused-memory path agrees with argon2's own verifier, for other stored parameters too.
    #[test]
    fn matches_argon2s_own_verification() {
        use argon2::password_hash::PasswordVerifier;
        let salt = SaltString::generate(&mut OsRng);
        for (alg, version, params) in [
            (Algorithm::Argon2id, Version::V0x13, Params::new(19 * 1024, 2, 1, None)),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(8 * 1024, 1, 2, Some(16)),
            ),
            (Algorithm::Argon2i, Version::V0x10, Params::new(4 * 1024, 3, 1, None)),
            (Algorithm::Argon2d, Version::V0x13, Params::new(20 * 1024, 1, 1, None)),
        ] {
            let phc = Argon2::new(alg, version, params.unwrap())
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string();
            let parsed = PasswordHash::new(&phc).unwrap();
            for guess in ["pw", "pw ", ""] {
                let theirs = Argon2::default().verify_password(guess.as_bytes(), &parsed).is_ok();
                assert_eq!(verify_blocking(guess, Some(&phc)), theirs, "{phc} {guess:?}");
                assert_eq!(theirs, guess == "pw");
            }
        }
    }

    #[tokio::test]
    async fn pool_verifies_off_the_runtime() {
        let pool = Pool::start(HashLimits { threads: 1, wait: None });
        let h = hash("s3cret");
        assert!(pool.verify("s3cret".into(), Some(h.clone()), None).await.unwrap());
        assert!(!pool.verify("nope".into(), Some(h), None).await.unwrap());
        assert!(!pool.verify("s3cret".into(), None, None).await.unwrap());
    }

    #[tokio::test]
    async fn a_full_pool_answers_too_many_requests_after_the_wait() {
        let pool = Arc::new(Pool::start(HashLimits {
            threads: 1,
            wait: Some(Duration::from_millis(1)),
        }));
        // Hold the only permit, as a running hash would.
        let held = pool.permits.clone().acquire_owned().await.unwrap();
        let wait = pool.wait;
        let err = pool.verify("x".into(), None, wait).await.unwrap_err();
        assert_eq!((err.status(), err.code()), (429, "too_many_requests"));
        drop(held);
        assert!(!pool.verify("x".into(), None, wait).await.unwrap());
    }
}
