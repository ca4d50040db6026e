//! `license-server device …` and `license-server user …`: support's operations on a license's devices
//! and on license users (and `user list`) (docs/management-devices.md), from the command line, on the embedded store or
//! DynamoDB. Each runs the Management API's own operation (`license_api::management`) as
//! `Principal::cli(company)`, so its audit records say `cli:<OS user>`; text by default, `--json` for
//! the operation's output as the Management API returns it.

use crate::stores::StoreArgs;
use clap::{Args, Subcommand};
use license_api::auth::Principal;
use license_api::error::ApiError;
use license_api::ids::{CompanyId, HardwareId, LicenseKey, ProductCode, Username};
use license_api::management::devices::{
    self, BlacklistDevice, DevicePage, DeviceRef, DeviceView, LicenseInput, LicenseRef, ListDevices,
};
use license_api::management::lists::{self, ListItems, UserList};
use license_api::management::users::{self, AssignUser, SetPassword, UnassignUser};
use license_api::state::Core;
use license_api::store::listing::{DEFAULT_PAGE, MAX_PAGE};
use license_api::store::sqlite::IfMissing;
use license_api::store::ErrorChain;
use serde::Serialize;
use std::io::Read;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Where the command acts: the store, the company, and how to print.
#[derive(Args, Debug, Clone)]
pub struct Target {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Company code, as in the catalog.
    #[arg(long)]
    pub company: String,
    /// Print the operation's output as JSON (as the Management API answers).
    #[arg(long)]
    pub json: bool,
}

/// A license: its product and its key (key-based) or id (user-based).
#[derive(Args, Debug, Clone)]
pub struct LicenseArgs {
    /// The license's product code.
    #[arg(long)]
    pub product: String,
    /// The license key (key-based products); also `--license-key`, as `show` and `audit` spell it.
    #[arg(
        long,
        visible_alias = "license-key",
        conflicts_with = "license_id",
        required_unless_present = "license_id"
    )]
    pub key: Option<String>,
    /// The license id (user-based products).
    #[arg(long)]
    pub license_id: Option<i64>,
}

/// A license named optionally (`device blacklist`: the license to also free the device on).
#[derive(Args, Debug, Clone)]
pub struct OptionalLicense {
    /// Also free the device on a license of this product (with --key or --license-id).
    #[arg(long, requires = "license")]
    pub product: Option<String>,
    /// That license's key (key-based products).
    #[arg(long, visible_alias = "license-key", group = "license", requires = "product")]
    pub key: Option<String>,
    /// That license's id (user-based products).
    #[arg(long, group = "license", requires = "product")]
    pub license_id: Option<i64>,
}

