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
    let trigger = &request.trigger;
    match request.action {
        Action::Start => {
            kiln::image::start(ctx, &recipe, trigger, &request.source, &request.builder).await
        }
        Action::Poll => {
            let image = kiln::state::required(request.image, "image")?;
            kiln::image::poll(ctx, &recipe, trigger, &image).await
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::types::Image as Ec2Image;
    use aws_smithy_mocks::mock;
    use kiln::state::ImageState;
    use serde_json::json;

    use super::*;

    fn event(action: &str) -> LambdaEvent<Value> {
        let payload = json!({
            "action": action,
            "recipe": "ubuntu-base",
            "build_id": "b1",
            "source": {
                "source_ami": "ami-0a1b2c3d4e5f60001",
                "source_name": "ubuntu",
                "serial": null,
                "root_device_name": "/dev/sda1",
                "fingerprint": "ab".repeat(32),
                "skip": false,
                "existing_image_id": null,
                "started_at": "2026-11-25T10:00:00Z"
            },
            "builder": {"builder_instance_id": "i-0123456789abcdef0", "instance_type": "t3.small"},
        });
        LambdaEvent::new(payload, lambda_runtime::Context::default())
    }

    #[tokio::test]
    async fn a_retried_start_returns_the_image_it_already_made() {
        let existing = mock!(aws_sdk_ec2::Client::describe_images)
            .match_requests(|r| {
                r.filters()
                    .iter()
                    .any(|f| f.values() == ["kiln/ubuntu-base/20261125-b1"])
                    && r.owners() == ["self"]
            })
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .images(
                        Ec2Image::builder()
                            .image_id("ami-0fedcba9876543210")
                            .state(aws_sdk_ec2::types::ImageState::Pending)
                            .build(),
                    )
                    .build()
            });
        let create = mock!(aws_sdk_ec2::Client::create_image).then_output(|| {
            aws_sdk_ec2::operation::create_image::CreateImageOutput::builder().build()
        });
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[&existing, &create], &[]);

        let image = handler(&ctx, event("start")).await.expect("found");

        assert_eq!(image.image_id.as_str(), "ami-0fedcba9876543210");
        assert_eq!(image.image_name, "kiln/ubuntu-base/20261125-b1");
        assert_eq!(image.state, ImageState::Pending);
        assert_eq!(create.num_calls(), 0, "no second image");

        let err = handler(&ctx, event("poll"))
            .await
            .expect_err("poll needs $.image");
        assert_eq!(err.name(), "InvalidInput");
    }
}
