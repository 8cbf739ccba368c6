//! test-image: tests the new image before anyone may use it. `launch` boots a
//! test instance from it, `start` sends the recipe's test script, `poll`
//! reports until the test passes (instance terminated, image tagged
//! `kiln:stage=tested`). Input: the state with `$.source` and `$.image` (and
//! `$.test` to start or poll); output: `$.test` (`kiln::pipeline::test_run`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::pipeline::test_run::handle).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use kiln::lambda::answer;
    use kiln::pipeline::test_run::handle;

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
            "source": kiln_testkit::source(),
            "image": {"image_id": "ami-0fedcba9876543210", "image_name": "kiln/x", "state": "pending"},
        });

        let err = answer(&handle, &ctx, payload).await.expect_err("refused");

        assert_eq!(
            lambda_runtime::Diagnostic::from(err).error_type,
            "InvalidInput"
        );
        assert_eq!(run.num_calls(), 0, "no test instance was launched");
    }
}
