//! run-ssm-provision: `start` sends a recipe step to the builder through SSM
//! Run Command; `poll` reports on it. Input: the state with `$.builder` (and
//! `$.provision` to poll or to start a later step); output: `$.provision`.

use kiln::aws::Context;
use kiln::lambda::{self, LambdaEvent, Value};
use kiln::state::{Action, Provision, ProvisionRequest};

async fn handler(ctx: &Context, event: LambdaEvent<Value>) -> kiln::Result<Provision> {
    let request: ProvisionRequest = lambda::parse(event)?;
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    let build_id = &request.trigger.build_id;
    match (request.action, request.provision) {
        (Action::Start, provision) => {
            let step = provision.map_or(0, |p| p.step);
            kiln::provision::start(ctx, &recipe, build_id, &request.builder, step).await
        }
        (Action::Poll, provision) => {
            let provision = kiln::state::required(provision, "provision")?;
            kiln::provision::poll(ctx, &recipe, build_id, &request.builder, &provision).await
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}
