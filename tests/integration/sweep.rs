//! Nothing kiln launches outlives its build: cleanup after an execution that
//! was stopped, and the sweep over a mix of resources, against the emulator
//! running the real build state machine.

use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use kiln::aws::Context;
use kiln::ops::sweep::ExecutionStatusChange;
use kiln_testkit::{Emulator, RecipeCopy, built_image, tag};

/// Starts build `name` with a long wait between polls, and returns once its
/// builder runs and the execution waits (where a stop aborts at once).
async fn start_waiting_build(emulator: &Emulator, ctx: &Context, name: &str) -> (String, String) {
    let sfn = emulator.sfn();
    let input = serde_json::json!({"recipe": "ubuntu-base", "wait_seconds": 120});
    let arn = emulator.start_build(name, &input).await;
    for _ in 0..300 {
        let history = sfn
            .get_execution_history()
            .execution_arn(&arn)
            .send()
            .await
            .expect("history");
        let waiting = history
            .events()
            .iter()
            .any(|e| e.r#type() == &HistoryEventType::WaitStateEntered);
        if waiting
            && !kiln_testkit::live_instances(ctx, Some(name))
                .await
                .is_empty()
        {
            return (arn, input.to_string());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("build {name} did not reach its first wait");
}

/// Starts build `name` and stops it while it waits, its builder running.
async fn stopped_build(emulator: &Emulator, ctx: &Context, name: &str) {
    let (arn, _) = start_waiting_build(emulator, ctx, name).await;
    emulator
        .sfn()
        .stop_execution()
        .execution_arn(arn)
        .send()
        .await
        .expect("stop");
}

/// Every instance id that is not terminated.
async fn live(ctx: &Context) -> Vec<String> {
    kiln_testkit::live_instances(ctx, None)
        .await
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

/// The builder instance of build `build_id`.
async fn builder_of(ctx: &Context, build_id: &str) -> String {
    kiln_testkit::live_instances(ctx, Some(build_id)).await[0]
        .instance_id()
        .expect("id")
        .to_owned()
}

/// An instance tagged as the builder of build `build_id` of a state machine
/// this one never ran (another kiln's?).
async fn foreign_builder(emulator: &Emulator, ctx: &Context, build_id: &str) -> String {
    let foreign = kiln_testkit::launch(ctx, &emulator.seeded.source_ami).await;
    ctx.ec2()
        .create_tags()
        .resources(&foreign)
        .tags(kiln::tags::tag("kiln:recipe", "ubuntu-base"))
        .tags(kiln::tags::tag("kiln:build-id", build_id))
        .tags(kiln::tags::tag("kiln:role", "builder"))
        .send()
        .await
        .expect("tag");
    foreign
}

async fn own_image_ids(ctx: &Context) -> Vec<String> {
    kiln_testkit::own_images(ctx)
        .await
        .iter()
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_stopped_build_is_cleaned_up_by_its_execution_event_and_nothing_else_is_touched() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());
    let bystander = kiln_testkit::launch(&ctx, &emulator.seeded.source_ami).await;
    let other_image = built_image(&ctx, "ubuntu-base", "another-build", "candidate").await;
    let (arn, input) = start_waiting_build(&emulator, &ctx, "stopped-1").await;

    emulator
        .sfn()
        .stop_execution()
        .execution_arn(&arn)
        .send()
        .await
        .expect("stop");
    let status = emulator
        .sfn()
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .expect("describe")
        .status()
        .clone();
    assert_eq!(status, ExecutionStatus::Aborted);
    assert_eq!(
        kiln_testkit::live_instances(&ctx, Some("stopped-1"))
            .await
            .len(),
        1,
        "the Catch did not run: the builder is still there"
    );

    // What the EventBridge rule on Step Functions Execution Status Change delivers.
    let change = ExecutionStatusChange {
        execution_arn: arn,
        name: "stopped-1".into(),
        status: "ABORTED".into(),
        input: Some(input),
    };
    let swept = kiln::ops::sweep::execution_ended(&ctx, &change)
        .await
        .expect("cleanup");

    assert_eq!(swept.removed.terminated.len(), 1, "{swept:?}");
    assert!(
        kiln_testkit::live_instances(&ctx, Some("stopped-1"))
            .await
            .is_empty()
    );
    assert_eq!(live(&ctx).await, [bystander], "the bystander runs on");
    assert!(own_image_ids(&ctx).await.contains(&other_image.to_string()));

    let again = kiln::ops::sweep::execution_ended(&ctx, &change)
        .await
        .expect("again");
    assert!(again.removed.terminated.is_empty(), "nothing left to do");
}

#[tokio::test]
async fn the_sweep_removes_exactly_the_leftovers_and_a_second_run_finds_nothing() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());

    // A running build's builder: left alone.
    start_waiting_build(&emulator, &ctx, "running-1").await;
    let running_builder = builder_of(&ctx, "running-1").await;
    // A finished (stopped) build's leftover builder, with a failed and a
    // tested image of the same build.
    stopped_build(&emulator, &ctx, "finished-1").await;
    let leftover = builder_of(&ctx, "finished-1").await;
    let failed = built_image(&ctx, "ubuntu-base", "finished-1", "failed").await;
    let tested = built_image(&ctx, "ubuntu-base", "finished-1", "tested").await;
    // A young build this state machine never ran (another kiln's?): left alone.
    let foreign = foreign_builder(&emulator, &ctx, "elsewhere-1").await;
    let untagged = kiln_testkit::launch(&ctx, &emulator.seeded.source_ami).await;
    let vpc = ctx
        .ec2()
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .send()
        .await
        .expect("vpc");
    let old_group = ctx
        .ec2()
        .create_security_group()
        .group_name("kiln-builder")
        .description("an old kiln builder group")
        .vpc_id(vpc.vpc().and_then(|v| v.vpc_id()).expect("vpc id"))
        .send()
        .await
        .expect("group")
        .group_id()
        .expect("group id")
        .to_owned();
    ctx.ec2()
        .create_tags()
        .resources(&old_group)
        .tags(kiln::tags::tag("kiln:role", "builder-sg"))
        .send()
        .await
        .expect("tag group");

    let live_before = live(&ctx).await;
    let images_before = own_image_ids(&ctx).await;
    let dry = kiln::ops::sweep::sweep(&ctx, true).await.expect("dry run");
    assert_eq!(
        live(&ctx).await,
        live_before,
        "a dry run terminates nothing"
    );
    assert_eq!(own_image_ids(&ctx).await, images_before);

    let swept = kiln::ops::sweep::sweep(&ctx, false).await.expect("sweep");
    for report in [&dry, &swept] {
        let builds: Vec<&str> = report.builds.iter().map(|b| b.build_id.as_str()).collect();
        assert_eq!(builds, ["finished-1"], "{report:#?}");
        let removed = &report.builds[0].removed;
        assert_eq!(removed.terminated.len(), 1, "{removed:?}");
        assert_eq!(removed.terminated[0].as_str(), leftover);
        assert_eq!(removed.deregistered.len(), 1, "{removed:?}");
        assert_eq!(removed.deregistered[0].as_str(), failed.as_str());
        assert!(!removed.deleted_snapshots.is_empty());
        assert_eq!(report.security_groups, std::slice::from_ref(&old_group));
        let running: Vec<&str> = report.running.iter().map(|b| b.as_str()).collect();
        assert_eq!(running, ["running-1"]);
        let unknown: Vec<&str> = report.unknown.iter().map(|b| b.as_str()).collect();
        assert_eq!(unknown, ["elsewhere-1"]);
    }

    let mut live_after = live(&ctx).await;
    live_after.sort();
    let mut expected = vec![running_builder, untagged, foreign];
    expected.sort();
    assert_eq!(live_after, expected, "only the leftover builder went");
    let images = kiln_testkit::own_images(&ctx).await;
    let ids: Vec<&str> = images.iter().filter_map(|i| i.image_id()).collect();
    assert_eq!(ids, [tested.as_str()], "the tested image stays");
    assert_eq!(tag(images[0].tags(), "kiln:stage"), Some("tested"));
    let groups = ctx
        .ec2()
        .describe_security_groups()
        .send()
        .await
        .expect("groups");
    assert!(
        groups
            .security_groups()
            .iter()
            .all(|g| g.group_id() != Some(old_group.as_str())),
        "the old kiln group is gone"
    );

    let again = kiln::ops::sweep::sweep(&ctx, false).await.expect("again");
    assert!(again.builds.is_empty(), "{again:#?}");
    assert!(again.security_groups.is_empty(), "{again:#?}");
}

#[tokio::test]
async fn a_build_older_than_its_longest_build_is_swept_though_its_execution_still_runs() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());
    let longest = Duration::from_secs(copy.load().max_build_seconds());

    // Two running builds: one whose builder has run a minute longer than
    // the recipe's longest build can take (hung), one just under it.
    start_waiting_build(&emulator, &ctx, "hung-1").await;
    start_waiting_build(&emulator, &ctx, "slow-1").await;
    let hung = builder_of(&ctx, "hung-1").await;
    let slow = builder_of(&ctx, "slow-1").await;
    emulator.age_instance(&hung, longest + Duration::from_secs(60));
    emulator.age_instance(&slow, longest - Duration::from_secs(60));
    let hung_image = built_image(&ctx, "ubuntu-base", "hung-1", "candidate").await;
    // And a build no execution of this state machine ran, three days old.
    let foreign = foreign_builder(&emulator, &ctx, "elsewhere-2").await;
    emulator.age_instance(&foreign, Duration::from_secs(3 * 86_400 + 60));

    let swept = kiln::ops::sweep::sweep(&ctx, false).await.expect("sweep");

    let builds: Vec<(&str, &str)> = swept
        .builds
        .iter()
        .map(|b| (b.build_id.as_str(), b.why.as_str()))
        .collect();
    assert_eq!(builds.len(), 2, "{swept:#?}");
    assert_eq!(builds[0].0, "elsewhere-2");
    assert!(
        builds[0]
            .1
            .starts_with("no execution of it on this state machine, and it is 2592"),
        "{builds:?}"
    );
    assert_eq!(builds[1].0, "hung-1");
    assert!(
        builds[1].1.starts_with("still running, but it is")
            && builds[1].1.ends_with(&format!(
                "more than its longest build ({} s)",
                longest.as_secs()
            )),
        "{builds:?}"
    );
    let running: Vec<&str> = swept.running.iter().map(|b| b.as_str()).collect();
    assert_eq!(running, ["slow-1"]);
    assert_eq!(
        live(&ctx).await,
        [slow],
        "the hung builder and the old one went"
    );
    assert!(
        !own_image_ids(&ctx).await.contains(&hung_image.to_string()),
        "the hung build's untested image went"
    );
}

