//! create-image: `start` images the provisioned builder; `poll` reports until
//! the image is available, verified and tagged, and the builder terminated.
//! Input: the state with `$.source` and `$.builder` (and `$.image` to poll);
//! output: `$.image`.

use kiln::aws::Context;
use kiln::lambda::{self, LambdaEvent, Value};
use kiln::state::{Action, Image, ImageRequest};

async fn handler(ctx: &Context, event: LambdaEvent<Value>) -> kiln::Result<Image> {
    let request: ImageRequest = lambda::parse(event)?;
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    let build_id = &request.trigger.build_id;
    match request.action {
        Action::Start => {
            kiln::image::start(ctx, &recipe, build_id, &request.source, &request.builder).await
        }
        Action::Poll => {
            let image = kiln::state::required(request.image, "image")?;
            kiln::image::poll(ctx, &recipe, build_id, &image).await
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}
