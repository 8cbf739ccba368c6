//! Run a script on a kiln instance through SSM Run Command, exactly once,
//! and read how it went. Provisioning steps and the image test both run here.
//!
//! A script that asks for a reboot exits with 194, SSM's "reboot me" code on
//! Linux: the agent reboots the instance and runs the command again after the
//! boot, where a marker left by the first run makes it succeed at once. The
//! invocation reports success only once the instance is back, so the next
//! command cannot race the reboot.
//!
//! A script runs as root with the interpreter its `#!` line names, flags
//! included (`#!/bin/bash -eux`), as if executed; one without runs with
//! bash. Its step's environment comes on top of kiln's `KILN_*` variables.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_ec2::types::InstanceStateName;
use aws_sdk_ssm::types::{CommandFilter, CommandFilterKey, CommandInvocationStatus};
use sha2::{Digest, Sha256};
use tracing::info;

use super::Context;
use super::instances;
use super::sdk::Answer;
use crate::error::{Error, Result};
use crate::ids::{BuildId, CommandId, InstanceId, RecipeName};

/// SSM document that runs a shell script on Linux.
const DOCUMENT: &str = "AWS-RunShellScript";
/// How long SSM may wait for an instance's agent to take a command.
const DELIVERY_TIMEOUT_SECONDS: i32 = 600;
/// How much of a failed script's stderr the command reports (SSM keeps the
/// first 8,000 characters of stderr; the wrapper prints only the end).
const STDERR_TAIL_BYTES: usize = 7000;
/// How much of that an error carries.
const ERROR_TAIL_BYTES: usize = 2000;
/// Where in the output bucket a command's full output goes, under its
/// recipe, build and step (the builder role may write only there).
pub const OUTPUT_PREFIX: &str = "kiln/builds";
/// The exit code that asks the SSM agent to reboot and run the command again.
const SSM_REBOOT_EXIT_CODE: u8 = 194;

/// A script to run on an instance, and what identifies its command.
pub(crate) struct Script<'a> {
    /// The recipe the script belongs to.
    pub recipe: &'a RecipeName,
    /// The build running it.
    pub build_id: &'a BuildId,
    /// The step name (or `test`), shown in the console and passed to the script.
    pub label: &'a str,
    /// Position among the build's commands, so equal labels stay distinct.
    pub index: usize,
    /// The script itself.
    pub body: &'a [u8],
    /// Longest it may run.
    pub timeout_seconds: u32,
    /// Ask SSM to reboot the instance after the script succeeds.
    pub reboot_after: bool,
    /// Environment variables the script runs with (validated names).
    pub environment: &'a BTreeMap<String, String>,
}

