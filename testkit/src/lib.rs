//! Test support for kiln's tests: a seeded emulator per test, copies of the
//! example recipe to edit, mocked clients, and helpers to read what the
//! emulator holds.
//!
//! Each test starts its own emulator (`scripts/emulator serve` on a free port,
//! ready in about a second), so tests are isolated under any parallel runner.
//! The emulator stops when its [`Emulator`] is dropped, or when the test
//! process dies (it watches its stdin).

pub mod asl;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::{Credentials, Region};
use aws_sdk_ec2::types::{Filter, Image, Instance};
use aws_smithy_mocks::{Rule, RuleMode, mock_client};
use kiln::aws::{Context, Settings};
use kiln::recipe::Recipe;
use kiln::state::{AmiId, BuildId, Trigger};
use serde::Deserialize;

/// What the emulator's launcher seeded.
#[derive(Debug, Deserialize)]
pub struct Seeded {
    /// The emulator's endpoint URL.
    pub endpoint: String,
    /// Its region.
    pub region: String,
    /// The Canonical-style source parameter.
    pub source_parameter: String,
    /// The image the source parameter names.
    pub source_ami: String,
    /// Every seeded image, by `release-architecture-serial`.
    pub images: std::collections::BTreeMap<String, String>,
    /// The build state machine, when started with [`Emulator::start_pipeline`].
    pub state_machine_arn: Option<String>,
    /// The release state machine, when started with [`Emulator::start_pipeline`].
    pub release_state_machine_arn: Option<String>,
    /// The account the default credentials belong to.
    pub account: String,
    /// A role in a second account that the default credentials may assume.
    pub member_role: String,
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

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The repository's recipe root (`images/`).
pub fn recipe_root() -> PathBuf {
    repo().join("images")
}

/// A context whose clients answer from mock rules (matched in any order) and
/// retry like the SDK's standard mode, without the waiting; recipes are read
/// from `recipe_root`.
pub fn mocked(recipe_root: &Path, ec2: &[&Rule], ssm: &[&Rule]) -> Context {
    mocked_with(
        recipe_root,
        &Mocks {
            ec2,
            ssm,
            ..Mocks::default()
        },
    )
}

/// Mock rules per client, for [`mocked_with`].
#[derive(Default)]
pub struct Mocks<'a> {
    /// EC2.
    pub ec2: &'a [&'a Rule],
    /// Systems Manager.
    pub ssm: &'a [&'a Rule],
    /// EC2 Auto Scaling.
    pub autoscaling: &'a [&'a Rule],
    /// CloudWatch.
    pub cloudwatch: &'a [&'a Rule],
}

/// Like [`mocked`], with rules for every client that has some.
pub fn mocked_with(recipe_root: &Path, mocks: &Mocks<'_>) -> Context {
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1));
    Context {
        autoscaling: mock_client!(
            aws_sdk_autoscaling,
            RuleMode::MatchAny,
            mocks.autoscaling,
            |c| c.retry_config(retry.clone())
        ),
        cloudwatch: mock_client!(
            aws_sdk_cloudwatch,
            RuleMode::MatchAny,
            mocks.cloudwatch,
            |c| c.retry_config(retry.clone())
        ),
        ec2: mock_client!(aws_sdk_ec2, RuleMode::MatchAny, mocks.ec2, |c| c
            .retry_config(retry.clone())),
        ssm: mock_client!(aws_sdk_ssm, RuleMode::MatchAny, mocks.ssm, |c| c
            .retry_config(retry.clone())),
        sfn: mock_client!(aws_sdk_sfn, RuleMode::MatchAny, &[]),
        // Clients made from it (an audit's) reach nothing.
        config: SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .region(Region::new("us-east-1"))
            .build(),
        settings: Settings {
            recipe_root: recipe_root.to_owned(),
            ..Settings::default()
        },
    }
}

/// The function binary `name` of this build (`target/debug/NAME`).
pub fn function_binary(name: &str) -> PathBuf {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|dir| dir.join(name)))
        .expect("the target directory");
    assert!(
        binary.is_file(),
        "no function binary {}: run `cargo build --workspace --bins` (make test does)",
        binary.display()
    );
    binary
}

