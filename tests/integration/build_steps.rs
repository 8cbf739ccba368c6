//! The four build steps run directly against the seeded emulator, asserting on
//! what the emulator holds afterwards.

use kiln::Error;
use kiln::aws::Context;
use kiln::ids::BuildId;
use kiln::pipeline::state::{
    Builder, Cleanup, Image, ImageState, Source, StepStatus, TestRun, Trigger,
};
use kiln::recipe::Recipe;
use kiln_testkit::{Emulator, RecipeCopy, tag};

/// Runs resolve -> launch -> provision (every step) -> create image, polling
/// as the state machine would (without waiting: the emulator is instant).
async fn build(ctx: &Context, recipe: &Recipe, trigger: &Trigger) -> (Source, Builder, Image) {
    let build_id = &trigger.build_id;
    let source = kiln::pipeline::source::resolve(ctx, recipe, trigger.force)
        .await
        .expect("resolve");
    assert!(!source.skip, "a fresh build must not skip");
    let builder = kiln::pipeline::builder::launch(ctx, recipe, build_id, &source)
        .await
        .expect("launch");
    let first = kiln::pipeline::provision::start(ctx, recipe, trigger, &builder, 0)
        .await
        .expect("start");
    let retried = kiln::pipeline::provision::start(ctx, recipe, trigger, &builder, 0)
        .await
        .expect("start");
    assert_eq!(
        first.command_id, retried.command_id,
        "a retried start sends nothing new"
    );
    let mut provision = kiln::pipeline::provision::start(ctx, recipe, trigger, &builder, 0)
        .await
        .expect("start step 0");
    for _ in 0..20 {
        provision = match provision.status {
            StepStatus::InProgress => {
                kiln::pipeline::provision::poll(ctx, recipe, trigger, &builder, &provision)
                    .await
                    .expect("poll")
            }
            StepStatus::Pending => {
                kiln::pipeline::provision::start(ctx, recipe, trigger, &builder, provision.step)
                    .await
                    .expect("start step")
            }
            StepStatus::Done => break,
        };
    }
    assert_eq!(provision.status, StepStatus::Done, "provisioning finished");
    assert_eq!(provision.steps, recipe.file.steps.len());
    let mut image = kiln::pipeline::image::start(ctx, recipe, trigger, &source, &builder)
        .await
        .expect("create image");
    for _ in 0..20 {
        if image.state == ImageState::Available {
            break;
        }
        image = kiln::pipeline::image::poll(ctx, recipe, trigger, &image)
            .await
            .expect("poll image");
    }
    assert_eq!(image.state, ImageState::Available);
    (source, builder, image)
}

/// Cleans up after build `build_id` of `recipe` failed, as the state
/// machine's catch-all does.
async fn failed_build_cleanup(ctx: &Context, recipe: &Recipe, build_id: &BuildId) -> Cleanup {
    kiln::pipeline::cleanup::cleanup(
        ctx,
        build_id,
        &kiln::pipeline::cleanup::Policy::failed_build(Some(recipe)),
    )
    .await
    .expect("cleanup")
}

#[tokio::test]
async fn the_full_sequence_leaves_one_available_ena_image_and_no_builder() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let trigger = kiln_testkit::trigger("build-full-1");

    let (source, builder, image) = build(&ctx, &recipe, &trigger).await;

    assert_eq!(source.source_ami.as_str(), emulator.seeded.source_ami);
    let images = kiln_testkit::own_images(&ctx).await;
    assert_eq!(images.len(), 1, "exactly one image: {images:?}");
    let made = &images[0];
    assert_eq!(made.image_id(), Some(image.image_id.as_str()));
    assert_eq!(made.state().map(|s| s.as_str()), Some("available"));
    assert_eq!(
        made.ena_support(),
        Some(true),
        "ENA inherited from the source"
    );
    assert_eq!(made.name(), Some(image.image_name.as_str()));
    assert!(
        image.image_name.starts_with("kiln/ubuntu-base/")
            && image.image_name.ends_with("-build-full-1")
    );
    let tags = made.tags();
    assert_eq!(tag(tags, "kiln:recipe"), Some("ubuntu-base"));
    assert_eq!(tag(tags, "kiln:build-id"), Some("build-full-1"));
    assert_eq!(tag(tags, "kiln:role"), Some("image"));
    assert_eq!(
        tag(tags, "kiln:fingerprint"),
        Some(source.fingerprint.as_str())
    );
    assert_eq!(
        tag(tags, "kiln:source-ami"),
        Some(emulator.seeded.source_ami.as_str())
    );
    assert_eq!(tag(tags, "kiln:stage"), Some("candidate"));
    assert_eq!(
        tag(tags, "Team"),
        Some("platform"),
        "the recipe's extra tags"
    );
    assert_eq!(
        made.imds_support().map(|s| s.as_str()),
        Some("v2.0"),
        "instances launched from the image require IMDSv2"
    );

    let snapshot_ids: Vec<String> = made
        .block_device_mappings()
        .iter()
        .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
        .collect();
    assert!(!snapshot_ids.is_empty());
    let snapshots = ctx
        .ec2()
        .describe_snapshots()
        .set_snapshot_ids(Some(snapshot_ids))
        .send()
        .await
        .expect("snapshots");
    for snapshot in snapshots.snapshots() {
        assert_eq!(
            tag(snapshot.tags(), "kiln:build-id"),
            Some("build-full-1"),
            "{snapshot:?}"
        );
        assert_eq!(
            tag(snapshot.tags(), "kiln:image-id"),
            Some(image.image_id.as_str())
        );
    }

    let all = kiln_testkit::instances(&ctx, None).await;
    assert_eq!(all.len(), 1, "one builder was ever launched");
    assert_eq!(
        all[0].instance_id(),
        Some(builder.builder_instance_id.as_str())
    );
    assert!(
        kiln_testkit::live_instances(&ctx, None).await.is_empty(),
        "the builder is terminated"
    );
}