impl Script<'_> {
    /// A marker unique to this command of this build. It opens the command's
    /// comment, so a retried start finds the command it already sent.
    fn marker(&self) -> String {
        let digest = Sha256::digest(format!("{}\0{}\0{}", self.build_id, self.index, self.label));
        format!("kiln:{}", &hex::encode(digest)[..20])
    }

    /// Where in the output bucket the command's output goes.
    fn output_prefix(&self) -> String {
        format!(
            "{OUTPUT_PREFIX}/{}/{}/{}",
            self.recipe, self.build_id, self.label
        )
    }

    fn comment(&self) -> String {
        let mut comment = format!(
            "{} {} {} {}",
            self.marker(),
            self.recipe,
            self.label,
            self.build_id
        );
        comment.truncate(100);
        comment
    }

    /// The Run Command lines: write the script to a private temporary file
    /// with a quoted here-document (byte for byte; the delimiter derives from
    /// the script, so it cannot occur in it by accident), run it with bash as
    /// root, report the tail of its stderr, and ask for a reboot if needed.
    fn commands(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(self.body);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let delimiter = format!(
            "KILN_SCRIPT_{}",
            &hex::encode(Sha256::digest(self.body))[..16]
        );
        let rebooted = format!("/var/tmp/{}.rebooted", self.marker().replace(':', "-"));
        let mut lines = vec![
            "set -u".to_owned(),
            // The run after the reboot this command asked for: done.
            format!("if [ -e {rebooted} ]; then rm -f {rebooted}; exit 0; fi"),
            "script=$(mktemp /var/tmp/kiln-step.XXXXXX)".to_owned(),
            "errors=$(mktemp /var/tmp/kiln-step.XXXXXX)".to_owned(),
            "trap 'rm -f \"$script\" \"$errors\"' EXIT".to_owned(),
            format!("cat > \"$script\" <<'{delimiter}'"),
        ];
        lines.extend(text.split('\n').map(str::to_owned));
        lines.push(delimiter);
        // The interpreter and flags of the script's `#!` line, word-split
        // (no globbing) as the kernel would run it; bash without one.
        lines.push("first=$(head -n 1 \"$script\")".to_owned());
        lines.push(
            "case \"$first\" in '#!'*) interpreter=${first#??} ;; *) interpreter=/bin/bash ;; esac"
                .to_owned(),
        );
        lines.push("set -f".to_owned());
        let environment: String = self
            .environment
            .iter()
            .map(|(name, value)| format!(" {name}={}", shell_quote(value)))
            .collect();
        lines.push(format!(
            "KILN_RECIPE='{}' KILN_BUILD_ID='{}' KILN_STEP='{}'{environment} $interpreter \"$script\" 2>\"$errors\"",
            self.recipe, self.build_id, self.label
        ));
        lines.push("status=$?".to_owned());
        lines.push(format!("tail -c {STDERR_TAIL_BYTES} \"$errors\" >&2"));
        if self.reboot_after {
            lines.push(format!(
                "if [ $status -eq 0 ]; then touch {rebooted}; exit {SSM_REBOOT_EXIT_CODE}; fi"
            ));
        }
        lines.push("exit $status".to_owned());
        lines
    }
}

/// `value` in single quotes, for `sh`: every byte as it is.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// Sends `script` to `instance` unless a command for it was already sent.
pub(crate) async fn send(
    ctx: &Context,
    instance: &InstanceId,
    script: &Script<'_>,
) -> Result<CommandId> {
    if let Some(sent) = already_sent(ctx, instance, &script.marker()).await? {
        info!(command_id = %sent, "command already sent for this step");
        return Ok(sent);
    }
    let parameters = HashMap::from([
        ("commands".to_owned(), script.commands()),
        (
            "executionTimeout".to_owned(),
            vec![script.timeout_seconds.to_string()],
        ),
    ]);
    let bucket = ctx.settings.output_bucket.clone();
    let prefix = bucket.as_ref().map(|_| script.output_prefix());
    let output = ctx
        .ssm()
        .send_command()
        .document_name(DOCUMENT)
        .instance_ids(instance.as_str())
        .set_parameters(Some(parameters))
        .timeout_seconds(DELIVERY_TIMEOUT_SECONDS)
        .comment(script.comment())
        .set_output_s3_bucket_name(bucket)
        .set_output_s3_key_prefix(prefix)
        .send()
        .await
        .or_missing("SendCommand", |err| {
            err.as_service_error()
                .is_some_and(|e| e.is_invalid_instance_id())
        })?;
    let Some(output) = output else {
        return Err(not_ready_or_gone(ctx, instance).await);
    };
    output
        .command()
        .and_then(|c| c.command_id())
        .unwrap_or_default()
        .parse()
        .map_err(|_| Error::Aws {
            operation: "SendCommand",
            code: "NoCommandId".into(),
            message: "the response named no command".into(),
        })
}

/// The command already sent to `instance` whose comment opens with `marker`.
async fn already_sent(
    ctx: &Context,
    instance: &InstanceId,
    marker: &str,
) -> Result<Option<CommandId>> {
    let commands = ctx
        .ssm()
        .list_commands()
        .instance_id(instance.as_str())
        .filters(
            CommandFilter::builder()
                .key(CommandFilterKey::DocumentName)
                .value(DOCUMENT)
                .build()
                .map_err(|err| Error::InvalidInput(err.to_string()))?,
        )
        .send()
        .await
        .or_missing("ListCommands", |err| {
            err.as_service_error()
                .is_some_and(|e| e.is_invalid_instance_id())
        })?
        .and_then(|output| output.commands)
        .unwrap_or_default();
    Ok(commands
        .iter()
        .find(|command| command.comment().is_some_and(|c| c.starts_with(marker)))
        .and_then(|command| command.command_id())
        .and_then(|id| id.parse().ok()))
}