#[tokio::test]
async fn the_sweep_finds_what_an_ended_build_left_in_a_distribution_region_only() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    emulator.distribute(&copy, "eu-west-1");
    let ctx = emulator.context(copy.root.path());
    let away = ctx.in_region("eu-west-1");
    stopped_build(&emulator, &ctx, "leaky-1").await;
    // Its build region is clean (an execution-end cleanup ran there, say);
    // a copy of one of its images is left in the distribution region only.
    let builder = builder_of(&ctx, "leaky-1").await;
    ctx.ec2()
        .terminate_instances()
        .instance_ids(&builder)
        .send()
        .await
        .expect("terminate");
    let image = built_image(&ctx, "ubuntu-base", "leaky-1", "candidate").await;
    let build = "leaky-1".parse().expect("build id");
    let copied = kiln::pipeline::copies::copy(&ctx, &copy.load(), &build, &image, "eu-west-1")
        .await
        .expect("copy");
    ctx.ec2()
        .deregister_image()
        .image_id(image.as_str())
        .send()
        .await
        .expect("deregister");
    assert_eq!(own_image_ids(&away).await, [copied.to_string()]);

    let swept = kiln::ops::sweep::sweep(&ctx, false).await.expect("sweep");

    let leaky = swept
        .builds
        .iter()
        .find(|b| b.build_id.as_str() == "leaky-1")
        .expect("the build is swept");
    assert_eq!(leaky.removed.deregistered, [copied]);
    assert!(own_image_ids(&away).await.is_empty(), "the copy is gone");
    assert_eq!(leaky.removed.deleted_snapshots.len(), 1, "{leaky:?}");
    let snapshots = away
        .ec2()
        .describe_snapshots()
        .owner_ids("self")
        .filters(kiln::tags::filter(kiln::tags::BUILD_ID, "leaky-1"))
        .send()
        .await
        .expect("DescribeSnapshots");
    assert!(
        snapshots.snapshots().is_empty(),
        "and its snapshot: {:?}",
        snapshots.snapshots()
    );
}