#[tokio::test]
async fn the_builder_is_locked_down_and_a_retried_launch_returns_it() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let trigger = kiln_testkit::trigger("build-lock-1");
    let source = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect("resolve");

    let first = kiln::pipeline::builder::launch(&ctx, &recipe, &trigger.build_id, &source)
        .await
        .expect("launch");
    let again = kiln::pipeline::builder::launch(&ctx, &recipe, &trigger.build_id, &source)
        .await
        .expect("relaunch");
    assert_eq!(first, again, "a retried launch returns the same instance");

    let instances = kiln_testkit::instances(&ctx, Some("build-lock-1")).await;
    assert_eq!(instances.len(), 1, "only one instance was launched");
    let instance = &instances[0];
    assert_eq!(
        instance.instance_type().map(|t| t.as_str()),
        Some("t3.small")
    );
    assert_eq!(
        instance.image_id(),
        Some(emulator.seeded.source_ami.as_str())
    );
    let metadata = instance.metadata_options().expect("metadata options");
    assert_eq!(
        metadata.http_tokens().map(|t| t.as_str()),
        Some("required"),
        "IMDSv2 only"
    );
    assert_eq!(instance.key_name(), None, "no key pair");
    assert!(
        instance
            .iam_instance_profile()
            .and_then(|p| p.arn())
            .is_some_and(|arn| arn.ends_with("/kiln-builder")),
        "{:?}",
        instance.iam_instance_profile()
    );
    for (key, value) in [
        ("kiln:recipe", "ubuntu-base"),
        ("kiln:build-id", "build-lock-1"),
        ("kiln:role", "builder"),
    ] {
        assert_eq!(tag(instance.tags(), key), Some(value), "instance tag {key}");
    }

    let groups: Vec<String> = instance
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id().map(str::to_owned))
        .collect();
    assert_eq!(groups.len(), 1);
    let described = ctx
        .ec2()
        .describe_security_groups()
        .set_group_ids(Some(groups))
        .send()
        .await
        .expect("groups");
    let group = &described.security_groups()[0];
    assert_eq!(group.group_name(), Some("kiln-builder"));
    assert!(
        group.ip_permissions().is_empty(),
        "no inbound rules: {:?}",
        group.ip_permissions()
    );

    let volumes = ctx
        .ec2()
        .describe_volumes()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.instance-id")
                .values(first.builder_instance_id.as_str())
                .build(),
        )
        .send()
        .await
        .expect("volumes");
    let root = volumes.volumes().first().expect("a root volume");
    assert_eq!(root.encrypted(), Some(true), "encrypted root volume");
    assert_eq!(root.size(), Some(16));
    assert_eq!(root.volume_type().map(|t| t.as_str()), Some("gp3"));
    for (key, value) in [
        ("kiln:recipe", "ubuntu-base"),
        ("kiln:build-id", "build-lock-1"),
        ("kiln:role", "builder"),
    ] {
        assert_eq!(tag(root.tags(), key), Some(value), "volume tag {key}");
    }

    // A second build reuses kiln's security group instead of making another.
    let other = kiln::pipeline::builder::launch(
        &ctx,
        &recipe,
        &"build-lock-2".parse().expect("id"),
        &source,
    )
    .await
    .expect("launch");
    assert_ne!(other.builder_instance_id, first.builder_instance_id);
    let kiln_groups = ctx
        .ec2()
        .describe_security_groups()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-name")
                .values("kiln-builder")
                .build(),
        )
        .send()
        .await
        .expect("groups");
    assert_eq!(kiln_groups.security_groups().len(), 1);
}

#[tokio::test]
async fn unchanged_inputs_skip_and_one_byte_of_setup_sh_does_not() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let trigger = kiln_testkit::trigger("build-skip-1");
    let (first, _, image) = build(&ctx, &recipe, &trigger).await;
    let untested = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect("resolve");
    assert!(
        !untested.skip,
        "an untested candidate does not make the build up to date"
    );
    let test = kiln::pipeline::test_run::launch(&ctx, &recipe, &trigger, &first, &image)
        .await
        .expect("test");
    let test = kiln::pipeline::test_run::start(&ctx, &recipe, &trigger, &test)
        .await
        .expect("start");
    kiln::pipeline::test_run::poll(&ctx, &recipe, &trigger, &image, &test)
        .await
        .expect("pass");

    let again = kiln::pipeline::source::resolve(&ctx, &copy.load(), false)
        .await
        .expect("resolve");
    assert!(again.skip, "nothing changed: skip");
    assert_eq!(again.existing_image_id.as_ref(), Some(&image.image_id));
    assert_eq!(again.fingerprint, first.fingerprint);

    let forced = kiln::pipeline::source::resolve(&ctx, &copy.load(), true)
        .await
        .expect("resolve");
    assert!(!forced.skip, "force overrides the skip");
    assert_eq!(forced.fingerprint, first.fingerprint);

    copy.edit("setup.sh", |text| {
        text.replacen("common tools", "common tools!", 1)
    });
    let changed = kiln::pipeline::source::resolve(&ctx, &copy.load(), false)
        .await
        .expect("resolve");
    assert_ne!(
        changed.fingerprint, first.fingerprint,
        "one byte of setup.sh changes the fingerprint"
    );
    assert!(!changed.skip);
    assert_eq!(
        kiln_testkit::instances(&ctx, None).await.len(),
        2,
        "the builder and the test instance: resolving launches nothing"
    );
}

