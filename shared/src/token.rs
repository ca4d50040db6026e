//! OAuth access tokens (client credentials grant, docs/oauth.md): JWTs signed with ES256 by a
//! deployment key, verified in every function without a store read.
//!
//! The token keys are one or more PKCS#8 P-256 private keys in one PEM text (`TOKEN_KEY_*`,
//! `token-key.pem`): the first signs, every one verifies. Rotating is adding a new key first, and
//! removing the old one once every token it signed has expired ([`TOKEN_LIFETIME`]). A key's `kid` is
//! derived from its public key (the first 8 bytes of its SHA-256, in hex), so no name is configured and
//! two deployments of the same keys agree.
//!
//! Expiry is checked here against a time the caller gives (an injectable clock), after the signature:
//! a forged token is malformed whether or not its `exp` passed.

use crate::secret::SecretString;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::time::Duration;

/// How long an access token is valid (`expires_in` of the token endpoint, SPEC §7).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(480);
/// The `iss` of every token; a token of another issuer is malformed here.
pub const ISSUER: &str = "license-api";
/// Longest bearer token looked at: ours are ~400 bytes; anything far longer is not one of ours.
pub const MAX_TOKEN_LEN: usize = 2048;
/// Most keys in one token key text: a signing key and the keys of one or two rotations.
pub const MAX_TOKEN_KEYS: usize = 4;

/// What a token grants: `scope` is [`SCOPE_READ`] or [`SCOPE_READ_WRITE`].
pub const SCOPE_READ: &str = "license:read";
pub const SCOPE_READ_WRITE: &str = "license:read license:write";

#[derive(Debug, thiserror::Error)]
pub enum TokenKeyError {
    #[error("the token key text holds no PEM `PRIVATE KEY` block (create one with `license-server keygen`)")]
    Empty,
    #[error("the token key text holds {0} keys; at most {MAX_TOKEN_KEYS}")]
    TooMany(usize),
    #[error("token key {index} is not PEM: {reason}")]
    Pem { index: usize, reason: String },
    #[error("token key {index} is not a PKCS#8 P-256 (ES256) private key")]
    NotP256 { index: usize },
    #[error("no random bytes from the system: cannot create a token key")]
    Random,
}

/// Why a bearer token is refused; the wire codes of SPEC §1.2.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Well-formed and signed by one of our keys, but past its `exp`: `oauth_token_expired`.
    #[error("the access token has expired")]
    Expired,
    /// Anything else (shape, unknown `kid`, algorithm, signature, issuer, claims):
    /// `oauth_token_malformed`.
    #[error("the access token is malformed or not signed by this deployment")]
    Malformed,
}

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The client's `client_id`.
    pub sub: String,
    /// The client's company.
    pub company: String,
    pub scope: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

impl AccessClaims {
    /// The claims of a token issued at `now` (Unix seconds) for [`TOKEN_LIFETIME`].
    pub fn new(client_id: &str, company: &str, read_only: bool, now: i64) -> Self {
        Self {
            iss: ISSUER.to_owned(),
            sub: client_id.to_owned(),
            company: company.to_owned(),
            scope: if read_only { SCOPE_READ } else { SCOPE_READ_WRITE }.to_owned(),
            iat: now,
            exp: now + TOKEN_LIFETIME.as_secs() as i64,
        }
    }
}

struct VerifyingKey {
    kid: String,
    key: DecodingKey,
}

/// The deployment's token keys. Prints only the `kid`s.
pub struct TokenKeys {
    signing: EncodingKey,
    verifying: Vec<VerifyingKey>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys").field("kids", &self.kids()).finish()
    }
}

