//! The floor of a cold start: a Lambda started exactly as kiln's functions
//! are (`#[tokio::main]`, the runtime's tracing subscriber, `lambda_runtime::run`)
//! that builds no AWS configuration and no client, and answers each event
//! with the event itself. `bench/coldstart.py` reports every function's
//! init, and init plus first event, as multiples of this one's.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<Value, Error>(event.payload)
    }))
    .await
}
