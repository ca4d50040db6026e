//! `GET /api/v4/check_license` (SPEC §3 "Check"): reads the license and records the check on the device
//! concurrently, so a warm key-based check costs one round trip of latency.

use super::activate::ident;
use super::lookup;
use crate::auth::Access;
use crate::error::ApiError;
use crate::http::{ApiRequest, ApiResponse};
use crate::render::{license_object, Identity, View};
use crate::request::{Credentials, LicenseRequest, Params};
use crate::rules::{self, LicenseContext};
use crate::state::AppState;
use crate::store::LicenseAddr;
use crate::time::Timestamp;
use std::time::SystemTime;

pub async fn handle(req: &ApiRequest, state: &AppState) -> Result<ApiResponse, ApiError> {
    let auth = state
        .auth
        .authenticate(&req.headers, &*state.store, Access::Read, SystemTime::now())
        .await?;
    let request = LicenseRequest::parse(&Params::from_query(req.query.as_deref())?)?;
    let now = Timestamp::now();
    let store = &*state.store;
    let (ctx, user) = match &request.credentials {
        Credentials::Key(key) => {
            let addr = LicenseAddr::Key {
                company: auth.key.company.clone(),
                product: request.product.clone(),
                key: key.clone(),
            };
            let (read, touched) = tokio::join!(
                lookup::read_context(state, &auth, &request, false),
                store.record_check(&addr, &request.hardware_id, &request.details, now),
            );
            let mut read = read?;
            let product = lookup::product(&mut read, &request)?;
            let license = lookup::key_license(&mut read, &request)?;
            let device = touched.map_err(ApiError::internal)?;
            let company = read.company.unwrap_or_default();
            (
                LicenseContext {
                    product,
                    company,
                    license,
                    seat: None,
                    device,
                },
                None,
            )
        }
        _ => {
            let mut read = lookup::read_context(state, &auth, &request, false).await?;
            let product = lookup::product(&mut read, &request)?;
            let (user, addr) = lookup::user_license(&mut read, &auth.key.company, &request, false).await?;
            let (found, touched) = tokio::join!(
                store.read_license(&addr, Some(&user.email), &request.hardware_id),
                store.record_check(&addr, &request.hardware_id, &request.details, now),
            );
            let found = found.map_err(ApiError::internal)?;
            let (Some(license), Some(seat)) = (found.license, found.seat) else {
                return Err(ApiError::LicenseNotFound("license user"));
            };
            let device = touched.map_err(ApiError::internal)?;
            let company = read.company.unwrap_or_default();
            (
                LicenseContext {
                    product,
                    company,
                    license,
                    seat: Some(seat),
                    device,
                },
                Some(user),
            )
        }
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
