//! cleanup-build: removes what a build left behind (`kiln::ops::handle`).
//! Three inputs:
//! * from the build state machine's catch-all (the trigger fields): terminates
//!   every instance of the build (found by tag) and deregisters its images with
//!   their snapshots (a failed build delivers none), or keeps them tagged
//!   `kiln:stage=failed` when the recipe says so;
//! * an EventBridge `Step Functions Execution Status Change` event for an
//!   execution that ended `ABORTED`, `TIMED_OUT` or `FAILED`: the same for that
//!   build, keeping tested images;
//! * `{"action": "sweep", "dry_run": false}` (a schedule): every kiln-tagged
//!   resource whose build is over (see `kiln::ops::sweep`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::ops::handle).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
    use aws_smithy_mocks::mock;
    use serde_json::json;

    use kiln::lambda::answer;
    use kiln::ops::{EXECUTION_STATUS_CHANGE, handle};
    use kiln::pipeline::state::Cleanup;

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

        let done = answer(&handle, &ctx, payload).await.expect("cleaned");

        assert_eq!(
            serde_json::to_value(done).expect("json"),
            serde_json::to_value(Cleanup::default()).expect("json")
        );
        assert_eq!((instances.num_calls(), images.num_calls()), (1, 1));
    }

    #[tokio::test]
    async fn it_takes_only_execution_events_that_ended_without_cleanup() {
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[], &[]);
        let event = |detail_type: &str, status: &str| {
            json!({"version": "0", "id": "e1", "detail-type": detail_type, "source": "aws.states",
                   "account": "123456789012", "time": "2026-11-26T02:00:00Z", "region": "us-east-1",
                   "resources": [], "detail": {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:kiln-pipeline:b1",
                   "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:kiln-pipeline",
                   "name": "b1", "status": status, "input": "{\"recipe\": \"ubuntu-base\"}"}})
        };
        for (payload, expected) in [
            (
                event("EC2 Instance State-change Notification", "ABORTED"),
                "not \"EC2",
            ),
            (event(EXECUTION_STATUS_CHANGE, "SUCCEEDED"), "is SUCCEEDED"),
            (
                json!({"action": "sweep", "dry_run": "yes"}),
                "expected a boolean",
            ),
            (json!({"action": "purge"}), "purge"),
        ] {
            let err = answer(&handle, &ctx, payload).await.expect_err("refused");
            assert_eq!(err.name(), "InvalidInput", "{err}");
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
    }
}
