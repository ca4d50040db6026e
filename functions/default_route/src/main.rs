//! Lambda function behind the HTTP API's `$default` route: every request no other route matches gets
//! the SPEC error body (404 `not_found`, 405 `method_not_allowed`). All logic lives in the shared
//! `license_api` crate.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    license_api::lambda::run_default_route().await
}
