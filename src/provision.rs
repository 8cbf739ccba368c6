//! Provision the builder through SSM Run Command: one command per recipe step.
//!
//! Nothing here waits. [`start`] sends a step and returns; [`poll`] reports on
//! it once and returns; the state machine's Wait/Choice loop calls again.

use std::collections::HashMap;

use aws_sdk_ssm::types::CommandInvocationStatus;
use sha2::{Digest, Sha256};
use tracing::{info, instrument};

use crate::aws::Context;
use crate::builder;
use crate::error::{Error, Result};
use crate::recipe::Recipe;
use crate::state::{BuildId, Builder, CommandId, InstanceId, Provision, RecipeName, StepStatus};

/// SSM document that runs a shell script on Linux.
const DOCUMENT: &str = "AWS-RunShellScript";
/// How long SSM may wait for the builder's agent to take a command.
const DELIVERY_TIMEOUT_SECONDS: i32 = 600;
/// How much of a failed script's stderr an error carries.
const STDERR_TAIL_BYTES: usize = 2000;

/// Sends step `step` of the recipe to the builder.
#[instrument(skip_all, fields(build_id = %build_id, step))]
pub async fn start(
    ctx: &Context,
    recipe: &Recipe,
    build_id: &BuildId,
    builder: &Builder,
    step: usize,
) -> Result<Provision> {
    let spec = recipe.step(step)?;
    let instance = &builder.builder_instance_id;
    let commands = wrap(
        &recipe.name,
        build_id,
        &spec.name,
        recipe.script(&spec.script),
    );
    let parameters = HashMap::from([
        ("commands".to_owned(), commands),
        (
            "executionTimeout".to_owned(),
            vec![spec.timeout_seconds.to_string()],
        ),
    ]);
    let mut comment = format!("kiln {} {build_id} step {}", recipe.name, spec.name);
    comment.truncate(100);
    let output = ctx
        .ssm
        .send_command()
        .document_name(DOCUMENT)
        .instance_ids(instance.as_str())
        .set_parameters(Some(parameters))
        .timeout_seconds(DELIVERY_TIMEOUT_SECONDS)
        .comment(comment)
        .set_output_s3_bucket_name(ctx.settings.output_bucket.clone())
        .set_output_s3_key_prefix(
            ctx.settings
                .output_bucket
                .as_ref()
                .map(|_| format!("kiln/{}/{build_id}/{}", recipe.name, spec.name)),
        )
        .send()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_invalid_instance_id()) =>
        {
            return Err(not_ready_or_gone(ctx, instance).await);
        }
        Err(err) => return Err(Error::aws("SendCommand", err)),
    };
    let command_id: CommandId = output
        .command()
        .and_then(|c| c.command_id())
        .unwrap_or_default()
        .parse()
        .map_err(|_| Error::Aws {
            operation: "SendCommand",
            code: "NoCommandId".into(),
            message: "the response named no command".into(),
        })?;
    info!(%command_id, step = %spec.name, "step sent");
    Ok(Provision {
        step,
        steps: recipe.file.steps.len(),
        step_name: spec.name.clone(),
        command_id: Some(command_id),
        status: StepStatus::InProgress,
    })
}

/// Reports on the step in `provision`: still running, or done and moved on to
/// the next step (rebooting first when the step asks for it), or all done.
/// A failed or timed-out script is an error naming the step.
#[instrument(skip_all, fields(build_id = %build_id, step = provision.step))]
pub async fn poll(
    ctx: &Context,
    recipe: &Recipe,
    build_id: &BuildId,
    builder: &Builder,
    provision: &Provision,
) -> Result<Provision> {
    let spec = recipe.step(provision.step)?;
    let command = crate::state::required(provision.command_id.as_ref(), "provision.command_id")?;
    let instance = &builder.builder_instance_id;
    let result = ctx
        .ssm
        .get_command_invocation()
        .command_id(command.as_str())
        .instance_id(instance.as_str())
        .send()
        .await;
    let invocation = match result {
        Ok(invocation) => invocation,
        // The invocation appears a moment after SendCommand returns.
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_invocation_does_not_exist()) =>
        {
            return Ok(provision.clone());
        }
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_invalid_instance_id()) =>
        {
            return Err(not_ready_or_gone(ctx, instance).await);
        }
        Err(err) => return Err(Error::aws("GetCommandInvocation", err)),
    };
    let status = invocation
        .status()
        .cloned()
        .unwrap_or(CommandInvocationStatus::Pending);
    match status {
        CommandInvocationStatus::Pending
        | CommandInvocationStatus::InProgress
        | CommandInvocationStatus::Delayed => Ok(provision.clone()),
        CommandInvocationStatus::Success => {
            info!(step = %spec.name, "step succeeded");
            if spec.reboot {
                reboot(ctx, instance).await?;
            }
            Ok(next(recipe, provision.step))
        }
        CommandInvocationStatus::TimedOut => Err(Error::CommandTimedOut {
            step: spec.name.clone(),
            timeout_seconds: spec.timeout_seconds,
        }),
        other => Err(Error::CommandFailed {
            step: spec.name.clone(),
            status: other.as_str().to_owned(),
            exit_code: invocation.response_code(),
            stderr_tail: tail(
                invocation.standard_error_content().unwrap_or_default(),
                STDERR_TAIL_BYTES,
            ),
        }),
    }
}

