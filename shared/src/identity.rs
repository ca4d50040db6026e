//! License credentials → the license user they name (SPEC §2.1), before any license is looked up. A
//! license key and a username pass through; a single sign-on grant is handed to the resolver of its
//! kind, which answers with the user its identity provider vouches for. What follows (lookup, rules,
//! rendering, signing) therefore only ever sees a key or a user.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::ids::Username;
use crate::request::{Credentials, LicenseRequest, Proof, SsoGrant, SsoUrlRequest};
use async_trait::async_trait;
use std::sync::Arc;

pub mod nonce;
pub mod oidc;

/// Verifies single sign-on grants for one principal's company.
#[async_trait]
pub trait SsoResolver: Send + Sync {
    /// The license user the grant names, verified with the customer account's identity provider.
    async fn user(&self, principal: &Principal, grant: &SsoGrant) -> Result<Username, ApiError>;

    /// The identity provider's sign-in URL for a customer account of the principal's company
    /// (`GET /sso_url`). A resolver that only verifies grants answers that it makes none.
    async fn sign_in_url(&self, principal: &Principal, request: &SsoUrlRequest) -> Result<String, ApiError> {
        let _ = (principal, request);
        Err(ApiError::Validation(
            "this deployment's single sign-on verifies grants but makes no sign-in URLs".into(),
        ))
    }
}

/// Every resolver a deployment has; credentials without one are refused with a clear answer.
#[derive(Clone, Default)]
pub struct Resolvers {
    pub sso: Option<Arc<dyn SsoResolver>>,
}

impl Resolvers {
    /// The single sign-on resolver, or the answer for a deployment that has none.
    pub fn sso(&self) -> Result<&dyn SsoResolver, ApiError> {
        self.sso
            .as_deref()
            .ok_or_else(|| ApiError::Validation("single sign-on is not configured for this product".into()))
    }

    /// Replaces the request's credentials with what they name: after this, a request names its license
    /// by key or by user, never by an SSO grant.
    pub async fn resolve(&self, principal: &Principal, req: &mut LicenseRequest) -> Result<(), ApiError> {
        self.resolve_credentials(principal, &mut req.credentials).await
    }

    /// [`Self::resolve`] for credentials outside a license request (`user_licenses`).
    pub async fn resolve_credentials(
        &self,
        principal: &Principal,
        credentials: &mut Credentials,
    ) -> Result<(), ApiError> {
        let Credentials::Sso(grant) = &*credentials else {
            return Ok(());
        };
        let username = self.sso()?.user(principal, grant).await?;
        *credentials = Credentials::User {
            as_sent: username.as_str().to_owned(),
            proof: Proof::IdentityProvider(grant.customer_account_code.clone()),
            username,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Via;
    use crate::ids::{ApiKeyId, CompanyId};
    use crate::request::Params;

    struct Fixed;

    #[async_trait]
    impl SsoResolver for Fixed {
        async fn user(&self, _: &Principal, _: &SsoGrant) -> Result<Username, ApiError> {
            Ok(Username::parse("Ann@Example.com").unwrap())
        }
    }

    fn principal() -> Principal {
        Principal {
            company: CompanyId::parse("c").unwrap(),
            products: Vec::new(),
            read_only: false,
            via: Via::ApiKey(ApiKeyId::parse("k").unwrap()),
        }
    }

    fn sso_request() -> LicenseRequest {
        let body = br#"{"product":"p","hardware_id":"h","id_token":"t","customer_account_code":"acct"}"#;
        LicenseRequest::parse(&Params::from_json(body).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_grant_becomes_the_user_its_provider_names() {
        let mut req = sso_request();
        let resolvers = Resolvers {
            sso: Some(Arc::new(Fixed)),
        };
        resolvers.resolve(&principal(), &mut req).await.unwrap();
        let Credentials::User {
            username,
            as_sent,
            proof,
        } = &req.credentials
        else {
            panic!("resolved to a user: {req:?}")
        };
        assert_eq!(username.as_str(), "ann@example.com");
        assert_eq!(as_sent, "ann@example.com");
        assert!(matches!(proof, Proof::IdentityProvider(a) if a.as_str() == "acct"));
    }

    #[tokio::test]
    async fn without_a_resolver_a_grant_is_refused_and_keys_pass() {
        let mut req = sso_request();
        let err = Resolvers::default().resolve(&principal(), &mut req).await.unwrap_err();
        assert_eq!(err.code(), "validation_error");
        let body = br#"{"product":"p","hardware_id":"h","license_key":"K"}"#;
        let mut key = LicenseRequest::parse(&Params::from_json(body).unwrap()).unwrap();
        Resolvers::default().resolve(&principal(), &mut key).await.unwrap();
        assert!(matches!(key.credentials, Credentials::Key(_)));
    }

    #[test]
    fn grants_and_passwords_never_print() {
        let printed = format!("{:?}", sso_request());
        assert!(!printed.contains("\"t\""), "{printed}");
        assert!(printed.contains("REDACTED") && printed.contains("acct"), "{printed}");
    }
}