/// How a command stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not finished yet.
    Running,
    /// The script exited 0.
    Succeeded,
}

/// How `command` on `instance` stands. A failed or timed-out script is an
/// error naming `script.label`.
pub(crate) async fn outcome(
    ctx: &Context,
    instance: &InstanceId,
    command: &CommandId,
    script: &Script<'_>,
) -> Result<Outcome> {
    let result = ctx
        .ssm()
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
            return Ok(Outcome::Running);
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
        | CommandInvocationStatus::Delayed => Ok(Outcome::Running),
        CommandInvocationStatus::Success => {
            info!(label = %script.label, %command, "command succeeded");
            Ok(Outcome::Succeeded)
        }
        CommandInvocationStatus::TimedOut => Err(Error::CommandTimedOut {
            step: script.label.to_owned(),
            timeout_seconds: script.timeout_seconds,
            detail: invocation.status_details().unwrap_or("TimedOut").to_owned(),
        }),
        other => Err(Error::CommandFailed {
            step: script.label.to_owned(),
            status: other.as_str().to_owned(),
            exit_code: invocation.response_code(),
            stderr_tail: tail(
                invocation.standard_error_content().unwrap_or_default(),
                ERROR_TAIL_BYTES,
            ),
        }),
    }
}

/// What the finished `command` printed on `instance`, whole, from the output
/// bucket `bucket`: the SSM agent uploads it to
/// `<prefix>/<command id>/<instance id>/awsrunShellScript/0.awsrunShellScript/stdout`
/// (`GetCommandInvocation` itself answers only the first 24,000 characters).
/// `None` when the agent uploaded nothing.
pub(crate) async fn stdout(
    ctx: &Context,
    bucket: &str,
    instance: &InstanceId,
    command: &CommandId,
    script: &Script<'_>,
) -> Result<Option<String>> {
    let key = format!(
        "{}/{command}/{instance}/awsrunShellScript/0.awsrunShellScript/stdout",
        script.output_prefix()
    );
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    let bytes = super::objects::read(&s3, bucket, &key).await?;
    Ok(bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// SSM answers `InvalidInstanceId` both while the agent registers and once the
/// instance is gone; only the second is a failure. An instance EC2 does not
/// know yet (it was just launched) is not ready, not gone: terminated
/// instances stay visible for about an hour.
async fn not_ready_or_gone(ctx: &Context, instance: &InstanceId) -> Error {
    match instances::state(ctx, instance).await {
        Ok(None | Some(InstanceStateName::Pending | InstanceStateName::Running)) => {
            Error::BuilderNotReady {
                instance: instance.to_string(),
            }
        }
        Ok(Some(state)) => Error::BuilderGone {
            instance: instance.to_string(),
            state: state.as_str().to_owned(),
        },
        Err(err) => err,
    }
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

    /// Runs the command lines the way the SSM agent does: one `sh` script.
    fn run(script: &Script<'_>) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(script.commands().join("\n"))
            .output()
            .expect("run sh")
    }

    static NO_ENVIRONMENT: BTreeMap<String, String> = BTreeMap::new();

    fn script<'a>(
        recipe: &'a RecipeName,
        build: &'a BuildId,
        body: &'a str,
        reboot_after: bool,
    ) -> Script<'a> {
        Script {
            recipe,
            build_id: build,
            label: "setup",
            index: 0,
            body: body.as_bytes(),
            timeout_seconds: 60,
            reboot_after,
            environment: &NO_ENVIRONMENT,
        }
    }

    fn names() -> (RecipeName, BuildId) {
        let build = format!("b-{}-{:?}", std::process::id(), std::thread::current().id());
        let build = build.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
        ("base".parse().expect("name"), build.parse().expect("id"))
    }

    #[test]
    fn the_script_runs_byte_for_byte_with_its_exit_code_and_environment() {
        let body = "#!/bin/bash\n\
            # quotes ' \" `backticks` $HOME ${X:-} \\ and a fake end: KILN_SCRIPT_0\n\
            cat \"$0\"\n\
            echo \"step=$KILN_STEP recipe=$KILN_RECIPE\" >&2\n\
            exit 3\n";
        let (recipe, build) = names();
        let output = run(&script(&recipe, &build, body, false));
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            body,
            "the script arrives unchanged"
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            "step=setup recipe=base\n"
        );
    }

    #[test]
    fn the_interpreter_and_flags_of_the_shebang_run_the_script() {
        let (recipe, build) = names();
        let strict = "#!/bin/sh -e\nfalse\necho went on\n";
        let output = run(&script(&recipe, &build, strict, false));
        assert_eq!(output.status.code(), Some(1), "-e stops at the failure");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "");
        let plain = "false\necho went on\n";
        let output = run(&script(&recipe, &build, plain, false));
        assert_eq!(output.status.code(), Some(0), "bash without -e goes on");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "went on\n");
        let bash = "echo ${BASH_VERSION:+bash}\n";
        let output = run(&script(&recipe, &build, bash, false));
        assert_eq!(String::from_utf8_lossy(&output.stdout), "bash\n");
    }

    #[test]
    fn the_steps_environment_arrives_byte_for_byte() {
        let (recipe, build) = names();
        let environment = BTreeMap::from([
            ("DEBIAN_FRONTEND".to_owned(), "noninteractive".to_owned()),
            ("TRICKY".to_owned(), "it's $HOME `x` \"q\" * \\".to_owned()),
        ]);
        let body = "printf '%s|%s' \"$DEBIAN_FRONTEND\" \"$TRICKY\"\n";
        let output = run(&Script {
            environment: &environment,
            ..script(&recipe, &build, body, false)
        });
        assert_eq!(output.status.code(), Some(0));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "noninteractive|it's $HOME `x` \"q\" * \\"
        );
    }

    #[test]
    fn only_the_end_of_a_long_stderr_is_reported_and_no_file_stays() {
        let (recipe, build) = names();
        let body = "for i in $(seq 1 3000); do echo \"noise $i\" >&2; done\necho LAST >&2\necho \"$0\"\nexit 1\n";
        let output = run(&script(&recipe, &build, body, false));
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.ends_with("LAST\n") && stderr.len() <= STDERR_TAIL_BYTES,
            "{} bytes",
            stderr.len()
        );
        let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(path.starts_with("/var/tmp/kiln-step."), "{path}");
        assert!(!std::path::Path::new(&path).exists(), "{path} was removed");
    }

    #[test]
    fn a_reboot_step_asks_ssm_for_a_reboot_once_then_succeeds() {
        let (recipe, build) = names();
        let reboot = script(&recipe, &build, "echo ran\n", true);
        let first = run(&reboot);
        assert_eq!(first.status.code(), Some(i32::from(SSM_REBOOT_EXIT_CODE)));
        assert_eq!(String::from_utf8_lossy(&first.stdout), "ran\n");
        let after_boot = run(&reboot);
        assert_eq!(
            after_boot.status.code(),
            Some(0),
            "the run after the reboot succeeds"
        );
        assert_eq!(
            String::from_utf8_lossy(&after_boot.stdout),
            "",
            "without running the script again"
        );
        let failing = script(&recipe, &build, "exit 5\n", true);
        assert_eq!(
            run(&failing).status.code(),
            Some(5),
            "a failed step does not reboot"
        );
    }

    #[test]
    fn markers_are_stable_per_command_and_open_the_comment() {
        let (recipe, build) = names();
        let a = script(&recipe, &build, "x", false);
        let b = Script {
            index: 1,
            ..script(&recipe, &build, "x", false)
        };
        assert_eq!(a.marker(), script(&recipe, &build, "y", true).marker());
        assert_ne!(a.marker(), b.marker());
        assert!(a.comment().starts_with(&a.marker()) && a.comment().len() <= 100);
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("hello", 3), "llo");
        assert_eq!(tail("hi", 10), "hi");
        assert_eq!(tail("aé", 1), "");
    }
}
