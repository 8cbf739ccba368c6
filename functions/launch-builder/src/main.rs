//! launch-builder: launches the locked-down builder instance (idempotent per
//! build). Input: the state with `$.source`; output: `$.builder`
//! (`kiln::pipeline::builder`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::pipeline::builder::handle).await
}

#[cfg(test)]
mod tests {
    use aws_smithy_mocks::mock;
    use lambda_runtime::Diagnostic;
    use serde_json::json;

    use kiln::lambda::answer;
    use kiln::pipeline::builder::handle;
    use serde_json::Value;

    fn event(recipe: &str) -> Value {
        let payload = json!({
            "recipe": recipe,
            "build_id": "b1",
            "source": kiln_testkit::source()
        });
        payload
    }

    #[tokio::test]
    async fn an_invalid_recipe_launches_nothing() {
        let recipes = std::env::temp_dir().join(format!("kiln-launch-test-{}", std::process::id()));
        let broken = recipes.join("broken");
        std::fs::create_dir_all(&broken).expect("mkdir");
        std::fs::write(
            broken.join("recipe.toml"),
            "[builder]\ninstance_types = []\ninstance_profile = \"kiln-builder\"\n",
        )
        .expect("write");
        let run = mock!(aws_sdk_ec2::Client::run_instances).then_output(|| {
            aws_sdk_ec2::operation::run_instances::RunInstancesOutput::builder().build()
        });
        let ctx = kiln_testkit::mocked(&recipes, &[&run], &[]);

        let err = answer(&handle, &ctx, event("broken"))
            .await
            .expect_err("refused");
        std::fs::remove_dir_all(&recipes).expect("clean up");

        let diagnostic = Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "InvalidRecipe");
        assert!(
            diagnostic.error_message.contains("builder.instance_types"),
            "{}",
            diagnostic.error_message
        );
        assert!(
            diagnostic.error_message.contains("steps: missing"),
            "{}",
            diagnostic.error_message
        );
        assert_eq!(run.num_calls(), 0, "nothing was launched");
    }
}
