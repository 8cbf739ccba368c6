//! Hands-off releases against the emulator (launch template versions, Auto
//! Scaling groups and their tags, alarms driven with SetAlarmState, the
//! pointers; instance refreshes by the emulator's documented model), and the
//! instance refresh handling against mocked answers AWS gives.

use aws_sdk_autoscaling::error::ProvideErrorMetadata;
use aws_sdk_autoscaling::operation::describe_instance_refreshes::DescribeInstanceRefreshesOutput;
use aws_sdk_autoscaling::operation::start_instance_refresh::StartInstanceRefreshError;
use aws_sdk_autoscaling::types::error::InstanceRefreshInProgressFault;
use aws_sdk_autoscaling::types::{
    DesiredConfiguration, InstanceRefresh, InstanceRefreshStatus, LaunchTemplateSpecification,
    RefreshPreferences,
};
use aws_sdk_cloudwatch::types::StateValue;
use aws_sdk_ec2::operation::describe_launch_template_versions::DescribeLaunchTemplateVersionsOutput;
use aws_sdk_ec2::types::{LaunchTemplateVersion, ResponseLaunchTemplateData};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_mocks::mock;
use kiln::aws::Context;
use kiln::channels::pointers::{self, Action, Why};
use kiln::channels::promotion;
use kiln::channels::rollout::groups::{self, Progress, Refresh};
use kiln::channels::rollout::{self, Phase, Release, Status};
use kiln::ids::AmiId;
use kiln_testkit::release_step as step;
use kiln_testkit::{
    Emulator, Mocks, Protocol, RECIPE, RecipeCopy, alarm, auto_scaling_group, built_image, channel,
    opted_in, pointer, recipe, set_alarm, template_versions, throttled,
};

const ALARM: &str = "web-5xx";

/// The example recipe with `policy` as its release policy.
fn with_policy(policy: &str) -> RecipeCopy {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| format!("{text}\n{policy}"));
    copy
}

async fn promote(ctx: &Context, to: &str, image: &AmiId) {
    promotion::promote(
        ctx,
        &recipe(),
        &channel(to),
        image,
        Why {
            reason: "by hand",
            actor: "test",
        },
        false,
    )
    .await
    .expect("promote");
}

/// A tested image `old` on each of `channels`, a tested image `new` to
/// release, and the gate alarm, in OK.
async fn old_and_new(ctx: &Context, channels: &[&str]) -> (AmiId, AmiId) {
    let old = built_image(ctx, RECIPE, "b0", "tested").await;
    let new = built_image(ctx, RECIPE, "b1", "tested").await;
    for channel in channels {
        promote(ctx, channel, &old).await;
    }
    alarm(ctx, ALARM).await;
    (old, new)
}

/// The launch template version `group` uses, and the images its instances run.
async fn group_state(ctx: &Context, group: &str) -> (String, Vec<String>) {
    let found = ctx
        .autoscaling()
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(group)
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    let group = found.auto_scaling_groups().first().expect("the group");
    let version = group
        .launch_template()
        .and_then(|t| t.version())
        .unwrap_or_default()
        .to_owned();
    let mut images = images_of(ctx, group).await;
    images.sort();
    images.dedup();
    (version, images)
}

/// The image of each of `group`'s instances.
async fn images_of(
    ctx: &Context,
    group: &aws_sdk_autoscaling::types::AutoScalingGroup,
) -> Vec<String> {
    let ids: Vec<String> = group
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect();
    let instances = ctx
        .ec2()
        .describe_instances()
        .set_instance_ids(Some(ids))
        .send()
        .await
        .expect("DescribeInstances");
    instances
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect()
}

/// The rollback reason the emulator gives a refresh rolled back by a
/// RollbackInstanceRefresh call (AutoRollback gives another).
const BY_USER: &str = "Rollback initiated by user.";

/// Why `group`'s latest instance refresh was rolled back, if it was.
async fn rollback_reason(ctx: &Context, group: &str) -> Option<String> {
    let described = ctx
        .autoscaling()
        .describe_instance_refreshes()
        .auto_scaling_group_name(group)
        .send()
        .await
        .expect("DescribeInstanceRefreshes");
    described
        .instance_refreshes()
        .first()
        .and_then(|r| r.rollback_details())
        .and_then(|d| d.rollback_reason())
        .map(str::to_owned)
}

fn groups_of(release: &Release) -> Vec<String> {
    match &release.phase {
        Phase::Rollout { refreshes, .. } => refreshes.iter().map(|r| r.group.clone()).collect(),
        Phase::Gate
        | Phase::Promoting { .. }
        | Phase::RollingBack { .. }
        | Phase::Settling { .. } => Vec::new(),
    }
}

#[tokio::test]
async fn a_channel_rollout_makes_one_version_per_opted_in_group_wave_by_wave() {
    let emulator = Emulator::start().await;
    let copy = with_policy("[[release]]\nchannel = \"prod\"\n");
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    let mut templates = Vec::new();
    for (name, wave) in [("canary", Some("0")), ("web", None), ("batch", Some("2"))] {
        let tags = opted_in("prod", wave);
        templates.push((
            name,
            auto_scaling_group(&ctx, name, old.as_str(), &tags).await,
        ));
    }
    let staging = auto_scaling_group(
        &ctx,
        "staging-web",
        old.as_str(),
        &opted_in("staging", None),
    )
    .await;
    let other = auto_scaling_group(
        &ctx,
        "other-recipe",
        old.as_str(),
        &[("kiln:recipe", "other"), ("kiln:channel", "prod")],
    )
    .await;
    let untagged = auto_scaling_group(&ctx, "untagged", old.as_str(), &[]).await;

    let release = Release::new(recipe(), new.clone(), 1);
    let release = step(&ctx, release).await.expect("advance");
    assert_eq!(release.status, Status::Waiting, "{}", release.message);
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(new.as_str()));
    assert_eq!(
        groups_of(&release),
        ["canary"],
        "the canary wave goes first"
    );
    assert_eq!(
        template_versions(&ctx, &templates[1].1).await.len(),
        1,
        "the next wave waits for the canary"
    );
    let mut order = vec![groups_of(&release)];
    let mut release = release;
    for _ in 0..20 {
        if release.status != Status::Waiting {
            break;
        }
        release = step(&ctx, release).await.expect("advance");
        order.push(groups_of(&release));
    }
    assert_eq!(release.status, Status::Done, "{}", release.message);
    order.retain(|groups| !groups.is_empty());
    order.dedup();
    assert_eq!(order, [vec!["canary"], vec!["web"], vec!["batch"]]);

    for (name, template) in &templates {
        assert_eq!(
            template_versions(&ctx, template).await,
            [(1, Some(old.to_string())), (2, Some(new.to_string()))],
            "{name}: exactly one new version, with the literal AMI id"
        );
        assert_eq!(
            group_state(&ctx, name).await,
            ("2".to_owned(), vec![new.to_string()]),
            "{name} runs the new image"
        );
    }
    for (name, template) in [
        ("staging-web", &staging),
        ("other-recipe", &other),
        ("untagged", &untagged),
    ] {
        assert_eq!(
            template_versions(&ctx, template).await,
            [(1, Some(old.to_string()))],
            "{name} is left alone"
        );
        assert_eq!(
            group_state(&ctx, name).await,
            ("1".to_owned(), vec![old.to_string()])
        );
    }
    let again = step(&ctx, release).await.expect("advance again");
    assert_eq!(again.status, Status::Done);
    assert_eq!(
        template_versions(&ctx, &templates[0].1).await.len(),
        2,
        "a finished release makes nothing more"
    );
}

