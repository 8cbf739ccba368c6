//! Image safety against the emulator: rollback targets protected from
//! deregistration, and retention that deprecates, disables, then deregisters
//! (on a clock the test controls), keeps what anything uses, and can be
//! undone with `kiln restore` until the last step. Asserts on the images,
//! snapshots and instances the emulator holds afterwards.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Image;
use jiff::{SignedDuration, Timestamp};
use kiln::aws::Context;
use kiln::channels::pointers::Why;
use kiln::channels::promotion;
use kiln::channels::retention::{self, Pruning, Step};
use kiln::fleet::{self as audit, Regions, Scope};
use kiln::ids::AmiId;
use kiln::ops::restore;
use kiln_testkit::{Emulator, RECIPE, built_image, channel, recipe};

/// The output bucket, where the images' SBOMs are.
const SBOM_BUCKET: &str = "kiln-output";

const HOUR: SignedDuration = SignedDuration::from_hours(1);
const DAY: SignedDuration = SignedDuration::from_hours(24);

fn why(reason: &str) -> Why<'_> {
    Why {
        reason,
        actor: "test",
    }
}

/// The image as EC2 describes it to its owner (disabled ones too); `None`
/// once it is deregistered.
async fn described(ctx: &Context, image: &AmiId) -> Option<Image> {
    kiln_testkit::own_images(ctx)
        .await
        .into_iter()
        .find(|i| i.image_id() == Some(image.as_str()))
}

async fn promote(ctx: &Context, image: &AmiId) -> promotion::Moved {
    promotion::promote(
        ctx,
        &recipe(),
        &channel("prod"),
        image,
        why("nightly"),
        false,
    )
    .await
    .expect("promote")
}

async fn deregistration_refused(ctx: &Context, image: &AmiId) -> bool {
    ctx.ec2()
        .deregister_image()
        .image_id(image.as_str())
        .send()
        .await
        .is_err()
}

async fn protection(ctx: &Context, image: &AmiId) -> String {
    described(ctx, image)
        .await
        .and_then(|i| i.deregistration_protection().map(str::to_owned))
        .unwrap_or_default()
}

#[tokio::test]
async fn the_images_a_channel_names_or_returns_to_cannot_be_deregistered() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let mut made = Vec::new();
    for build in ["a", "b", "c"] {
        made.push(built_image(&ctx, RECIPE, build, "tested").await);
    }
    let (a, b, c) = (&made[0], &made[1], &made[2]);
    promote(&ctx, a).await;
    let moved = promote(&ctx, b).await;
    let protected: Vec<&str> = moved
        .synced
        .protection
        .iter()
        .filter(|p| p.protected)
        .map(|p| p.image_id.as_str())
        .collect();
    assert_eq!(protected, [b.as_str()], "{:?}", moved.synced);

    // prod is b, a rollback returns to a: neither can be deregistered.
    assert!(deregistration_refused(&ctx, b).await);
    assert!(deregistration_refused(&ctx, a).await);
    assert!(described(&ctx, a).await.is_some() && described(&ctx, b).await.is_some());
    assert_eq!(protection(&ctx, a).await, "enabled-with-cooldown");
    assert_eq!(protection(&ctx, c).await, "disabled");

    // prod moves to c: a leaves both roles and loses its protection (AWS's
    // cooldown still refuses its deregistration for a day).
    promote(&ctx, c).await;
    assert_eq!(protection(&ctx, a).await, "disabled");
    assert_eq!(protection(&ctx, b).await, "enabled-with-cooldown");
    assert_eq!(protection(&ctx, c).await, "enabled-with-cooldown");
    assert!(deregistration_refused(&ctx, a).await, "the cooldown holds");
    let listed = retention::images(&ctx, &recipe()).await.expect("images");
    let shown: BTreeMap<&str, bool> = listed
        .iter()
        .map(|i| (i.image_id.as_str(), i.protected))
        .collect();
    assert_eq!(
        shown,
        BTreeMap::from([(a.as_str(), false), (b.as_str(), true), (c.as_str(), true)])
    );

    // Protection turned off by hand is turned on again by kiln doctor's sync.
    ctx.ec2()
        .disable_image_deregistration_protection()
        .image_id(c.as_str())
        .send()
        .await
        .expect("DisableImageDeregistrationProtection");
    let synced = promotion::sync(&ctx, &recipe()).await.expect("sync");
    assert_eq!(synced.protection.len(), 1, "{synced:?}");
    assert_eq!(protection(&ctx, c).await, "enabled-with-cooldown");
}

