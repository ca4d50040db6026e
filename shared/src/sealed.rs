//! Deployment secrets at rest: secrets the server must read back in clear (an OAuth client's secret is
//! the HMAC key of its offline files; an identity provider's client secret is sent to its token
//! endpoint) are stored sealed with AES-256-GCM under one deployment key, the sealing key.
//!
//! The sealing key is 32 random bytes, kept as one line of standard base64 (`license-server keygen`
//! writes it to `sealing-key` beside the signing key, mode 0600; on AWS it is an SSM SecureString). It
//! is read like the signing key (`config::Config::sealing_key`). Losing it makes every sealed value
//! unreadable, so it is backed up with the signing key.
//!
//! The API is two calls: [`SealingKey::seal`] and [`SealingKey::open`], both given a *context*, the
//! name of what the secret belongs to (e.g. `oauth-client:<client_id>`). The context is authenticated
//! with the ciphertext, so a sealed value copied onto another record does not open there.
//!
//! The same key also derives the deployment's MAC keys ([`SealingKey::mac_key`], HKDF-SHA256 with a
//! purpose label), so a value the server must later recognise as its own (the single sign-on nonce,
//! `identity::nonce`) needs no key of its own to configure.
//!
//! A [`Sealed`] value is text, `v1.` followed by unpadded base64url of nonce (12 bytes), ciphertext
//! and tag (16 bytes). Nonces are random: 96 random bits per value are safe far beyond the number of
//! secrets a deployment stores.

use crate::secret::{ExposeSecret, Redacted, SecretString};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::{hkdf, hmac};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use secrecy::zeroize::Zeroizing;
use std::fmt;

/// Bytes of key material in a sealing key (AES-256).
pub const SEALING_KEY_LEN: usize = 32;
/// Bytes of the GCM authentication tag appended to every ciphertext.
const TAG_LEN: usize = 16;
/// Prefix naming the format of a [`Sealed`] value, so a later format can be told apart.
const VERSION: &str = "v1.";
/// Longest secret [`SealingKey::seal`] accepts; larger secrets are not what this is for, and the
/// bound keeps stored items small (docs/limits.md).
pub const MAX_SEALED_SECRET_LEN: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error(
        "the sealing key is not {SEALING_KEY_LEN} bytes of standard base64 (create one with `license-server keygen`)"
    )]
    BadKey,
    #[error("no random bytes from the system: cannot seal")]
    Random,
    #[error("the secret is {0} bytes; at most {MAX_SEALED_SECRET_LEN} can be sealed")]
    TooLong(usize),
    #[error("a sealed value must start with `{VERSION}` followed by base64url")]
    BadFormat,
    #[error(
        "the sealed value does not open with this sealing key and context (another key, another record, or altered)"
    )]
    Unopenable,
}

/// The salt of the HKDF extraction that derives MAC keys from the sealing key: fixed, so every function
/// of a deployment derives the same keys.
const MAC_KEY_SALT: &[u8] = b"license-server sealing-key mac keys v1";

/// The deployment's data-encryption key. Prints as `SealingKey([REDACTED])`.
pub struct SealingKey {
    aead: LessSafeKey,
    /// The HKDF pseudo-random key [`SealingKey::mac_key`] expands.
    derive: hkdf::Prk,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SealingKey").field(&Redacted).finish()
    }
}

impl SealingKey {
    /// A new random key and its text form (what the key file or SSM parameter holds).
    pub fn generate() -> Result<(Self, SecretString), SealError> {
        let mut bytes = Zeroizing::new([0u8; SEALING_KEY_LEN]);
        SystemRandom::new()
            .fill(bytes.as_mut())
            .map_err(|_| SealError::Random)?;
        let text = SecretString::from(STANDARD.encode(bytes.as_ref()));
        Ok((Self::from_bytes(bytes.as_ref())?, text))
    }

    /// Parses the text form: standard base64 of [`SEALING_KEY_LEN`] bytes, surrounding whitespace
    /// (a trailing newline in a file) ignored.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        let bytes = Zeroizing::new(STANDARD.decode(text.trim()).map_err(|_| SealError::BadKey)?);
        Self::from_bytes(&bytes)
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        if bytes.len() != SEALING_KEY_LEN {
            return Err(SealError::BadKey);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self {
            aead: LessSafeKey::new(key),
            derive: hkdf::Salt::new(hkdf::HKDF_SHA256, MAC_KEY_SALT).extract(bytes),
        })
    }

    /// An HMAC-SHA256 key derived for `purpose` (HKDF-SHA256 expand with the purpose as info): the same
    /// for the same sealing key and purpose, independent for different purposes, and revealing nothing
    /// of the sealing key.
    pub fn mac_key(&self, purpose: &str) -> hmac::Key {
        let info = [purpose.as_bytes()];
        let okm = self
            .derive
            .expand(&info, hmac::HMAC_SHA256)
            .expect("HKDF-SHA256 expands one 32-byte block");
        hmac::Key::from(okm)
    }

    /// Encrypts `secret` for the record named by `context`.
    pub fn seal(&self, secret: &SecretString, context: &str) -> Result<Sealed, SealError> {
        let plain = secret.expose_secret().as_bytes();
        if plain.len() > MAX_SEALED_SECRET_LEN {
            return Err(SealError::TooLong(plain.len()));
        }
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| SealError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .aead
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut out[NONCE_LEN..],
            )
            .map_err(|_| SealError::TooLong(plain.len()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(Sealed(format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(out))))
    }

    /// `secret` sealed for `context`, keeping `stored` when it already opens to that same secret, so that
    /// re-importing an unchanged secret does not rewrite it with a fresh nonce.
    pub fn reseal(&self, stored: Option<Sealed>, secret: &SecretString, context: &str) -> Result<Sealed, SealError> {
        let unchanged = |s: &Sealed| {
            self.open(s, context).is_ok_and(|opened| {
                let (a, b) = (opened.expose_secret().as_bytes(), secret.expose_secret().as_bytes());
                aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
            })
        };
        match stored {
            Some(s) if unchanged(&s) => Ok(s),
            _ => self.seal(secret, context),
        }
    }

    /// Decrypts a value sealed for `context`; fails if the key, the context or the bytes differ.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<SecretString, SealError> {
        let encoded = sealed.0.strip_prefix(VERSION).ok_or(SealError::BadFormat)?;
        let mut bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError::BadFormat)?);
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::BadFormat);
        }
        let (nonce, rest) = bytes.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::BadFormat)?;
        let plain = self
            .aead
            .open_in_place(nonce, Aad::from(context.as_bytes()), rest)
            .map_err(|_| SealError::Unopenable)?;
        let text = std::str::from_utf8(plain).map_err(|_| SealError::Unopenable)?;
        Ok(SecretString::from(text.to_owned()))
    }
}

