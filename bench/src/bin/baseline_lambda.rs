//! The cold-start baseline: the least a lambda_http function with DynamoDB can do — load the AWS
//! configuration, build a DynamoDB client, answer 200. Built with the same profile and SDK features as
//! the real functions, so the ratio measures only what the License API adds.

use lambda_http::{service_fn, Body, Request, Response};
use std::convert::Infallible;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let client = &client;
    lambda_http::run(service_fn(move |_: Request| async move {
        let _ = client;
        Ok::<_, Infallible>(Response::new(Body::from("ok")))
    }))
    .await
}
