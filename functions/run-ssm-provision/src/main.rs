//! run-ssm-provision: `start` sends a recipe step to the builder through SSM
//! Run Command; `poll` reports on it. Input: the state with `$.builder` (and
//! `$.provision` to poll or to start a later step); output: `$.provision`
//! (`kiln::pipeline::provision`).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    kiln::lambda::run(kiln::pipeline::provision::handle).await
}

#[cfg(test)]
mod tests {
    use aws_sdk_ssm::operation::send_command::SendCommandOutput;
    use aws_sdk_ssm::types::Command;
    use aws_smithy_mocks::mock;
    use kiln::pipeline::state::StepStatus;
    use serde_json::json;

    use kiln::lambda::answer;
    use kiln::pipeline::provision::handle;
    use serde_json::Value;

    const COMMAND: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

    fn event(action: &str, provision: Value) -> Value {
        let payload = json!({
            "action": action,
            "recipe": "ubuntu-base",
            "build_id": "b1",
            "builder": {"builder_instance_id": "i-0123456789abcdef0", "instance_type": "t3.small"},
            "provision": provision,
        });
        payload
    }

    #[tokio::test]
    async fn start_sends_the_step_script_with_its_timeout() {
        let setup = include_str!("../../../images/ubuntu-base/setup.sh");
        let send = mock!(aws_sdk_ssm::Client::send_command)
            .match_requests(move |request| {
                let parameters = request.parameters().expect("parameters");
                let commands = parameters["commands"].join("\n");
                request.document_name() == Some("AWS-RunShellScript")
                    && request.instance_ids() == ["i-0123456789abcdef0"]
                    && parameters["executionTimeout"] == ["1800"]
                    && commands.contains(setup.trim_end())
            })
            .then_output(|| {
                SendCommandOutput::builder()
                    .command(Command::builder().command_id(COMMAND).build())
                    .build()
            });
        let none_sent = mock!(aws_sdk_ssm::Client::list_commands)
            .match_requests(|request| request.instance_id() == Some("i-0123456789abcdef0"))
            .then_output(|| {
                aws_sdk_ssm::operation::list_commands::ListCommandsOutput::builder().build()
            });
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[], &[&none_sent, &send]);

        let provision = answer(&handle, &ctx, event("start", Value::Null))
            .await
            .expect("started");

        assert_eq!((none_sent.num_calls(), send.num_calls()), (1, 1));
        assert_eq!(
            (
                provision.step,
                provision.steps,
                provision.step_name.as_str()
            ),
            (0, 2, "setup")
        );
        assert_eq!(
            provision.command_id.map(String::from).as_deref(),
            Some(COMMAND)
        );
        assert_eq!(provision.status, StepStatus::InProgress);
    }

    #[tokio::test]
    async fn polling_needs_the_provision_state_and_a_real_step() {
        let ctx = kiln_testkit::mocked(&kiln_testkit::recipe_root(), &[], &[]);
        let err = answer(&handle, &ctx, event("poll", Value::Null))
            .await
            .expect_err("refused");
        assert_eq!(err.name(), "InvalidInput");
        assert!(err.to_string().contains("provision"), "{err}");

        let beyond = json!({"step": 7, "steps": 2, "step_name": "x", "command_id": null, "status": "pending", "since": "1970-01-01T00:00:00Z", "wait_seconds": 0});
        let err = answer(&handle, &ctx, event("start", beyond))
            .await
            .expect_err("refused");
        assert_eq!(err.name(), "InvalidInput");
        assert!(err.to_string().contains("step 7 does not exist"), "{err}");
    }
}
