//! Choosing a store from command-line options: the embedded SQLite store under a data directory (the
//! default), or a DynamoDB table (AWS, or a local endpoint such as DynamoDB Local).

use clap::Args;
use license_api::store::dynamo::DynamoStore;
use license_api::store::sqlite::{IfMissing, SqliteStore};
use license_api::store::{Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// Data directory of the embedded store (default: $LICENSE_SERVER_DATA, else
    /// $XDG_DATA_HOME/license-server, else ~/.local/share/license-server).
    #[arg(long, value_name = "DIR", conflicts_with = "dynamodb_table")]
    pub data: Option<PathBuf>,
    /// Use this DynamoDB table instead of the embedded store.
    #[arg(long, value_name = "NAME")]
    pub dynamodb_table: Option<String>,
    /// DynamoDB endpoint URL (e.g. DynamoDB Local); default: AWS, from the usual AWS configuration.
    #[arg(long, value_name = "URL", requires = "dynamodb_table")]
    pub dynamodb_endpoint: Option<String>,
    /// Create the DynamoDB table if it does not exist (on-demand capacity).
    #[arg(long, requires = "dynamodb_table")]
    pub create_table: bool,
}

/// The database file inside a data directory.
pub const DB_FILE: &str = "license.db";

pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LICENSE_SERVER_DATA") {
        return dir.into();
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("license-server");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/share/license-server")
}

/// `keygen --data DIR` where DIR does not exist and `--create` was not given.
#[derive(Debug, thiserror::Error)]
#[error("data directory {} does not exist: check --data for a typo, or add --create to create it", .0.display())]
pub struct DataDirMissing(pub PathBuf);

impl StoreArgs {
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone().unwrap_or_else(default_data_dir)
    }

    /// Whether a command may create the embedded store: when asked (`create`: `--create`), or on the
    /// first run in the default data directory. A directory named with `--data` must exist otherwise,
    /// so a typo fails naming the path instead of filling a new, empty store.
    pub fn if_missing(&self, create: bool) -> IfMissing {
        if create || self.data.is_none() {
            IfMissing::Create
        } else {
            IfMissing::Fail
        }
    }

    /// The data directory `keygen` writes into, by the rule of [`Self::if_missing`].
    pub fn key_dir(&self, create: bool) -> Result<PathBuf, DataDirMissing> {
        let dir = self.data_dir();
        match self.if_missing(create) {
            IfMissing::Fail if matches!(dir.try_exists(), Ok(false)) => Err(DataDirMissing(dir)),
            _ => Ok(dir),
        }
    }

    /// Where this store's default signing key lives (embedded store only).
    pub fn default_signing_key(&self) -> Option<PathBuf> {
        self.dynamodb_table
            .is_none()
            .then(|| self.data_dir().join(crate::keys::PRIVATE_KEY_FILE))
    }

    /// Where this store's default sealing key lives (embedded store only), beside the signing key.
    pub fn default_sealing_key(&self) -> Option<PathBuf> {
        self.dynamodb_table
            .is_none()
            .then(|| self.data_dir().join(crate::keys::SEALING_KEY_FILE))
    }

    /// Where this store's default OAuth token keys live (embedded store only), beside the signing key.
    pub fn default_token_key(&self) -> Option<PathBuf> {
        self.dynamodb_table
            .is_none()
            .then(|| self.data_dir().join(crate::keys::TOKEN_KEY_FILE))
    }

    pub fn describe(&self) -> String {
        match &self.dynamodb_table {
            Some(t) => format!(
                "DynamoDB table {t}{}",
                self.dynamodb_endpoint
                    .as_ref()
                    .map(|e| format!(" at {e}"))
                    .unwrap_or_default()
            ),
            None => format!("embedded store {}", self.data_dir().join(DB_FILE).display()),
        }
    }

    /// The DynamoDB table `--dynamodb-table` names (`None`: the embedded store is chosen), unopened.
    pub async fn dynamodb(&self) -> Option<DynamoStore> {
        Some(self.dynamo_store(self.dynamodb_table.as_deref()?).await)
    }

    async fn dynamo_store(&self, table: &str) -> DynamoStore {
        // The full default provider chain: an operator's profile, SSO session or role.
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let client = license_api::store::dynamo::client_from(&sdk, self.dynamodb_endpoint.as_deref());
        DynamoStore::new(client, table)
    }

    /// Opens the store; `if_missing` applies to the embedded store (a table is created only with
    /// `--create-table`).
    pub async fn open(&self, if_missing: IfMissing) -> Result<Arc<dyn Store>, StoreError> {
        match &self.dynamodb_table {
            Some(table) => {
                let store = self.dynamo_store(table).await;
                if self.create_table {
                    store.create_table().await?;
                }
                Ok(Arc::new(store))
            }
            None => Ok(Arc::new(SqliteStore::open_with(
                self.data_dir().join(DB_FILE),
                if_missing,
            )?)),
        }
    }
}
