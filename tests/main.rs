//! The integration suite, one test binary: each module is one area of behaviour, run on every setup of
//! `integration_tests::matrix!`. One binary links the AWS SDK, hyper and the server once instead of once
//! per file (docs/testing.md, "Build time"). Run one area with
//! `cargo test -p integration-tests --test integration bundles::`.

mod activation;
mod audit;
mod auth;
mod bounds;
mod bundles;
mod catalog;
mod change_password;
mod concurrency;
mod consumption;
mod credentials;
mod customer_license_users;
mod deactivation_and_check;
mod device_variables;
mod events;
mod faults;
mod floating;
mod hardening;
mod large_license;
mod listing;
mod management;
mod management_devices;
mod management_lists;
mod management_resources;
mod oauth;
mod offline;
mod offline_oauth;
mod offline_requests;
mod product_details;
mod round_trips;
mod sso;
mod sso_url;
mod trial_customers;
mod trials;
mod user_licenses;
mod user_privacy;
