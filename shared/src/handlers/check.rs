//! `GET /api/v4/check_license` (SPEC §3 "Check"): reads the license and records the check on the device
//! concurrently, so a warm key-based check costs one round trip of latency.

use super::activate::ident;
use super::lookup;
use crate::auth::Access;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::render::{license_object, Identity, View};
use crate::request::Credentials;
use crate::rules::{self, LicenseContext};
use crate::state::AppState;
use crate::store::LicenseAddr;
use crate::time::Timestamp;

pub async fn handle(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let (auth, request) = super::authenticated(req, state, Access::Read).await?;
    let now = Timestamp::now();
    let store = &*state.store;
    let (hardware_id, details) = (&request.hardware_id, &request.details);
    let record = |addr: LicenseAddr| async move { store.record_check(&addr, hardware_id, details, now).await };
    // Key-based: the license's address is known from the request, so the read and the device update go
    // out together. User-based: the user's record names the license first.
    let (read, product, license, seat, user, touched) = match &request.credentials {
        Credentials::Key(key) => {
            let addr = LicenseAddr::Key {
                company: auth.key.company.clone(),
                product: request.product.clone(),
                key: key.clone(),
            };
            let (read, touched) = tokio::join!(lookup::read_context(state, &auth, &request, false), record(addr));
            let mut read = read?;
            let product = lookup::product(&mut read, &request)?;
            let license = lookup::key_license(&mut read, &request)?;
            (read, product, license, None, None, touched)
        }
        _ => {
            let mut read = lookup::read_context(state, &auth, &request, false).await?;
            let product = lookup::product(&mut read, &request)?;
            let (user, addr) = lookup::user_license(&mut read, &auth.key.company, &request, false).await?;
            let (found, touched) = tokio::join!(
                store.read_license(&addr, Some(&user.email), &request.hardware_id),
                record(addr.clone())
            );
            let found = found.map_err(ApiError::internal)?;
            let (Some(license), Some(seat)) = (found.license, found.seat) else {
                return Err(ApiError::LicenseNotFound("license user"));
            };
            (read, product, license, Some(seat), Some(user), touched)
        }
    };
    let ctx = LicenseContext {
        product,
        company: read.company.unwrap_or_default(),
        license,
        seat,
        device: touched.map_err(ApiError::internal)?,
    };
    rules::check(&ctx, &request.hardware_id)?;
    let device = ctx
        .device
        .as_ref()
        .ok_or_else(|| ApiError::internal("checked device missing"))?;
    let who = Identity {
        hardware_id: &request.hardware_id,
        ident: ident(&request),
        user: user.as_ref().zip(ctx.seat.as_ref()),
    };
    let body = license_object(&ctx, device, &who, View::Check, now, &state.signer);
    Ok(ApiResponse::signed_json(&body, &state.signer))
}