async fn point_source_at(ctx: &Context, parameter: &str, image: &str) {
    ctx.ssm()
        .put_parameter()
        .name(parameter)
        .value(image)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("put parameter");
}

async fn register_own_image(ctx: &Context) -> String {
    ctx.ec2()
        .register_image()
        .name("ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20261118")
        .architecture(aws_sdk_ec2::types::ArchitectureValues::X8664)
        .root_device_name("/dev/sda1")
        .send()
        .await
        .expect("register")
        .image_id()
        .expect("id")
        .to_owned()
}

#[tokio::test]
async fn a_bad_source_is_refused_by_name_and_nothing_is_launched() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let parameter = emulator.seeded.source_parameter.as_str();

    // An image in our own account posing as Ubuntu: not Canonical's.
    let impostor = register_own_image(&ctx).await;
    point_source_at(&ctx, parameter, &impostor).await;
    let err = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect_err("untrusted");
    assert_eq!(err.name(), "UntrustedSource", "{err}");
    assert!(
        err.to_string().contains(&impostor) && err.to_string().contains("099720109477"),
        "{err}"
    );

    // The arm64 image for an x86_64 recipe.
    point_source_at(
        &ctx,
        parameter,
        &emulator.seeded.images["noble-24.04-arm64-20261118"],
    )
    .await;
    let err = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect_err("wrong arch");
    assert!(matches!(err, Error::SourceMismatch { .. }), "{err}");
    assert!(err.to_string().contains("arm64"), "{err}");

    // A deregistered source.
    let old = &emulator.seeded.images["noble-24.04-x86_64-20261021"];
    point_source_at(&ctx, parameter, old).await;
    ctx.ec2()
        .deregister_image()
        .image_id(old)
        .send()
        .await
        .expect("deregister");
    let err = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect_err("deregistered");
    assert_eq!(err.name(), "SourceNotFound", "{err}");
    assert!(err.to_string().contains(old.as_str()), "{err}");

    // A missing parameter.
    let mut missing = ctx.clone();
    missing.settings.source_parameter = Some("/kiln-emulator/does/not/exist".into());
    let err = kiln::pipeline::source::resolve(&missing, &recipe, false)
        .await
        .expect_err("missing");
    assert_eq!(err.name(), "SourceNotFound", "{err}");
    assert!(
        err.to_string().contains("/kiln-emulator/does/not/exist"),
        "{err}"
    );

    // An official image from before ENA.
    point_source_at(
        &ctx,
        parameter,
        &emulator.seeded.images["trusty-14.04-x86_64-20160114"],
    )
    .await;
    let err = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect_err("no ENA");
    assert!(matches!(err, Error::SourceMismatch { .. }), "{err}");
    assert!(err.to_string().contains("ENA"), "{err}");

    assert!(
        kiln_testkit::instances(&ctx, None).await.is_empty(),
        "no instance was ever launched"
    );
}

#[tokio::test]
async fn a_builder_security_group_with_inbound_rules_is_refused_before_launch() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let vpc = ctx.ec2().describe_vpcs().send().await.expect("vpcs").vpcs()[0]
        .vpc_id()
        .expect("vpc")
        .to_owned();
    let group = ctx
        .ec2()
        .create_security_group()
        .group_name("open")
        .description("ssh open to the world")
        .vpc_id(vpc)
        .send()
        .await
        .expect("group")
        .group_id()
        .expect("id")
        .to_owned();
    ctx.ec2()
        .authorize_security_group_ingress()
        .group_id(&group)
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .expect("ingress");
    copy.edit("recipe.toml", |text| {
        text.replace(
            "[builder]\n",
            &format!("[builder]\nsecurity_group_id = \"{group}\"\n"),
        )
    });
    let recipe = copy.load();
    let source = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect("resolve");
    let err = kiln::pipeline::builder::launch(
        &ctx,
        &recipe,
        &"build-open-1".parse().expect("id"),
        &source,
    )
    .await
    .expect_err("refused");
    assert_eq!(err.name(), "InsecureSecurityGroup", "{err}");
    assert!(
        kiln_testkit::instances(&ctx, None).await.is_empty(),
        "nothing launched"
    );
}

#[tokio::test]
async fn a_passing_test_marks_the_image_tested_and_leaves_no_instance() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let trigger = kiln_testkit::trigger("build-test-1");
    let (source, _, image) = build(&ctx, &recipe, &trigger).await;

    let launched = kiln::pipeline::test_run::launch(&ctx, &recipe, &trigger, &source, &image)
        .await
        .expect("launch");
    let again = kiln::pipeline::test_run::launch(&ctx, &recipe, &trigger, &source, &image)
        .await
        .expect("relaunch");
    assert_eq!(
        launched.test_instance_id, again.test_instance_id,
        "a retried launch returns the same test instance"
    );
    let tests: Vec<_> = kiln_testkit::live_instances(&ctx, Some("build-test-1"))
        .await
        .into_iter()
        .filter(|i| tag(i.tags(), "kiln:role") == Some("test"))
        .collect();
    assert_eq!(tests.len(), 1);
    assert_eq!(
        tests[0].image_id(),
        Some(image.image_id.as_str()),
        "the test boots the new image"
    );
    assert_eq!(
        tests[0]
            .metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str()),
        Some("required")
    );
    assert_eq!(tests[0].key_name(), None);

    let started = kiln::pipeline::test_run::start(&ctx, &recipe, &trigger, &launched)
        .await
        .expect("start");
    assert_eq!(
        started.status,
        kiln::pipeline::state::TestStatus::InProgress
    );
    let passed = kiln::pipeline::test_run::poll(&ctx, &recipe, &trigger, &image, &started)
        .await
        .expect("poll");
    assert_eq!(passed.status, kiln::pipeline::state::TestStatus::Passed);

    let images = kiln_testkit::own_images(&ctx).await;
    assert_eq!(tag(images[0].tags(), "kiln:stage"), Some("tested"));
    assert!(
        kiln_testkit::live_instances(&ctx, None).await.is_empty(),
        "builder and test instance are gone"
    );

    // A later step of this build fails: cleanup removes even the tested image.
    let cleaned = failed_build_cleanup(&ctx, &recipe, &trigger.build_id).await;
    assert_eq!(cleaned.deregistered, vec![image.image_id.clone()]);
    assert!(cleaned.terminated.is_empty(), "nothing was left running");
    assert!(
        kiln_testkit::own_images(&ctx).await.is_empty(),
        "a failed build delivers no image"
    );
}

