//! A seeded emulator per test: `scripts/emulator serve` on a free port,
//! ready in about a second, stopped when the [`Emulator`] is dropped or the
//! test process dies (it watches its stdin).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region};
use kiln::aws::{Context, Settings};
use serde::Deserialize;

use crate::fixtures::RecipeCopy;
use crate::process::{function_binary, repo};

/// What the emulator's launcher seeded.
#[derive(Debug, Deserialize)]
pub struct Seeded {
    /// The emulator's endpoint URL.
    pub endpoint: String,
    /// Its region.
    pub region: String,
    /// The Canonical-style source parameter.
    pub source_parameter: String,
    /// The builders' instance profile it seeded (unless told not to).
    pub instance_profile: String,
    /// The image the source parameter names.
    pub source_ami: String,
    /// Every seeded image, by `release-architecture-serial`.
    pub images: std::collections::BTreeMap<String, String>,
    /// The build state machine, when started with [`Emulator::start_pipeline`].
    pub state_machine_arn: Option<String>,
    /// The release state machine, when started with [`Emulator::start_pipeline`].
    pub release_state_machine_arn: Option<String>,
    /// The audit state machine, when started with [`Emulator::start_audit`].
    pub audit_state_machine_arn: Option<String>,
    /// The Lambda proxy, when started with [`Emulator::start_pipeline`]:
    /// function binaries' calls go through it and it records them.
    pub lambda_proxy: Option<String>,
    /// The account the default credentials belong to.
    pub account: String,
    /// A role in a second account that the default credentials may assume.
    pub member_role: String,
}

/// The launcher's arguments for a state machine (`flag` and its definition
/// in the repository) run with this build's function binaries, each with
/// the settings `env`.
fn machine_args(flag: &str, definition: &str, env: &[(&str, &str)]) -> Vec<String> {
    let functions = function_binary("audit-fleet")
        .parent()
        .map(Path::to_owned)
        .expect("the target directory");
    let mut args = vec![
        "--functions".to_owned(),
        functions.display().to_string(),
        flag.to_owned(),
        repo().join(definition).display().to_string(),
    ];
    for (name, value) in env {
        args.extend(["--function-env".to_owned(), format!("{name}={value}")]);
    }
    args
}

/// A running, seeded emulator.
pub struct Emulator {
    child: Child,
    _stdin: ChildStdin,
    /// What was seeded.
    pub seeded: Seeded,
    /// SDK configuration pointing at the emulator, with retries off.
    pub config: SdkConfig,
}

impl Emulator {
    /// Starts a fresh emulator on a free port and waits until it is seeded.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts an emulator without the seeded `kiln-builder` instance profile,
    /// for a stack of `infra/template.yaml` (which creates its own).
    pub async fn start_for_stack() -> Self {
        Self::start_with(&["--no-builder-profile".to_owned()]).await
    }

    /// Starts an emulator that runs the build state machine for real, with
    /// this build's function binaries reading recipes from `recipe_root`.
    /// Each fault `FUNCTION[:ACTION]:ERROR` makes that function answer ERROR
    /// after it ran (see `scripts/kiln_emulator/proxy.py`).
    pub async fn start_pipeline(recipe_root: &Path, faults: &[&str]) -> Self {
        Self::start_pipeline_with_env(recipe_root, faults, &[]).await
    }

    /// Like [`Emulator::start_pipeline`], every function also running with
    /// the settings `env` (`KILN_OUTPUT_BUCKET`, ...).
    pub async fn start_pipeline_with_env(
        recipe_root: &Path,
        faults: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut args = machine_args("--pipeline", "statemachine/pipeline.asl.json", env);
        args.extend([
            "--recipe-root".to_owned(),
            recipe_root.display().to_string(),
        ]);
        for fault in faults {
            args.extend(["--fault".to_owned(), (*fault).to_owned()]);
        }
        Self::start_with(&args).await
    }

    /// Starts an emulator that runs the audit state machine for real (in its
    /// local form), with this build's `audit-fleet` writing to `bucket`
    /// (which the test creates) and the settings `env`.
    pub async fn start_audit(bucket: &str, env: &[(&str, &str)]) -> Self {
        let bucket = format!("KILN_AUDIT_BUCKET={bucket}");
        let mut args = machine_args("--audit-machine", "statemachine/audit.asl.json", env);
        args.extend(["--function-env".to_owned(), bucket]);
        Self::start_with(&args).await
    }