fn kid_of(public_point: &[u8]) -> String {
    Sha256::digest(public_point)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl TokenKeys {
    /// Parses one or more `PRIVATE KEY` PEM blocks; the first signs.
    pub fn from_pem(text: &str) -> Result<Self, TokenKeyError> {
        let blocks = pem::parse_many(text).map_err(|e| TokenKeyError::Pem {
            index: 0,
            reason: e.to_string(),
        })?;
        match blocks.len() {
            0 => return Err(TokenKeyError::Empty),
            n if n > MAX_TOKEN_KEYS => return Err(TokenKeyError::TooMany(n)),
            _ => {}
        }
        let mut signing = None;
        let mut verifying = Vec::with_capacity(blocks.len());
        for (index, block) in blocks.iter().enumerate() {
            if block.tag() != "PRIVATE KEY" {
                return Err(TokenKeyError::Pem {
                    index,
                    reason: format!("a `{}` block, not `PRIVATE KEY`", block.tag()),
                });
            }
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, block.contents())
                .map_err(|_| TokenKeyError::NotP256 { index })?;
            let public = pair.public_key().as_ref();
            verifying.push(VerifyingKey {
                kid: kid_of(public),
                key: DecodingKey::from_ec_der(public),
            });
            signing.get_or_insert_with(|| EncodingKey::from_ec_der(block.contents()));
        }
        Ok(Self {
            signing: signing.ok_or(TokenKeyError::Empty)?,
            verifying,
        })
    }

    /// A new P-256 key as PEM text (what `token-key.pem` holds).
    pub fn generate_pem() -> Result<SecretString, TokenKeyError> {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|_| TokenKeyError::Random)?;
        Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", doc.as_ref())).into())
    }

    /// The `kid`s, signing key first.
    pub fn kids(&self) -> Vec<&str> {
        self.verifying.iter().map(|k| k.kid.as_str()).collect()
    }

    /// A signed token carrying `claims`, with the signing key's `kid`.
    pub fn issue(&self, claims: &AccessClaims) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.verifying[0].kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing).expect("ES256 signing with a parsed P-256 key cannot fail")
    }

    /// The claims of `token` if one of our keys signed it and it has not expired at `now` (Unix
    /// seconds): only ES256, only a known `kid`, only our issuer.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let key = self
            .verifying
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(TokenError::Malformed)?;
        let mut validation = Validation::new(Algorithm::ES256);
        // Expiry is checked below against the caller's clock; `exp` must still be present.
        validation.validate_exp = false;
        validation.required_spec_claims = ["exp", "iss", "sub"].map(str::to_owned).into();
        validation.set_issuer(&[ISSUER]);
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key.key, &validation)
            .map_err(|_| TokenError::Malformed)?
            .claims;
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ExposeSecret;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const NOW: i64 = 1_800_000_000;

    fn keys() -> TokenKeys {
        TokenKeys::from_pem(TokenKeys::generate_pem().unwrap().expose_secret()).unwrap()
    }

    fn claims() -> AccessClaims {
        AccessClaims::new("ci-1", "acme", false, NOW)
    }

    #[test]
    fn a_token_verifies_until_it_expires() {
        let keys = keys();
        let token = keys.issue(&claims());
        assert_eq!(keys.verify(&token, NOW).unwrap(), claims());
        assert_eq!(claims().exp - claims().iat, 480);
        assert!(keys.verify(&token, NOW + 479).is_ok());
        assert_eq!(keys.verify(&token, NOW + 480), Err(TokenError::Expired));
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::ES256);
        assert_eq!(header.kid.as_deref(), Some(keys.kids()[0]));
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_while_both_keys_are_configured() {
        let (old, new) = (TokenKeys::generate_pem().unwrap(), TokenKeys::generate_pem().unwrap());
        let before = TokenKeys::from_pem(old.expose_secret()).unwrap();
        let token = before.issue(&claims());
        let overlap = TokenKeys::from_pem(&format!("{}{}", new.expose_secret(), old.expose_secret())).unwrap();
        assert_eq!(overlap.kids().len(), 2);
        assert!(
            overlap.verify(&token, NOW).is_ok(),
            "old tokens verify during the overlap"
        );
        let fresh = overlap.issue(&claims());
        assert_ne!(
            jsonwebtoken::decode_header(&fresh).unwrap().kid,
            jsonwebtoken::decode_header(&token).unwrap().kid
        );
        let after = TokenKeys::from_pem(new.expose_secret()).unwrap();
        assert!(after.verify(&fresh, NOW).is_ok());
        assert_eq!(after.verify(&token, NOW), Err(TokenError::Malformed), "old key removed");
    }

    #[test]
    fn forged_tampered_and_foreign_tokens_are_malformed_even_when_expired() {
        let (keys, other) = (keys(), self::keys());
        let token = keys.issue(&claims());
        // Another deployment's key (an unknown kid), and the same kid with another key's signature.
        assert_eq!(keys.verify(&other.issue(&claims()), NOW), Err(TokenError::Malformed));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let foreign_sig = other.issue(&claims()).rsplit('.').next().unwrap().to_owned();
        parts[2] = foreign_sig;
        assert_eq!(keys.verify(&parts.join("."), NOW), Err(TokenError::Malformed));
        // A tampered payload: another client, signature unchanged; expired or not.
        let mut tampered: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut forged = claims();
        forged.sub = "ci-2".into();
        tampered[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        assert_eq!(keys.verify(&tampered.join("."), NOW), Err(TokenError::Malformed));
        assert_eq!(
            keys.verify(&tampered.join("."), NOW + 10_000),
            Err(TokenError::Malformed)
        );
        // `alg: none`, HS256 with the kid, garbage, an empty string and an oversized one.
        let kid = keys.kids()[0];
        let head = |alg: &str| URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"{kid}"}}"#));
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims()).unwrap());
        assert_eq!(
            keys.verify(&format!("{}.{body}.", head("none")), NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            keys.verify(&format!("{}.{body}.c2ln", head("HS256")), NOW),
            Err(TokenError::Malformed)
        );
        for junk in ["", "a.b.c", "not a token", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert_eq!(keys.verify(junk, NOW), Err(TokenError::Malformed), "{junk:.20}");
        }
        // Another issuer, signed by our key.
        let mut foreign = claims();
        foreign.iss = "someone-else".into();
        assert_eq!(keys.verify(&keys.issue(&foreign), NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn key_text_errors_are_named_and_keys_do_not_print() {
        assert!(matches!(TokenKeys::from_pem(""), Err(TokenKeyError::Empty)));
        let rsa_like = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2, 3]));
        assert!(matches!(
            TokenKeys::from_pem(&rsa_like),
            Err(TokenKeyError::NotP256 { index: 0 })
        ));
        let public = pem::encode(&pem::Pem::new("PUBLIC KEY", vec![1, 2, 3]));
        assert!(matches!(
            TokenKeys::from_pem(&public),
            Err(TokenKeyError::Pem { index: 0, .. })
        ));
        let pem = TokenKeys::generate_pem().unwrap();
        let five = pem.expose_secret().repeat(5);
        assert!(matches!(TokenKeys::from_pem(&five), Err(TokenKeyError::TooMany(5))));
        let keys = TokenKeys::from_pem(pem.expose_secret()).unwrap();
        let printed = format!("{keys:?}");
        assert!(
            printed.contains(keys.kids()[0]) && !printed.contains("PRIVATE"),
            "{printed}"
        );
    }

    #[test]
    fn read_only_clients_get_the_read_scope() {
        assert_eq!(AccessClaims::new("c", "a", true, NOW).scope, SCOPE_READ);
        assert_eq!(AccessClaims::new("c", "a", false, NOW).scope, SCOPE_READ_WRITE);
    }
}
