//! launch-builder: launches the locked-down builder instance (idempotent per
//! build). Input: the state with `$.source`; output: `$.builder`.

use kiln::aws::Context;
use kiln::lambda::{self, LambdaEvent, Value};
use kiln::state::{Builder, LaunchRequest};

async fn handler(ctx: &Context, event: LambdaEvent<Value>) -> kiln::Result<Builder> {
    let request: LaunchRequest = lambda::parse(event)?;
    let recipe = ctx.recipe(&request.trigger.recipe)?;
    kiln::builder::launch(ctx, &recipe, &request.trigger.build_id, &request.source).await
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda::run(handler).await
}

#[cfg(test)]
mod tests {
    use aws_smithy_mocks::mock;
    use lambda_runtime::Diagnostic;
    use serde_json::json;

    use super::*;

    fn event(recipe: &str) -> LambdaEvent<Value> {
        let payload = json!({
            "recipe": recipe,
            "build_id": "b1",
            "source": {
                "source_ami": "ami-0a1b2c3d4e5f60001",
                "source_name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261118",
                "serial": "20261118",
                "root_device_name": "/dev/sda1",
                "fingerprint": "0".repeat(64),
                "skip": false,
                "existing_image_id": null,
                "started_at": "2026-11-25T00:00:00Z"
            }
        });
        LambdaEvent::new(payload, lambda_runtime::Context::default())
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

        let err = handler(&ctx, event("broken")).await.expect_err("refused");
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