/// A build that stopped after imaging, with a test instance running: what a
/// failure (or a crash) between steps leaves behind.
async fn half_built(ctx: &Context, recipe: &Recipe, build_id: &str) -> Image {
    let trigger = kiln_testkit::trigger(build_id);
    let source = kiln::pipeline::source::resolve(ctx, recipe, true)
        .await
        .expect("resolve");
    let builder = kiln::pipeline::builder::launch(ctx, recipe, &trigger.build_id, &source)
        .await
        .expect("launch");
    let image = kiln::pipeline::image::start(ctx, recipe, &trigger, &source, &builder)
        .await
        .expect("image");
    let image = Image {
        state: ImageState::Available,
        ..image
    };
    kiln::pipeline::test_run::launch(ctx, recipe, &trigger, &source, &image)
        .await
        .expect("test instance");
    image
}

#[tokio::test]
async fn an_image_can_leave_imdsv2_optional_when_its_recipe_says_so() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text.replace("[image]\n", "[image]\nrequire_imdsv2 = false\n")
    });
    let ctx = emulator.context(copy.root.path());
    let (_, _, image) = build(&ctx, &copy.load(), &kiln_testkit::trigger("imds-1")).await;
    let made = kiln_testkit::own_images(&ctx).await;
    assert_eq!(made[0].image_id(), Some(image.image_id.as_str()));
    assert_eq!(made[0].imds_support(), None);
}

#[tokio::test]
async fn a_build_that_ends_while_its_image_is_pending_leaves_no_snapshot() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let trigger = kiln_testkit::trigger("pending-1");
    let source = kiln::pipeline::source::resolve(&ctx, &recipe, true)
        .await
        .expect("resolve");
    let builder = kiln::pipeline::builder::launch(&ctx, &recipe, &trigger.build_id, &source)
        .await
        .expect("launch");
    let image = kiln::pipeline::image::start(&ctx, &recipe, &trigger, &source, &builder)
        .await
        .expect("image");
    let of_build = || async {
        ctx.ec2()
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:kiln:build-id")
                    .values("pending-1")
                    .build(),
            )
            .send()
            .await
            .expect("snapshots")
            .snapshots()
            .to_vec()
    };
    let made = of_build().await;
    assert!(
        !made.is_empty(),
        "the snapshots carry the build from CreateImage on"
    );
    assert_eq!(tag(made[0].tags(), "kiln:recipe"), Some("ubuntu-base"));
    assert_eq!(tag(made[0].tags(), "kiln:role"), Some("image"));

    // The build ends before its image is available, as AWS lets it: the
    // pending image is deregistered while its snapshots are still made, so
    // no image names them any more; only their tag finds them.
    ctx.ec2()
        .deregister_image()
        .image_id(image.image_id.as_str())
        .send()
        .await
        .expect("deregister");
    let done = failed_build_cleanup(&ctx, &recipe, &trigger.build_id).await;

    assert_eq!(done.deleted_snapshots.len(), made.len(), "{done:?}");
    assert!(
        of_build().await.is_empty(),
        "no snapshot of the build is left"
    );
    assert!(
        kiln_testkit::live_instances(&ctx, Some("pending-1"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn cleanup_removes_everything_of_its_build_and_nothing_else() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let failed = half_built(&ctx, &recipe, "build-broken-1").await;
    let other = half_built(&ctx, &recipe, "build-other-1").await;
    assert_eq!(
        kiln_testkit::live_instances(&ctx, Some("build-broken-1"))
            .await
            .len(),
        2,
        "builder and test instance"
    );

    let cleaned = failed_build_cleanup(&ctx, &recipe, &"build-broken-1".parse().expect("id")).await;

    assert_eq!(cleaned.terminated.len(), 2);
    assert_eq!(cleaned.deregistered, vec![failed.image_id.clone()]);
    assert_eq!(cleaned.deleted_snapshots.len(), 1);
    assert!(
        kiln_testkit::live_instances(&ctx, Some("build-broken-1"))
            .await
            .is_empty()
    );
    let images: Vec<String> = kiln_testkit::own_images(&ctx)
        .await
        .iter()
        .filter_map(|i| i.image_id().map(str::to_owned))
        .collect();
    assert_eq!(
        images,
        vec![other.image_id.to_string()],
        "only the other build's image is left"
    );
    let snapshots = ctx
        .ec2()
        .describe_snapshots()
        .owner_ids("self")
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("snapshot-id")
                .set_values(Some(cleaned.deleted_snapshots.clone()))
                .build(),
        )
        .send()
        .await
        .expect("snapshots");
    assert!(
        snapshots.snapshots().is_empty(),
        "the untested image's snapshots are deleted"
    );
    assert_eq!(
        kiln_testkit::live_instances(&ctx, Some("build-other-1"))
            .await
            .len(),
        2,
        "the other build is untouched"
    );

    let again = failed_build_cleanup(&ctx, &recipe, &"build-broken-1".parse().expect("id")).await;
    assert_eq!(
        again,
        kiln::pipeline::state::Cleanup::default(),
        "cleanup is idempotent"
    );
}

#[tokio::test]
async fn a_failed_image_kept_for_inspection_is_tagged_failed_and_never_skipped_to() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text.replace(
            "ena_required = true",
            "ena_required = true\nkeep_failed = true",
        )
    });
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let kept = half_built(&ctx, &recipe, "build-kept-1").await;

    let cleaned = failed_build_cleanup(&ctx, &recipe, &"build-kept-1".parse().expect("id")).await;

    assert_eq!(cleaned.kept_failed, vec![kept.image_id.clone()]);
    assert!(cleaned.deregistered.is_empty());
    let images = kiln_testkit::own_images(&ctx).await;
    assert_eq!(tag(images[0].tags(), "kiln:stage"), Some("failed"));
    assert!(kiln_testkit::live_instances(&ctx, None).await.is_empty());
    let source = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect("resolve");
    assert!(
        !source.skip,
        "a failed image with the same fingerprint does not make the build up to date"
    );
}

