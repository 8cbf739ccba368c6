//! cleanup-build: the state machine's catch-all. Terminates every instance of
//! the build (found by tag) and deregisters its untested images with their
//! snapshots, or keeps them tagged `kiln:stage=failed` when the recipe says so.
//! Input: the trigger fields (anything else is ignored); output: what it did.

use kiln::aws::Context;
use kiln::lambda::{self, LambdaEvent, Value};
use kiln::state::{Cleanup, Trigger};

async fn handler(ctx: &Context, event: LambdaEvent<Value>) -> kiln::Result<Cleanup> {
    let trigger: Trigger = lambda::parse(event)?;
    // A recipe that no longer loads must not stop the cleanup: keep nothing.
    let keep_failed = match ctx.recipe(&trigger.recipe) {
        Ok(recipe) => recipe.file.image.keep_failed,
        Err(err) => {
            tracing::warn!(%err, "recipe unreadable; deregistering the build's images");
            false
        }
    };
    let done = kiln::cleanup::cleanup(ctx, &trigger.build_id, keep_failed).await?;
    Ok(Cleanup {
        duration_seconds: trigger.elapsed_seconds(),
        ..done
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_smithy_mocks::mock;
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn it_searches_by_the_build_tag_and_reports_an_empty_cleanup() {
        let instances = mock!(aws_sdk_ec2::Client::describe_instances)
            .match_requests(|r| {
                r.filters()
                    .iter()
                    .any(|f| f.name() == Some("tag:kiln:build-id") && f.values() == ["b1"])
            })
            .then_output(|| DescribeInstancesOutput::builder().build());
        let snapshots = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
            aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput::builder().build()
        });
        let images = mock!(aws_sdk_ec2::Client::describe_images)
            .match_requests(|r| {
                r.owners() == ["self"] && r.filters().iter().any(|f| f.values() == ["b1"])
            })
            .then_output(|| DescribeImagesOutput::builder().build());
        let ctx = kiln_testkit::mocked(
            &kiln_testkit::recipe_root(),
            &[&instances, &images, &snapshots],
            &[],
        );
        let payload =
            json!({"recipe": "ubuntu-base", "build_id": "b1", "error": {"Error": "CommandFailed"}});

        let done = handler(
            &ctx,
            LambdaEvent::new(payload, lambda_runtime::Context::default()),
        )
        .await
        .expect("cleaned");

        assert_eq!(done, Cleanup::default());
        assert_eq!((instances.num_calls(), images.num_calls()), (1, 1));
    }
}
