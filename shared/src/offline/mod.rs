//! Offline activation and deactivation (SPEC §6): an air-gapped device writes a request file, a vendor's
//! support team uploads it, and the answer goes back to the device as a file. This module is the
//! transport only — reading the upload ([`transport`]), reading and verifying the request file
//! ([`payload`]) and, for our own client and tests, writing one ([`file`]). The activation and
//! deactivation themselves are the online ones (`handlers::offline`).

pub mod file;
pub mod payload;
pub mod transport;