    async fn start_with(args: &[String]) -> Self {
        let mut child = Command::new(repo().join("scripts/emulator"))
            .args(["serve", "--port", "0"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start scripts/emulator");
        let stdin = child.stdin.take().expect("stdin");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the emulator's ready line");
        let seeded: Seeded =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("emulator said {line:?}: {e}"));
        let config = aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&seeded.endpoint)
            .region(Region::new(seeded.region.clone()))
            .credentials_provider(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "kiln-tests",
            ))
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        Self {
            child,
            _stdin: stdin,
            seeded,
            config,
        }
    }

    /// The build state machine, when started with [`Emulator::start_pipeline`].
    pub fn pipeline(&self) -> &str {
        self.seeded
            .state_machine_arn
            .as_deref()
            .expect("an emulator started with start_pipeline")
    }

    /// Starts build `name` on the pipeline with `input`; returns its ARN.
    pub async fn start_build(&self, name: &str, input: &serde_json::Value) -> String {
        self.sfn()
            .start_execution()
            .state_machine_arn(self.pipeline())
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .expect("StartExecution")
            .execution_arn()
            .to_owned()
    }

    /// Runs execution `name` of `machine` on `input`, and waits up to 120 s
    /// for its end: how it ended.
    pub async fn run_execution(
        &self,
        machine: &str,
        name: &str,
        input: &serde_json::Value,
    ) -> aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput {
        let arn = self
            .sfn()
            .start_execution()
            .state_machine_arn(machine)
            .name(name)
            .input(input.to_string())
            .send()
            .await
            .expect("StartExecution")
            .execution_arn;
        for _ in 0..600 {
            let described = self
                .sfn()
                .describe_execution()
                .execution_arn(&arn)
                .send()
                .await
                .expect("DescribeExecution");
            if described.status() != &aws_sdk_sfn::types::ExecutionStatus::Running {
                return described;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        panic!("execution {arn} did not end in 120 s");
    }

    /// Puts one event on the default bus.
    pub async fn put_event(&self, source: &str, detail_type: &str, detail: &serde_json::Value) {
        self.events()
            .put_events()
            .entries(
                aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                    .source(source)
                    .detail_type(detail_type)
                    .detail(detail.to_string())
                    .build(),
            )
            .send()
            .await
            .expect("PutEvents");
    }

    /// An EventBridge client for the emulator.
    pub fn events(&self) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::new(&self.config)
    }

    /// An S3 client of the emulator, path-style (moto serves buckets under
    /// its one address).
    pub fn s3(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.config)
                .force_path_style(true)
                .build(),
        )
    }

    /// Makes bucket `name`.
    pub async fn bucket(&self, name: &str) {
        self.s3()
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .expect("CreateBucket");
    }

    /// Every key of `bucket` (one page: the tests' buckets hold few).
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        self.s3()
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .expect("ListObjectsV2")
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    /// A Step Functions client for the emulator.
    pub fn sfn(&self) -> aws_sdk_sfn::Client {
        aws_sdk_sfn::Client::new(&self.config)
    }

    /// Captures every event with `source: kiln` on the default bus, as a rule
    /// with an SQS target would deliver it to a subscriber.
    pub async fn capture_events(&self) -> EventCapture {
        self.capture("kiln-events", r#"{"source": ["kiln"]}"#).await
    }

    /// Captures the events on the default bus that `pattern` matches, through
    /// a rule `name` whose target is an SQS queue of the same name.
    pub async fn capture(&self, name: &str, pattern: &str) -> EventCapture {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let queue = sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .expect("create queue");
        let queue_url = queue.queue_url().expect("queue url").to_owned();
        let arn = format!("arn:aws:sqs:{}:123456789012:{name}", self.seeded.region);
        let events = self.events();
        events
            .put_rule()
            .name(name)
            .event_pattern(pattern)
            .send()
            .await
            .expect("put rule");
        events
            .put_targets()
            .rule(name)
            .targets(
                aws_sdk_eventbridge::types::Target::builder()
                    .id("queue")
                    .arn(arn)
                    .build()
                    .expect("target"),
            )
            .send()
            .await
            .expect("put targets");
        EventCapture { sqs, queue_url }
    }

    /// A context whose recipes live under `recipe_root`, reading the seeded source parameter.
    pub fn context(&self, recipe_root: &Path) -> Context {
        self.context_in(&self.seeded.region, recipe_root)
    }

    /// Like [`Emulator::context`], in another region of the same emulator.
    pub fn context_in(&self, region: &str, recipe_root: &Path) -> Context {
        let config = self
            .config
            .to_builder()
            .region(Region::new(region.to_owned()))
            .build();
        Context::new(
            &config,
            Settings {
                recipe_root: recipe_root.to_owned(),
                source_parameter: Some(self.seeded.source_parameter.clone()),
                instance_profile: Some(self.seeded.instance_profile.clone()),
                output_bucket: None,
                state_machine_arn: self.seeded.state_machine_arn.clone(),
                release_state_machine_arn: self.seeded.release_state_machine_arn.clone(),
                security_window_seconds: None,
                // Builds a trigger starts poll at once, as the local runs do.
                wait_seconds: Some(0),
                audit_bucket: None,
                audit_regions: Vec::new(),
                audit_roles: Vec::new(),
                audit_organization: Vec::new(),
                audit_role_name: None,
                audit_config_aggregator: None,
            },
        )
    }

    /// SDK configuration with the credentials of [`Seeded::member_role`]:
    /// calls act in the second account.
    pub async fn member_config(&self) -> SdkConfig {
        self.config_as(&self.seeded.member_role).await
    }

    /// SDK configuration acting as `role` (assumed with the default
    /// credentials): calls act in the role's account.
    pub async fn config_as(&self, role: &str) -> SdkConfig {
        let assumed = aws_sdk_sts::Client::new(&self.config)
            .assume_role()
            .role_arn(role)
            .role_session_name("kiln-tests")
            .send()
            .await
            .expect("AssumeRole");
        let credentials = assumed.credentials().expect("credentials");
        self.config
            .to_builder()
            .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
                Credentials::new(
                    credentials.access_key_id(),
                    credentials.secret_access_key(),
                    Some(credentials.session_token().to_owned()),
                    None,
                    "kiln-tests-assumed",
                ),
            ))
            .build()
    }

    /// Environment for a `kiln` process talking to this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let release = self
            .seeded
            .release_state_machine_arn
            .iter()
            .map(|arn| ("KILN_RELEASE_STATE_MACHINE_ARN", arn.clone()));
        let mut env = vec![
            ("AWS_ENDPOINT_URL", self.seeded.endpoint.clone()),
            ("AWS_REGION", self.seeded.region.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_MAX_ATTEMPTS", "1".into()),
            (
                "KILN_SOURCE_PARAMETER",
                self.seeded.source_parameter.clone(),
            ),
        ];
        env.extend(release);
        env
    }

    /// The environment function `name` runs with when a test runs it itself
    /// (`invoke_function`): as the state machine's runs of it, its calls go
    /// through the Lambda proxy under its own access key,
    /// `kiln-function-<name>`, and are recorded.
    pub fn function_env(&self, name: &str, recipe_root: &Path) -> Vec<(&'static str, String)> {
        let proxy = self
            .seeded
            .lambda_proxy
            .clone()
            .expect("an emulator started with start_pipeline");
        let mut env = vec![
            ("AWS_ENDPOINT_URL", proxy),
            ("AWS_REGION", self.seeded.region.clone()),
            ("AWS_ACCESS_KEY_ID", format!("kiln-function-{name}")),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_MAX_ATTEMPTS", "1".into()),
            ("KILN_RECIPE_ROOT", recipe_root.display().to_string()),
            (
                "KILN_SOURCE_PARAMETER",
                self.seeded.source_parameter.clone(),
            ),
            (
                "KILN_INSTANCE_PROFILE",
                self.seeded.instance_profile.clone(),
            ),
        ];
        env.extend(
            [
                ("KILN_STATE_MACHINE_ARN", &self.seeded.state_machine_arn),
                (
                    "KILN_RELEASE_STATE_MACHINE_ARN",
                    &self.seeded.release_state_machine_arn,
                ),
            ]
            .into_iter()
            .filter_map(|(key, value)| value.clone().map(|value| (key, value))),
        );
        env
    }

    /// Makes `copy` distribute to `region` (encrypted with a key made
    /// there) and share with the member account ([`Seeded::member_role`]'s),
    /// its builder volume (so its image) encrypted with a customer key of
    /// the build region, as sharing requires. Answers the member account and
    /// the key in `region`.
    pub fn distribute(&self, copy: &RecipeCopy, region: &str) -> (String, String) {
        let home_key = self.kms_key(&self.seeded.region);
        let away_key = self.kms_key(region);
        let member = self
            .seeded
            .member_role
            .split(':')
            .nth(4)
            .expect("the member role's account")
            .to_owned();
        copy.edit("recipe.toml", |text| {
            text.replace(
                "encrypted = true }",
                &format!("encrypted = true, kms_key_id = \"{home_key}\" }}"),
            ) + &format!(
                "\n[distribution]\nregions = [\"{region}\"]\naccounts = [\"{member}\"]\n\
                 [distribution.kms_keys]\n{region} = \"{away_key}\"\n"
            )
        });
        (member, away_key)
    }

    /// Makes `copy` (distributing, see [`Emulator::distribute`]) keep its
    /// channels' pointers in the member account too, through
    /// [`Seeded::member_role`]; answers the role.
    pub fn point_members(&self, copy: &RecipeCopy) -> String {
        let role = self.seeded.member_role.clone();
        copy.edit("recipe.toml", |text| {
            text.replace(
                "\n[distribution.kms_keys]",
                &format!("\npointer_roles = [\"{role}\"]\n[distribution.kms_keys]"),
            )
        });
        role
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events a rule delivered to its queue (see [`Emulator::capture_events`]).
pub struct EventCapture {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl EventCapture {
    /// Every event delivered since the last call, as EventBridge sends them.
    pub async fn received(&self) -> Vec<serde_json::Value> {
        let mut events = Vec::new();
        loop {
            let output = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive");
            let messages = output.messages();
            if messages.is_empty() {
                return events;
            }
            for message in messages {
                let body = message.body().expect("a body");
                events.push(serde_json::from_str(body).expect("an event is JSON"));
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().expect("handle"))
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}
