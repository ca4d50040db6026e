//! `license-server management-key …` and `license-server license …`: the Management API's operations
//! (`license_api::management`) from the command line, on the store `StoreArgs` opens, acting as
//! `Principal::cli` (every right; audited as `cli:<OS user>`). The same functions serve the HTTP
//! routes, so a command and its route answer alike; `--json` prints the route's body.

use crate::audit::RetentionArg;
use crate::stores::StoreArgs;
use clap::{Args, Subcommand};
use license_api::auth::Principal;
use license_api::ids::{CompanyId, IdError, LicenseKey, ManagementKeyId, ProductCode};
use license_api::management::{keys, licenses};
use license_api::state::Core;
use license_api::store::sqlite::IfMissing;
use serde::Serialize;
use serde_json::{Map, Value};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The store, the company and how to print: what every command of this module takes.
#[derive(Args)]
pub struct Target {
    #[command(flatten)]
    store: StoreArgs,
    /// Company code, as in the catalog.
    #[arg(long, value_parser = id::<CompanyId>)]
    company: CompanyId,
    /// Print the answer as JSON (the HTTP route's body).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    retention: RetentionArg,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Create a management key and print its token (shown this once: store it now).
    Create {
        #[command(flatten)]
        target: Target,
        /// Only reads: every change is refused with 403.
        #[arg(long)]
        read_only: bool,
        /// A label for people.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke a management key: requests with it answer 401 at once.
    Revoke {
        #[command(flatten)]
        target: Target,
        #[arg(value_parser = id::<ManagementKeyId>)]
        id: ManagementKeyId,
    },
    /// List the company's management keys (never their secrets).
    List {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_parser = id::<ManagementKeyId>)]
        cursor: Option<ManagementKeyId>,
    },
}

/// A license of a key-based product.
#[derive(Args)]
pub struct LicenseArg {
    #[arg(long, value_parser = id::<ProductCode>)]
    product: ProductCode,
    #[arg(long, value_parser = id::<LicenseKey>)]
    key: LicenseKey,
}

#[derive(Subcommand)]
pub enum LicenseCommand {
    /// Create a license of a key-based product (fields as a catalog's license entry, docs/catalog.md).
    Create {
        #[command(flatten)]
        target: Target,
        #[arg(long, value_parser = id::<ProductCode>)]
        product: ProductCode,
        /// The license key (default: a new XXXX-XXXX-XXXX-XXXX).
        #[arg(long, value_parser = id::<LicenseKey>)]
        key: Option<LicenseKey>,
        /// More fields of the catalog's license entry, as a JSON object, e.g. '{"max_activations": 3}'.
        #[arg(long, value_name = "JSON", value_parser = json_object)]
        fields: Option<Map<String, Value>>,
    },
    /// Print a license.
    Show {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: LicenseArg,
    },
    /// Disable a license: License API requests answer license_not_enabled.
    Disable {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: LicenseArg,
    },
    /// Enable a disabled license.
    Enable {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: LicenseArg,
    },
    /// Delete a license; refused while devices are active, unless --force.
    Delete {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: LicenseArg,
        #[arg(long)]
        force: bool,
    },
    /// List a company's licenses (of one product), a page at a time.
    List(crate::listing::PageArgs),
}

/// An identifier argument, checked as the API checks it.
fn id<T: TryFrom<String, Error = IdError>>(text: &str) -> Result<T, String> {
    T::try_from(text.to_owned()).map_err(|e| e.to_string())
}

fn json_object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

impl Target {
    /// The state the operations run on (they sign nothing: no signing key), and the command line as
    /// the principal.
    async fn open(&self) -> Result<(Core, Principal), Error> {
        let state = Core {
            audit_retention_days: self.retention.audit_retention_days,
            ..Core::new(self.store.open(IfMissing::Fail).await?)
        };
        Ok((state, Principal::cli(self.company.clone())))
    }

