//! Lambda function for `DeactivateBundleOffline`: all logic lives in the shared `license_api` crate.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    license_api::lambda::run(license_api::handlers::Endpoint::DeactivateBundleOffline).await
}
