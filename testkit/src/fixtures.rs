//! Fixtures: a copy of the example recipe to edit, the names and documents
//! tests share, and what the emulator holds (instances, images, groups,
//! alarms), read or made quickly.

use std::path::PathBuf;

use aws_sdk_ec2::types::{Filter, Image, Instance};
use kiln::aws::Context;
use kiln::channels::rollout::{self, Phase, Release, Status};
use kiln::ids::{AmiId, BuildId, Channel, RecipeName};
use kiln::pipeline::state::{Source, Trigger};
use kiln::recipe::Recipe;

use crate::process::recipe_root;

/// The example recipe's name.
pub const RECIPE: &str = "ubuntu-base";
/// The builders' instance profile the emulator seeds.
pub const INSTANCE_PROFILE: &str = "kiln-builder";

/// The example recipe's name, as kiln takes it.
pub fn recipe() -> RecipeName {
    RECIPE.parse().expect("recipe")
}

/// Channel `name`.
pub fn channel(name: &str) -> Channel {
    name.parse().expect("channel")
}

/// The tags of a group of the example recipe following `channel`, in
/// `wave` when given.
pub fn opted_in<'a>(channel: &'a str, wave: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut tags = vec![("kiln:recipe", RECIPE), ("kiln:channel", channel)];
    tags.extend(wave.map(|wave| ("kiln:wave", wave)));
    tags
}

/// The image the example recipe's `channel_name` pointer names.
pub async fn pointer(ctx: &Context, channel_name: &str) -> Option<String> {
    kiln::channels::pointers::pointers(ctx, &recipe())
        .await
        .expect("pointers")
        .remove(&channel(channel_name))
        .map(|(image, _)| image)
}

/// A resolved source of the seeded current image, as resolve-source leaves
/// it on 2026-11-25.
pub fn source() -> Source {
    serde_json::from_value(serde_json::json!({
        "source_ami": "ami-0a1b2c3d4e5f60001",
        "source_name": "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261118",
        "serial": "20261118",
        "root_device_name": "/dev/sda1",
        "fingerprint": "ab".repeat(32),
        "skip": false,
        "existing_image_id": null,
        "started_at": "2026-11-25T10:00:00Z",
        "duration_seconds": null
    }))
    .expect("a source")
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

    /// The problems the copy fails validation with (it must fail).
    pub fn problems(&self) -> Vec<kiln::error::Problem> {
        match Recipe::load(&self.dir()) {
            Err(kiln::Error::InvalidRecipe { problems, .. }) => problems,
            other => panic!("expected InvalidRecipe, got {other:?}"),
        }
    }

    /// Rewrites a file of the recipe through `edit`.
    pub fn edit(&self, file: &str, edit: impl FnOnce(String) -> String) {
        let path = self.dir().join(file);
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, edit(text)).expect("write");
    }
}

/// The fields `problems` concern, in order.
pub fn fields(problems: &[kiln::error::Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.field.as_str()).collect()
}

/// The problems of a copy of `images/ubuntu-base` with its recipe file edited.
pub fn with_recipe(edit: impl FnOnce(String) -> String) -> Vec<kiln::error::Problem> {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", edit);
    copy.problems()
}