#[tokio::test]
async fn distribution_regions_the_account_cannot_copy_to_are_refused_before_launch() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let home = emulator.seeded.region.clone();
    copy.edit("recipe.toml", |text| {
        format!("{text}\n[distribution]\nregions = [\"eu-west-1\", \"{home}\", \"cn-north-1\"]\n")
    });
    let recipe = copy.load();

    let err = kiln::pipeline::source::resolve(&ctx, &recipe, false)
        .await
        .expect_err("refused");

    let Error::InvalidRecipe { problems, .. } = &err else {
        panic!("expected InvalidRecipe, got {err:?}");
    };
    let messages: Vec<&str> = problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[0].starts_with(&format!("{home} is the build region")),
        "{messages:#?}"
    );
    assert!(
        messages[1].starts_with("cn-north-1 is not a region of this account's partition"),
        "{messages:#?}"
    );
    assert!(problems.iter().all(|p| p.field == "distribution.regions"));
    assert!(kiln_testkit::live_instances(&ctx, None).await.is_empty());

    copy.edit("recipe.toml", |text| {
        text.replace(&format!(", \"{home}\", \"cn-north-1\""), "")
    });
    let source = kiln::pipeline::source::resolve(&ctx, &copy.load(), false)
        .await
        .expect("eu-west-1 is a region of this account");
    assert_eq!(source.source_ami.as_str(), emulator.seeded.source_ami);
}

#[tokio::test]
async fn a_copy_starts_once_per_build_and_region_and_ends_available_tagged_with_its_source() {
    use kiln::pipeline::copies;
    use kiln::pipeline::state::{ImageState, RegionCopy};
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        text + "\n[distribution]\nregions = [\"eu-west-1\", \"us-west-2\"]\n\
                [distribution.kms_keys]\n\
                us-west-2 = \"arn:aws:kms:us-west-2:123456789012:key/00000000-0000-0000-0000-000000000000\"\n"
    });
    let ctx = emulator.context(copy.root.path());
    let recipe = copy.load();
    let image = kiln_testkit::built_image(&ctx, "ubuntu-base", "b1", "tested").await;
    let build = "b1".parse().expect("build id");
    let started = |region: &str, image_id| RegionCopy {
        region: region.into(),
        image_id,
        state: ImageState::Pending,
    };

    let first = copies::copy(&ctx, &recipe, &build, &image, "eu-west-1")
        .await
        .expect("start");
    let retried = copies::copy(&ctx, &recipe, &build, &image, "eu-west-1")
        .await
        .expect("a retried start");

    assert_eq!(retried, first, "a retry finds the copy it started");
    let eu_copy = started("eu-west-1", first.clone());
    assert_eq!(
        copies::state(&ctx, &image, &eu_copy).await.expect("state"),
        ImageState::Pending
    );
    assert_eq!(
        copies::state(&ctx, &image, &eu_copy).await.expect("state"),
        ImageState::Available
    );
    let eu = ctx.in_region("eu-west-1");
    let held = kiln_testkit::own_images(&eu).await;
    let ids: Vec<&str> = held.iter().filter_map(|i| i.image_id()).collect();
    assert_eq!(ids, [first.as_str()], "one copy in eu-west-1");
    let tags = held[0].tags();
    for (key, value) in [
        ("kiln:recipe", "ubuntu-base"),
        ("kiln:build-id", "b1"),
        ("kiln:stage", "tested"),
        ("kiln:copy-of", image.as_str()),
        ("kiln:copy-of-region", emulator.seeded.region.as_str()),
    ] {
        assert_eq!(tag(tags, key), Some(value), "{key}: {tags:?}");
    }
    let ebs = held[0].block_device_mappings()[0].ebs().expect("EBS");
    assert_eq!(ebs.encrypted(), Some(true));
    let snapshot = eu
        .ec2()
        .describe_snapshots()
        .snapshot_ids(ebs.snapshot_id().expect("snapshot"))
        .send()
        .await
        .expect("DescribeSnapshots");
    assert_eq!(
        tag(snapshot.snapshots()[0].tags(), "kiln:build-id"),
        Some("b1")
    );

    // A key that is not in its region: the copy starts, then fails.
    let west = copies::copy(&ctx, &recipe, &build, &image, "us-west-2")
        .await
        .expect("start");
    let west = started("us-west-2", west);
    assert_eq!(
        copies::state(&ctx, &image, &west).await.expect("state"),
        ImageState::Pending
    );
    let err = copies::state(&ctx, &image, &west)
        .await
        .expect_err("the copy with a missing key must fail");
    assert_eq!(err.name(), "CopyFailed");
    let why = err.to_string();
    assert!(
        why.contains("us-west-2") && why.contains("KMS key"),
        "{why}"
    );
}

