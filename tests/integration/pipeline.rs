//! The build state machine, run for real in the emulator with the real Lambda
//! binaries: a whole build, a skipped one, and a fault at each step that must
//! fail the build with the original error and leave nothing behind.

use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use kiln_testkit::{Emulator, RecipeCopy, tag};
use serde_json::Value;

struct Run {
    status: ExecutionStatus,
    error: Option<String>,
    cause: Option<String>,
    /// The states entered, in order: each is one state transition.
    states: Vec<String>,
}

/// Starts a build named `build_id` and waits for it to end. The input leaves
/// `reason` and `force` to the state machine's defaults.
async fn build(emulator: &Emulator, build_id: &str) -> Run {
    let sfn = emulator.sfn();
    let input = serde_json::json!({"recipe": "ubuntu-base", "wait_seconds": 0});
    let arn = emulator.start_build(build_id, &input).await;
    let arn = arn.as_str();
    for _ in 0..600 {
        let described = sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .expect("describe");
        if described.status() != &ExecutionStatus::Running {
            let history = sfn
                .get_execution_history()
                .execution_arn(arn)
                .max_results(1000)
                .send()
                .await
                .expect("history");
            let states = history
                .events()
                .iter()
                .filter(|e| {
                    matches!(
                        e.r#type(),
                        HistoryEventType::TaskStateEntered
                            | HistoryEventType::ChoiceStateEntered
                            | HistoryEventType::WaitStateEntered
                            | HistoryEventType::PassStateEntered
                            | HistoryEventType::SucceedStateEntered
                            | HistoryEventType::FailStateEntered
                    )
                })
                .filter_map(|e| Some(e.state_entered_event_details()?.name().to_owned()))
                .collect();
            return Run {
                status: described.status().clone(),
                error: described.error().map(str::to_owned),
                cause: described.cause().map(str::to_owned),
                states,
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("build {build_id} did not end in 120 s");
}

/// The one event a build published, checked for the fields every kiln event has.
fn the_event(events: &[Value], detail_type: &str, build_id: &str) -> Value {
    let matching: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail"]["build_id"] == build_id)
        .collect();
    assert_eq!(matching.len(), 1, "one event per build: {events:#?}");
    let event = matching[0];
    assert_eq!(event["source"], "kiln");
    assert_eq!(event["detail-type"], detail_type, "{event:#}");
    let detail = &event["detail"];
    assert_eq!(detail["recipe"], "ubuntu-base");
    assert_eq!(detail["reason"], "manual", "the default reason");
    assert!(detail["started_at"].is_string(), "{detail:#}");
    assert!(detail["finished_at"].is_string(), "{detail:#}");
    assert!(
        detail["duration_seconds"].as_u64().is_some_and(|s| s < 600),
        "{detail:#}"
    );
    detail.clone()
}

#[tokio::test]
async fn a_build_makes_one_tested_image_and_a_second_run_skips() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());
    let events = emulator.capture_events().await;

    let run = build(&emulator, "pipeline-happy-1").await;

    assert_eq!(
        run.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        run.error,
        run.cause
    );
    let images = kiln_testkit::own_images(&ctx).await;
    assert_eq!(images.len(), 1);
    assert_eq!(tag(images[0].tags(), "kiln:stage"), Some("tested"));
    assert_eq!(
        tag(images[0].tags(), "kiln:build-id"),
        Some("pipeline-happy-1")
    );
    assert_eq!(images[0].ena_support(), Some(true));
    let launched = kiln_testkit::instances(&ctx, Some("pipeline-happy-1")).await;
    assert_eq!(launched.len(), 2, "a builder and a test instance");
    assert!(
        kiln_testkit::live_instances(&ctx, None).await.is_empty(),
        "none left running"
    );
    // The path through statemachine/pipeline.asl.json, by hand: each of the
    // recipe's two steps is sent, waited for and polled once, as are the
    // image and its test (the emulator answers each at the first poll).
    let two_steps = [
        "Init",
        "Trigger",
        "ResolveSource",
        "UpToDate",
        "LaunchBuilder",
        "FirstStep",
        "StartStep",
        "WaitStep",
        "PollStep",
        "StepDone",
        "StartStep",
        "WaitStep",
        "PollStep",
        "StepDone",
        "StartImage",
        "WaitImage",
        "PollImage",
        "ImageDone",
        "LaunchTest",
        "StartTest",
        "WaitTest",
        "PollTest",
        "TestDone",
        "Distributes",
        "PublishSucceeded",
        "StartRelease",
        "Built",
    ];
    assert_eq!(run.states, two_steps, "27 state transitions");
    let built = the_event(
        &events.received().await,
        "Image Build Succeeded",
        "pipeline-happy-1",
    );
    assert_eq!(built["image_id"], images[0].image_id().expect("id"));
    assert_eq!(
        built["fingerprint"],
        tag(images[0].tags(), "kiln:fingerprint").expect("fingerprint")
    );
    assert_eq!(
        built["source_ami"],
        tag(images[0].tags(), "kiln:source-ami").expect("source")
    );

    let again = build(&emulator, "pipeline-happy-2").await;
    assert_eq!(again.status, ExecutionStatus::Succeeded);
    assert_eq!(
        kiln_testkit::instances(&ctx, None).await.len(),
        2,
        "the unchanged build launched nothing"
    );
    assert_eq!(
        kiln_testkit::own_images(&ctx).await.len(),
        1,
        "and made no image"
    );
    assert_eq!(
        again.states,
        [
            "Init",
            "Trigger",
            "ResolveSource",
            "UpToDate",
            "PublishSkipped",
            "UpToDateAlready"
        ],
        "skipping is cheap: 6 state transitions"
    );
    let skipped = the_event(
        &events.received().await,
        "Image Build Skipped",
        "pipeline-happy-2",
    );
    assert_eq!(skipped["image_id"], images[0].image_id().expect("id"));
}

/// With `fault` injected, the build fails with `error` (the original error,
/// not cleanup's), and afterwards nothing of it runs and no image of it is
/// left at all, let alone tagged tested.
async fn fails_cleanly(fault: &str, error: &str) {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[fault]).await;
    let ctx = emulator.context(copy.root.path());
    let events = emulator.capture_events().await;
    let build_id = format!("pipeline-fault-{}", fault.replace(':', "-").to_lowercase());

    let run = build(&emulator, &build_id).await;

    assert_eq!(run.status, ExecutionStatus::Failed, "{fault}");
    assert_eq!(
        run.error.as_deref(),
        Some(error),
        "{fault}: {:?}",
        run.cause
    );
    assert!(
        kiln_testkit::live_instances(&ctx, Some(&build_id))
            .await
            .is_empty(),
        "{fault}: instances left"
    );
    let images = kiln_testkit::own_images(&ctx).await;
    assert!(images.is_empty(), "{fault}: images left: {images:?}");
    let failed = the_event(&events.received().await, "Image Build Failed", &build_id);
    assert_eq!(failed["error"]["Error"], error, "{fault}");
    let launched = kiln_testkit::instances(&ctx, Some(&build_id)).await;
    let terminated = failed["cleanup"]["terminated"]
        .as_array()
        .expect("the event says what cleanup terminated");
    assert!(
        terminated
            .iter()
            .all(|id| launched.iter().any(|i| id.as_str() == i.instance_id())),
        "{fault}: cleanup terminated only the build's instances: {failed:#}"
    );
}