    fn print<T: Serialize>(&self, value: &T, text: impl FnOnce(&T) -> String) -> Result<(), Error> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            print!("{}", text(value));
        }
        Ok(())
    }
}

fn key_line(k: &keys::KeyView) -> String {
    let mut flags = Vec::new();
    k.read_only.then(|| flags.push("read-only"));
    k.revoked.then(|| flags.push("revoked"));
    format!("{}  {}  created {}  {}\n", k.id, k.name, k.created_at, flags.join(" "))
}

pub async fn run_key(command: KeyCommand) -> Result<(), Error> {
    match command {
        KeyCommand::Create {
            target,
            read_only,
            name,
        } => {
            let (state, principal) = target.open().await?;
            let created = keys::create(&state, &principal, keys::CreateKey { name, read_only }).await?;
            target.print(&created, |c| {
                format!(
                    "created management key {}\ntoken (shown once; send as Authorization: Bearer <token>):\n{}\n",
                    c.key.id, c.token
                )
            })
        }
        KeyCommand::Revoke { target, id } => {
            let (state, principal) = target.open().await?;
            let key = keys::revoke(&state, &principal, keys::KeyRef { id }).await?;
            target.print(&key, |k| format!("revoked management key {}\n", k.id))
        }
        KeyCommand::List { target, limit, cursor } => {
            let (state, principal) = target.open().await?;
            let page = keys::list(&state, &principal, keys::ListKeys { limit, cursor }).await?;
            target.print(&page, |p| {
                let mut text: String = p.items.iter().map(key_line).collect();
                if let Some(c) = &p.cursor {
                    text.push_str(&format!("more: --cursor {c}\n"));
                }
                text
            })
        }
    }
}

fn license_text(action: &str) -> impl FnOnce(&licenses::LicenseView) -> String + '_ {
    move |l| {
        let key = l.license_key.as_ref().map_or("-", LicenseKey::as_str);
        format!(
            "{action} license {key} of product {} (id {}): {}, {}/{} activations\n",
            l.product,
            l.id,
            if l.enabled { "enabled" } else { "disabled" },
            l.times_activated,
            l.max_activations
        )
    }
}

pub async fn run_license(command: LicenseCommand) -> Result<(), Error> {
    let (target, view, action) = match command {
        LicenseCommand::List(args) => {
            print!("{}", crate::listing::LicenseCommand::List(args).run().await?);
            return Ok(());
        }
        LicenseCommand::Create {
            target,
            product,
            key,
            fields,
        } => {
            let (state, principal) = target.open().await?;
            let mut entry = fields.unwrap_or_default();
            if let Some(key) = key {
                entry.insert("license_key".into(), key.as_str().into());
            }
            let input = licenses::CreateLicense { product, entry };
            (target, licenses::create(&state, &principal, input).await?, "created")
        }
        LicenseCommand::Show { target, license } => {
            let (state, principal) = target.open().await?;
            (target, licenses::show(&state, &principal, license.into()).await?, "the")
        }
        LicenseCommand::Disable { target, license } => {
            let (state, principal) = target.open().await?;
            (
                target,
                licenses::disable(&state, &principal, license.into()).await?,
                "disabled",
            )
        }
        LicenseCommand::Enable { target, license } => {
            let (state, principal) = target.open().await?;
            (
                target,
                licenses::enable(&state, &principal, license.into()).await?,
                "enabled",
            )
        }
        LicenseCommand::Delete { target, license, force } => {
            let (state, principal) = target.open().await?;
            let input = licenses::DeleteLicense {
                product: license.product,
                key: license.key,
                force,
            };
            (target, licenses::delete(&state, &principal, input).await?, "deleted")
        }
    };
    target.print(&view, license_text(action))
}

impl From<LicenseArg> for licenses::LicenseRef {
    fn from(a: LicenseArg) -> Self {
        Self {
            product: a.product,
            key: a.key,
        }
    }
}