/// The bucket kiln writes command output and SBOMs to, in these tests.
const OUTPUT_BUCKET: &str = "kiln-output";

/// What the test instance's package listing prints (the `os` line, then
/// dpkg's packages; `rc` is removed, kept only for its configuration).
const PACKAGES: &str = "os\tubuntu\t24.04\tnoble\n\
    pkg\tlibc6\t2.39-0ubuntu8.3\tamd64\tglibc\tii \n\
    pkg\tbash\t5.2.21-2ubuntu4\tamd64\t\tii \n\
    pkg\tcurl\t8.5.0-2ubuntu10.5\tamd64\t\tii \n\
    pkg\tlibpam0g\t1:1.5.3-5ubuntu5.1\tamd64\tpam\tii \n\
    pkg\ttelnet\t0.17+2.5-3ubuntu4\tamd64\tinetutils\trc \n";

/// What the emulator's Inspector knows against [`PACKAGES`]: libc6 and
/// libpam0g (by its epoch) below their fixes, bash without a fix, curl
/// exactly at its fix, and telnet, which is not installed.
const ADVISORIES: [&str; 5] = [
    r#"{"id": "CVE-2099-0001", "package": "libc6", "fixed": "2.39-0ubuntu8.4", "severity": "critical", "cvss": 9.8, "exploit_available": true}"#,
    r#"{"id": "CVE-2099-0002", "package": "curl", "fixed": "8.5.0-2ubuntu10.5", "severity": "high", "cvss": 7.5}"#,
    r#"{"id": "CVE-2099-0003", "package": "libpam0g", "fixed": "1:1.5.3-5ubuntu5.2", "severity": "high", "cvss": 7.8}"#,
    r#"{"id": "CVE-2099-0004", "package": "bash", "fixed": null, "severity": "medium", "cvss": 5.5}"#,
    r#"{"id": "CVE-2099-0005", "package": "telnet", "fixed": "0.17+2.5-3ubuntu5", "severity": "critical", "cvss": 9.8}"#,
];

/// The JSON object at `key` of the output bucket.
async fn read_json(emulator: &Emulator, key: &str) -> serde_json::Value {
    let body = emulator
        .s3()
        .get_object()
        .bucket(OUTPUT_BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|err| panic!("{key}: {err}"))
        .body
        .collect()
        .await
        .expect("its body")
        .into_bytes();
    serde_json::from_slice(&body).expect("JSON")
}

/// An emulator whose Run Commands can print (it runs the proxy), the output
/// bucket, and a context writing to it.
async fn with_output_bucket(copy: &RecipeCopy) -> (Emulator, Context) {
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    emulator.bucket(OUTPUT_BUCKET).await;
    let mut ctx = emulator.context(copy.root.path());
    ctx.settings.output_bucket = Some(OUTPUT_BUCKET.into());
    (emulator, ctx)
}

/// Builds `trigger`'s image, launches its test instance and starts the
/// test step: the image, and the test as started.
async fn test_started(ctx: &Context, recipe: &Recipe, trigger: &Trigger) -> (Image, TestRun) {
    let (source, _, image) = build(ctx, recipe, trigger).await;
    let launched = kiln::pipeline::test_run::launch(ctx, recipe, trigger, &source, &image)
        .await
        .expect("launch");
    let started = kiln::pipeline::test_run::start(ctx, recipe, trigger, &launched)
        .await
        .expect("start");
    (image, started)
}