/// Runs function binary `name` as Lambda does, for one `event`, with `env`
/// added to this process's environment (scripts/local_lambda.py). Returns
/// whether it answered without error, and its answer.
pub fn invoke_function(
    name: &str,
    env: &[(&str, String)],
    event: &serde_json::Value,
) -> (bool, serde_json::Value) {
    use std::io::Write as _;
    let mut child = Command::new("python3")
        .arg(repo().join("scripts/local_lambda.py"))
        .arg(function_binary(name))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 scripts/local_lambda.py");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(event.to_string().as_bytes())
        .expect("write the event");
    let output = child.wait_with_output().expect("the function's answer");
    let answer = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{name} answered {:?}: {e}", output.stdout));
    (output.status.success(), answer)
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
    /// after it ran (see `scripts/emulator.py`).
    pub async fn start_pipeline(recipe_root: &Path, faults: &[&str]) -> Self {
        let functions = function_binary("resolve-source")
            .parent()
            .map(Path::to_owned)
            .expect("the target directory");
        let mut args = vec![
            "--functions".to_owned(),
            functions.display().to_string(),
            "--recipe-root".to_owned(),
            recipe_root.display().to_string(),
            "--pipeline".to_owned(),
            repo()
                .join("statemachine/pipeline.asl.json")
                .display()
                .to_string(),
        ];
        for fault in faults {
            args.extend(["--fault".to_owned(), (*fault).to_owned()]);
        }
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
                output_bucket: None,
                state_machine_arn: self.seeded.state_machine_arn.clone(),
                release_state_machine_arn: self.seeded.release_state_machine_arn.clone(),
                security_window_seconds: None,
                // Builds a trigger starts poll at once, as the local runs do.
                wait_seconds: Some(0),
                audit_bucket: None,
                audit_regions: Vec::new(),
                audit_roles: Vec::new(),
            },
        )
    }

    /// SDK configuration with the credentials of [`Seeded::member_role`]:
    /// calls act in the second account.
    pub async fn member_config(&self) -> SdkConfig {
        let assumed = aws_sdk_sts::Client::new(&self.config)
            .assume_role()
            .role_arn(&self.seeded.member_role)
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
                    "kiln-tests-member",
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

/// A writable copy of the example recipe, in a fresh recipe root.
pub struct RecipeCopy {
    /// The recipe root holding the copy.
    pub root: tempfile::TempDir,
}

impl RecipeCopy {
    /// Copies `images/ubuntu-base`.
    pub fn ubuntu_base() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("ubuntu-base");
        std::fs::create_dir(&dir).expect("mkdir");
        for entry in std::fs::read_dir(recipe_root().join("ubuntu-base")).expect("read recipe") {
            let entry = entry.expect("entry");
            std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy");
        }
        Self { root }
    }

    /// The recipe directory.
    pub fn dir(&self) -> PathBuf {
        self.root.path().join("ubuntu-base")
    }

    /// Loads the copy, which must be valid.
    pub fn load(&self) -> Recipe {
        Recipe::load(&self.dir()).expect("the example recipe is valid")
    }

    /// Rewrites a file of the recipe through `edit`.
    pub fn edit(&self, file: &str, edit: impl FnOnce(String) -> String) {
        let path = self.dir().join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, edit(text)).expect("write");
    }
}

/// A manual trigger of `ubuntu-base` with `build_id`.
pub fn trigger(build_id: &str) -> Trigger {
    Trigger {
        recipe: "ubuntu-base".parse().expect("name"),
        build_id: build_id.parse::<BuildId>().expect("id"),
        reason: kiln::state::Reason::Manual,
        force: false,
        wait_seconds: 0,
        started_at: None,
    }
}

fn filter(name: &str, values: &[&str]) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.iter().map(|v| (*v).to_owned()).collect()))
        .build()
}

/// Every instance in the emulator (all states), optionally only those tagged with a build.
pub async fn instances(ctx: &Context, build_id: Option<&str>) -> Vec<Instance> {
    let mut request = ctx.ec2.describe_instances();
    if let Some(build_id) = build_id {
        request = request.filters(filter("tag:kiln:build-id", &[build_id]));
    }
    request
        .send()
        .await
        .expect("DescribeInstances")
        .reservations()
        .iter()
        .flat_map(|r| r.instances().to_vec())
        .collect()
}

/// Instances that are not terminated (or shutting down).
pub async fn live_instances(ctx: &Context, build_id: Option<&str>) -> Vec<Instance> {
    instances(ctx, build_id)
        .await
        .into_iter()
        .filter(|i| {
            let state = i
                .state()
                .and_then(|s| s.name())
                .map(|n| n.as_str().to_owned());
            !matches!(state.as_deref(), Some("terminated" | "shutting-down"))
        })
        .collect()
}

/// Images this account owns.
pub async fn own_images(ctx: &Context) -> Vec<Image> {
    ctx.ec2
        .describe_images()
        .owners("self")
        .send()
        .await
        .expect("DescribeImages")
        .images()
        .to_vec()
}

/// A seeded Canonical x86_64 image in the context's region.
pub async fn canonical_image(ctx: &Context) -> String {
    ctx.ec2
        .describe_images()
        .owners("099720109477")
        .send()
        .await
        .expect("DescribeImages")
        .images()
        .iter()
        .find(|i| i.architecture().is_some_and(|a| a.as_str() == "x86_64"))
        .and_then(|i| i.image_id().map(str::to_owned))
        .expect("a seeded x86_64 image")
}