#[derive(Subcommand, Debug, Clone)]
pub enum DeviceCommand {
    /// Every device of a license, active or not, a page at a time.
    List {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: LicenseArgs,
        /// Start after this hardware id (the previous page's last).
        #[arg(long)]
        after: Option<String>,
        /// At most this many devices (1 to 1000).
        #[arg(long, default_value_t = devices::DEFAULT_DEVICES_PAGE)]
        limit: usize,
    },
    /// Free one device, as its own deactivation would.
    Deactivate {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: LicenseArgs,
        /// The device's hardware id, as its client sends it.
        #[arg(long)]
        hardware_id: String,
    },
    /// Free every active device of a license (up to 100 a run: repeat while it says more remain).
    Reset {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: LicenseArgs,
    },
    /// Set a license's transfer count to 0.
    ResetTransfers {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: LicenseArgs,
    },
    /// Add a hardware id to the company's blacklist (and free it on the license named).
    Blacklist {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        license: OptionalLicense,
        /// The device's hardware id, as its client sends it.
        #[arg(long)]
        hardware_id: String,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Set or reset a license user's password (read from standard input, or generated and printed once).
    SetPassword {
        #[command(flatten)]
        target: Target,
        /// The license user's email.
        #[arg(long)]
        email: String,
        /// Read the new password from standard input (one line).
        #[arg(long, conflicts_with = "generate", required_unless_present = "generate")]
        password_stdin: bool,
        /// Generate a password, print it once, and have the user change it at first sign-in.
        #[arg(long)]
        generate: bool,
    },
    /// Assign a user to a user-based license with their own activation limit (0: unlimited).
    Assign {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        user: UserLicenseArgs,
        /// The user's own activation limit on the license (0: unlimited within the license's).
        #[arg(long, default_value_t = 0)]
        max_activations: i64,
    },
    /// List the company's license users by email, a page at a time (never a password or its hash).
    List {
        #[command(flatten)]
        target: Target,
        /// At most this many users.
        #[arg(long, default_value_t = DEFAULT_PAGE as u64, value_parser = clap::value_parser!(u64).range(1..=MAX_PAGE as u64))]
        limit: u64,
        /// Continue after an earlier page: the cursor it printed.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Remove a user from a user-based license (refused while their devices are active on it).
    Unassign {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        user: UserLicenseArgs,
    },
}

/// A license user and one of the user-based licenses they are (to be) assigned to.
#[derive(Args, Debug, Clone)]
pub struct UserLicenseArgs {
    /// The license user's email.
    #[arg(long)]
    pub email: String,
    /// The user-based license's product code.
    #[arg(long)]
    pub product: String,
    /// The license's id.
    #[arg(long)]
    pub license_id: i64,
}

impl UserLicenseArgs {
    /// The user's email and the license, as the operations take them.
    fn parse(&self) -> Result<(Username, LicenseRef), Error> {
        let license = LicenseRef {
            product: parsed("product", &self.product, ProductCode::parse)?,
            license_key: None,
            license_id: Some(self.license_id),
        };
        Ok((parsed("email", &self.email, Username::parse)?, license))
    }
}

/// An operation's failure as the operator reads it: the wire code and message, and for an internal
/// failure its cause (which a server would only log).
fn failed(e: ApiError) -> Error {
    match e {
        ApiError::Internal(cause) => format!("internal_error: {}", ErrorChain(&*cause)).into(),
        other => format!("{}: {other}", other.code()).into(),
    }
}

fn parsed<T, E: std::fmt::Display>(flag: &str, value: &str, parse: impl Fn(&str) -> Result<T, E>) -> Result<T, Error> {
    parse(value).map_err(|e| format!("--{flag} {e}").into())
}

impl LicenseArgs {
    fn reference(&self) -> Result<LicenseRef, Error> {
        Ok(LicenseRef {
            product: parsed("product", &self.product, ProductCode::parse)?,
            license_key: self
                .key
                .as_deref()
                .map(|k| parsed("key", k, LicenseKey::parse))
                .transpose()?,
            license_id: self.license_id,
        })
    }
}

impl OptionalLicense {
    fn reference(&self) -> Result<Option<LicenseRef>, Error> {
        let Some(product) = &self.product else { return Ok(None) };
        let named = LicenseArgs {
            product: product.clone(),
            key: self.key.clone(),
            license_id: self.license_id,
        };
        named.reference().map(Some)
    }
}

impl Target {
    /// The state the operations run on: the store, and the rest as `serve` would have it. None of
    /// these operations signs an answer, so no signing key is read.
    async fn state(&self) -> Result<(Core, Principal), Error> {
        let company = parsed("company", &self.company, CompanyId::parse)?;
        let state = Core::new(self.store.open(IfMissing::Fail).await?);
        Ok((state, Principal::cli(company)))
    }

    /// An operation's output as JSON, or as `text` renders it; its failure as [`failed`] says.
    fn show<O: Serialize>(
        &self,
        output: Result<O, ApiError>,
        text: impl FnOnce(&O) -> String,
    ) -> Result<String, Error> {
        let output = output.map_err(failed)?;
        Ok(if self.json {
            serde_json::to_string_pretty(&output)? + "\n"
        } else {
            text(&output)
        })
    }
}

impl DeviceCommand {
    /// Runs the command; what to print.
    pub async fn run(self) -> Result<String, Error> {
        match self {
            Self::List {
                target,
                license,
                after,
                limit,
            } => {
                let after = after.as_deref().map(|a| parsed("after", a, HardwareId::parse));
                let input = ListDevices {
                    license: license.reference()?,
                    after: after.transpose()?,
                    limit: Some(limit),
                };
                let (state, who) = target.state().await?;
                target.show(devices::list_devices(&state, &who, input).await, page_text)
            }
            Self::Deactivate {
                target,
                license,
                hardware_id,
            } => {
                let input = DeviceRef {
                    license: license.reference()?,
                    hardware_id: parsed("hardware-id", &hardware_id, HardwareId::parse)?,
                };
                let (state, who) = target.state().await?;
                let done = devices::deactivate_device(&state, &who, input).await;
                target.show(done, |d| format!("deactivated {}\n", d.hardware_id))
            }
            Self::Reset { target, license } => {
                let input = LicenseInput {
                    license: license.reference()?,
                };
                let (state, who) = target.state().await?;
                target.show(devices::reset_devices(&state, &who, input).await, |r| {
                    let more = if r.more { "; more remain: run it again" } else { "" };
                    format!("deactivated {} device(s){more}\n", r.deactivated.len())
                })
            }
            Self::ResetTransfers { target, license } => {
                let input = LicenseInput {
                    license: license.reference()?,
                };
                let (state, who) = target.state().await?;
                target.show(devices::reset_transfers(&state, &who, input).await, |r| {
                    format!("transfer count reset to 0 (was {})\n", r.transfer_count_before)
                })
            }
            Self::Blacklist {
                target,
                license,
                hardware_id,
            } => {
                let input = BlacklistDevice {
                    hardware_id: parsed("hardware-id", &hardware_id, HardwareId::parse)?,
                    license: license.reference()?,
                };
                let (state, who) = target.state().await?;
                target.show(devices::blacklist_device(&state, &who, input).await, |d| {
                    let listed = if d.added { "blacklisted" } else { "already blacklisted" };
                    let freed = if d.deactivated {
                        "; deactivated on the license"
                    } else {
                        ""
                    };
                    format!("{hardware_id} {listed}{freed}\n")
                })
            }
        }
    }
}

fn page_text(p: &DevicePage) -> String {
    let mut out = format!(
        "{} of {} activations used, {} transfers\n",
        p.times_activated, p.max_activations, p.transfer_count
    );
    out.extend(p.devices.iter().map(device_line));
    if let Some(next) = &p.next {
        out.push_str(&format!("more: --after {next}\n"));
    }
    out
}

fn device_line(d: &DeviceView) -> String {
    let state = if d.active { "active" } else { "inactive" };
    let seen = d.last_seen_at.map_or("never".to_owned(), |t| t.to_string());
    let user = d.user.as_ref().map(|u| format!(" user {u}")).unwrap_or_default();
    format!(
        "{} {state} activated {} last seen {seen}{user}\n",
        d.hardware_id, d.last_activated_at
    )
}

/// The new password from standard input: its first line, without the line ending.
fn password_from_stdin() -> Result<String, Error> {
    let mut text = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err("no password on standard input: pipe it in, or use --generate".into());
    }
    Ok(line)
}

impl UserCommand {
    /// Runs the command; what to print.
    pub async fn run(self) -> Result<String, Error> {
        match self {
            Self::List { target, limit, cursor } => {
                let input = ListItems {
                    cursor,
                    limit: Some(limit as usize),
                };
                let (state, who) = target.state().await?;
                target.show(lists::list_users(&state, &who, input).await, users_text)
            }
            Self::SetPassword {
                target,
                email,
                password_stdin,
                generate: _,
            } => {
                let input = SetPassword {
                    email: parsed("email", &email, Username::parse)?,
                    password: password_stdin.then(password_from_stdin).transpose()?,
                    initial: None,
                };
                let (state, who) = target.state().await?;
                target.show(users::set_password(&state, &who, input).await, |s| {
                    match &s.generated_password {
                        Some(p) => format!(
                            "password of {email} set to: {p}\n(shown once; the user changes it at first sign-in)\n"
                        ),
                        None => format!("password of {email} set\n"),
                    }
                })
            }
            Self::Assign {
                target,
                user,
                max_activations,
            } => {
                let (email, license) = user.parse()?;
                let input = AssignUser {
                    email,
                    license,
                    max_activations,
                };
                let UserLicenseArgs { email, license_id, .. } = user;
                let (state, who) = target.state().await?;
                target.show(users::assign_user(&state, &who, input).await, |d| {
                    let what = if d.already { "limit updated" } else { "assigned" };
                    format!(
                        "{email} {what} on license {license_id} (max activations {max_activations}, 0: unlimited)\n"
                    )
                })
            }
            Self::Unassign { target, user } => {
                let (email, license) = user.parse()?;
                let input = UnassignUser { email, license };
                let UserLicenseArgs { email, license_id, .. } = user;
                let (state, who) = target.state().await?;
                target.show(users::unassign_user(&state, &who, input).await, |d| {
                    let what = if d.removed {
                        "unassigned from"
                    } else {
                        "was not assigned to"
                    };
                    format!("{email} {what} license {license_id}\n")
                })
            }
        }
    }
}

/// One line per user, then the cursor to go on with.
fn users_text(page: &UserList) -> String {
    let mut out = String::new();
    for u in &page.users {
        let licenses: Vec<String> = u.licenses.iter().map(|(p, id)| format!("{p}/{id}")).collect();
        let password = if u.has_password { "password" } else { "no password" };
        out.push_str(&format!(
            "{}  id {}  {password}  licenses [{}]\n",
            u.email,
            u.id,
            licenses.join(", ")
        ));
    }
    if page.users.is_empty() {
        out.push_str("no users\n");
    }
    if let Some(cursor) = &page.cursor {
        out.push_str(&format!("more: --cursor {cursor}\n"));
    }
    out
}