#[tokio::test]
async fn the_test_step_lists_the_packages_first_and_keeps_the_images_sbom_under_its_id() {
    let copy = RecipeCopy::ubuntu_base();
    let (emulator, ctx) = with_output_bucket(&copy).await;
    emulator.print_packages(PACKAGES);
    for advisory in ADVISORIES {
        emulator.advise(&serde_json::from_str(advisory).expect("an advisory"));
    }
    let recipe = copy.load();
    let trigger = kiln_testkit::trigger("build-sbom-1");
    let (image, listing) = test_started(&ctx, &recipe, &trigger).await;
    assert!(listing.packages_command_id.is_some() && listing.command_id.is_none());
    let commands = ctx
        .ssm()
        .list_commands()
        .instance_id(listing.test_instance_id.as_str())
        .send()
        .await
        .expect("ListCommands");
    let sent: Vec<&str> = commands
        .commands()
        .iter()
        .filter_map(|c| c.comment())
        .collect();
    assert_eq!(sent.len(), 1, "only the listing so far: {sent:?}");
    assert!(sent[0].contains(" packages "), "{sent:?}");

    let tested = kiln::pipeline::test_run::poll(&ctx, &recipe, &trigger, &image, &listing)
        .await
        .expect("poll the listing");
    assert!(tested.command_id.is_some(), "the test follows the listing");
    let sbom = tested.sbom.clone().expect("the SBOM");
    let passed = kiln::pipeline::test_run::poll(&ctx, &recipe, &trigger, &image, &tested)
        .await
        .expect("poll the test");
    assert_eq!(passed.status, kiln::pipeline::state::TestStatus::Passed);

    let key = format!("kiln-sbom/{}/sbom.cdx.json", image.image_id);
    assert_eq!(sbom.location, format!("s3://{OUTPUT_BUCKET}/{key}"));
    let stored = emulator
        .s3()
        .get_object()
        .bucket(OUTPUT_BUCKET)
        .key(&key)
        .send()
        .await
        .expect("the SBOM is under the image's id")
        .body
        .collect()
        .await
        .expect("its body")
        .into_bytes();
    let document: serde_json::Value = serde_json::from_slice(&stored).expect("JSON");
    assert_eq!(
        (&document["bomFormat"], &document["specVersion"]),
        (&serde_json::json!("CycloneDX"), &serde_json::json!("1.5"))
    );
    let components: Vec<(String, String, String)> = document["components"]
        .as_array()
        .expect("components")
        .iter()
        .map(|c| {
            let field = |name: &str| c[name].as_str().unwrap_or_default().to_owned();
            (field("type"), field("name"), field("purl"))
        })
        .collect();
    let component = |kind: &str, name: &str, purl: &str| (kind.into(), name.into(), purl.into());
    assert_eq!(
        components,
        [
            component("operating-system", "ubuntu", ""),
            component(
                "application",
                "bash",
                "pkg:deb/ubuntu/bash@5.2.21-2ubuntu4?arch=amd64&distro=noble"
            ),
            component(
                "application",
                "curl",
                "pkg:deb/ubuntu/curl@8.5.0-2ubuntu10.5?arch=amd64&distro=noble"
            ),
            component(
                "application",
                "libc6",
                "pkg:deb/ubuntu/libc6@2.39-0ubuntu8.3?arch=amd64&distro=noble&source=glibc"
            ),
            component(
                "application",
                "libpam0g",
                "pkg:deb/ubuntu/libpam0g@1.5.3-5ubuntu5.1?arch=amd64&distro=noble&epoch=1&source=pam"
            ),
        ],
        "the OS and the four installed packages, not the removed one"
    );
    use sha2::Digest as _;
    let digest = hex::encode(sha2::Sha256::digest(&stored));
    let images = kiln_testkit::own_images(&ctx).await;
    assert_eq!(
        tag(images[0].tags(), "kiln:sbom-sha256"),
        Some(digest.as_str())
    );
    assert_eq!(sbom.sha256, digest);
    assert_eq!(sbom.packages, 4);
    assert_eq!(tag(images[0].tags(), "kiln:stage"), Some("tested"));

    // Inspector's findings are beside the SBOM, their counts on the image.
    let findings_key = format!("kiln-sbom/{}/findings.json", image.image_id);
    assert_eq!(
        sbom.findings,
        format!("s3://{OUTPUT_BUCKET}/{findings_key}")
    );
    let findings = read_json(&emulator, &findings_key).await;
    assert_eq!(findings["image"], image.image_id.as_str());
    assert_eq!(findings["sbom_sha256"], digest.as_str());
    assert_eq!(
        findings["findings"],
        serde_json::json!([
            {"id": "CVE-2099-0001", "severity": "CRITICAL", "cvss": 9.8, "package": "libc6",
             "installed": "2.39-0ubuntu8.3", "fixed": "2.39-0ubuntu8.4", "exploit_available": true},
            {"id": "CVE-2099-0003", "severity": "HIGH", "cvss": 7.8, "package": "libpam0g",
             "installed": "1:1.5.3-5ubuntu5.1", "fixed": "1:1.5.3-5ubuntu5.2", "exploit_available": false},
            {"id": "CVE-2099-0004", "severity": "MEDIUM", "cvss": 5.5, "package": "bash",
             "installed": "5.2.21-2ubuntu4", "exploit_available": false},
        ]),
        "curl is at its fix, telnet is not installed"
    );
    assert_eq!((sbom.critical, sbom.high), (1, 1));
    assert_eq!(
        tag(images[0].tags(), "kiln:findings"),
        Some("critical=1,high=1")
    );

    // A later step of this build fails: the image goes, and its SBOM with it.
    let cleaned = failed_build_cleanup(&ctx, &recipe, &trigger.build_id).await;
    assert_eq!(cleaned.deregistered, vec![image.image_id.clone()]);
    let gone = emulator
        .s3()
        .get_object()
        .bucket(OUTPUT_BUCKET)
        .key(&key)
        .send()
        .await
        .expect_err("the SBOM is gone");
    assert!(gone.into_service_error().is_no_such_key());
    assert!(
        !emulator.keys(OUTPUT_BUCKET).await.contains(&findings_key),
        "the findings went with the image"
    );
}

#[tokio::test]
async fn a_listing_that_prints_nothing_fails_the_test_step_and_the_image_stays_untested() {
    let copy = RecipeCopy::ubuntu_base();
    let (_emulator, ctx) = with_output_bucket(&copy).await;
    let recipe = copy.load();
    let trigger = kiln_testkit::trigger("build-sbom-2");
    let (image, listing) = test_started(&ctx, &recipe, &trigger).await;
    let err = kiln::pipeline::test_run::poll(&ctx, &recipe, &trigger, &image, &listing)
        .await
        .expect_err("no listing");
    assert_eq!(err.name(), "PackageListing", "{err}");
    let images = kiln_testkit::own_images(&ctx).await;
    assert_eq!(tag(images[0].tags(), "kiln:stage"), Some("candidate"));
    assert_eq!(tag(images[0].tags(), "kiln:sbom-sha256"), None);
}

/// The next image's package listing: libc6 upgraded, curl removed, vim
/// added, tzdata downgraded, bash and libpam0g as they were.
const NEXT_PACKAGES: &str = "os\tubuntu\t24.04\tnoble\n\
    pkg\tlibc6\t2.39-0ubuntu8.4\tamd64\tglibc\tii \n\
    pkg\tbash\t5.2.21-2ubuntu4\tamd64\t\tii \n\
    pkg\tlibpam0g\t1:1.5.3-5ubuntu5.1\tamd64\tpam\tii \n\
    pkg\tvim\t2:9.1.0016-1ubuntu7.5\tamd64\t\tii \n\
    pkg\ttzdata\t2024a-3ubuntu1\tall\t\tii \n";

