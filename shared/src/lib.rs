//! License API v4 server core, shared by every Lambda function and the local server: authentication,
//! request parsing, business rules, rendering and response signing, and the storage contract with its
//! DynamoDB implementation. Handlers are plain async functions of (request, state).

pub mod audit;
pub mod auth;
pub mod cache;
pub mod catalog;
pub mod client;
pub mod config;
pub mod error;
pub mod handlers;
pub mod http;
pub mod identity;
pub mod ids;
pub mod import;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod management;
pub mod model;
pub mod offline;
pub mod password;
pub mod plan;
pub mod render;
pub mod request;
pub mod rules;
pub mod sealed;
pub mod secret;
pub mod signature_cache;
pub mod signing;
pub mod state;
pub mod store;
pub mod time;
pub mod token;

/// An error's cause, kept whole for its source chain (the log prints it; the wire never sees it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
