//! License-user passwords: argon2id hashes (PHC strings) only. Verification runs on the blocking pool,
//! and an unknown user is checked against a dummy hash so both answers take the same time (SPEC §2.1).

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::OnceLock;

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
    // Stored hashes carry their own parameters; `hasher()` only supplies the algorithm family.
    let ok = hasher().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && real
}

pub async fn verify(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&password, stored.as_deref()))
        .await
        .unwrap_or(false)
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
}
