//! The Management API's operations (docs/management.md): what a vendor does to its own licenses,
//! devices, users and keys. Each operation is a plain async function of the state (`state::Core`: the
//! store and the write's settings, without the License API's signer), the
//! [`Principal`](crate::auth::Principal) it acts as (a management key, or the command line through
//! [`Principal::cli`](crate::auth::Principal::cli)) and its typed input, returning its typed output or an
//! [`ApiError`](crate::error::ApiError). The HTTP router (`/api/management/v1/`, on the standalone server
//! and the `management` Lambda function) and the `license-server` subcommands both call these, so an
//! operation is written once. Writes go through the same mechanisms as the License API's, so their
//! invariants, retries and audit records are those of the License API.

pub mod api_keys;
pub mod at_paths;
pub mod cors;
pub(crate) mod credential;
pub mod idempotency;
pub mod keys;
pub mod license_users;
pub mod licenses;
pub mod lists;
pub mod oauth_clients;
pub mod op;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod products;
pub mod routes;
pub mod trail;

pub(crate) use op::{create_once, write_once};
pub use op::{page_limit, Page, DEFAULT_PAGE, MAX_PAGE};
pub mod devices;
pub(crate) mod guarded;
pub mod search;
pub mod users;
