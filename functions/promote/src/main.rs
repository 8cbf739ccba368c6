//! promote: moves one channel's pointer, or prunes a recipe's old images
//! (`kiln::channels::handle`). Input: `{action: promote|rollback|demote,
//! recipe, channel, image_id (to promote), reason, actor?, force?}`; output:
//! what moved and the tags that followed. A refused move changes nothing and
//! fails as `PromotionRefused` or `NothingToRollBack`. `{action: prune,
//! recipe, keep, dry_run?}` (the daily retention run): output what went and
//! why the rest stays. `{action: release, release}` (the release state
//! machine's step): the release's next moves, up to its next wait or its end.
//! `{action: remediation, remediation}` (the release state machine's watch
//! after a security release): one more check of the CVEs' findings.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::channels::handle).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::types::{Image, ImageState, Tag};
    use aws_smithy_mocks::mock;
    use serde_json::json;

    use kiln::channels::handle;
    use kiln::lambda::answer;
    use serde_json::Value;

    const IMAGE: &str = "ami-0fedcba9876543210";

    fn event(payload: Value) -> Value {
        payload
    }

    fn image(state: ImageState, stage: &str) -> Image {
        Image::builder()
            .image_id(IMAGE)
            .state(state)
            .tags(
                Tag::builder()
                    .key("kiln:recipe")
                    .value("ubuntu-base")
                    .build(),
            )
            .tags(Tag::builder().key("kiln:stage").value(stage).build())
            .build()
    }

    fn promote(force: bool) -> Value {
        json!({"action": "promote", "recipe": "ubuntu-base", "channel": "prod",
               "image_id": IMAGE, "reason": "r", "force": force})
    }

    #[tokio::test]
    async fn an_image_still_pending_is_refused_even_forced_and_nothing_is_written() {
        let pending = mock!(aws_sdk_ec2::Client::describe_images).then_output(|| {
            DescribeImagesOutput::builder()
                .images(image(ImageState::Pending, "tested"))
                .build()
        });
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[&pending], &[]);

        let err = answer(&handle, &ctx, event(promote(true)))
            .await
            .expect_err("refused");

        assert_eq!(err.name(), "PromotionRefused");
        assert!(err.to_string().contains("pending, not available"), "{err}");
    }

    #[tokio::test]
    async fn requests_are_checked_before_anything_is_called() {
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[], &[]);
        for (payload, expected) in [
            (
                json!({"action": "promote", "recipe": "ubuntu-base", "channel": "prod", "reason": "r"}),
                "image_id",
            ),
            (
                json!({"action": "retire", "recipe": "ubuntu-base", "channel": "prod", "reason": "r"}),
                "retire",
            ),
            (
                json!({"action": "rollback", "recipe": "ubuntu-base", "channel": "Prod!", "reason": "r"}),
                "channel",
            ),
            (
                json!({"action": "demote", "recipe": "ubuntu-base", "channel": "prod", "reason": " "}),
                "reason",
            ),
            (json!({"action": "prune", "recipe": "ubuntu-base"}), "keep"),
        ] {
            let err = answer(&handle, &ctx, event(payload))
                .await
                .expect_err("refused");
            assert_eq!(err.name(), "InvalidInput", "{err}");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}