/// Where provisioning stands once step `done` has succeeded.
fn next(recipe: &Recipe, done: usize) -> Provision {
    let steps = recipe.file.steps.len();
    match recipe.file.steps.get(done + 1) {
        Some(spec) => Provision {
            step: done + 1,
            steps,
            step_name: spec.name.clone(),
            command_id: None,
            status: StepStatus::Pending,
        },
        None => Provision {
            step: done,
            steps,
            step_name: recipe.file.steps[done].name.clone(),
            command_id: None,
            status: StepStatus::Done,
        },
    }
}

async fn reboot(ctx: &Context, instance: &InstanceId) -> Result<()> {
    ctx.ec2
        .reboot_instances()
        .instance_ids(instance.as_str())
        .send()
        .await
        .map_err(|err| Error::aws("RebootInstances", err))?;
    info!(%instance, "rebooting the builder");
    Ok(())
}

/// SSM answers `InvalidInstanceId` both while the agent registers and once the
/// instance is gone; only the second is a failure.
async fn not_ready_or_gone(ctx: &Context, instance: &InstanceId) -> Error {
    match builder::instance_state(ctx, instance).await {
        Ok(Some(state)) if matches!(state.as_str(), "pending" | "running") => {
            Error::BuilderNotReady {
                instance: instance.to_string(),
            }
        }
        Ok(state) => Error::BuilderGone {
            instance: instance.to_string(),
            state: state.unwrap_or_else(|| "unknown to EC2".into()),
        },
        Err(err) => err,
    }
}

/// The Run Command lines that write the script to a private temporary file and
/// run it with bash as root. A quoted here-document carries the script
/// byte for byte; its delimiter is derived from the script, so it cannot
/// occur inside it by accident.
fn wrap(recipe: &RecipeName, build_id: &BuildId, step: &str, script: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(script);
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let delimiter = format!("KILN_SCRIPT_{}", &hex::encode(Sha256::digest(script))[..16]);
    let mut lines = vec![
        "set -u".to_owned(),
        "script=$(mktemp /var/tmp/kiln-step.XXXXXX)".to_owned(),
        "trap 'rm -f \"$script\"' EXIT".to_owned(),
        format!("cat > \"$script\" <<'{delimiter}'"),
    ];
    lines.extend(text.split('\n').map(str::to_owned));
    lines.push(delimiter);
    lines.push(format!(
        "KILN_RECIPE='{recipe}' KILN_BUILD_ID='{build_id}' KILN_STEP='{step}' /bin/bash \"$script\""
    ));
    lines
}

/// The last `max` bytes of `text`, cut at a character boundary.
fn tail(text: &str, max: usize) -> String {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the wrapped lines the way the SSM agent does: one `sh` script.
    fn run_wrapped(script: &str) -> std::process::Output {
        let recipe = "base".parse().expect("name");
        let build = "b-1".parse().expect("id");
        let lines = wrap(&recipe, &build, "setup", script.as_bytes());
        std::process::Command::new("sh")
            .arg("-c")
            .arg(lines.join("\n"))
            .output()
            .expect("run sh")
    }

    #[test]
    fn the_wrapped_script_runs_byte_for_byte_with_its_exit_code() {
        let script = "#!/bin/bash\n\
            # quotes ' \" `backticks` $HOME ${X:-} \\ and a fake end: KILN_SCRIPT_0\n\
            cat \"$0\"\n\
            echo \"step=$KILN_STEP recipe=$KILN_RECIPE build=$KILN_BUILD_ID\" >&2\n\
            exit 3\n";
        let output = run_wrapped(script);
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            script,
            "the script arrives unchanged"
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "step=setup recipe=base build=b-1\n"
        );
    }

    #[test]
    fn the_wrapped_script_leaves_no_file_behind() {
        let output = run_wrapped("echo \"$0\"\n");
        assert!(output.status.success());
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(path.starts_with("/var/tmp/kiln-step."), "{path}");
        assert!(!std::path::Path::new(&path).exists(), "{path} was removed");
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("hello", 3), "llo");
        assert_eq!(tail("hi", 10), "hi");
        assert_eq!(tail("aé", 1), "");
    }
}
