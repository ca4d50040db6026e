//! License API v4 server core, shared by every Lambda function and the local server: authentication,
//! request parsing, business rules, rendering and response signing, and the storage contract with its
//! DynamoDB implementation. Handlers are plain async functions of (request, state).

pub mod auth;
pub mod error;
pub mod ids;
pub mod model;
pub mod request;
pub mod rules;
pub mod store;
pub mod time;
pub mod signing;
pub mod password;
pub mod render;
pub mod handlers;
pub mod http;
pub mod state;
pub mod config;
pub mod lambda;
pub mod client;
