//! create-image: `start` images the provisioned builder; `poll` reports until
//! the image is available, verified and tagged, and the builder terminated.
//! Input: the state with `$.source` and `$.builder` (and `$.image` to poll);
//! output: `$.image` (`kiln::pipeline::image`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::pipeline::image::handle).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::types::Image as Ec2Image;
    use aws_smithy_mocks::mock;
    use kiln::pipeline::state::ImageState;
    use serde_json::json;

    use kiln::lambda::answer;
    use kiln::pipeline::image::handle;
    use serde_json::Value;

    fn event(action: &str) -> Value {
        let payload = json!({
            "action": action,
            "recipe": "ubuntu-base",
            "build_id": "b1",
            "source": kiln_testkit::source(),
            "builder": {"builder_instance_id": "i-0123456789abcdef0", "instance_type": "t3.small"},
        });
        payload
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

        let image = answer(&handle, &ctx, event("start")).await.expect("found");

        assert_eq!(image.image_id.as_str(), "ami-0fedcba9876543210");
        assert_eq!(image.image_name, "kiln/ubuntu-base/20261125-b1");
        assert_eq!(image.state, ImageState::Pending);
        assert_eq!(create.num_calls(), 0, "no second image");

        let err = answer(&handle, &ctx, event("poll"))
            .await
            .expect_err("poll needs $.image");
        assert_eq!(err.name(), "InvalidInput");
    }
}
