//! Counts DynamoDB requests as they go on the wire, and how many *sequential* round trips they formed:
//! a new round trip starts whenever a request is sent while none is in flight, so two requests issued
//! concurrently count as two requests but one round trip of latency.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
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
}

impl Intercept for RoundTrips {
    fn name(&self) -> &'static str {
        "RoundTrips"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut c = self.0.lock().unwrap();
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
}