/// A manual trigger of `ubuntu-base` with `build_id`.
pub fn trigger(build_id: &str) -> Trigger {
    Trigger {
        recipe: "ubuntu-base".parse().expect("name"),
        build_id: build_id.parse::<BuildId>().expect("id"),
        reason: kiln::pipeline::state::Reason::Manual,
        force: false,
        wait_seconds: 0,
        started_at: None,
        fast_track: None,
        exposure: None,
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
    let mut request = ctx.ec2().describe_instances();
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

/// The accounts `image` (in `ctx`'s region) grants launch permission to.
pub async fn launch_permissions(ctx: &Context, image: &str) -> Vec<String> {
    ctx.ec2()
        .describe_image_attribute()
        .image_id(image)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .expect("DescribeImageAttribute")
        .launch_permissions()
        .iter()
        .filter_map(|p| p.user_id().map(str::to_owned))
        .collect()
}

/// Images this account owns, disabled ones too.
pub async fn own_images(ctx: &Context) -> Vec<Image> {
    ctx.ec2()
        .describe_images()
        .owners("self")
        .include_disabled(true)
        .send()
        .await
        .expect("DescribeImages")
        .images()
        .to_vec()
}

/// A seeded Canonical x86_64 image in the context's region.
pub async fn canonical_image(ctx: &Context) -> String {
    ctx.ec2()
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
        .ec2()
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
    ctx.ec2()
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

/// Writes `image` to pointer `parameter` by hand, as a move that stopped
/// after its write (or anything outside kiln) would leave it; SSM validates
/// the value afterwards.
pub async fn put_pointer(ctx: &Context, parameter: &str, image: &str) {
    ctx.ssm()
        .put_parameter()
        .name(parameter)
        .value(image)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .data_type("aws:ec2:image")
        .overwrite(true)
        .send()
        .await
        .expect("PutParameter");
}

/// [`built_image`] of `recipe` (tested), with its available copy in
/// `region` as a build distributing to it leaves them: (image, copy).
pub async fn distributed_image(
    ctx: &Context,
    recipe: &kiln::recipe::Recipe,
    build_id: &str,
    region: &str,
) -> (AmiId, AmiId) {
    use kiln::pipeline::copies;
    use kiln::pipeline::state::{ImageState, RegionCopy};
    let image = built_image(ctx, recipe.name.as_str(), build_id, "tested").await;
    let build = build_id.parse().expect("build id");
    let copy = copies::copy(ctx, recipe, &build, &image, region)
        .await
        .expect("CopyImage");
    let started = RegionCopy {
        region: region.into(),
        image_id: copy.clone(),
        state: ImageState::Pending,
    };
    for _ in 0..10 {
        let state = copies::state(ctx, &image, &started).await.expect("state");
        if state == ImageState::Available {
            return (image, copy);
        }
    }
    panic!("the copy of {image} in {region} never became available");
}

/// Launches one untagged instance from `image`; returns its id.
pub async fn launch(ctx: &Context, image: &str) -> String {
    let run = ctx
        .ec2()
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
        .ec2()
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

/// A new launch template `name` of `image` on t3.micro; returns its id.
pub async fn launch_template(ctx: &Context, name: &str, image: &str) -> String {
    let template = ctx
        .ec2()
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
    template
        .launch_template()
        .and_then(|t| t.launch_template_id())
        .expect("a template id")
        .to_owned()
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
    let id = launch_template(ctx, name, image).await;
    ctx.autoscaling()
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
        .availability_zones(format!("{}a", ctx.region().expect("a region")))
        .set_tags(Some(group_tags(name, tags)))
        .send()
        .await
        .expect("CreateAutoScalingGroup");
    id
}

/// `tags` as tags of Auto Scaling group `group` (not propagated at launch).
pub fn group_tags(group: &str, tags: &[(&str, &str)]) -> Vec<aws_sdk_autoscaling::types::Tag> {
    tags.iter()
        .map(|(key, value)| {
            aws_sdk_autoscaling::types::Tag::builder()
                .key(*key)
                .value(*value)
                .resource_id(group)
                .resource_type("auto-scaling-group")
                .propagate_at_launch(false)
                .build()
        })
        .collect()
}

/// A CloudWatch metric alarm `name`, in state OK.
pub async fn alarm(ctx: &Context, name: &str) {
    ctx.cloudwatch()
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
    ctx.cloudwatch()
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
        .ec2()
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

/// One step of `release`, and the steps that confirm a pointer write
/// (the emulator's SSM shows a write on its second read, as
/// `patches/image_parameters.py` models AWS's asynchronous validation).
pub async fn release_step(ctx: &Context, release: Release) -> kiln::error::Result<Release> {
    let mut release = rollout::advance(ctx, release).await?;
    while release.status == Status::Waiting
        && matches!(
            release.phase,
            Phase::Promoting { .. } | Phase::RollingBack { .. } | Phase::Settling { .. }
        )
    {
        release = rollout::advance(ctx, release).await?;
    }
    Ok(release)
}

/// A finding of `cve` on `instance` running `image` in the shape
/// `ListFindings` answers on the wire (timestamps in epoch seconds), for
/// the emulator's queue (`Emulator::queue_findings`): `status` ACTIVE or
/// CLOSED, first seen at `first`, last updated at `updated`.
pub fn inspector_finding(
    cve: &str,
    instance: &str,
    image: &str,
    status: &str,
    first: jiff::Timestamp,
    updated: jiff::Timestamp,
) -> serde_json::Value {
    serde_json::json!({
        "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{instance}"),
        "awsAccountId": "123456789012", "type": "PACKAGE_VULNERABILITY",
        "description": "a race condition in sshd's signal handler", "severity": "HIGH",
        "status": status, "firstObservedAt": first.as_second(),
        "lastObservedAt": updated.as_second(), "updatedAt": updated.as_second(),
        "title": format!("{cve} - openssh-server"),
        "packageVulnerabilityDetails": {"vulnerabilityId": cve, "source": "UBUNTU_CVE"},
        "resources": [{"type": "AWS_EC2_INSTANCE", "id": instance, "region": "us-east-1",
                       "details": {"awsEc2Instance": {"imageId": image}}}],
    })
}
