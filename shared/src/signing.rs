//! Response signatures (SPEC §5): RSA PKCS#1 v1.5 with SHA-256 from aws-lc-rs. The private key is parsed
//! once per process; it is never logged (`Signer`'s `Debug` shows only the public key's size). The v1
//! license signatures it makes are cached per signer (`signature_cache`), and it counts the RSA
//! operations it performs ([`Signer::signatures`]), so tests and benchmarks can see what a request costs.

use crate::ids::HardwareId;
use crate::signature_cache::SignatureCache;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair, UnparsedPublicKey};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the signing key is not PEM: {0}")]
    NotPem(#[from] pem::PemError),
    #[error("the signing key PEM holds `{0}`, expected `PRIVATE KEY` (PKCS#8) or `RSA PRIVATE KEY` (PKCS#1)")]
    WrongTag(String),
    #[error("the signing key was rejected: {0}")]
    Rejected(String),
    #[error("key generation failed")]
    Generation,
}

pub struct Signer {
    key: RsaKeyPair,
    rng: SystemRandom,
    public_pem: String,
    /// The v1 license signatures this key made: only this key's, so a rotation never serves old ones.
    license_signatures: SignatureCache,
    /// RSA signatures made so far.
    signatures: AtomicU64,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer(RSA-{})", self.key.public_modulus_len() * 8)
    }
}

impl Signer {
    /// Parses a PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`) PEM.
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let block = pem::parse(pem_text.trim())?;
        let key = match block.tag() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(block.contents()),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(block.contents()),
            other => return Err(KeyError::WrongTag(other.to_owned())),
        }
        .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Self::from_key(key)
    }

    fn from_key(key: RsaKeyPair) -> Result<Self, KeyError> {
        let spki = key.public_key().as_der().map_err(|_| KeyError::Generation)?;
        let public_pem = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()));
        Ok(Self {
            license_signatures: SignatureCache::new(key.public_modulus_len()),
            key,
            rng: SystemRandom::new(),
            public_pem,
            signatures: AtomicU64::new(0),
        })
    }

    /// A new key pair and its private key as PKCS#8 PEM.
    pub fn generate(bits: usize) -> Result<(Self, String), KeyError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            8192 => KeySize::Rsa8192,
            _ => {
                return Err(KeyError::Rejected(format!(
                    "unsupported key size {bits}; use 2048, 3072, 4096 or 8192"
                )))
            }
        };
        let key = RsaKeyPair::generate(size).map_err(|_| KeyError::Generation)?;
        let der = key.as_der().map_err(|_| KeyError::Generation)?;
        let private_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        Ok((Self::from_key(key)?, private_pem))
    }

    /// The public key as SPKI PEM (`BEGIN PUBLIC KEY`), what clients are configured with.
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// base64(RSA-SHA256(message)).
    pub fn sign(&self, message: &[u8]) -> String {
        let mut sig = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
            .expect("signing with a validated key and a correctly sized buffer cannot fail");
        self.signatures.fetch_add(1, Ordering::Relaxed);
        B64.encode(sig)
    }

    /// The v1 `license_signature` inside a license object (SPEC §5.2); made once per (hardware id,
    /// identity, validity) while it stays in this signer's cache.
    pub fn license_signature(&self, hardware_id: &HardwareId, ident: &str, validity: Option<&str>) -> String {
        let message = license_signature_message(hardware_id.as_str(), ident, validity.unwrap_or(""));
        self.license_signatures
            .get_or_sign(message.as_bytes(), |m| self.sign(m))
    }

    /// How many RSA signatures this signer has made (cache hits are not signatures).
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }
}

/// `lowercase(hardware_id + "#" + ident + "#" + validity)`, with `ident` cut at its first `|`.
pub fn license_signature_message(hardware_id: &str, ident: &str, validity: &str) -> String {
    let ident = ident.split('|').next().unwrap_or("");
    format!("{hardware_id}#{ident}#{validity}").to_lowercase()
}

