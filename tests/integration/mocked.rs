//! Error paths the emulator cannot produce, with `aws-smithy-mocks`: no
//! capacity, an SSM agent not registered yet, a failing or timed-out script,
//! throttling.

use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::describe_instances::DescribeInstancesOutput;
use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsOutput;
use aws_sdk_ec2::operation::describe_vpcs::DescribeVpcsOutput;
use aws_sdk_ec2::operation::run_instances::{RunInstancesError, RunInstancesOutput};
use aws_sdk_ec2::types::{
    ArchitectureValues, DeviceType, Image, ImageState, Instance, InstanceState, InstanceStateName,
    Reservation, SecurityGroup, Vpc,
};
use aws_sdk_ssm::operation::get_command_invocation::{
    GetCommandInvocationError, GetCommandInvocationOutput,
};
use aws_sdk_ssm::operation::get_parameter::GetParameterOutput;
use aws_sdk_ssm::operation::list_commands::ListCommandsError;
use aws_sdk_ssm::operation::send_command::SendCommandError;
use aws_sdk_ssm::types::{CommandInvocationStatus, Parameter};
use aws_smithy_mocks::{Rule, mock};
use kiln::Error;
use kiln::aws::Context;
use kiln::pipeline::state::{Builder, MAX_WAIT_SECONDS, Polling, Provision, Source, StepStatus};
use kiln_testkit::{Protocol, RecipeCopy, throttled};

const SOURCE: &str = "ami-0a1b2c3d4e5f60001";
const INSTANCE: &str = "i-0123456789abcdef0";
const COMMAND: &str = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0";

fn context(copy: &RecipeCopy, ec2: &[&Rule], ssm: &[&Rule]) -> Context {
    kiln_testkit::mocked(copy.root.path(), ec2, ssm)
}

fn source(copy: &RecipeCopy) -> Source {
    Source {
        source_ami: SOURCE.parse().expect("ami"),
        source_name: "ubuntu".into(),
        serial: None,
        root_device_name: "/dev/sda1".into(),
        fingerprint: copy.load().fingerprint(&SOURCE.parse().expect("ami")),
        skip: false,
        existing_image_id: None,
        started_at: jiff::Timestamp::UNIX_EPOCH,
        duration_seconds: None,
        copy_regions: Vec::new(),
        distributes: false,
    }
}

fn builder() -> Builder {
    Builder {
        builder_instance_id: INSTANCE.parse().expect("id"),
        instance_type: "t3.small".into(),
    }
}

