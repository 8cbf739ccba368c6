//! test-image: tests the new image before anyone may use it. `launch` boots a
//! test instance from it, `start` sends the recipe's test script, `poll`
//! reports until the test passes (instance terminated, image tagged
//! `kiln:stage=tested`). Input: the state with `$.source` and `$.image` (and
//! `$.test` to start or poll); output: `$.test`.

use kiln::aws::Context;
use kiln::lambda::{self, LambdaEvent, Value};
use kiln::state::{TestAction, TestRequest, TestRun, required};

async fn handler(ctx: &Context, event: LambdaEvent<Value>) -> kiln::Result<TestRun> {
    let request: TestRequest = lambda::parse(event)?;
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    let trigger = &request.trigger;
    match request.action {
        TestAction::Launch => {
            kiln::test_run::launch(ctx, &recipe, trigger, &request.source, &request.image).await
        }
        TestAction::Start => {
            kiln::test_run::start(ctx, &recipe, trigger, &required(request.test, "test")?).await
        }
        TestAction::Poll => {
            let test = required(request.test, "test")?;
            kiln::test_run::poll(ctx, &recipe, trigger, &request.image, &test).await
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[tokio::test]
    async fn an_image_not_yet_available_is_refused_before_anything_launches() {
        let run = aws_smithy_mocks::mock!(aws_sdk_ec2::Client::run_instances).then_output(|| {
            aws_sdk_ec2::operation::run_instances::RunInstancesOutput::builder().build()
        });
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[&run], &[]);
        let payload = json!({
            "action": "launch",
            "recipe": "ubuntu-base",
            "build_id": "b1",
            "source": {
                "source_ami": "ami-0a1b2c3d4e5f60001", "source_name": "ubuntu", "serial": null,
                "root_device_name": "/dev/sda1", "fingerprint": "cd".repeat(32), "skip": false,
                "existing_image_id": null, "started_at": "2026-11-25T10:00:00Z"
            },
            "image": {"image_id": "ami-0fedcba9876543210", "image_name": "kiln/x", "state": "pending"},
        });

        let err = handler(
            &ctx,
            LambdaEvent::new(payload, lambda_runtime::Context::default()),
        )
        .await
        .expect_err("refused");

        assert_eq!(
            lambda_runtime::Diagnostic::from(err).error_type,
            "InvalidInput"
        );
        assert_eq!(run.num_calls(), 0, "no test instance was launched");
    }
}
