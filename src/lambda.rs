//! The edge every kiln Lambda shares: tracing, clients built once, event
//! parsing with the failing field named, and errors returned under their
//! stable names.

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use lambda_runtime::LambdaEvent;
pub use serde_json::Value;

use crate::aws::Context;
use crate::error::{Error, Result};

/// Parses an event into the request type of a step; a bad event is an
/// [`Error::InvalidInput`] that names the field.
pub fn parse<T: DeserializeOwned>(event: LambdaEvent<Value>) -> Result<T> {
    serde_path_to_error::deserialize(event.payload).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            Error::InvalidInput(inner.to_string())
        } else {
            Error::InvalidInput(format!("{path}: {inner}"))
        }
    })
}

/// An answer as JSON, for handlers that answer different types by request.
pub fn json(answer: impl Serialize) -> Result<Value> {
    serde_json::to_value(answer)
        .map_err(|err| Error::InvalidInput(format!("cannot encode the answer: {err}")))
}

/// Runs `handler` as a Lambda function: initialises tracing (JSON when the
/// function's log format is JSON), builds the clients once from the
/// environment, and answers each event until the runtime stops.
pub async fn run<R, H>(handler: H) -> std::result::Result<(), lambda_runtime::Error>
where
    R: Serialize,
    H: AsyncFn(&Context, LambdaEvent<Value>) -> Result<R>,
{
    lambda_runtime::tracing::init_default_subscriber();
    let ctx = Context::from_env().await;
    let ctx = &ctx;
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(move |event| async move {
        handler(ctx, event)
            .await
            .map_err(lambda_runtime::Diagnostic::from)
    }))
    .await
}
