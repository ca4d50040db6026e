//! Catalog fixtures: a company with API keys, products, key-based and user-based licenses. Each test
//! starts from `Fixture::new` and shapes licenses with closures, so the data sits next to the test.

use super::{Instance, Setup, TestEnv};
use license_api::client::LicenseClient;
use license_api::ids::OAuthClientId;
use license_api::ids::{ApiKeyId, CompanyId, HardwareId, LicenseKey, ProductCode, Username};
use license_api::model::{
    ApiKeyRecord, AuthorizationMethod, Company, License, LicenseUser, OAuthClientRecord, ProductDoc, Seat,
};
use license_api::offline::file::{self, RequestFile};
use license_api::offline::payload::Kind;
use license_api::password;
use license_api::plan::LicenseAddr;
use license_api::sealed::SealingKey;
use license_api::secret::SecretString;
use license_api::store::Store;
use serde_json::{json, Value};

pub const API_KEY: &str = "api-key-1";
pub const SHARED_KEY: &str = "shared-key-1";
pub const KEY_PRODUCT: &str = "kp";
pub const USER_PRODUCT: &str = "up";
pub const PASSWORD: &str = "correct horse";

pub struct Fixture {
    pub env: TestEnv,
    pub company: CompanyId,
    /// Serves requests; tests that race several instances make more with `env.instance()`.
    pub app: Instance,
    pub client: LicenseClient,
}

pub fn product_code(code: &str) -> ProductCode {
    ProductCode::parse(code).unwrap()
}

impl Fixture {
    /// A table with company `c1` (numeric id 7), API key `api-key-1`, a key-based product `kp` and a
    /// user-based product `up`.
    pub async fn new(setup: Setup) -> Self {
        let env = TestEnv::new(setup).await;
        let company = CompanyId::parse("c1").unwrap();
        let store = &*env.store;
        store
            .put_company(
                &company,
                &Company {
                    id: 7,
                    ..Company::default()
                },
            )
            .await
            .unwrap();
        store
            .put_api_key(&ApiKeyRecord {
                id: ApiKeyId::parse(API_KEY).unwrap(),
                company: company.clone(),
                shared_key: SHARED_KEY.into(),
                products: vec![],
                read_only: false,
                revoked: false,
                source: None,
            })
            .await
            .unwrap();
        let fixture_products = [
            ProductDoc {
                id: 11,
                code: product_code(KEY_PRODUCT),
                name: "Key Product".into(),
                ..ProductDoc::default()
            },
            ProductDoc {
                id: 12,
                code: product_code(USER_PRODUCT),
                name: "User Product".into(),
                authorization_method: AuthorizationMethod::User,
                ..ProductDoc::default()
            },
        ];
        for p in &fixture_products {
            store.put_product(&company, p).await.unwrap();
        }
        let app = env.instance().await;
        let client = app.client(API_KEY, SHARED_KEY);
        Self {
            env,
            company,
            app,
            client,
        }
    }

    pub fn store(&self) -> &dyn Store {
        &*self.env.store
    }

    pub async fn put_key(&self, id: &str, shape: impl FnOnce(&mut ApiKeyRecord)) -> LicenseClient {
        let mut rec = ApiKeyRecord {
            id: ApiKeyId::parse(id).unwrap(),
            company: self.company.clone(),
            shared_key: format!("{id}-secret"),
            products: vec![],
            read_only: false,
            revoked: false,
            source: None,
        };
        shape(&mut rec);
        self.store().put_api_key(&rec).await.unwrap();
        self.app.client(id, &rec.shared_key)
    }

    /// An OAuth client of the fixture's company, stored as an import stores it: secret `{id}-secret`,
    /// hashed and sealed with `sealing_key`. Returns the secret.
    pub async fn put_oauth_client(
        &self,
        id: &str,
        sealing_key: &SealingKey,
        shape: impl FnOnce(&mut OAuthClientRecord),
    ) -> String {
        let secret = format!("{id}-secret");
        let id = OAuthClientId::parse(id).unwrap();
        let sealed = SecretString::from(secret.clone());
        let mut rec = OAuthClientRecord {
            sealed_secret: sealing_key
                .seal(&sealed, &OAuthClientRecord::seal_context(&id))
                .unwrap(),
            id,
            company: self.company.clone(),
            secret_hash: password::hash(&secret),
            products: vec![],
            read_only: false,
            revoked: false,
            source: None,
        };
        shape(&mut rec);
        self.store().put_oauth_client(&rec).await.unwrap();
        secret
    }

    pub async fn put_product(&self, shape: impl FnOnce(&mut ProductDoc)) -> ProductDoc {
        let mut p = ProductDoc {
            id: 99,
            code: product_code("p-custom"),
            name: "Custom".into(),
            ..ProductDoc::default()
        };
        shape(&mut p);
        self.store().put_product(&self.company, &p).await.unwrap();
        p
    }