/// Verifies base64(RSA-SHA256) against an SPKI PEM public key.
pub fn verify(public_key_pem: &str, message: &[u8], signature_b64: &str) -> bool {
    let Ok(block) = pem::parse(public_key_pem.trim()) else {
        return false;
    };
    let Ok(sig) = B64.decode(signature_b64.trim()) else {
        return false;
    };
    UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, block.contents())
        .verify(message, &sig)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies_and_round_trips_pem() {
        let (signer, private_pem) = Signer::generate(2048).unwrap();
        let sig = signer.sign(b"body");
        assert!(verify(signer.public_key_pem(), b"body", &sig));
        assert!(!verify(signer.public_key_pem(), b"bodY", &sig));
        let again = Signer::from_pem(&private_pem).unwrap();
        assert_eq!(again.public_key_pem(), signer.public_key_pem());
        assert!(!format!("{signer:?}").contains("PRIVATE"));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let (signer, private_pem) = Signer::generate(2048).unwrap();
        let printed = format!("{signer:?}");
        assert_eq!(printed, "Signer(RSA-2048)");
        // No line of either PEM body (base64 of the key) appears.
        for line in private_pem.lines().chain(signer.public_key_pem().lines()) {
            assert!(line.starts_with("-----") || !printed.contains(line), "{printed}");
        }
    }

    #[test]
    fn license_signature_message_follows_spec() {
        assert_eq!(
            license_signature_message("HW-1", "Ann@X.com|sso", "2030-01-01T00:00:00.000Z"),
            "hw-1#ann@x.com#2030-01-01t00:00:00.000z"
        );
        assert_eq!(license_signature_message("h", "KEY", ""), "h#key#");
    }

    #[test]
    fn a_cached_license_signature_is_the_uncached_one_byte_for_byte() {
        let (signer, _) = Signer::generate(2048).unwrap();
        let hw = HardwareId::parse("HW-1").unwrap();
        let uncached = signer.sign(license_signature_message("HW-1", "Ann@X.com|sso", "2030").as_bytes());
        let first = signer.license_signature(&hw, "Ann@X.com|sso", Some("2030"));
        let made = signer.signatures();
        let again = signer.license_signature(&hw, "ann@x.com", Some("2030"));
        assert_eq!(
            signer.signatures(),
            made,
            "the same message (after lowercasing) is not signed again"
        );
        assert_eq!((first.as_str(), again.as_str()), (uncached.as_str(), uncached.as_str()));
        // Another validity is another message: signed anew, and verifying only as itself.
        let other = signer.license_signature(&hw, "ann@x.com", None);
        assert_eq!(signer.signatures(), made + 1);
        let message = license_signature_message("HW-1", "ann@x.com", "");
        assert!(verify(signer.public_key_pem(), message.as_bytes(), &other));
        assert_ne!(other, first);
    }

    #[test]
    fn another_key_never_gets_a_cached_signature() {
        let (old, _) = Signer::generate(2048).unwrap();
        let (new, _) = Signer::generate(2048).unwrap();
        let hw = HardwareId::parse("h").unwrap();
        let message = license_signature_message("h", "KEY", "");
        let by_old = old.license_signature(&hw, "KEY", None);
        let by_new = new.license_signature(&hw, "KEY", None);
        assert_eq!(new.signatures(), 1, "the new key signs for itself");
        assert!(verify(new.public_key_pem(), message.as_bytes(), &by_new));
        assert!(!verify(new.public_key_pem(), message.as_bytes(), &by_old));
        assert_eq!(new.license_signature(&hw, "KEY", None), by_new);
        assert_eq!(old.license_signature(&hw, "KEY", None), by_old);
        assert_eq!((old.signatures(), new.signatures()), (1, 1));
    }

    #[test]
    fn rejects_non_key_pem() {
        assert!(matches!(
            Signer::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"),
            Err(KeyError::WrongTag(_))
        ));
        assert!(Signer::from_pem("nonsense").is_err());
    }
}
