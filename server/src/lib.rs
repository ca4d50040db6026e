//! The standalone License API server: the same handlers the Lambda functions run, served over HTTP by
//! axum on hyper, on the embedded SQLite store or on DynamoDB; plus the operator commands (import, keygen,
//! show/export, demo, smoke, and the generator of what the endpoint table implies) behind the
//! `license-server` binary.

pub mod audit;
pub mod demo;
pub mod events;
pub mod generate;
pub mod head;
pub mod http_server;
pub mod import;
pub mod inspect;
pub mod keys;
pub mod limits;
pub mod listing;
pub mod manage;
pub mod reindex;
pub mod resources;
pub mod router;
pub mod smoke;
pub mod stores;
pub mod support;
