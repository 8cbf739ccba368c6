//! resolve-source: finds the source image and the build fingerprint, and says
//! whether the build can be skipped. Input: the trigger; output: `$.source`.

use kiln::aws::Context;
use kiln::lambda::{self, LambdaEvent, Value};
use kiln::state::{Source, Trigger};

async fn handler(ctx: &Context, event: LambdaEvent<Value>) -> kiln::Result<Source> {
    let trigger: Trigger = lambda::parse(event)?;
    let recipe = ctx.recipe(&trigger.recipe)?;
    kiln::source::resolve(ctx, &recipe, trigger.force).await
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}