#[tokio::test]
async fn a_fault_resolving_the_source_fails_cleanly() {
    fails_cleanly("resolve-source:SourceNotFound", "SourceNotFound").await;
}

#[tokio::test]
async fn a_fault_after_launching_the_builder_fails_cleanly() {
    fails_cleanly("launch-builder:NoCapacity", "NoCapacity").await;
}

#[tokio::test]
async fn a_fault_sending_a_step_fails_cleanly() {
    fails_cleanly("run-ssm-provision:start:BuilderGone", "BuilderGone").await;
}

#[tokio::test]
async fn a_failing_step_fails_cleanly() {
    fails_cleanly("run-ssm-provision:poll:CommandFailed", "CommandFailed").await;
}

#[tokio::test]
async fn a_fault_after_starting_the_image_fails_cleanly() {
    fails_cleanly("create-image:start:ImageFailed", "ImageFailed").await;
}

#[tokio::test]
async fn an_image_without_ena_fails_cleanly() {
    fails_cleanly("create-image:poll:EnaMissing", "EnaMissing").await;
}

#[tokio::test]
async fn a_fault_after_launching_the_test_instance_fails_cleanly() {
    fails_cleanly("test-image:launch:NoCapacity", "NoCapacity").await;
}

#[tokio::test]
async fn a_failing_image_test_fails_cleanly() {
    fails_cleanly("test-image:poll:CommandFailed", "CommandFailed").await;
}

#[tokio::test]
async fn kiln_build_follows_a_build_and_never_builds_the_same_inputs_twice() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let kiln_build = || {
        let mut command = kiln_testkit::kiln();
        command
            .args([
                "build",
                "--follow",
                "--wait-seconds",
                "0",
                "--output",
                "json",
            ])
            .arg(copy.dir())
            .envs(emulator.env())
            .env("KILN_STATE_MACHINE_ARN", emulator.pipeline());
        command
    };

    let first = kiln_build().assert().success().get_output().stdout.clone();
    let first: serde_json::Value = serde_json::from_slice(&first).expect("JSON");
    assert_eq!(first["status"], "SUCCEEDED", "{first}");
    assert_eq!(first["skipped"], false);
    let image = first["image_id"].as_str().expect("an image").to_owned();

    let second = kiln_build().assert().success().get_output().stdout.clone();
    let second: serde_json::Value = serde_json::from_slice(&second).expect("JSON");
    assert_eq!(
        second["build"], first["build"],
        "the same inputs name the same build"
    );
    assert_eq!(second["skipped"], true);
    assert_eq!(second["image_id"], image.as_str());

    let ctx = emulator.context(copy.root.path());
    assert_eq!(
        kiln_testkit::own_images(&ctx).await.len(),
        1,
        "one image for one set of inputs"
    );
    assert_eq!(
        kiln_testkit::instances(&ctx, None).await.len(),
        2,
        "one builder and one test instance, ever"
    );
}