/// A policy of staging, then prod after a day's soak gated by the alarm;
/// `old` on both channels and `new` to release (the copy must outlive the
/// context).
async fn staging_then_soak_and_prod(emulator: &Emulator) -> (RecipeCopy, Context, AmiId, AmiId) {
    let copy = with_policy(&format!(
        "[[release]]\nchannel = \"staging\"\n[[release]]\nchannel = \"prod\"\nsoak_hours = 24\nalarms = [\"{ALARM}\"]\n"
    ));
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["staging", "prod"]).await;
    (copy, ctx, old, new)
}

#[tokio::test]
async fn an_alarm_during_the_soak_rolls_staging_back_and_prod_never_moves() {
    let emulator = Emulator::start().await;
    let (_copy, ctx, old, new) = staging_then_soak_and_prod(&emulator).await;

    let release = step(&ctx, Release::new(recipe(), new.clone(), 60))
        .await
        .expect("advance");
    assert_eq!(release.status, Status::Waiting);
    assert!(
        release.message.contains("soaking in staging"),
        "{}",
        release.message
    );
    assert_eq!(
        release.wait_seconds, 432,
        "a day's soak is checked 200 times, not every minute"
    );
    assert_eq!(
        pointer(&ctx, "staging").await.as_deref(),
        Some(new.as_str())
    );

    set_alarm(&ctx, ALARM, StateValue::Alarm).await;
    let release = step(&ctx, release).await.expect("advance");

    assert_eq!(release.status, Status::RolledBack, "{}", release.message);
    let stopped = release.stopped.as_ref().expect("why it stopped");
    assert_eq!(stopped.channel.as_str(), "staging");
    assert_eq!(stopped.rolled_back_to.as_ref(), Some(&old));
    assert_eq!(
        pointer(&ctx, "staging").await.as_deref(),
        Some(old.as_str())
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
    let prod_history = pointers::history(&ctx, &recipe(), &channel("prod"))
        .await
        .expect("history");
    assert_eq!(prod_history.len(), 1, "prod never moved");
    let staging_history = pointers::history(&ctx, &recipe(), &channel("staging"))
        .await
        .expect("history");
    let last = staging_history
        .last()
        .and_then(|v| v.record.clone())
        .expect("a record");
    assert_eq!(last.action, Action::Rollback);
    assert_eq!(last.actor, rollout::ACTOR);
    assert!(
        last.reason.contains(ALARM) && last.reason.contains("soak before prod"),
        "{}",
        last.reason
    );

    set_alarm(&ctx, ALARM, StateValue::Ok).await;
    let retry = step(&ctx, Release::new(recipe(), new.clone(), 60))
        .await
        .expect("advance");
    assert_eq!(retry.status, Status::Halted, "{}", retry.message);
    assert!(
        retry.message.contains("rolled back from"),
        "{}",
        retry.message
    );
    assert_eq!(
        pointer(&ctx, "staging").await.as_deref(),
        Some(old.as_str()),
        "an image rolled back from is not promoted again"
    );
}

#[tokio::test]
async fn an_alarm_that_fired_and_cleared_between_two_checks_still_rolls_staging_back() {
    let emulator = Emulator::start().await;
    let (_copy, ctx, old, new) = staging_then_soak_and_prod(&emulator).await;
    // Fired and cleared before the release: not its concern.
    set_alarm(&ctx, ALARM, StateValue::Alarm).await;
    set_alarm(&ctx, ALARM, StateValue::Ok).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let release = step(&ctx, Release::new(recipe(), new.clone(), 60))
        .await
        .expect("advance");
    let release = step(&ctx, release).await.expect("advance");
    assert_eq!(release.status, Status::Waiting, "{}", release.message);
    assert!(
        release.message.contains("soaking in staging"),
        "{}",
        release.message
    );

    // A two-minute incident between two checks, 432 s apart.
    set_alarm(&ctx, ALARM, StateValue::Alarm).await;
    set_alarm(&ctx, ALARM, StateValue::Ok).await;
    let release = step(&ctx, release).await.expect("advance");

    assert_eq!(release.status, Status::RolledBack, "{}", release.message);
    let stopped = release.stopped.as_ref().expect("why it stopped");
    assert!(
        stopped.reason.contains(ALARM) && stopped.reason.contains("not any more"),
        "{}",
        stopped.reason
    );
    assert_eq!(
        pointer(&ctx, "staging").await.as_deref(),
        Some(old.as_str())
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
}

#[tokio::test]
async fn an_alarm_that_does_not_exist_halts_the_release_before_its_channel_moves() {
    let emulator = Emulator::start().await;
    let copy = with_policy("[[release]]\nchannel = \"prod\"\nalarms = [\"web-5xx-typo\"]\n");
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;

    let release = step(&ctx, Release::new(recipe(), new, 1))
        .await
        .expect("advance");

    assert_eq!(release.status, Status::Halted, "{}", release.message);
    assert!(
        release
            .message
            .contains("alarm web-5xx-typo does not exist"),
        "{}",
        release.message
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
    let history = pointers::history(&ctx, &recipe(), &channel("prod"))
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "prod never moved");
}

#[tokio::test]
async fn a_channel_moved_by_hand_during_the_soak_halts_the_release_before_the_next() {
    let emulator = Emulator::start().await;
    let (_copy, ctx, old, new) = staging_then_soak_and_prod(&emulator).await;
    let release = step(&ctx, Release::new(recipe(), new.clone(), 60))
        .await
        .expect("advance");
    assert_eq!(
        pointer(&ctx, "staging").await.as_deref(),
        Some(new.as_str())
    );
    let hotfix = built_image(&ctx, RECIPE, "hotfix", "tested").await;
    promote(&ctx, "staging", &hotfix).await;

    let release = step(&ctx, release).await.expect("advance");

    assert_eq!(release.status, Status::Halted, "{}", release.message);
    assert!(
        release.message.contains("staging no longer names"),
        "{}",
        release.message
    );
    assert_eq!(
        pointer(&ctx, "staging").await.as_deref(),
        Some(hotfix.as_str()),
        "the hand's move stands"
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
}

#[tokio::test]
async fn an_alarm_during_the_prod_rollout_rolls_the_pointer_back_and_starts_no_further_wave() {
    let emulator = Emulator::start().await;
    let copy = with_policy(&format!(
        "[[release]]\nchannel = \"prod\"\nalarms = [\"{ALARM}\"]\n"
    ));
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    let (prod, canary_tags) = (opted_in("prod", None), opted_in("prod", Some("0")));
    let canary = auto_scaling_group(&ctx, "canary", old.as_str(), &canary_tags).await;
    let web = auto_scaling_group(&ctx, "web", old.as_str(), &prod).await;

    let release = step(&ctx, Release::new(recipe(), new.clone(), 1))
        .await
        .expect("advance");
    assert_eq!(groups_of(&release), ["canary"]);
    let hold = rollout::gates::Hold {
        actor: "ana".into(),
        reason: "change freeze".into(),
    };
    rollout::gates::set_hold(&ctx, &recipe(), Some(&hold))
        .await
        .expect("pause");
    set_alarm(&ctx, ALARM, StateValue::Alarm).await;
    let release = step(&ctx, release).await.expect("advance");
    assert_eq!(
        release.status,
        Status::RolledBack,
        "a pause holds new moves, never a rollback: {}",
        release.message
    );

    assert_eq!(release.status, Status::RolledBack, "{}", release.message);
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
    let stopped = release.stopped.as_ref().expect("why it stopped");
    assert_eq!(stopped.channel.as_str(), "prod");
    assert_eq!(stopped.refreshes.len(), 1);
    let history = pointers::history(&ctx, &recipe(), &channel("prod"))
        .await
        .expect("history");
    let record = history
        .last()
        .and_then(|v| v.record.clone())
        .expect("record");
    assert_eq!(record.action, Action::Rollback);
    assert!(
        record.reason.contains(ALARM) && record.reason.contains("wave 0 of prod"),
        "{}",
        record.reason
    );
    let canary_refresh = groups::latest(&ctx, "canary")
        .await
        .expect("refreshes")
        .expect("the canary's refresh");
    assert!(
        canary_refresh.status.starts_with("Rollback"),
        "the canary's refresh was rolled back: {}",
        canary_refresh.status
    );
    assert_eq!(template_versions(&ctx, &canary).await.len(), 2);
    assert_eq!(
        template_versions(&ctx, &web).await,
        [(1, Some(old.to_string()))],
        "the next wave never started"
    );
    assert!(
        groups::latest(&ctx, "web")
            .await
            .expect("refreshes")
            .is_none()
    );
}

#[tokio::test]
async fn a_group_kiln_cannot_roll_stops_the_release_before_its_channel_moves() {
    let emulator = Emulator::start().await;
    let copy = with_policy("[[release]]\nchannel = \"prod\"\n");
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    auto_scaling_group(&ctx, "web", old.as_str(), &opted_in("prod", Some("first"))).await;

    let release = step(&ctx, Release::new(recipe(), new, 1))
        .await
        .expect("advance");

    assert_eq!(release.status, Status::Halted);
    assert!(
        release.message.contains("group web cannot be rolled")
            && release.message.contains("kiln:wave"),
        "{}",
        release.message
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
}

#[tokio::test]
async fn a_group_whose_image_comes_from_ssm_stops_the_release_before_its_channel_moves_with_the_fix()
 {
    let emulator = Emulator::start().await;
    let copy = with_policy("[[release]]\nchannel = \"prod\"\n");
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    let template = auto_scaling_group(&ctx, "web", old.as_str(), &opted_in("prod", None)).await;
    // The group's version 2 launches what the prod pointer names, as a
    // template for deploy tools would.
    ctx.ec2()
        .create_launch_template_version()
        .launch_template_id(&template)
        .source_version("1")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("resolve:ssm:/kiln/ubuntu-base/prod")
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplateVersion");
    ctx.autoscaling()
        .update_auto_scaling_group()
        .auto_scaling_group_name("web")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id(&template)
                .version("2")
                .build(),
        )
        .send()
        .await
        .expect("UpdateAutoScalingGroup");

    let release = step(&ctx, Release::new(recipe(), new, 1))
        .await
        .expect("advance");

    assert_eq!(release.status, Status::Halted, "{}", release.message);
    for part in [
        "group web cannot be rolled",
        "resolve:ssm:/kiln/ubuntu-base/prod",
        &format!(
            "create-launch-template-version --launch-template-id {template} --source-version 2"
        ),
        "aws ssm get-parameter --name /kiln/ubuntu-base/prod",
    ] {
        assert!(
            release.message.contains(part),
            "{part}: {}",
            release.message
        );
    }
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
    let versions = ctx
        .ec2()
        .describe_launch_template_versions()
        .launch_template_id(&template)
        .send()
        .await
        .expect("DescribeLaunchTemplateVersions");
    assert_eq!(
        versions.launch_template_versions().len(),
        2,
        "no version made"
    );
    // What the release would have met after promoting: Auto Scaling refuses
    // a refresh with AutoRollback from such a version.
    let refused = ctx
        .autoscaling()
        .start_instance_refresh()
        .auto_scaling_group_name("web")
        .desired_configuration(
            DesiredConfiguration::builder()
                .launch_template(
                    LaunchTemplateSpecification::builder()
                        .launch_template_id(&template)
                        .version("1")
                        .build(),
                )
                .build(),
        )
        .preferences(RefreshPreferences::builder().auto_rollback(true).build())
        .send()
        .await
        .expect_err("AutoRollback from an SSM-resolved version");
    assert_eq!(refused.code(), Some("ValidationError"), "{refused:?}");
}

/// Answers of `DescribeInstanceRefreshes` for refresh `r-1` of group `web`.
fn refresh_output(status: InstanceRefreshStatus) -> DescribeInstanceRefreshesOutput {
    DescribeInstanceRefreshesOutput::builder()
        .instance_refreshes(
            InstanceRefresh::builder()
                .auto_scaling_group_name("web")
                .instance_refresh_id("r-1")
                .status(status)
                .status_reason("as AWS said")
                .percentage_complete(40)
                .desired_configuration(
                    DesiredConfiguration::builder()
                        .launch_template(
                            LaunchTemplateSpecification::builder()
                                .launch_template_id("lt-1")
                                .version("7")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .build()
}

fn running() -> Refresh {
    Refresh {
        region: None,
        group: "web".into(),
        refresh_id: "r-1".into(),
        version: "7".into(),
        status: "InProgress".into(),
        percent: Some(0),
        status_reason: None,
        from_version: Some("6".into()),
    }
}

#[tokio::test]
async fn a_refresh_is_tracked_to_each_way_it_can_end() {
    for (status, progress) in [
        (InstanceRefreshStatus::Pending, Progress::Running),
        (InstanceRefreshStatus::InProgress, Progress::Running),
        (InstanceRefreshStatus::Baking, Progress::Running),
        (InstanceRefreshStatus::RollbackInProgress, Progress::Running),
        (InstanceRefreshStatus::Successful, Progress::Succeeded),
        (InstanceRefreshStatus::Failed, Progress::Failed),
        (InstanceRefreshStatus::Cancelled, Progress::Failed),
        (InstanceRefreshStatus::RollbackSuccessful, Progress::Failed),
        (InstanceRefreshStatus::RollbackFailed, Progress::Failed),
    ] {
        let answer = status.clone();
        let describe = mock!(aws_sdk_autoscaling::Client::describe_instance_refreshes)
            .match_requests(|r| {
                r.auto_scaling_group_name() == Some("web") && r.instance_refresh_ids() == ["r-1"]
            })
            .then_output(move || refresh_output(answer.clone()));
        let ctx = kiln_testkit::mocked_with(
            &kiln_testkit::recipe_root(),
            &Mocks {
                autoscaling: &[&describe],
                ..Mocks::default()
            },
        );

        let tracked = groups::track(&ctx, &running()).await.expect("tracked");

        assert_eq!(tracked.status, status.as_str());
        assert_eq!(tracked.progress(), progress, "{status:?}");
        assert_eq!(tracked.percent, Some(40));
        assert_eq!(tracked.status_reason.as_deref(), Some("as AWS said"));
        assert_eq!(tracked.version, "7");
    }
}

#[tokio::test]
async fn throttled_refresh_calls_are_retried_then_named_for_the_state_machine() {
    let describe = mock!(aws_sdk_autoscaling::Client::describe_instance_refreshes)
        .sequence()
        .http_response(|| throttled(Protocol::Query))
        .times(2)
        .output(|| refresh_output(InstanceRefreshStatus::Successful))
        .build();
    let ctx = kiln_testkit::mocked_with(
        &kiln_testkit::recipe_root(),
        &Mocks {
            autoscaling: &[&describe],
            ..Mocks::default()
        },
    );
    let tracked = groups::track(&ctx, &running()).await.expect("retried");
    assert_eq!(tracked.progress(), Progress::Succeeded);
    assert_eq!(describe.num_calls(), 3);

    let always = mock!(aws_sdk_autoscaling::Client::describe_instance_refreshes)
        .sequence()
        .http_response(|| throttled(Protocol::Query))
        .times(3)
        .build();
    let ctx = kiln_testkit::mocked_with(
        &kiln_testkit::recipe_root(),
        &Mocks {
            autoscaling: &[&always],
            ..Mocks::default()
        },
    );
    let err = groups::track(&ctx, &running())
        .await
        .expect_err("throttled");
    assert_eq!(err.name(), "Throttled", "{err}");
}

/// A group of kiln's opted in to prod, as Auto Scaling describes it.
fn web_group() -> aws_sdk_autoscaling::types::AutoScalingGroup {
    let tag = |key: &str, value: &str| {
        aws_sdk_autoscaling::types::TagDescription::builder()
            .key(key)
            .value(value)
            .build()
    };
    aws_sdk_autoscaling::types::AutoScalingGroup::builder()
        .auto_scaling_group_name("web")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id("lt-1")
                .version("6")
                .build(),
        )
        .tags(tag("kiln:recipe", RECIPE))
        .tags(tag("kiln:channel", "prod"))
        .build()
}

#[tokio::test]
async fn a_refresh_starts_with_the_literal_image_auto_rollback_checkpoints_and_the_alarms() {
    let image: AmiId = "ami-0fedcba9876543210".parse().expect("ami");
    let expected_image = image.to_string();
    let latest = mock!(aws_sdk_ec2::Client::describe_launch_template_versions).then_output(|| {
        DescribeLaunchTemplateVersionsOutput::builder()
            .launch_template_versions(
                LaunchTemplateVersion::builder()
                    .version_number(6)
                    .launch_template_data(
                        ResponseLaunchTemplateData::builder()
                            .image_id("ami-0123456789abcdef0")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let create = mock!(aws_sdk_ec2::Client::create_launch_template_version)
        .match_requests(move |r| {
            r.launch_template_id() == Some("lt-1")
                && r.source_version() == Some("6")
                && r.launch_template_data().and_then(|d| d.image_id()) == Some(&expected_image)
        })
        .then_output(|| {
            aws_sdk_ec2::operation::create_launch_template_version::CreateLaunchTemplateVersionOutput::builder()
                .launch_template_version(LaunchTemplateVersion::builder().version_number(7).build())
                .build()
        });
    let start = mock!(aws_sdk_autoscaling::Client::start_instance_refresh)
        .match_requests(|r| {
            let preferences = r.preferences().expect("preferences");
            let desired = r
                .desired_configuration()
                .and_then(|d| d.launch_template())
                .expect("a desired launch template");
            desired.version() == Some("7")
                && preferences.auto_rollback() == Some(true)
                && preferences.checkpoint_percentages() == [50, 100]
                && preferences
                    .alarm_specification()
                    .is_some_and(|a| a.alarms() == [ALARM])
        })
        .then_output(|| {
            aws_sdk_autoscaling::operation::start_instance_refresh::StartInstanceRefreshOutput::builder()
                .instance_refresh_id("r-1")
                .build()
        });
    let describe_groups = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
        .then_output(|| {
            aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput::builder()
                .auto_scaling_groups(web_group())
                .build()
        });
    let ctx = kiln_testkit::mocked_with(
        &kiln_testkit::recipe_root(),
        &Mocks {
            ec2: &[&latest, &create],
            autoscaling: &[&start, &describe_groups],
            ..Mocks::default()
        },
    );
    let group = groups::groups(&ctx, None, &recipe(), Some(&channel("prod")))
        .await
        .expect("groups")
        .remove(0);

    let refresh = groups::start(&ctx, &group, &image, &channel("prod"), &[ALARM.into()])
        .await
        .expect("started");

    assert_eq!(refresh.refresh_id, "r-1");
    assert_eq!(refresh.version, "7");
    assert_eq!((create.num_calls(), start.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_refresh_already_running_is_taken_over_only_when_it_is_kiln_s() {
    let image: AmiId = "ami-0fedcba9876543210".parse().expect("ami");
    let described = image.to_string();
    let ours =
        mock!(aws_sdk_ec2::Client::describe_launch_template_versions).then_output(move || {
            DescribeLaunchTemplateVersionsOutput::builder()
                .launch_template_versions(
                    LaunchTemplateVersion::builder()
                        .version_number(7)
                        .version_description(format!("kiln prod: {described}"))
                        .launch_template_data(
                            ResponseLaunchTemplateData::builder()
                                .image_id(described.clone())
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let in_progress = || {
        mock!(aws_sdk_autoscaling::Client::start_instance_refresh).then_error(|| {
            StartInstanceRefreshError::InstanceRefreshInProgressFault(
                InstanceRefreshInProgressFault::builder()
                    .message("in progress")
                    .build(),
            )
        })
    };
    for (running_version, taken_over) in [("7", true), ("5", false)] {
        let start = in_progress();
        let version = running_version.to_owned();
        let describe = mock!(aws_sdk_autoscaling::Client::describe_instance_refreshes).then_output(
            move || {
                let mut output = refresh_output(InstanceRefreshStatus::InProgress);
                if let Some(refresh) = output
                    .instance_refreshes
                    .as_mut()
                    .and_then(|r| r.first_mut())
                {
                    refresh.desired_configuration = Some(
                        DesiredConfiguration::builder()
                            .launch_template(
                                LaunchTemplateSpecification::builder()
                                    .launch_template_id("lt-1")
                                    .version(version.clone())
                                    .build(),
                            )
                            .build(),
                    );
                }
                output
            },
        );
        let describe_groups = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups)
            .then_output(|| {
                aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput::builder()
                    .auto_scaling_groups(web_group())
                    .build()
            });
        let ctx = kiln_testkit::mocked_with(
            &kiln_testkit::recipe_root(),
            &Mocks {
                ec2: &[&ours],
                autoscaling: &[&start, &describe, &describe_groups],
                ..Mocks::default()
            },
        );
        let group = groups::groups(&ctx, None, &recipe(), None)
            .await
            .expect("groups")
            .remove(0);

        let started = groups::start(&ctx, &group, &image, &channel("prod"), &[]).await;

        if taken_over {
            let refresh = started.expect("taken over");
            assert_eq!(
                (refresh.refresh_id.as_str(), refresh.version.as_str()),
                ("r-1", "7")
            );
        } else {
            let err = started.expect_err("someone else's refresh");
            assert_eq!(err.name(), "RolloutBlocked", "{err}");
            assert!(
                err.to_string().contains("another instance refresh"),
                "{err}"
            );
        }
    }
}

#[tokio::test]
async fn an_unusable_group_is_named_with_the_reason() {
    let launch_configuration = aws_sdk_autoscaling::types::AutoScalingGroup::builder()
        .auto_scaling_group_name("legacy")
        .launch_configuration_name("lc-1")
        .build();
    let latest = aws_sdk_autoscaling::types::AutoScalingGroup::builder()
        .auto_scaling_group_name("floating")
        .launch_template(
            LaunchTemplateSpecification::builder()
                .launch_template_id("lt-1")
                .version("$Latest")
                .build(),
        )
        .build();
    let describe = mock!(aws_sdk_autoscaling::Client::describe_auto_scaling_groups).then_output(
        move || {
            aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput::builder()
                .auto_scaling_groups(launch_configuration.clone())
                .auto_scaling_groups(latest.clone())
                .build()
        },
    );
    let ctx = kiln_testkit::mocked_with(
        &kiln_testkit::recipe_root(),
        &Mocks {
            autoscaling: &[&describe],
            ..Mocks::default()
        },
    );

    let found = groups::groups(&ctx, None, &recipe(), None)
        .await
        .expect("groups");

    let why: Vec<_> = found
        .iter()
        .map(|g| (g.name.as_str(), g.template.clone().expect_err("unusable")))
        .collect();
    assert_eq!(why[0].0, "floating");
    assert!(why[0].1.contains("$Latest"), "{}", why[0].1);
    assert_eq!(why[1].0, "legacy");
    assert!(why[1].1.contains("launch configuration"), "{}", why[1].1);
}

/// `kiln ARGS --output json` against `emulator`: its answer, and whether it
/// exited 0.
fn kiln(emulator: &Emulator, args: &[&str]) -> (bool, serde_json::Value) {
    let output = kiln_testkit::kiln()
        .args(args)
        .args(["--output", "json"])
        .envs(emulator.env())
        .output()
        .expect("run kiln");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let answer = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        serde_json::json!({"stdout": stdout, "stderr": String::from_utf8_lossy(&output.stderr)})
    });
    (output.status.success(), answer)
}

/// How the release of `image` stands: (status, error).
async fn release_execution(emulator: &Emulator, image: &str) -> (ExecutionStatus, Option<String>) {
    let arn = format!("arn:aws:states:us-east-1:123456789012:execution:kiln-release:{image}");
    let described = emulator
        .sfn()
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .expect("the release execution");
    (
        described.status().clone(),
        described.error().map(str::to_owned),
    )
}

/// Polls `check` every 100 ms for up to 120 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen in 120 s");
}

#[tokio::test]
async fn a_build_releases_its_image_and_an_alarm_in_the_prod_rollout_brings_it_back() {
    let copy = with_policy(&format!(
        "[[release]]\nchannel = \"staging\"\n[[release]]\nchannel = \"prod\"\nalarms = [\"{ALARM}\"]\n"
    ));
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());
    let events = emulator.capture_events().await;
    let (old, _) = old_and_new(&ctx, &["staging", "prod"]).await;
    let staging_tags = opted_in("staging", None);
    let (prod, canary_tags) = (opted_in("prod", None), opted_in("prod", Some("0")));
    auto_scaling_group(&ctx, "staging-web", old.as_str(), &staging_tags).await;
    let canary = auto_scaling_group(&ctx, "canary", old.as_str(), &canary_tags).await;
    let web = auto_scaling_group(&ctx, "web", old.as_str(), &prod).await;

    emulator
        .start_build(
            "release-e2e",
            &serde_json::json!({"recipe": RECIPE, "wait_seconds": 0}),
        )
        .await;
    eventually("the canary's new launch template version", || async {
        template_versions(&ctx, &canary).await.len() == 2
    })
    .await;
    set_alarm(&ctx, ALARM, StateValue::Alarm).await;
    let new = pointer(&ctx, "staging").await.expect("staging");
    assert_ne!(new, old.as_str(), "staging took the new image");
    eventually("the release's end", || async {
        release_execution(&emulator, &new).await.0 != ExecutionStatus::Running
    })
    .await;

    assert_eq!(
        release_execution(&emulator, &new).await,
        (ExecutionStatus::Failed, Some("RolledBack".into()))
    );
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
    assert_eq!(
        pointer(&ctx, "staging").await.as_deref(),
        Some(new.as_str())
    );
    assert_eq!(
        group_state(&ctx, "staging-web").await,
        ("2".to_owned(), vec![new.clone()]),
        "staging rolled before prod"
    );
    assert_eq!(
        template_versions(&ctx, &web).await,
        [(1, Some(old.to_string()))],
        "the wave after the canary never started"
    );
    let history = pointers::history(&ctx, &recipe(), &channel("prod"))
        .await
        .expect("history");
    let record = history
        .last()
        .and_then(|v| v.record.clone())
        .expect("record");
    assert_eq!(record.action, Action::Rollback);
    assert!(record.reason.contains(ALARM), "{}", record.reason);

    let received = events.received().await;
    let rolled: Vec<_> = received
        .iter()
        .filter(|e| e["detail-type"] == "Image Rollout Rolled Back")
        .collect();
    assert_eq!(rolled.len(), 1, "{received:#?}");
    let detail = &rolled[0]["detail"];
    assert_eq!(detail["recipe"], RECIPE);
    assert_eq!(detail["image_id"], new.as_str());
    assert_eq!(detail["channel"], "prod");
    assert_eq!(detail["rolled_back_to"], old.as_str());
    assert_eq!(detail["refreshes"][0]["group"], "canary");
    assert!(
        detail["reason"].as_str().is_some_and(|r| r.contains(ALARM)),
        "{detail:#}"
    );

    let (ok, status) = kiln(&emulator, &["rollout", "status", RECIPE]);
    assert!(ok, "{status:#}");
    let group = |name: &str| {
        status["groups"]
            .as_array()
            .and_then(|groups| groups.iter().find(|g| g["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("group {name} in {status:#}"))
    };
    assert_eq!(group("staging-web")["current"], true);
    assert_eq!(
        group("web")["current"],
        true,
        "web never left the old image"
    );
    assert_eq!(group("web")["wave"], 1);
    assert!(
        group("canary")["refresh"]["status"]
            .as_str()
            .is_some_and(|s| s.starts_with("Rollback")),
        "{status:#}"
    );
    assert_eq!(status["releases"], serde_json::json!([]));
    // The emulator's refresh rolls back by itself on the alarm (AutoRollback):
    // that kiln asks for it too shows in the calls the promote Lambda made.
    let calls = emulator.calls();
    assert!(
        calls.as_array().expect("calls").iter().any(|call| {
            call["key"] == "kiln-function-promote"
                && call["action"] == "RollbackInstanceRefresh"
                && call["params"]["AutoScalingGroupName"] == "canary"
        }),
        "kiln rolls the canary's refresh back itself: {calls:#}"
    );
}

#[tokio::test]
async fn kiln_rollout_starts_pauses_resumes_and_aborts_a_release() {
    let copy = with_policy(
        "[[release]]\nchannel = \"staging\"\n[[release]]\nchannel = \"prod\"\nsoak_hours = 1\n",
    );
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());
    let new = built_image(&ctx, RECIPE, "b1", "tested").await;
    let image = new.as_str();

    let (ok, _) = kiln(
        &emulator,
        &[
            "rollout",
            "pause",
            RECIPE,
            "--reason",
            "change freeze",
            "--actor",
            "ana",
        ],
    );
    assert!(ok);
    let (ok, started) = kiln(
        &emulator,
        &[
            "rollout",
            "start",
            RECIPE,
            "--image",
            image,
            "--check-seconds",
            "1",
        ],
    );
    assert!(ok, "{started:#}");
    let (ok, status) = kiln(&emulator, &["rollout", "status", RECIPE]);
    assert!(ok, "{status:#}");
    assert_eq!(status["hold"]["reason"], "change freeze");
    assert_eq!(status["hold"]["actor"], "ana");
    assert_eq!(status["releases"][0]["name"], image);
    let paused = step(&ctx, Release::new(recipe(), new.clone(), 1))
        .await
        .expect("advance");
    assert_eq!(paused.status, Status::Waiting);
    assert!(
        paused.message.contains("paused by ana") && paused.message.contains("promoting staging"),
        "{}",
        paused.message
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        pointer(&ctx, "staging").await,
        None,
        "the paused release promoted nothing"
    );

    let (again, refused) = kiln(&emulator, &["rollout", "start", RECIPE, "--image", image]);
    assert!(!again, "an image is released once");
    assert!(refused.to_string().contains("released once"), "{refused:#}");

    let (ok, resumed) = kiln(&emulator, &["rollout", "resume", RECIPE]);
    assert!(ok, "{resumed:#}");
    assert!(gates_hold(&ctx).await.is_none());
    eventually("staging's promotion", || async {
        pointer(&ctx, "staging").await.as_deref() == Some(image)
    })
    .await;

    let (ok, aborted) = kiln(
        &emulator,
        &["rollout", "abort", RECIPE, "--reason", "enough"],
    );
    assert!(ok, "{aborted:#}");
    assert_eq!(aborted["stopped"], serde_json::json!([image]));
    eventually("the release's end", || async {
        release_execution(&emulator, image).await.0 == ExecutionStatus::Aborted
    })
    .await;
    assert_eq!(
        pointer(&ctx, "prod").await,
        None,
        "prod never moved: its soak had an hour to go"
    );
    assert_eq!(pointer(&ctx, "staging").await.as_deref(), Some(image));
}

#[tokio::test]
async fn kiln_rollout_abort_cancels_the_refreshes_still_running() {
    let copy = with_policy("[[release]]\nchannel = \"prod\"\n");
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    auto_scaling_group(&ctx, "web", old.as_str(), &opted_in("prod", None)).await;
    auto_scaling_group(&ctx, "idle", old.as_str(), &opted_in("prod", None)).await;
    let web = groups::groups(&ctx, None, &recipe(), Some(&channel("prod")))
        .await
        .expect("groups")
        .into_iter()
        .find(|g| g.name == "web")
        .expect("web");
    groups::start(&ctx, &web, &new, &channel("prod"), &[])
        .await
        .expect("a refresh");

    let (ok, aborted) = kiln(
        &emulator,
        &["rollout", "abort", RECIPE, "--reason", "enough"],
    );

    assert!(ok, "{aborted:#}");
    assert_eq!(
        aborted["cancelled"],
        serde_json::json!(["web"]),
        "{aborted:#}"
    );
    let refresh = groups::latest(&ctx, "web")
        .await
        .expect("DescribeInstanceRefreshes")
        .expect("web's refresh");
    assert_eq!(refresh.status, "Cancelled", "{refresh:?}");
    assert_eq!(
        groups::latest(&ctx, "idle").await.expect("describe"),
        None,
        "a group with nothing running is left alone"
    );
}

async fn gates_hold(ctx: &Context) -> Option<rollout::gates::Hold> {
    rollout::gates::hold(ctx, &recipe()).await.expect("hold")
}

#[tokio::test]
async fn groups_of_earlier_waves_go_back_with_the_pointer() {
    let emulator = Emulator::start().await;
    let copy = with_policy(&format!(
        "[[release]]\nchannel = \"prod\"\nalarms = [\"{ALARM}\"]\n"
    ));
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    let (prod, canary_tags) = (opted_in("prod", None), opted_in("prod", Some("0")));
    auto_scaling_group(&ctx, "canary", old.as_str(), &canary_tags).await;
    auto_scaling_group(&ctx, "web", old.as_str(), &prod).await;

    let mut release = Release::new(recipe(), new.clone(), 1);
    for _ in 0..10 {
        release = step(&ctx, release).await.expect("advance");
        if groups_of(&release) == ["web"] {
            break;
        }
    }
    assert_eq!(groups_of(&release), ["web"], "{}", release.message);
    assert_eq!(
        group_state(&ctx, "canary").await,
        ("2".to_owned(), vec![new.to_string()]),
        "the canary took the new image"
    );
    set_alarm(&ctx, ALARM, StateValue::Alarm).await;
    let release = step(&ctx, release).await.expect("advance");

    assert_eq!(release.status, Status::RolledBack, "{}", release.message);
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(old.as_str()));
    let stopped = release.stopped.expect("why it stopped");
    assert_eq!(stopped.reverted.len(), 1, "{stopped:#?}");
    let back = &stopped.reverted[0];
    assert_eq!(
        (
            back.group.as_str(),
            back.version.as_str(),
            back.from_version.as_deref()
        ),
        ("canary", "1", Some("2"))
    );
    let mut now = back.clone();
    for _ in 0..3 {
        now = groups::track(&ctx, &now).await.expect("track");
    }
    assert_eq!(now.progress(), Progress::Succeeded, "{now:?}");
    assert_eq!(
        group_state(&ctx, "canary").await,
        ("1".to_owned(), vec![old.to_string()]),
        "the canary is back on the image prod names"
    );
}

#[tokio::test]
async fn a_group_that_finished_in_the_wave_a_gate_stopped_goes_back_too() {
    let emulator = Emulator::start().await;
    let copy = with_policy(&format!(
        "[[release]]\nchannel = \"prod\"\nalarms = [\"{ALARM}\"]\n"
    ));
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    let tags = opted_in("prod", None);
    auto_scaling_group(&ctx, "fast", old.as_str(), &tags).await;
    auto_scaling_group(&ctx, "slow", old.as_str(), &tags).await;

    let release = step(&ctx, Release::new(recipe(), new.clone(), 1))
        .await
        .expect("advance");
    assert_eq!(groups_of(&release), ["fast", "slow"]);
    let Phase::Rollout { refreshes, .. } = &release.phase else {
        panic!("rolling: {release:#?}");
    };
    let mut fast = refreshes[0].clone();
    while fast.progress() == Progress::Running {
        fast = groups::track(&ctx, &fast).await.expect("track");
    }
    assert_eq!(fast.progress(), Progress::Succeeded);
    set_alarm(&ctx, ALARM, StateValue::Alarm).await;
    let release = step(&ctx, release).await.expect("advance");

    assert_eq!(release.status, Status::RolledBack, "{}", release.message);
    let stopped = release.stopped.expect("why it stopped");
    let reverted: Vec<_> = stopped.reverted.iter().map(|r| r.group.as_str()).collect();
    assert_eq!(
        reverted,
        ["fast"],
        "the group already on the new image goes back"
    );
    let mut back = stopped.reverted[0].clone();
    while back.progress() == Progress::Running {
        back = groups::track(&ctx, &back).await.expect("track");
    }
    assert_eq!(
        group_state(&ctx, "fast").await,
        ("1".to_owned(), vec![old.to_string()])
    );
    assert_eq!(
        group_state(&ctx, "slow").await,
        ("1".to_owned(), vec![old.to_string()]),
        "the group still rolling was rolled back"
    );
}

/// A state machine that only waits, and an execution of it for each image
/// of `releases` (named after it, as a release is): releases of the recipe
/// running, as the release step sees them.
async fn running_releases(ctx: &Context, releases: &[&AmiId]) -> String {
    let machine = ctx
        .sfn()
        .create_state_machine()
        .name("waits")
        .role_arn("arn:aws:iam::123456789012:role/kiln-release")
        .definition(
            r#"{"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 3600, "End": true}}}"#,
        )
        .send()
        .await
        .expect("CreateStateMachine")
        .state_machine_arn()
        .to_owned();
    for image in releases {
        start_release(ctx, &machine, image).await;
    }
    machine
}

async fn start_release(ctx: &Context, machine: &str, image: &AmiId) {
    ctx.sfn()
        .start_execution()
        .state_machine_arn(machine)
        .name(image.as_str())
        .input(serde_json::json!({"recipe": RECIPE, "image_id": image}).to_string())
        .send()
        .await
        .expect("StartExecution");
}

#[tokio::test]
async fn a_newer_release_supersedes_an_older_one_which_undoes_nothing_and_waits_for_its_refresh() {
    let emulator = Emulator::start().await;
    let copy = with_policy("[[release]]\nchannel = \"prod\"\n");
    let ctx = emulator.context(copy.root.path());
    let (base, older) = old_and_new(&ctx, &["prod"]).await;
    // EC2 dates images to the second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = built_image(&ctx, RECIPE, "b2", "tested").await;
    auto_scaling_group(&ctx, "web", base.as_str(), &opted_in("prod", None)).await;
    let machine = running_releases(&ctx, &[&older]).await;
    let mut first = Release {
        state_machine: Some(machine.clone()),
        ..Release::new(recipe(), older.clone(), 1)
    };
    for _ in 0..5 {
        first = step(&ctx, first).await.expect("advance");
        if groups_of(&first) == ["web"] {
            break;
        }
    }
    assert_eq!(groups_of(&first), ["web"], "{}", first.message);
    let Phase::Rollout { refreshes, .. } = &first.phase else {
        panic!("rolling: {first:#?}");
    };
    let older_refresh = refreshes[0].refresh_id.clone();

    start_release(&ctx, &machine, &newer).await;
    let first = step(&ctx, first).await.expect("advance");

    assert_eq!(first.status, Status::Superseded, "{}", first.message);
    let stopped = first.stopped.expect("why it stopped");
    let winner = stopped.superseded_by.expect("the winner");
    assert_eq!(
        (winner.image_id.as_str(), winner.forced.as_deref()),
        (newer.as_str(), None)
    );
    assert!(winner.execution.ends_with(newer.as_str()), "{winner:?}");
    assert_eq!(
        pointer(&ctx, "prod").await.as_deref(),
        Some(older.as_str()),
        "the older release moved nothing back"
    );
    let running = groups::latest(&ctx, "web")
        .await
        .expect("describe")
        .expect("web's refresh");
    assert_eq!(running.refresh_id, older_refresh);
    assert_eq!(
        running.status, "InProgress",
        "the older release's refresh goes on: neither cancelled nor rolled back"
    );

    let mut second = Release {
        state_machine: Some(machine),
        ..Release::new(recipe(), newer.clone(), 1)
    };
    second = step(&ctx, second).await.expect("advance");
    assert_eq!(second.status, Status::Waiting, "{}", second.message);
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(newer.as_str()));
    assert!(
        second.message.contains("waits") && second.message.contains(older.as_str()),
        "{}",
        second.message
    );
    let mut now = groups::latest(&ctx, "web")
        .await
        .expect("describe")
        .expect("web's refresh");
    assert_eq!(
        now.refresh_id, older_refresh,
        "the newer release started no refresh over the older one's"
    );
    while now.progress() == Progress::Running {
        now = groups::track(&ctx, &now).await.expect("track");
    }
    assert_eq!(now.progress(), Progress::Succeeded, "{now:?}");
    assert_eq!(
        group_state(&ctx, "web").await,
        ("2".to_owned(), vec![older.to_string()])
    );
    for _ in 0..10 {
        second = step(&ctx, second).await.expect("advance");
        if second.status != Status::Waiting {
            break;
        }
    }
    assert_eq!(second.status, Status::Done, "{}", second.message);
    assert_eq!(
        group_state(&ctx, "web").await,
        ("3".to_owned(), vec![newer.to_string()])
    );
    let history = pointers::history(&ctx, &recipe(), &channel("prod"))
        .await
        .expect("history");
    let images: Vec<&str> = history.iter().map(|v| v.image_id.as_str()).collect();
    assert_eq!(
        images,
        [base.as_str(), older.as_str(), newer.as_str()],
        "no rollback in between"
    );
}

#[tokio::test]
async fn kiln_rollout_start_refuses_an_older_image_unless_forced_and_the_event_names_the_winner() {
    let copy = with_policy("[[release]]\nchannel = \"prod\"\nsoak_hours = 1\n");
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());
    let events = emulator.capture_events().await;
    let older = built_image(&ctx, RECIPE, "b0", "tested").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let newer = built_image(&ctx, RECIPE, "b1", "tested").await;
    let start = |image: &AmiId, more: &[&str]| {
        let mut args = vec![
            "rollout",
            "start",
            RECIPE,
            "--image",
            image.as_str(),
            "--check-seconds",
            "1",
        ];
        args.extend_from_slice(more);
        kiln(&emulator, &args)
    };
    let (ok, started) = start(&newer, &[]);
    assert!(ok, "{started:#}");

    let (ok, refused) = start(&older, &[]);
    assert!(!ok, "{refused:#}");
    let said = refused.to_string();
    assert!(
        said.contains("ReleaseSuperseded") && said.contains(newer.as_str()),
        "{refused:#}"
    );
    let (_, status) = kiln(&emulator, &["rollout", "status", RECIPE]);
    let names: Vec<&str> = status["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, [newer.as_str()], "nothing was started: {status:#}");
    let (ok, refused) = start(&older, &["--force"]);
    assert!(!ok, "a forced release needs a reason: {refused:#}");

    let (ok, forced) = start(&older, &["--force", "--reason", "the agent in b1 leaks"]);
    assert!(ok, "{forced:#}");
    eventually("the newer release's end", || async {
        release_execution(&emulator, newer.as_str()).await.0 != ExecutionStatus::Running
    })
    .await;

    assert_eq!(
        release_execution(&emulator, newer.as_str()).await,
        (ExecutionStatus::Succeeded, None)
    );
    assert_eq!(
        release_execution(&emulator, older.as_str()).await.0,
        ExecutionStatus::Running,
        "the forced release goes on"
    );
    let received = events.received().await;
    let superseded: Vec<_> = received
        .iter()
        .filter(|e| e["detail-type"] == "Image Rollout Superseded")
        .collect();
    assert_eq!(superseded.len(), 1, "{received:#?}");
    let detail = &superseded[0]["detail"];
    assert_eq!(detail["image_id"], newer.as_str());
    assert_eq!(detail["status"], "superseded");
    assert_eq!(detail["superseded_by"]["image_id"], older.as_str());
    assert_eq!(
        detail["superseded_by"]["forced"], "the agent in b1 leaks",
        "{detail:#}"
    );
    assert_eq!(pointer(&ctx, "prod").await, None, "prod never moved");
}

#[tokio::test]
async fn a_group_still_rolling_when_another_refresh_fails_is_rolled_back_by_kiln() {
    let emulator = Emulator::start().await;
    let copy = with_policy("[[release]]\nchannel = \"prod\"\n");
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    let tags = opted_in("prod", None);
    auto_scaling_group(&ctx, "bad", old.as_str(), &tags).await;
    auto_scaling_group(&ctx, "slow", old.as_str(), &tags).await;
    let release = step(&ctx, Release::new(recipe(), new.clone(), 1))
        .await
        .expect("advance");
    assert_eq!(groups_of(&release), ["bad", "slow"]);
    let Phase::Rollout { refreshes, .. } = &release.phase else {
        panic!("rolling: {release:#?}");
    };
    let slow = groups::track(&ctx, &refreshes[1]).await.expect("track");
    assert_eq!(
        (slow.status.as_str(), slow.percent),
        ("InProgress", Some(0))
    );
    ctx.autoscaling()
        .cancel_instance_refresh()
        .auto_scaling_group_name("bad")
        .send()
        .await
        .expect("someone cancels bad's refresh");

    let release = step(&ctx, release).await.expect("advance");

    assert_eq!(release.status, Status::RolledBack, "{}", release.message);
    assert!(release.message.contains("group bad"), "{}", release.message);
    let stopped = release.stopped.expect("why it stopped");
    let stood: Vec<_> = stopped
        .refreshes
        .iter()
        .map(|r| (r.group.as_str(), r.status.as_str(), r.percent))
        .collect();
    assert_eq!(
        stood,
        [
            ("bad", "Cancelled", Some(0)),
            ("slow", "InProgress", Some(50))
        ]
    );
    assert_eq!(stopped.reverted, [], "slow was rolled back, not reverted");
    let mut halfway = vec![new.to_string(), old.to_string()];
    halfway.sort();
    assert_eq!(
        group_state(&ctx, "slow").await,
        ("1".to_owned(), halfway),
        "half of slow ran the new image when kiln stopped"
    );
    assert_eq!(
        rollback_reason(&ctx, "slow").await.as_deref(),
        Some(BY_USER),
        "kiln rolled slow's refresh back (it has no alarm to roll back on by itself)"
    );
    let mut back = Refresh {
        status: "RollbackInProgress".into(),
        ..slow
    };
    while back.progress() == Progress::Running {
        back = groups::track(&ctx, &back).await.expect("track");
    }
    assert_eq!(back.status, "RollbackSuccessful");
    assert_eq!(
        group_state(&ctx, "slow").await,
        ("1".to_owned(), vec![old.to_string()]),
        "the half that ran the new image went back"
    );
}

#[tokio::test]
async fn a_group_with_a_mixed_instances_policy_rolls_and_keeps_its_policy() {
    use aws_sdk_autoscaling::types::{
        InstancesDistribution, LaunchTemplate, LaunchTemplateOverrides,
        LaunchTemplateSpecification, MixedInstancesPolicy,
    };
    let emulator = Emulator::start().await;
    let copy = with_policy("[[release]]\nchannel = \"prod\"\n");
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    let template_id = kiln_testkit::launch_template(&ctx, "mixed", old.as_str()).await;
    let overrides = ["t3.micro", "t3a.micro"];
    ctx.autoscaling()
        .create_auto_scaling_group()
        .auto_scaling_group_name("mixed")
        .mixed_instances_policy(
            MixedInstancesPolicy::builder()
                .launch_template(
                    LaunchTemplate::builder()
                        .launch_template_specification(
                            LaunchTemplateSpecification::builder()
                                .launch_template_id(&template_id)
                                .version("1")
                                .build(),
                        )
                        .set_overrides(Some(
                            overrides
                                .iter()
                                .map(|t| {
                                    LaunchTemplateOverrides::builder().instance_type(*t).build()
                                })
                                .collect(),
                        ))
                        .build(),
                )
                .instances_distribution(
                    InstancesDistribution::builder()
                        .on_demand_base_capacity(1)
                        .build(),
                )
                .build(),
        )
        .min_size(1)
        .max_size(4)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .set_tags(Some(kiln_testkit::group_tags(
            "mixed",
            &opted_in("prod", None),
        )))
        .send()
        .await
        .expect("CreateAutoScalingGroup");

    let mut release = Release::new(recipe(), new.clone(), 1);
    for _ in 0..10 {
        release = step(&ctx, release).await.expect("advance");
        if release.status != Status::Waiting {
            break;
        }
    }

    assert_eq!(release.status, Status::Done, "{}", release.message);
    let found = ctx
        .autoscaling()
        .describe_auto_scaling_groups()
        .auto_scaling_group_names("mixed")
        .send()
        .await
        .expect("DescribeAutoScalingGroups");
    let group = found.auto_scaling_groups().first().expect("the group");
    assert!(group.launch_template().is_none(), "{group:?}");
    let policy = group.mixed_instances_policy().expect("still a mixed group");
    let launch = policy.launch_template().expect("its template");
    assert_eq!(
        launch
            .launch_template_specification()
            .and_then(|s| s.version()),
        Some("2"),
        "{group:?}"
    );
    let types: Vec<&str> = launch
        .overrides()
        .iter()
        .filter_map(|o| o.instance_type())
        .collect();
    assert_eq!(types, overrides, "the overrides stay");
    assert_eq!(
        policy
            .instances_distribution()
            .and_then(|d| d.on_demand_base_capacity()),
        Some(1),
        "the distribution stays"
    );
    assert_eq!(
        template_versions(&ctx, &template_id).await,
        [(1, Some(old.to_string())), (2, Some(new.to_string()))]
    );
    let images = images_of(&ctx, group).await;
    assert_eq!(images, [new.to_string(), new.to_string()]);
}

#[tokio::test]
async fn a_channel_moved_by_hand_during_its_own_rollout_halts_and_rolls_back_the_refresh_running() {
    let emulator = Emulator::start().await;
    let copy = with_policy("[[release]]\nchannel = \"prod\"\n");
    let ctx = emulator.context(copy.root.path());
    let (old, new) = old_and_new(&ctx, &["prod"]).await;
    auto_scaling_group(&ctx, "web", old.as_str(), &opted_in("prod", None)).await;
    let release = step(&ctx, Release::new(recipe(), new.clone(), 1))
        .await
        .expect("advance");
    assert_eq!(groups_of(&release), ["web"]);
    let hotfix = built_image(&ctx, RECIPE, "hotfix", "tested").await;
    promote(&ctx, "prod", &hotfix).await;

    let release = step(&ctx, release).await.expect("advance");

    assert_eq!(release.status, Status::Halted, "{}", release.message);
    assert!(
        release.message.contains("prod no longer names") && release.message.contains("rolled back"),
        "{}",
        release.message
    );
    assert_eq!(
        pointer(&ctx, "prod").await.as_deref(),
        Some(hotfix.as_str()),
        "the hand's move stands"
    );
    assert_eq!(
        rollback_reason(&ctx, "web").await.as_deref(),
        Some(BY_USER),
        "kiln rolled web's refresh back"
    );
}
