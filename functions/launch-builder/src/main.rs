//! launch-builder: launches the locked-down builder instance (idempotent per
//! build). Input: the state with `$.source`; output: `$.builder`.

use kiln::aws::Context;
use kiln::lambda::{self, LambdaEvent, Value};
use kiln::state::{Builder, LaunchRequest};

async fn handler(ctx: &Context, event: LambdaEvent<Value>) -> kiln::Result<Builder> {
    let request: LaunchRequest = lambda::parse(event)?;
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    kiln::builder::launch(ctx, &recipe, &request.trigger.build_id, &request.source).await
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}