/// Makes an image as a build of `recipe` would leave it (`build_id` and
/// `stage` tags, from a seeded Canonical image, its instance terminated) and
/// returns its id. Quicker than a build, for tests of what comes after.
pub async fn built_image(ctx: &Context, recipe: &str, build_id: &str, stage: &str) -> AmiId {
    let source = canonical_image(ctx).await;
    let instance = launch(ctx, &source).await;
    let tags = [
        ("kiln:recipe", recipe),
        ("kiln:build-id", build_id),
        ("kiln:role", "image"),
        ("kiln:stage", stage),
    ];
    let image = ctx
        .ec2
        .create_image()
        .instance_id(&instance)
        .name(format!("kiln/{recipe}/{build_id}"))
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Image)
                .set_tags(Some(
                    tags.iter().map(|(k, v)| kiln::tags::tag(k, *v)).collect(),
                ))
                .build(),
        )
        .send()
        .await
        .expect("CreateImage");
    ctx.ec2
        .terminate_instances()
        .instance_ids(&instance)
        .send()
        .await
        .expect("TerminateInstances");
    image
        .image_id()
        .expect("image id")
        .parse()
        .expect("an AMI id")
}

/// Launches one untagged instance from `image`; returns its id.
pub async fn launch(ctx: &Context, image: &str) -> String {
    let run = ctx
        .ec2
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("RunInstances");
    run.instances()[0]
        .instance_id()
        .expect("instance id")
        .to_owned()
}

/// Launches `count` instances of `image` in one call (one reservation),
/// each tagged with `tags`.
pub async fn launch_many(ctx: &Context, image: &str, count: i32, tags: &[(&str, &str)]) {
    let mut run = ctx
        .ec2
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(count)
        .max_count(count);
    if !tags.is_empty() {
        run = run.tag_specifications(kiln::tags::specification(
            aws_sdk_ec2::types::ResourceType::Instance,
            &tags
                .iter()
                .map(|(k, v)| kiln::tags::tag(k, *v))
                .collect::<Vec<_>>(),
        ));
    }
    run.send().await.expect("RunInstances");
}

/// The value of tag `key`.
pub fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    kiln::tags::value(tags, key)
}

/// An Auto Scaling group `name` of two instances of `image`, launched from a
/// new launch template `name` pinned at version 1, with `tags` on the group;
/// returns the template's id.
pub async fn auto_scaling_group(
    ctx: &Context,
    name: &str,
    image: &str,
    tags: &[(&str, &str)],
) -> String {
    let template = ctx
        .ec2
        .create_launch_template()
        .launch_template_name(name)
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id(image)
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    let id = template
        .launch_template()
        .and_then(|t| t.launch_template_id())
        .expect("a template id")
        .to_owned();
    ctx.autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(name)
        .launch_template(
            aws_sdk_autoscaling::types::LaunchTemplateSpecification::builder()
                .launch_template_id(&id)
                .version("1")
                .build(),
        )
        .min_size(1)
        .max_size(4)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .set_tags(Some(
            tags.iter()
                .map(|(key, value)| {
                    aws_sdk_autoscaling::types::Tag::builder()
                        .key(*key)
                        .value(*value)
                        .resource_id(name)
                        .resource_type("auto-scaling-group")
                        .propagate_at_launch(false)
                        .build()
                })
                .collect(),
        ))
        .send()
        .await
        .expect("CreateAutoScalingGroup");
    id
}

/// A CloudWatch metric alarm `name`, in state OK.
pub async fn alarm(ctx: &Context, name: &str) {
    ctx.cloudwatch
        .put_metric_alarm()
        .alarm_name(name)
        .namespace("Web")
        .metric_name("5xx")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    set_alarm(ctx, name, aws_sdk_cloudwatch::types::StateValue::Ok).await;
}

/// Drives alarm `name` into `state`, as its metric would.
pub async fn set_alarm(ctx: &Context, name: &str, state: aws_sdk_cloudwatch::types::StateValue) {
    ctx.cloudwatch
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by a test")
        .send()
        .await
        .expect("SetAlarmState");
}

/// Every version of launch template `id`: (number, image).
pub async fn template_versions(ctx: &Context, id: &str) -> Vec<(i64, Option<String>)> {
    let found = ctx
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(id)
        .send()
        .await
        .expect("DescribeLaunchTemplateVersions");
    let mut versions: Vec<_> = found
        .launch_template_versions()
        .iter()
        .map(|v| {
            (
                v.version_number().unwrap_or_default(),
                v.launch_template_data()
                    .and_then(|d| d.image_id())
                    .map(str::to_owned),
            )
        })
        .collect();
    versions.sort();
    versions
}