fn instance_in(state: InstanceStateName) -> Rule {
    mock!(aws_sdk_ec2::Client::describe_instances).then_output(move || {
        DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .instances(
                        Instance::builder()
                            .instance_id(INSTANCE)
                            .state(InstanceState::builder().name(state.clone()).build())
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

/// What `launch` reads before `RunInstances`: no live builder yet, the default
/// VPC, and kiln's security group in it.
fn before_launch() -> [Rule; 3] {
    let nothing_live = mock!(aws_sdk_ec2::Client::describe_instances)
        .then_output(|| DescribeInstancesOutput::builder().build());
    let vpc = mock!(aws_sdk_ec2::Client::describe_vpcs).then_output(|| {
        DescribeVpcsOutput::builder()
            .vpcs(Vpc::builder().vpc_id("vpc-1").build())
            .build()
    });
    let group = mock!(aws_sdk_ec2::Client::describe_security_groups).then_output(|| {
        DescribeSecurityGroupsOutput::builder()
            .security_groups(
                SecurityGroup::builder()
                    .group_id("sg-0123456789abcdef0")
                    .build(),
            )
            .build()
    });
    [nothing_live, vpc, group]
}

#[tokio::test]
async fn no_capacity_for_the_first_type_falls_through_to_the_second() {
    let copy = RecipeCopy::ubuntu_base();
    let [nothing_live, vpc, group] = before_launch();
    let no_capacity = mock!(aws_sdk_ec2::Client::run_instances)
        .match_requests(|r| r.instance_type().map(|t| t.as_str()) == Some("t3.small"))
        .then_error(|| {
            RunInstancesError::generic(
                ErrorMetadata::builder()
                    .code("InsufficientInstanceCapacity")
                    .message("We currently do not have sufficient t3.small capacity")
                    .build(),
            )
        });
    let launched = mock!(aws_sdk_ec2::Client::run_instances)
        .match_requests(|r| r.instance_type().map(|t| t.as_str()) == Some("t3a.small"))
        .then_output(|| {
            RunInstancesOutput::builder()
                .instances(Instance::builder().instance_id(INSTANCE).build())
                .build()
        });
    let ctx = context(
        &copy,
        &[&nothing_live, &vpc, &group, &no_capacity, &launched],
        &[],
    );

    let builder = kiln::pipeline::builder::launch(
        &ctx,
        &copy.load(),
        &"b1".parse().expect("id"),
        &source(&copy),
    )
    .await
    .expect("launches on the second type");

    assert_eq!(builder.instance_type, "t3a.small");
    assert_eq!(builder.builder_instance_id.as_str(), INSTANCE);
    assert_eq!(no_capacity.num_calls(), 1);
    assert_eq!(launched.num_calls(), 1);
}

#[tokio::test]
async fn no_capacity_anywhere_is_no_capacity_naming_every_type() {
    let copy = RecipeCopy::ubuntu_base();
    let [nothing_live, vpc, group] = before_launch();
    let never = mock!(aws_sdk_ec2::Client::run_instances).then_error(|| {
        RunInstancesError::generic(ErrorMetadata::builder().code("Unsupported").build())
    });
    let ctx = context(&copy, &[&nothing_live, &vpc, &group, &never], &[]);

    let err = kiln::pipeline::builder::launch(
        &ctx,
        &copy.load(),
        &"b1".parse().expect("id"),
        &source(&copy),
    )
    .await
    .expect_err("no capacity");

    assert_eq!(err.name(), "NoCapacity");
    assert_eq!(never.num_calls(), 3, "every type was tried once");
    for instance_type in ["t3.small", "t3a.small", "m5.large"] {
        assert!(err.to_string().contains(instance_type), "{err}");
    }
}

#[tokio::test]
async fn an_unregistered_agent_is_builder_not_ready_and_a_gone_builder_is_not() {
    let copy = RecipeCopy::ubuntu_base();
    let unknown = mock!(aws_sdk_ssm::Client::send_command).then_error(|| {
        SendCommandError::InvalidInstanceId(
            aws_sdk_ssm::types::error::InvalidInstanceId::builder().build(),
        )
    });
    let nothing_sent = mock!(aws_sdk_ssm::Client::list_commands).then_error(|| {
        ListCommandsError::InvalidInstanceId(
            aws_sdk_ssm::types::error::InvalidInstanceId::builder().build(),
        )
    });
    let not_in_ec2_yet = mock!(aws_sdk_ec2::Client::describe_instances).then_error(|| {
        aws_sdk_ec2::operation::describe_instances::DescribeInstancesError::generic(
            ErrorMetadata::builder()
                .code("InvalidInstanceID.NotFound")
                .build(),
        )
    });
    let cases = [
        (not_in_ec2_yet, "BuilderNotReady"),
        (instance_in(InstanceStateName::Pending), "BuilderNotReady"),
        (instance_in(InstanceStateName::Running), "BuilderNotReady"),
        (instance_in(InstanceStateName::Terminated), "BuilderGone"),
        (instance_in(InstanceStateName::Stopped), "BuilderGone"),
    ];
    for (described, expected) in cases {
        let ctx = context(&copy, &[&described], &[&nothing_sent, &unknown]);
        let err = kiln::pipeline::provision::start(
            &ctx,
            &copy.load(),
            &kiln_testkit::trigger("b1"),
            &builder(),
            0,
        )
        .await
        .expect_err("refused");
        assert_eq!(err.name(), expected, "{err}");
        assert!(err.to_string().contains(INSTANCE), "{err}");
    }
}

fn in_progress() -> Provision {
    Provision {
        step: 0,
        steps: 2,
        step_name: "setup".into(),
        command_id: Some(COMMAND.parse().expect("command id")),
        status: StepStatus::InProgress,
        polling: Polling {
            since: jiff::Timestamp::UNIX_EPOCH,
            wait_seconds: 0,
        },
    }
}

fn invocation(status: CommandInvocationStatus, code: i32, stderr: String) -> Rule {
    mock!(aws_sdk_ssm::Client::get_command_invocation).then_output(move || {
        GetCommandInvocationOutput::builder()
            .status(status.clone())
            .response_code(code)
            .standard_error_content(stderr.clone())
            .build()
    })
}

#[tokio::test]
async fn a_script_that_exits_1_is_command_failed_with_the_exit_code_and_stderr_tail() {
    let copy = RecipeCopy::ubuntu_base();
    let noise: String = (0..400).map(|i| format!("apt: line {i}\n")).collect();
    let stderr = format!("{noise}E: Unable to locate package containerd\n");
    let failed = invocation(CommandInvocationStatus::Failed, 1, stderr);
    let ctx = context(&copy, &[], &[&failed]);

    let err = kiln::pipeline::provision::poll(
        &ctx,
        &copy.load(),
        &kiln_testkit::trigger("b1"),
        &builder(),
        &in_progress(),
    )
    .await
    .expect_err("failed");

    match &err {
        Error::CommandFailed {
            step,
            status,
            exit_code,
            stderr_tail,
        } => {
            assert_eq!(step, "setup");
            assert_eq!(status, "Failed");
            assert_eq!(*exit_code, 1);
            assert!(
                stderr_tail.ends_with("E: Unable to locate package containerd\n"),
                "{stderr_tail}"
            );
            assert!(
                stderr_tail.len() <= 2000,
                "only the tail: {} bytes",
                stderr_tail.len()
            );
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    assert_eq!(
        lambda_runtime::Diagnostic::from(err).error_type,
        "CommandFailed"
    );
}

#[tokio::test]
async fn polling_reports_progress_timeouts_and_the_next_step() {
    let copy = RecipeCopy::ubuntu_base();
    let recipe = copy.load();
    let trigger = kiln_testkit::trigger("b1");

    let running = invocation(CommandInvocationStatus::InProgress, -1, String::new());
    let ctx = context(&copy, &[], &[&running]);
    let polled =
        kiln::pipeline::provision::poll(&ctx, &recipe, &trigger, &builder(), &in_progress())
            .await
            .expect("poll");
    assert_eq!(
        polled,
        Provision {
            polling: Polling {
                wait_seconds: MAX_WAIT_SECONDS,
                ..in_progress().polling
            },
            ..in_progress()
        },
        "a step running since long ago is polled every {MAX_WAIT_SECONDS} s"
    );

    let not_yet = mock!(aws_sdk_ssm::Client::get_command_invocation).then_error(|| {
        GetCommandInvocationError::InvocationDoesNotExist(
            aws_sdk_ssm::types::error::InvocationDoesNotExist::builder().build(),
        )
    });
    let ctx = context(&copy, &[], &[&not_yet]);
    let polled =
        kiln::pipeline::provision::poll(&ctx, &recipe, &trigger, &builder(), &in_progress())
            .await
            .expect("poll");
    assert_eq!(
        polled.status,
        StepStatus::InProgress,
        "an invocation not listed yet is still in progress"
    );

    let timed_out = invocation(CommandInvocationStatus::TimedOut, -1, String::new());
    let ctx = context(&copy, &[], &[&timed_out]);
    let err = kiln::pipeline::provision::poll(&ctx, &recipe, &trigger, &builder(), &in_progress())
        .await
        .expect_err("timeout");
    assert_eq!(err.name(), "CommandTimedOut");
    assert!(err.to_string().contains("1800"), "{err}");

    // setup succeeded (after the reboot it asked SSM for): cleanup is next.
    let succeeded = invocation(CommandInvocationStatus::Success, 0, String::new());
    let ctx = context(&copy, &[], &[&succeeded]);
    let next = kiln::pipeline::provision::poll(&ctx, &recipe, &trigger, &builder(), &in_progress())
        .await
        .expect("poll");
    assert_eq!(
        (next.step, next.step_name.as_str(), next.status),
        (1, "cleanup", StepStatus::Pending)
    );
    assert_eq!(next.command_id, None);
}

fn source_image() -> Rule {
    mock!(aws_sdk_ec2::Client::describe_images).then_compute_output(|request| {
        let images = if request.image_ids() == [SOURCE] {
            vec![
                Image::builder()
                    .image_id(SOURCE)
                    .name("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261118")
                    .owner_id("099720109477")
                    .state(ImageState::Available)
                    .architecture(ArchitectureValues::X8664)
                    .root_device_type(DeviceType::Ebs)
                    .root_device_name("/dev/sda1")
                    .ena_support(true)
                    .build(),
            ]
        } else {
            Vec::new()
        };
        DescribeImagesOutput::builder()
            .set_images(Some(images))
            .build()
    })
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk_and_named_when_it_persists() {
    let copy = RecipeCopy::ubuntu_base();
    let images = source_image();
    let parameter = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| throttled(Protocol::Json))
        .times(2)
        .output(|| {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().value(SOURCE).build())
                .build()
        })
        .build();
    let ctx = context(&copy, &[&images], &[&parameter]);
    let source = kiln::pipeline::source::resolve(&ctx, &copy.load(), false)
        .await
        .expect("resolves after two throttles");
    assert_eq!(
        parameter.num_calls(),
        3,
        "two throttled attempts, then success"
    );
    assert_eq!(source.source_ami.as_str(), SOURCE);
    assert!(!source.skip);

    let always = mock!(aws_sdk_ssm::Client::get_parameter)
        .sequence()
        .http_response(|| throttled(Protocol::Json))
        .repeatedly()
        .build();
    let ctx = context(&copy, &[&images], &[&always]);
    let err = kiln::pipeline::source::resolve(&ctx, &copy.load(), false)
        .await
        .expect_err("throttled");
    assert_eq!(err.name(), "Throttled", "{err}");
    assert_eq!(always.num_calls(), 3, "the SDK gave up after its attempts");
}

fn image_now(state: ImageState, ena: Option<bool>) -> Rule {
    mock!(aws_sdk_ec2::Client::describe_images).then_output(move || {
        DescribeImagesOutput::builder()
            .images(
                Image::builder()
                    .image_id("ami-0fedcba9876543210")
                    .state(state.clone())
                    .set_ena_support(ena)
                    .state_reason(
                        aws_sdk_ec2::types::StateReason::builder()
                            .message("snapshot copy failed")
                            .build(),
                    )
                    .build(),
            )
            .build()
    })
}

/// An image requested at `since`.
fn pending_image(since: jiff::Timestamp) -> kiln::pipeline::state::Image {
    kiln::pipeline::state::Image {
        image_id: "ami-0fedcba9876543210".parse().expect("ami"),
        image_name: "kiln/ubuntu-base/19700101-b1".into(),
        state: kiln::pipeline::state::ImageState::Pending,
        polling: Polling {
            since,
            wait_seconds: 0,
        },
    }
}

#[tokio::test]
async fn an_available_image_without_ena_is_refused_after_the_builder_is_gone() {
    let copy = RecipeCopy::ubuntu_base();
    let no_ena = image_now(ImageState::Available, None);
    let builder = instance_in(InstanceStateName::Running);
    let terminate = mock!(aws_sdk_ec2::Client::terminate_instances)
        .match_requests(|r| r.instance_ids() == [INSTANCE])
        .then_output(|| {
            aws_sdk_ec2::operation::terminate_instances::TerminateInstancesOutput::builder().build()
        });
    let failed = mock!(aws_sdk_ec2::Client::create_tags)
        .match_requests(|r| {
            r.resources() == ["ami-0fedcba9876543210"]
                && r.tags()
                    .iter()
                    .any(|t| t.key() == Some("kiln:stage") && t.value() == Some("failed"))
        })
        .then_output(|| aws_sdk_ec2::operation::create_tags::CreateTagsOutput::builder().build());
    let ctx = context(&copy, &[&no_ena, &builder, &terminate, &failed], &[]);

    let err = kiln::pipeline::image::poll(
        &ctx,
        &copy.load(),
        &kiln_testkit::trigger("b1"),
        &pending_image(jiff::Timestamp::now()),
    )
    .await
    .expect_err("no ENA");

    assert_eq!(err.name(), "EnaMissing", "{err}");
    assert_eq!(
        terminate.num_calls(),
        1,
        "the builder is terminated whatever the verdict"
    );
    assert_eq!(
        failed.num_calls(),
        1,
        "the image is marked failed, so no later build skips to it"
    );
}

#[tokio::test]
async fn a_failed_image_is_image_failed_with_the_reason() {
    let copy = RecipeCopy::ubuntu_base();
    let failed = image_now(ImageState::Failed, Some(true));
    let ctx = context(&copy, &[&failed], &[]);

    let err = kiln::pipeline::image::poll(
        &ctx,
        &copy.load(),
        &kiln_testkit::trigger("b1"),
        &pending_image(jiff::Timestamp::now()),
    )
    .await
    .expect_err("failed");

    assert_eq!(err.name(), "ImageFailed");
    assert!(err.to_string().contains("snapshot copy failed"), "{err}");

    let pending = image_now(ImageState::Pending, None);
    let ctx = context(&copy, &[&pending], &[]);
    let image = pending_image(jiff::Timestamp::now());
    let polled =
        kiln::pipeline::image::poll(&ctx, &copy.load(), &kiln_testkit::trigger("b1"), &image)
            .await
            .expect("pending");
    assert_eq!(
        (polled.state, polled.polling.since),
        (image.state, image.polling.since)
    );
}

#[tokio::test]
async fn an_image_pending_past_the_recipe_timeout_is_image_timed_out() {
    let copy = RecipeCopy::ubuntu_base();
    let pending = image_now(ImageState::Pending, None);
    let ctx = context(&copy, &[&pending], &[]);
    let since = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(5);

    let err = kiln::pipeline::image::poll(
        &ctx,
        &copy.load(),
        &kiln_testkit::trigger("b1"),
        &pending_image(since),
    )
    .await
    .expect_err("timed out");

    assert_eq!(err.name(), "ImageTimedOut");
    assert!(err.to_string().contains("14400 s"), "{err}");
}

const A: &str = "ami-0aaaaaaaaaaaaaaa1";
const B: &str = "ami-0bbbbbbbbbbbbbbb2";
const PROD: &str = "/kiln/ubuntu-base/prod";

/// `GetParametersByPath` of the recipe's pointers: prod at `image`, or none.
fn pointers_output(
    prod: Option<(&'static str, i64)>,
) -> impl Fn() -> aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput {
    move || {
        aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput::builder()
            .set_parameters(prod.map(|(image, version)| {
                vec![
                    Parameter::builder()
                        .name(PROD)
                        .value(image)
                        .version(version)
                        .build(),
                ]
            }))
            .build()
    }
}

/// `GetParameterHistory` of prod: `images`, versions 1, 2, ...
fn history_output(
    images: &'static [&'static str],
) -> impl Fn() -> aws_sdk_ssm::operation::get_parameter_history::GetParameterHistoryOutput {
    move || {
        aws_sdk_ssm::operation::get_parameter_history::GetParameterHistoryOutput::builder()
            .set_parameters(Some(
                images
                    .iter()
                    .zip(1..)
                    .map(|(image, version)| {
                        aws_sdk_ssm::types::ParameterHistory::builder()
                            .name(PROD)
                            .value(*image)
                            .version(version)
                            .build()
                    })
                    .collect(),
            ))
            .build()
    }
}

/// `DescribeImages` of the recipe: `ids`, tagged as its images.
fn recipe_images_output(ids: &'static [&'static str]) -> impl Fn() -> DescribeImagesOutput {
    move || {
        DescribeImagesOutput::builder()
            .set_images(Some(
                ids.iter()
                    .map(|id| {
                        Image::builder()
                            .image_id(*id)
                            .tags(kiln::tags::tag("kiln:recipe", "ubuntu-base"))
                            .build()
                    })
                    .collect(),
            ))
            .build()
    }
}

/// The pointer moves (another promotion's write shows) while a tag sync
/// runs: the sync reads the pointers again after writing and goes round
/// again, so the tags end on the image the pointer names.
#[tokio::test]
async fn a_pointer_moving_during_a_tag_sync_is_followed_by_another_round() {
    let by_path = mock!(aws_sdk_ssm::Client::get_parameters_by_path)
        .sequence()
        .output(pointers_output(Some((A, 1))))
        .output(pointers_output(Some((B, 2))))
        .repeatedly()
        .build();
    let versions = mock!(aws_sdk_ssm::Client::get_parameter_history)
        .sequence()
        .output(history_output(&[A]))
        .output(history_output(&[A, B]))
        .repeatedly()
        .build();
    let images =
        mock!(aws_sdk_ec2::Client::describe_images).then_output(recipe_images_output(&[A, B]));
    let tagged = mock!(aws_sdk_ec2::Client::create_tags)
        .then_output(|| aws_sdk_ec2::operation::create_tags::CreateTagsOutput::builder().build());
    let protected = mock!(aws_sdk_ec2::Client::enable_image_deregistration_protection)
        .then_output(|| {
            aws_sdk_ec2::operation::enable_image_deregistration_protection::EnableImageDeregistrationProtectionOutput::builder().build()
        });
    let copy = RecipeCopy::ubuntu_base();
    let ctx = context(
        &copy,
        &[&images, &tagged, &protected],
        &[&by_path, &versions],
    );

    let changes = kiln::channels::promotion::sync(&ctx, &"ubuntu-base".parse().expect("r"))
        .await
        .expect("sync")
        .tags;
    let changed: Vec<(&str, &str, Option<&str>)> = changes
        .iter()
        .map(|c| (c.image_id.as_str(), c.key, c.to.as_deref()))
        .collect();
    assert_eq!(
        changed,
        [
            (A, "kiln:channel", Some("prod")),
            (A, "kiln:previous", Some("prod")),
            (B, "kiln:channel", Some("prod")),
        ],
        "round one tags A, round two finds B on prod"
    );
    assert_eq!(by_path.num_calls(), 4, "two rounds, each read twice");
}

/// A promotion names an old image while retention runs: retention reads the
/// pointers again right before retiring it, and keeps it.
#[tokio::test]
async fn retention_keeps_an_image_a_pointer_came_to_name_during_the_run() {
    let images =
        mock!(aws_sdk_ec2::Client::describe_images).then_output(recipe_images_output(&[A, B]));
    let by_path = mock!(aws_sdk_ssm::Client::get_parameters_by_path)
        .sequence()
        .output(pointers_output(None))
        .output(pointers_output(Some((A, 1))))
        .repeatedly()
        .build();
    let versions =
        mock!(aws_sdk_ssm::Client::get_parameter_history).then_output(history_output(&[A]));
    let instances = mock!(aws_sdk_ec2::Client::describe_instances)
        .then_output(|| DescribeInstancesOutput::builder().build());
    let templates = mock!(aws_sdk_ec2::Client::describe_launch_templates).then_output(|| {
        aws_sdk_ec2::operation::describe_launch_templates::DescribeLaunchTemplatesOutput::builder()
            .build()
    });
    let deprecate = mock!(aws_sdk_ec2::Client::enable_image_deprecation).then_output(|| {
        aws_sdk_ec2::operation::enable_image_deprecation::EnableImageDeprecationOutput::builder()
            .build()
    });
    let copy = RecipeCopy::ubuntu_base();
    let ctx = context(
        &copy,
        &[&images, &instances, &templates, &deprecate],
        &[&by_path, &versions],
    );
    let recipe = "ubuntu-base".parse().expect("r");

    let pruning = kiln::channels::retention::prune(&ctx, &recipe, 1, false, jiff::Timestamp::now())
        .await
        .expect("prune");

    assert!(pruning.retiring.is_empty(), "{pruning:#?}");
    let kept: Vec<(String, Vec<String>)> = pruning
        .kept
        .iter()
        .map(|k| {
            (
                k.image_id.to_string(),
                k.why.iter().map(ToString::to_string).collect(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [
            (B.to_owned(), vec!["among the newest 1".to_owned()]),
            (A.to_owned(), vec!["on channel prod".to_owned()]),
        ]
    );
    assert_eq!(deprecate.num_calls(), 0);
}

#[tokio::test]
async fn a_distribution_region_not_enabled_in_the_account_is_refused() {
    use aws_sdk_ec2::operation::describe_regions::DescribeRegionsOutput;
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text + "\n[distribution]\nregions = [\"eu-south-2\", \"eu-west-1\"]\n"
    });
    let region = |name: &str, status: &str| {
        aws_sdk_ec2::types::Region::builder()
            .region_name(name)
            .opt_in_status(status)
            .build()
    };
    let regions = mock!(aws_sdk_ec2::Client::describe_regions)
        .match_requests(|r| r.all_regions() == Some(true))
        .then_output(move || {
            DescribeRegionsOutput::builder()
                .regions(region("us-east-1", "opt-in-not-required"))
                .regions(region("eu-west-1", "opt-in-not-required"))
                .regions(region("eu-south-2", "not-opted-in"))
                .build()
        });
    let ctx = context(&copy, &[&regions], &[]);

    let err = kiln::pipeline::source::resolve(&ctx, &copy.load(), false)
        .await
        .expect_err("refused");

    let Error::InvalidRecipe { problems, .. } = &err else {
        panic!("expected InvalidRecipe, got {err:?}");
    };
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0]
            .message
            .starts_with("eu-south-2 is not enabled in this account"),
        "{problems:#?}"
    );
    assert_eq!(regions.num_calls(), 1);
}
