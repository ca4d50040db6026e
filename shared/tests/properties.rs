//! Property tests of everything that reads untrusted input before any store is involved: request
//! parsing, the `Authorization`/`Date` checks and the catalog validator. Arbitrary input must never
//! panic, and every rejection must be the SPEC error a client can act on (or, for catalogs, name the
//! entry at fault). One test binary keeps link time down; the case count per property is proptest's
//! default (256), raised with `PROPTEST_CASES` for a longer local run. The cargo-fuzz targets in
//! `fuzz/` drive the same parsers with coverage guidance (docs/testing.md).

#[path = "properties/auth.rs"]
mod auth;
#[path = "properties/catalog.rs"]
mod catalog;
#[path = "properties/request.rs"]
mod request;
#[path = "properties/strategies.rs"]
mod strategies;