/// A secret as stored: ciphertext only, useless without the sealing key. Made by
/// [`SealingKey::seal`], or by [`Sealed::parse`] from what a store read back.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl Sealed {
    /// Accepts stored text of the right shape; whether it opens is [`SealingKey::open`]'s question.
    pub fn parse(text: impl Into<String>) -> Result<Self, SealError> {
        let text = text.into();
        let encoded = text.strip_prefix(VERSION).ok_or(SealError::BadFormat)?;
        let len = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| SealError::BadFormat)?.len();
        if len < NONCE_LEN + TAG_LEN {
            return Err(SealError::BadFormat);
        }
        Ok(Self(text))
    }

    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Ciphertext is not secret, but it is long and says nothing; its length is what a log needs.
impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} chars)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::generate().unwrap().0
    }

    #[test]
    fn opens_what_it_sealed_for_the_same_context_only() {
        let key = key();
        let sealed = key.seal(&"s3cr3t".into(), "oauth-client:a").unwrap();
        assert!(sealed.as_str().starts_with("v1."), "{sealed:?}");
        assert!(!sealed.as_str().contains("s3cr3t"));
        assert_eq!(key.open(&sealed, "oauth-client:a").unwrap().expose_secret(), "s3cr3t");
        assert!(matches!(
            key.open(&sealed, "oauth-client:b"),
            Err(SealError::Unopenable)
        ));
    }

    #[test]
    fn another_key_or_an_altered_value_does_not_open() {
        let (a, b) = (key(), key());
        let sealed = a.seal(&"s3cr3t".into(), "c").unwrap();
        assert!(matches!(b.open(&sealed, "c"), Err(SealError::Unopenable)));
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed.as_str()[3..]).unwrap();
        bytes[NONCE_LEN] ^= 1;
        let altered = Sealed::parse(format!("v1.{}", URL_SAFE_NO_PAD.encode(bytes))).unwrap();
        assert!(matches!(a.open(&altered, "c"), Err(SealError::Unopenable)));
    }

    #[test]
    fn mac_keys_are_the_same_per_key_and_purpose_and_independent_otherwise() {
        let (key, text) = SealingKey::generate().unwrap();
        let again = SealingKey::from_text(text.expose_secret()).unwrap();
        let tag = |k: &SealingKey, purpose: &str| hmac::sign(&k.mac_key(purpose), b"m").as_ref().to_vec();
        assert_eq!(
            tag(&key, "sso-nonce"),
            tag(&again, "sso-nonce"),
            "every function derives the same key"
        );
        assert_ne!(tag(&key, "sso-nonce"), tag(&key, "other"));
        assert_ne!(tag(&key, "sso-nonce"), tag(&self::key(), "sso-nonce"));
    }

    #[test]
    fn sealing_twice_gives_different_values() {
        let key = key();
        let secret: SecretString = "same".into();
        assert_ne!(key.seal(&secret, "c").unwrap(), key.seal(&secret, "c").unwrap());
    }

    #[test]
    fn the_text_form_round_trips_and_bad_keys_are_named() {
        let (key, text) = SealingKey::generate().unwrap();
        let again = SealingKey::from_text(&format!("{}\n", text.expose_secret())).unwrap();
        let sealed = key.seal(&"x".into(), "c").unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap().expose_secret(), "x");
        assert!(matches!(SealingKey::from_text("not base64!"), Err(SealError::BadKey)));
        assert!(matches!(
            SealingKey::from_text(&STANDARD.encode([0u8; 16])),
            Err(SealError::BadKey)
        ));
    }

    #[test]
    fn stored_text_is_checked_for_shape() {
        assert!(matches!(Sealed::parse("plain secret"), Err(SealError::BadFormat)));
        assert!(matches!(Sealed::parse("v1.AAAA"), Err(SealError::BadFormat)));
        assert!(matches!(Sealed::parse("v1.***"), Err(SealError::BadFormat)));
    }

    #[test]
    fn too_long_secrets_are_refused() {
        let long: SecretString = "x".repeat(MAX_SEALED_SECRET_LEN + 1).into();
        assert!(matches!(key().seal(&long, "c"), Err(SealError::TooLong(_))));
    }

    #[test]
    fn neither_prints_a_secret() {
        let (key, text) = SealingKey::generate().unwrap();
        let printed = format!("{key:?}");
        assert_eq!(printed, "SealingKey([REDACTED])");
        assert!(!printed.contains(text.expose_secret()));
        let sealed = key.seal(&"s3cr3t".into(), "c").unwrap();
        assert!(format!("{sealed:?}").starts_with("Sealed("));
    }
}
