//! Counts DynamoDB requests as they go on the wire, and how many *sequential* round trips they formed:
//! a new round trip starts whenever a request is sent while none is in flight, so two requests issued
//! concurrently count as two requests but one round trip of latency. It also records the items each
//! write names, so a test can tell which requests could conflict: DynamoDB cancels concurrent
//! transactions that share an item, and only those. And it counts the bytes of DynamoDB's answers: what a
//! request read, at a finer grain than the capacity units DynamoDB rounds to.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeDeserializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Counts {
    requests: usize,
    sequential: usize,
    in_flight: usize,
    received: usize,
    writes: Vec<Written>,
}

/// One write request: its operation and the items it names.
#[derive(Clone, Debug)]
pub struct Written {
    pub operation: String,
    pub items: Vec<ItemKey>,
}

/// An item's table key: (`PK`, `SK`).
pub type ItemKey = (String, String);

/// The write operations and where their request names each item's key.
const WRITES: &[(&str, &str)] = &[
    ("TransactWriteItems", ""),
    ("UpdateItem", "Key"),
    ("PutItem", "Item"),
    ("DeleteItem", "Key"),
];

fn item_key(value: &serde_json::Value) -> ItemKey {
    let part = |name: &str| value[name]["S"].as_str().unwrap_or_default().to_owned();
    (part("PK"), part("SK"))
}

/// The items a write request names, from its JSON body.
fn written_items(operation: &str, body: &serde_json::Value) -> Vec<ItemKey> {
    match WRITES.iter().find(|(op, _)| *op == operation) {
        Some((_, "")) => body["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object()?.values().next())
            .map(|action| {
                item_key(if action["Key"].is_null() {
                    &action["Item"]
                } else {
                    &action["Key"]
                })
            })
            .collect(),
        Some((_, field)) => vec![item_key(&body[*field])],
        None => Vec::new(),
    }
}

#[derive(Clone, Debug, Default)]
pub struct RoundTrips(Arc<Mutex<Counts>>);

impl RoundTrips {
    pub fn reset(&self) {
        *self.0.lock().unwrap() = Counts::default();
    }
    /// (requests sent, sequential round trips)
    pub fn get(&self) -> (usize, usize) {
        let c = self.0.lock().unwrap();
        (c.requests, c.sequential)
    }
    /// Bytes of the answers' bodies received.
    pub fn bytes_received(&self) -> usize {
        self.0.lock().unwrap().received
    }
    /// Every write request sent, in order.
    pub fn writes(&self) -> Vec<Written> {
        self.0.lock().unwrap().writes.clone()
    }
}

impl Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default();
        let body: serde_json::Value =
            serde_json::from_slice(request.body().bytes().unwrap_or_default()).unwrap_or_default();
        let written = written_items(operation, &body);
        let mut c = self.0.lock().unwrap();
        if !written.is_empty() {
            c.writes.push(Written {
                operation: operation.to_owned(),
                items: written,
            });
        }
        c.requests += 1;
        if c.in_flight == 0 {
            c.sequential += 1;
        }
        c.in_flight += 1;
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        _: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut c = self.0.lock().unwrap();
        c.in_flight = c.in_flight.saturating_sub(1);
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The body is buffered by now (DynamoDB's answers are not streamed).
        let received = context.response().body().bytes().map_or(0, <[u8]>::len);
        self.0.lock().unwrap().received += received;
        Ok(())
    }
}
