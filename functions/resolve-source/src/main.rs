//! resolve-source: finds the source image and the build fingerprint, and says
//! whether the build can be skipped. Input: the trigger; output: `$.source`
//! (`kiln::pipeline::source`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::pipeline::source::handle).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_ssm::operation::get_parameter::GetParameterError;
    use aws_sdk_ssm::types::error::ParameterNotFound;
    use aws_smithy_mocks::mock;
    use lambda_runtime::Diagnostic;
    use serde_json::json;

    use kiln::aws::Context;
    use kiln::lambda::answer;
    use kiln::pipeline::source::handle;
    use serde_json::Value;

    async fn error_type(ctx: &Context, payload: Value) -> String {
        let event = payload;
        let err = answer(&handle, ctx, event)
            .await
            .expect_err("the handler fails");
        Diagnostic::from(err).error_type
    }

    #[tokio::test]
    async fn a_missing_source_parameter_is_source_not_found() {
        let missing = mock!(aws_sdk_ssm::Client::get_parameter).then_error(|| {
            GetParameterError::ParameterNotFound(ParameterNotFound::builder().build())
        });
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[], &[&missing]);
        let payload = json!({"recipe": "ubuntu-base", "build_id": "b1", "reason": "schedule"});
        assert_eq!(error_type(&ctx, payload).await, "SourceNotFound");
        assert_eq!(missing.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_bad_trigger_is_invalid_input_before_any_call() {
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[], &[]);
        for payload in [
            json!({"recipe": "ubuntu-base"}),
            json!({"recipe": "ubuntu-base", "build_id": "b1", "reason": "whim"}),
            json!({"recipe": "../etc", "build_id": "b1"}),
        ] {
            assert_eq!(error_type(&ctx, payload).await, "InvalidInput");
        }
        let unknown = json!({"recipe": "no-such-recipe", "build_id": "b1"});
        assert_eq!(error_type(&ctx, unknown).await, "InvalidRecipe");
    }
}