/// Builds and tests an image of `trigger`'s build: the test step lists
/// `packages`.
async fn tested_with(
    emulator: &Emulator,
    ctx: &Context,
    recipe: &Recipe,
    trigger: &Trigger,
    packages: &str,
) -> Image {
    emulator.print_packages(packages);
    let (image, mut test) = test_started(ctx, recipe, trigger).await;
    for _ in 0..5 {
        if test.status == kiln::pipeline::state::TestStatus::Passed {
            break;
        }
        test = kiln::pipeline::test_run::poll(ctx, recipe, trigger, &image, &test)
            .await
            .expect("poll");
    }
    assert_eq!(test.status, kiln::pipeline::state::TestStatus::Passed);
    image
}

#[tokio::test]
async fn kiln_diff_names_every_package_added_removed_upgraded_and_downgraded() {
    let copy = RecipeCopy::ubuntu_base();
    let (emulator, ctx) = with_output_bucket(&copy).await;
    for advisory in [
        ADVISORIES[0],
        r#"{"id": "CVE-2099-0010", "package": "vim", "fixed": null, "severity": "high", "cvss": 7.0}"#,
        r#"{"id": "CVE-2099-0012", "package": "curl", "fixed": "8.5.0-2ubuntu10.6", "severity": "medium"}"#,
    ] {
        emulator.advise(&serde_json::from_str(advisory).expect("an advisory"));
    }
    let recipe = copy.load();
    let first = tested_with(
        &emulator,
        &ctx,
        &recipe,
        &kiln_testkit::trigger("build-diff-1"),
        &format!("{PACKAGES}pkg\ttzdata\t2024a-3ubuntu1.1\tall\t\tii \n"),
    )
    .await;
    kiln::channels::promotion::promote(
        &ctx,
        &recipe.name,
        &kiln_testkit::channel("prod"),
        &first.image_id,
        kiln::channels::pointers::Why {
            reason: "diff test",
            actor: "tests",
        },
        false,
    )
    .await
    .expect("promote");
    let next = Trigger {
        force: true,
        ..kiln_testkit::trigger("build-diff-2")
    };
    let second = tested_with(&emulator, &ctx, &recipe, &next, NEXT_PACKAGES).await;

    let mut env = emulator.env();
    env.push(("KILN_OUTPUT_BUCKET", OUTPUT_BUCKET.into()));
    let run = |args: &[&str]| {
        kiln_testkit::kiln()
            .arg("diff")
            .args(args)
            .envs(env.clone())
            .output()
            .expect("run kiln diff")
    };
    let text = run(&["prod", second.image_id.as_str(), "--recipe", "ubuntu-base"]);
    assert!(text.status.success(), "{text:?}");
    let expected = format!(
        "recipe ubuntu-base: {} (prod) -> {}\n\
         installed packages: 5 -> 5\n\
         added (1):\n  vim 2:9.1.0016-1ubuntu7.5 (amd64)\n\
         removed (1):\n  curl 8.5.0-2ubuntu10.5 (amd64)\n\
         upgraded (1):\n  libc6 2.39-0ubuntu8.3 -> 2.39-0ubuntu8.4 (amd64)\n\
         downgraded (1):\n  tzdata 2024a-3ubuntu1.1 -> 2024a-3ubuntu1 (all)\n\
         CVEs fixed (2):\n  \
         CVE-2099-0001 CRITICAL libc6 2.39-0ubuntu8.3 (fixed in 2.39-0ubuntu8.4, exploit available)\n  \
         CVE-2099-0012 MEDIUM curl 8.5.0-2ubuntu10.5 (fixed in 8.5.0-2ubuntu10.6)\n\
         CVEs introduced (1):\n  CVE-2099-0010 HIGH vim 2:9.1.0016-1ubuntu7.5 (no fix)\n",
        first.image_id, second.image_id
    );
    assert_eq!(String::from_utf8_lossy(&text.stdout), expected);

    let json = run(&[
        first.image_id.as_str(),
        second.image_id.as_str(),
        "--output",
        "json",
    ]);
    assert!(json.status.success(), "{json:?}");
    let diff: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(diff["upgraded"][0]["name"], "libc6");
    assert_eq!(diff["added"][0]["version"], "2:9.1.0016-1ubuntu7.5");
    assert_eq!(
        diff["vulnerabilities"]["introduced"][0]["id"],
        "CVE-2099-0010"
    );
    assert_eq!(
        diff["vulnerabilities"]["fixed"][1]["fixed"],
        "8.5.0-2ubuntu10.6"
    );

    // A channel without its recipe, and an SBOM that is not the one tagged,
    // are refused by name.
    let channel_alone = run(&["prod", second.image_id.as_str()]);
    assert!(
        String::from_utf8_lossy(&channel_alone.stderr).contains("error[InvalidInput]"),
        "{channel_alone:?}"
    );
    emulator
        .s3()
        .put_object()
        .bucket(OUTPUT_BUCKET)
        .key(format!("kiln-sbom/{}/sbom.cdx.json", second.image_id))
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect("overwrite the SBOM");
    let tampered = run(&[first.image_id.as_str(), second.image_id.as_str()]);
    let stderr = String::from_utf8_lossy(&tampered.stderr);
    assert!(
        stderr.contains("error[DiffRefused]") && stderr.contains("not the one tagged"),
        "{stderr}"
    );
}