    pub async fn update_company(&self, shape: impl FnOnce(&mut Company)) {
        let mut c = Company {
            id: 7,
            ..Company::default()
        };
        shape(&mut c);
        self.store().put_company(&self.company, &c).await.unwrap();
    }

    fn license(&self, product: &str, id: i64, key: Option<&str>) -> License {
        let key = key.map(|k| LicenseKey::parse(k).unwrap());
        License {
            max_activations: 5,
            ..License::new(id, self.company.clone(), product_code(product), key)
        }
    }

    /// A key-based license of product `kp` (max 5 activations unless shaped otherwise).
    pub async fn key_license(&self, key: &str, shape: impl FnOnce(&mut License)) -> License {
        let id = 1000 + (key.bytes().map(u64::from).sum::<u64>() % 1000) as i64;
        let mut l = self.license(KEY_PRODUCT, id, Some(key));
        shape(&mut l);
        self.store().put_license(&l).await.unwrap();
        l
    }

    /// A user-based license of product `up` with id `id`.
    pub async fn user_license(&self, id: i64, shape: impl FnOnce(&mut License)) -> License {
        let mut l = self.license(USER_PRODUCT, id, None);
        shape(&mut l);
        self.store().put_license(&l).await.unwrap();
        l
    }

    /// `n` instances that derive trial users' initial passwords from one sealing key, as a
    /// deployment's functions do.
    pub async fn sealed_instances(&self, n: usize) -> Vec<Instance> {
        use license_api::secret::ExposeSecret;
        let (_, text) = SealingKey::generate().unwrap();
        let text = text.expose_secret().to_owned();
        let mut apps = Vec::new();
        for _ in 0..n {
            let key = SealingKey::from_text(&text).unwrap();
            apps.push(self.env.configured_instance(|s| s.with_sealing_key(Some(key))).await);
        }
        apps
    }

    /// A license user (password [`PASSWORD`]) assigned to `licenses` with their own activation limit.
    pub async fn user(&self, email: &str, id: i64, licenses: &[(&License, i64)]) -> LicenseUser {
        let user = LicenseUser {
            id,
            email: Username::parse(email).unwrap(),
            first_name: Some("Ann".into()),
            last_name: Some("Lee".into()),
            phone_number: None,
            is_initial_password: false,
            password_hash: Some(password::hash(PASSWORD)),
            licenses: licenses.iter().map(|(l, _)| (l.product.clone(), l.id)).collect(),
            bundle_licenses: Vec::new(),
            password_change_disabled: false,
            trial_password: false,
            password_changed_by_user: false,
            management_licenses: Vec::new(),
            source: None,
        };
        self.store().put_user(&self.company, &user).await.unwrap();
        for (license, max) in licenses {
            let seat = Seat {
                user: user.email.clone(),
                max_activations: *max,
                allow_unlimited_activations: *max == 0,
                total_activations: 0,
            };
            self.store().put_seat(&LicenseAddr::of(license), &seat).await.unwrap();
        }
        user
    }

    pub async fn license_now(&self, license: &License) -> License {
        self.store()
            .get_license(&LicenseAddr::of(license))
            .await
            .unwrap()
            .expect("license exists")
    }

    /// The license user `email`'s seat on `license` as stored now.
    pub async fn seat_now(&self, license: &License, email: &str) -> Seat {
        self.store()
            .get_seat(&LicenseAddr::of(license), &Username::parse(email).unwrap())
            .await
            .unwrap()
            .expect("seat exists")
    }

    /// (active devices, all devices) on the license.
    pub async fn device_counts(&self, license: &License) -> (usize, usize) {
        let devices = self.store().list_devices(&LicenseAddr::of(license)).await.unwrap();
        (devices.iter().filter(|d| d.active).count(), devices.len())
    }
}

pub fn key_body(key: &str, hw: &str) -> Value {
    json!({"product": KEY_PRODUCT, "hardware_id": hw, "license_key": key})
}

pub fn user_body(email: &str, hw: &str) -> Value {
    json!({"product": USER_PRODUCT, "hardware_id": hw, "username": email, "password": PASSWORD})
}

/// An offline request file for the key-based license `key` of `product`, naming the fixture's API key and
/// dated now; tests sign it with [`SHARED_KEY`] in the shape they need.
pub fn key_file(kind: Kind, product: &str, key: &str, hw: &str, request_id: Option<&str>) -> RequestFile {
    RequestFile {
        kind,
        product: product.into(),
        hardware_id: hw.into(),
        license_key: Some(key.into()),
        username: None,
        password: None,
        api_key: API_KEY.into(),
        date: file::rfc7231_date(std::time::SystemTime::now()),
        request_id: request_id.map(Into::into),
        extra: Default::default(),
    }
}

pub fn hw(s: &str) -> HardwareId {
    HardwareId::parse(s).unwrap()
}
