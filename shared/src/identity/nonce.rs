//! The `nonce` of a single sign-on login the server starts (`GET /sso_url`, docs/sso.md). The server
//! keeps no state between handing out a sign-in URL and seeing the ID token it led to (another function,
//! perhaps another machine), so the nonce authenticates itself: `sso-v1.<expiry>.<random>.<mac>`, the
//! MAC (HMAC-SHA256 under a key derived from the sealing key) binding the expiry and the random part to
//! the company and customer account the URL was made for. An ID token carrying a nonce of this format
//! is accepted only if the MAC verifies for the account the grant names and the expiry has not passed
//! ([`NONCE_LIFETIME`] after the URL was made). A nonce of any other format belongs to a login the
//! application ran itself and is the application's to check.

use crate::ids::{CompanyId, CustomerAccountCode};
use crate::sealed::SealingKey;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long after `sso_url` made it a nonce is accepted: a login takes a user minutes, not hours.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(600);
/// What marks a nonce as minted here; the version names the format.
pub const NONCE_PREFIX: &str = "sso-v1.";
/// The purpose its MAC key is derived for (`SealingKey::mac_key`).
const NONCE_KEY_PURPOSE: &str = "sso-nonce";
/// Random bytes in a nonce and in a `state`: 128 bits, never guessed nor repeated.
const RANDOM_BYTES: usize = 16;

/// Why a nonce of our format is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    #[error("the nonce has our prefix but not the shape `sso-v1.<expiry>.<random>.<mac>`")]
    Malformed,
    #[error("the nonce's MAC does not verify: not minted here, altered, or minted for another customer account")]
    Forged,
    #[error("the nonce expired: the login took longer than the nonce lifetime")]
    Expired,
    #[error("no random bytes from the system")]
    Random,
}

/// Whether `nonce` claims to be one of ours (and so must verify).
pub fn is_ours(nonce: &str) -> bool {
    nonce.starts_with(NONCE_PREFIX)
}

/// An unguessable token for a sign-in URL's `state`: base64url of 128 random bits.
pub fn random_token() -> Result<String, NonceError> {
    let mut bytes = [0u8; RANDOM_BYTES];
    SystemRandom::new().fill(&mut bytes).map_err(|_| NonceError::Random)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Mints and verifies nonces; derived from the deployment's sealing key, so every function of a
/// deployment agrees.
pub struct NonceKey(hmac::Key);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("NonceKey").field(&crate::secret::Redacted).finish()
    }
}

impl NonceKey {
    /// The deployment's nonce key: derived from its sealing key for [`NONCE_KEY_PURPOSE`].
    pub fn derived(sealing_key: &SealingKey) -> Self {
        Self(sealing_key.mac_key(NONCE_KEY_PURPOSE))
    }