/// The second region the distribution tests copy to.
const AWAY: &str = "eu-west-1";

/// The snapshots of `ctx`'s region that carry `build_id`.
async fn build_snapshots(ctx: &kiln::aws::Context, build_id: &str) -> Vec<String> {
    ctx.ec2()
        .describe_snapshots()
        .owner_ids("self")
        .filters(kiln::tags::filter(kiln::tags::BUILD_ID, build_id))
        .send()
        .await
        .expect("DescribeSnapshots")
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_build_copies_its_tested_image_to_each_distribution_region_and_shares_it() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let (member, away_key) = emulator.distribute(&copy, AWAY);
    let ctx = emulator.context(copy.root.path());
    let away = ctx.in_region(AWAY);

    let run = build(&emulator, "pipeline-distribute-1").await;

    assert_eq!(
        run.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        run.error,
        run.cause
    );
    let home = kiln_testkit::own_images(&ctx).await;
    assert_eq!(home.len(), 1, "one image in the build region");
    let source = home[0].image_id().expect("id");
    let copies = kiln_testkit::own_images(&away).await;
    assert_eq!(copies.len(), 1, "one copy in {AWAY}");
    let copied = &copies[0];
    assert_eq!(
        copied.state(),
        Some(&aws_sdk_ec2::types::ImageState::Available)
    );
    for key in [
        "kiln:recipe",
        "kiln:fingerprint",
        "kiln:build-id",
        "kiln:stage",
    ] {
        assert_eq!(
            tag(copied.tags(), key),
            tag(home[0].tags(), key),
            "{key} as on the source"
        );
    }
    assert_eq!(tag(copied.tags(), "kiln:stage"), Some("tested"));
    assert_eq!(tag(copied.tags(), "kiln:copy-of"), Some(source));
    let ebs = copied.block_device_mappings()[0].ebs().expect("EBS");
    assert_eq!(ebs.encrypted(), Some(true));
    assert_eq!(
        ebs.kms_key_id(),
        Some(away_key.as_str()),
        "the key of {AWAY}"
    );
    assert_eq!(
        kiln_testkit::launch_permissions(&ctx, source).await,
        [member.as_str()]
    );
    let copy_id = copied.image_id().expect("id");
    assert_eq!(
        kiln_testkit::launch_permissions(&away, copy_id).await,
        [member.as_str()]
    );
    let member_away = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&emulator.member_config().await)
            .region(aws_sdk_ec2::config::Region::new(AWAY))
            .build(),
    );
    let seen = member_away
        .describe_images()
        .image_ids(copy_id)
        .send()
        .await
        .expect("the member account sees the shared copy");
    assert_eq!(seen.images().len(), 1);
    let tested = run
        .states
        .iter()
        .position(|s| s == "TestDone")
        .expect("tested");
    assert_eq!(
        run.states[tested + 1..tested + 7],
        [
            "Distributes",
            "StartCopies",
            "CopiesDone",
            "WaitCopies",
            "PollCopies",
            "CopiesDone"
        ]
    );
    assert_eq!(
        run.states[run.states.len() - 4..],
        ["CopiesDone", "PublishSucceeded", "StartRelease", "Built"]
    );
}

#[tokio::test]
async fn a_fault_after_starting_the_copies_leaves_nothing_of_the_build_in_any_region() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator =
        Emulator::start_pipeline(copy.root.path(), &["copy-image:start:CopyFailed"]).await;
    emulator.distribute(&copy, AWAY);
    let ctx = emulator.context(copy.root.path());
    let build_id = "pipeline-distribute-fault";

    let run = build(&emulator, build_id).await;

    assert_eq!(run.status, ExecutionStatus::Failed);
    assert_eq!(run.error.as_deref(), Some("CopyFailed"), "{:?}", run.cause);
    for region in [emulator.seeded.region.as_str(), AWAY] {
        let there = ctx.in_region(region);
        let images = kiln_testkit::own_images(&there).await;
        assert!(images.is_empty(), "{region}: images left: {images:?}");
        let snapshots = build_snapshots(&there, build_id).await;
        assert!(
            snapshots.is_empty(),
            "{region}: snapshots left: {snapshots:?}"
        );
        let instances = kiln_testkit::live_instances(&there, Some(build_id)).await;
        assert!(instances.is_empty(), "{region}: instances left");
    }
}
