//! The edge every kiln Lambda shares: tracing, the configuration read once
//! (clients made on first use, HTTPS trusting compiled-in roots), the event
//! parsed into the function's request type with the failing field named,
//! and errors returned under their stable names.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::aws::Context;
use crate::error::{Error, Result};

/// Parses an event into a request; a bad event is an
/// [`Error::InvalidInput`] that names the field.
pub fn parse<T: DeserializeOwned>(event: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(event).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            Error::InvalidInput(inner.to_string())
        } else {
            Error::InvalidInput(format!("{path}: {inner}"))
        }
    })
}

/// Answers one event as the Lambda does: the event parsed into `Req`, then
/// handled. Tests call Lambdas through it.
pub async fn answer<Req, Ans, H>(
    handler: &H,
    ctx: &Context,
    event: serde_json::Value,
) -> Result<Ans>
where
    Req: DeserializeOwned,
    H: AsyncFn(&Context, Req) -> Result<Ans>,
{
    handler(ctx, parse(event)?).await
}

/// Runs `handler` as a Lambda function: initialises tracing (JSON when the
/// function's log format is JSON), reads the configuration once from the
/// environment (clients are made on first use), and answers each event, parsed into `Req`, until the
/// runtime stops.
pub async fn run<Req, Ans, H>(handler: H) -> std::result::Result<(), lambda_runtime::Error>
where
    Req: DeserializeOwned,
    Ans: Serialize,
    H: AsyncFn(&Context, Req) -> Result<Ans>,
{
    lambda_runtime::tracing::init_default_subscriber();
    let ctx = Context::for_lambda().await;
    let ctx = &ctx;
    let handler = &handler;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            // Boxed: the handler's future is deep (the SDK's are), and the
            // runtime's own futures need not carry its layout.
            Box::pin(answer(handler, ctx, event.payload))
                .await
                .map_err(lambda_runtime::Diagnostic::from)
        },
    ))
    .await
}