/// Shares `image` with the member account, launches one instance of it
/// there, audits both accounts and publishes the report to `bucket`.
async fn seen_by_the_audit_in_a_member_account(
    emulator: &Emulator,
    ctx: &Context,
    image: &AmiId,
    bucket: &str,
) -> String {
    let member_role = emulator.seeded.member_role.clone();
    let member_account = kiln::aws::roles::role_account(&member_role)
        .expect("a role ARN")
        .to_owned();
    ctx.ec2()
        .modify_image_attribute()
        .image_id(image.as_str())
        .launch_permission(
            aws_sdk_ec2::types::LaunchPermissionModifications::builder()
                .add(
                    aws_sdk_ec2::types::LaunchPermission::builder()
                        .user_id(&member_account)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("share");
    let member = Context::new(&emulator.member_config().await, ctx.settings.clone());
    kiln_testkit::launch(&member, image.as_str()).await;
    let scope = Scope {
        regions: Regions::List(vec![ctx.region().expect("a region")]),
        account_roles: vec![member_role],
        ..Scope::new(channel("prod"))
    };
    let report = audit::audit(&ctx.config, &scope).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    let s3 = aws_sdk_s3::Client::new(&ctx.config);
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("CreateBucket");
    audit::publish::to_s3(&s3, bucket, &report)
        .await
        .expect("publish");
    member_account
}

fn steps(pruning: &Pruning) -> BTreeMap<String, Step> {
    pruning
        .retiring
        .iter()
        .map(|r| (r.image_id.to_string(), r.step))
        .collect()
}

fn reasons(pruning: &Pruning, image: &AmiId) -> Vec<String> {
    pruning
        .kept
        .iter()
        .find(|k| &k.image_id == image)
        .map(|k| k.why.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn retention_deprecates_then_disables_then_deregisters_and_restore_brings_one_back() {
    let emulator = Emulator::start().await;
    let mut ctx = emulator.context(&kiln_testkit::recipe_root());
    let mut made = BTreeMap::new();
    for name in [
        "old-1", "old-2", "old-3", "previous", "prod", "running", "launched", "audited", "newest",
    ] {
        if name == "newest" {
            // The newest by a second at least: EC2 dates images to the second.
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        made.insert(name, built_image(&ctx, RECIPE, name, "tested").await);
    }
    let other_recipe = built_image(&ctx, "other-recipe", "other", "tested").await;
    for image in ["previous", "prod"] {
        promote(&ctx, &made[image]).await;
    }
    kiln_testkit::launch(&ctx, made["running"].as_str()).await;
    let gone = kiln_testkit::launch(&ctx, made["launched"].as_str()).await;
    ctx.ec2()
        .terminate_instances()
        .instance_ids(gone)
        .send()
        .await
        .expect("terminate");
    let member =
        seen_by_the_audit_in_a_member_account(&emulator, &ctx, &made["audited"], "reports").await;
    ctx.settings.audit_bucket = Some("reports".into());
    let snapshots = |image: &Image| -> Vec<String> {
        image
            .block_device_mappings()
            .iter()
            .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_owned))
            .collect()
    };
    let old_1_snapshots = snapshots(&described(&ctx, &made["old-1"]).await.expect("old-1"));
    assert!(!old_1_snapshots.is_empty());
    let old = |step: Step, names: &[&str]| -> BTreeMap<String, Step> {
        names.iter().map(|n| (made[n].to_string(), step)).collect()
    };
    let all_old = ["old-1", "old-2", "old-3"];
    let t0 = Timestamp::now();

    // The dry run says what each image would go through, and why each stays.
    let dry = retention::prune(&ctx, &recipe(), 1, true, t0)
        .await
        .expect("dry run");
    assert_eq!(steps(&dry), old(Step::Deprecate, &all_old), "{dry:#?}");
    let has = |image: &str, start: &str| {
        reasons(&dry, &made[image])
            .iter()
            .any(|w| w.starts_with(start))
    };
    assert_eq!(reasons(&dry, &made["newest"]), ["among the newest 1"]);
    assert!(
        has("prod", "on channel prod"),
        "{:?}",
        reasons(&dry, &made["prod"])
    );
    assert!(has("previous", "previous on channel prod"));
    assert!(has("previous", "protected from deregistration"));
    assert!(
        has("running", "used by i-"),
        "{:?}",
        reasons(&dry, &made["running"])
    );
    assert!(
        has("launched", "launched "),
        "{:?}",
        reasons(&dry, &made["launched"])
    );
    let audited = reasons(&dry, &made["audited"]);
    assert!(
        audited.iter().any(|w| w
            .starts_with("seen running by the audit: 1 instance(s) in account")
            && w.contains(&member)),
        "{audited:?}"
    );
    assert!(
        described(&ctx, &made["old-1"])
            .await
            .expect("old-1")
            .deprecation_time()
            .is_none()
    );

    // A month on, only the audit still holds `audited`: `launched`'s launch
    // is out of the 30-day window.
    let later = retention::prune(&ctx, &recipe(), 1, true, t0 + DAY * 31)
        .await
        .expect("a month later");
    assert_eq!(later.retiring.len(), 4, "{later:#?}");
    assert_eq!(steps(&later)[made["launched"].as_str()], Step::Deprecate);
    assert!(
        reasons(&later, &made["audited"])
            .iter()
            .all(|w| w.starts_with("seen running by the audit"))
    );

    // 1: deprecated.
    let first = retention::prune(&ctx, &recipe(), 1, false, t0)
        .await
        .expect("first run");
    assert_eq!(steps(&first), old(Step::Deprecate, &all_old));
    for name in all_old {
        let image = described(&ctx, &made[name]).await.expect("still there");
        assert!(image.deprecation_time().is_some(), "{name} deprecated");
        assert_eq!(image.state().map(|s| s.as_str()), Some("available"));
    }
    assert!(
        described(&ctx, &made["running"])
            .await
            .expect("running")
            .deprecation_time()
            .is_none()
    );

    // Someone launches old-3 again: it is in use, so its deprecation is lifted.
    kiln_testkit::launch(&ctx, made["old-3"].as_str()).await;

    // 2: an hour later, past the deprecation time: disabled.
    let second = retention::prune(&ctx, &recipe(), 1, false, t0 + HOUR)
        .await
        .expect("second");
    assert_eq!(steps(&second), old(Step::Disable, &["old-1", "old-2"]));
    let lifted = second
        .kept
        .iter()
        .find(|k| k.image_id == made["old-3"])
        .expect("old-3 kept");
    assert_eq!(lifted.note.as_deref(), Some("deprecation lifted"));
    assert!(
        described(&ctx, &made["old-3"])
            .await
            .expect("old-3")
            .deprecation_time()
            .is_none()
    );
    for name in ["old-1", "old-2"] {
        let image = described(&ctx, &made[name]).await.expect("still there");
        assert_eq!(
            image.state().map(|s| s.as_str()),
            Some("disabled"),
            "{name}"
        );
        assert!(kiln_testkit::tag(image.tags(), "kiln:disabled-at").is_some());
    }
    let default_view = ctx
        .ec2()
        .describe_images()
        .owners("self")
        .send()
        .await
        .expect("DescribeImages");
    assert!(
        !default_view
            .images()
            .iter()
            .any(|i| i.image_id() == Some(made["old-1"].as_str())),
        "DescribeImages hides a disabled image by default"
    );
    let waiting = retention::prune(&ctx, &recipe(), 1, false, t0 + DAY)
        .await
        .expect("next day");
    assert_eq!(
        steps(&waiting),
        old(Step::Wait, &["old-1", "old-2"]),
        "the grace period runs"
    );

    // kiln restore brings old-2 back: it launches again (and is then in use).
    let launch = |image: &AmiId| {
        ctx.ec2()
            .run_instances()
            .image_id(image.as_str())
            .min_count(1)
            .max_count(1)
            .send()
    };
    assert!(
        launch(&made["old-2"]).await.is_err(),
        "a disabled image does not launch"
    );
    let restored = restore::restore(&ctx, &recipe(), &made["old-2"])
        .await
        .expect("restore");
    assert!(restored.changed);
    let back = described(&ctx, &made["old-2"]).await.expect("old-2");
    assert_eq!(back.state().map(|s| s.as_str()), Some("available"));
    assert!(back.deprecation_time().is_none());
    assert!(kiln_testkit::tag(back.tags(), "kiln:disabled-at").is_none());
    launch(&made["old-2"])
        .await
        .expect("a restored image launches");
    let refused = restore::restore(&ctx, &recipe(), &other_recipe)
        .await
        .expect_err("other recipe");
    assert_eq!(refused.name(), "RestoreRefused");

    // 3: the grace period passed: old-1 is deregistered with its snapshots
    // and its SBOM; everything else stays.
    let s3 = emulator.s3();
    emulator.bucket(SBOM_BUCKET).await;
    ctx.settings.output_bucket = Some(SBOM_BUCKET.into());
    let sbom_of = |name: &str| format!("kiln-sbom/{}/sbom.cdx.json", made[name]);
    for name in ["old-1", "old-2"] {
        s3.put_object()
            .bucket(SBOM_BUCKET)
            .key(sbom_of(name))
            .body(b"{}".to_vec().into())
            .send()
            .await
            .expect("an SBOM");
    }
    let third = retention::prune(&ctx, &recipe(), 1, false, t0 + HOUR + DAY * 14)
        .await
        .expect("third");
    assert_eq!(
        steps(&third),
        BTreeMap::from([(made["old-1"].to_string(), Step::Deregister)])
    );
    assert!(described(&ctx, &made["old-1"]).await.is_none());
    assert_eq!(
        emulator.keys(SBOM_BUCKET).await,
        [sbom_of("old-2")],
        "old-1's SBOM went with it"
    );
    let left: Vec<String> = ctx
        .ec2()
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .expect("DescribeSnapshots")
        .snapshots()
        .iter()
        .filter_map(|s| s.snapshot_id().map(str::to_owned))
        .collect();
    assert!(
        old_1_snapshots.iter().all(|s| !left.contains(s)),
        "its snapshots went with it"
    );
    for (name, image) in &made {
        if *name != "old-1" {
            assert!(described(&ctx, image).await.is_some(), "{name} stays");
        }
    }
    assert!(
        described(&ctx, &other_recipe).await.is_some(),
        "other recipes untouched"
    );
}

#[tokio::test]
async fn a_launch_template_pinning_a_pointer_version_keeps_that_versions_image() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let spare = built_image(&ctx, RECIPE, "spare", "tested").await;
    // EC2 dates images to the second: the spare is the oldest by a second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let first = built_image(&ctx, RECIPE, "first", "tested").await;
    let second = built_image(&ctx, RECIPE, "second", "tested").await;
    let third = built_image(&ctx, RECIPE, "third", "tested").await;
    for image in [&first, &second, &third] {
        promote(&ctx, image).await;
    }
    // A service launches version 1 of the prod pointer, whatever prod names now.
    ctx.ec2()
        .create_launch_template()
        .launch_template_name("pinned")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("resolve:ssm:/kiln/ubuntu-base/prod:1")
                .build(),
        )
        .send()
        .await
        .expect("template");

    let pruning = retention::prune(&ctx, &recipe(), 1, true, Timestamp::now())
        .await
        .expect("prune");

    assert_eq!(
        steps(&pruning),
        BTreeMap::from([(spare.to_string(), Step::Deprecate)]),
        "{pruning:#?}"
    );
    assert!(
        reasons(&pruning, &first)
            .iter()
            .any(|w| w.starts_with("in launch template lt-")),
        "{pruning:#?}"
    );
    assert!(described(&ctx, &first).await.is_some());
}