    /// A fresh nonce for a login into `account` of `company`, valid [`NONCE_LIFETIME`] from `now`.
    pub fn mint(
        &self,
        company: &CompanyId,
        account: &CustomerAccountCode,
        now: SystemTime,
    ) -> Result<String, NonceError> {
        let expiry = unix_secs(now) + NONCE_LIFETIME.as_secs();
        let body = format!("{NONCE_PREFIX}{expiry}.{}", random_token()?);
        let tag = hmac::sign(&self.0, &message(&body, company, account));
        Ok(format!("{body}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())))
    }

    /// Checks a nonce of our format: minted with this key, for this account, not expired at `now` (with
    /// `leeway` for clocks that differ between the function that minted it and this one).
    pub fn verify(
        &self,
        nonce: &str,
        company: &CompanyId,
        account: &CustomerAccountCode,
        now: SystemTime,
        leeway: Duration,
    ) -> Result<(), NonceError> {
        let (body, mac) = nonce.rsplit_once('.').ok_or(NonceError::Malformed)?;
        let rest = body.strip_prefix(NONCE_PREFIX).ok_or(NonceError::Malformed)?;
        let (expiry, random) = rest.split_once('.').ok_or(NonceError::Malformed)?;
        let expiry: u64 = expiry.parse().map_err(|_| NonceError::Malformed)?;
        if random.is_empty() || random.contains('.') {
            return Err(NonceError::Malformed);
        }
        let mac = URL_SAFE_NO_PAD.decode(mac).map_err(|_| NonceError::Malformed)?;
        // Constant time; the MAC first, so a forged nonce learns nothing from the expiry check.
        hmac::verify(&self.0, &message(body, company, account), &mac).map_err(|_| NonceError::Forged)?;
        if unix_secs(now) > expiry.saturating_add(leeway.as_secs()) {
            return Err(NonceError::Expired);
        }
        Ok(())
    }
}

/// What the MAC covers: the nonce up to its MAC, then the company and the account, each on its own
/// line (ids hold no control characters, so the lines cannot run into each other).
fn message(body: &str, company: &CompanyId, account: &CustomerAccountCode) -> Vec<u8> {
    format!(
        "{body}\n{company}\n{account}",
        company = company.as_str(),
        account = account.as_str()
    )
    .into_bytes()
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NonceKey {
        NonceKey::derived(&SealingKey::generate().unwrap().0)
    }

    fn ids(company: &str, account: &str) -> (CompanyId, CustomerAccountCode) {
        (
            CompanyId::parse(company).unwrap(),
            CustomerAccountCode::parse(account).unwrap(),
        )
    }

    const NO_LEEWAY: Duration = Duration::ZERO;

    #[test]
    fn a_minted_nonce_verifies_for_its_account_until_it_expires() {
        let (key, (c, a), now) = (key(), ids("c1", "acct"), SystemTime::now());
        let nonce = key.mint(&c, &a, now).unwrap();
        assert!(is_ours(&nonce), "{nonce}");
        assert_eq!(nonce.split('.').count(), 4, "{nonce}");
        assert_eq!(key.verify(&nonce, &c, &a, now, NO_LEEWAY), Ok(()));
        assert_eq!(key.verify(&nonce, &c, &a, now + NONCE_LIFETIME, NO_LEEWAY), Ok(()));
        let late = now + NONCE_LIFETIME + Duration::from_secs(2);
        assert_eq!(key.verify(&nonce, &c, &a, late, NO_LEEWAY), Err(NonceError::Expired));
        assert_eq!(
            key.verify(&nonce, &c, &a, late, Duration::from_secs(60)),
            Ok(()),
            "within the leeway"
        );
    }

    #[test]
    fn another_account_company_key_or_an_altered_part_is_forged() {
        let (key, (c, a), now) = (key(), ids("c1", "acct"), SystemTime::now());
        let nonce = key.mint(&c, &a, now).unwrap();
        let (other_c, other_a) = ids("c2", "acct2");
        assert_eq!(
            key.verify(&nonce, &c, &other_a, now, NO_LEEWAY),
            Err(NonceError::Forged)
        );
        assert_eq!(
            key.verify(&nonce, &other_c, &a, now, NO_LEEWAY),
            Err(NonceError::Forged)
        );
        assert_eq!(
            self::key().verify(&nonce, &c, &a, now, NO_LEEWAY),
            Err(NonceError::Forged)
        );
        // A later expiry with the old MAC.
        let parts: Vec<&str> = nonce.split('.').collect();
        let later = format!(
            "sso-v1.{}.{}.{}",
            parts[1].parse::<u64>().unwrap() + 3600,
            parts[2],
            parts[3]
        );
        assert_eq!(key.verify(&later, &c, &a, now, NO_LEEWAY), Err(NonceError::Forged));
    }

    #[test]
    fn malformed_nonces_of_our_prefix_are_refused_and_others_are_not_ours() {
        let (key, (c, a), now) = (key(), ids("c1", "acct"), SystemTime::now());
        for bad in [
            "sso-v1.",
            "sso-v1.x.r.m",
            "sso-v1.1.r",
            "sso-v1.1..AAAA",
            "sso-v1.1.r.!!",
            "sso-v1.1.r.s.AAAA",
        ] {
            assert!(is_ours(bad));
            assert_eq!(
                key.verify(bad, &c, &a, now, NO_LEEWAY),
                Err(NonceError::Malformed),
                "{bad}"
            );
        }
        assert!(!is_ours("test-nonce") && !is_ours("v1.123.abc.def") && !is_ours(""));
    }

    #[test]
    fn nonces_and_states_differ_every_time() {
        let (key, (c, a), now) = (key(), ids("c1", "acct"), SystemTime::now());
        assert_ne!(key.mint(&c, &a, now).unwrap(), key.mint(&c, &a, now).unwrap());
        let (s1, s2) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(s1, s2);
        assert_eq!(s1.len(), 22, "128 bits in base64url");
        assert_eq!(format!("{key:?}"), "NonceKey([REDACTED])");
    }
}
