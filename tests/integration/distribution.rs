//! One channel, every region: a recipe that distributes to a second region
//! has a pointer there too, naming that region's copy of the image the home
//! pointer names, moved with it, refused with it, and repaired by `kiln
//! doctor` when a move stopped halfway. Against the emulator, two regions.

use std::time::Duration;

use aws_sdk_cloudwatch::types::StateValue;
use kiln::aws::Context;
use kiln::channels::pointers::{Action, Why, history, pointers};
use kiln::channels::promotion;
use kiln::channels::retention::Step;
use kiln::channels::rollout::groups;
use kiln::channels::rollout::{Phase, Release, Status};
use kiln::ids::AmiId;
use kiln::pipeline::state::{ImageState, RegionCopy};
use kiln_testkit::{
    Emulator, RecipeCopy, alarm, auto_scaling_group, built_image, channel, distributed_image,
    opted_in, put_pointer, recipe, release_step, set_alarm, tag, template_versions,
};

const AWAY: &str = "eu-west-1";

const WHY: Why<'static> = Why {
    reason: "tests",
    actor: "tests",
};

/// An emulator, a recipe distributing to [`AWAY`], and a context in each region.
struct Two {
    emulator: Emulator,
    copy: RecipeCopy,
    ctx: Context,
    away: Context,
}

async fn two_regions() -> Two {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    emulator.distribute(&copy, AWAY);
    let ctx = emulator.context(copy.root.path());
    let away = ctx.in_region(AWAY);
    Two {
        emulator,
        copy,
        ctx,
        away,
    }
}

/// Promotes `image` to prod and waits until [`AWAY`]'s pointer names `copied`.
async fn on_prod(two: &Two, image: &AmiId, copied: &AmiId) {
    promotion::promote(&two.ctx, &recipe(), &channel("prod"), image, WHY, false)
        .await
        .expect("promote");
    prod_pointer(&two.away, Some(copied.as_str())).await;
}

/// The image the prod pointer of `ctx`'s region names, once SSM shows
/// `wanted` there (a write is validated after PutParameter answers); what it
/// names after 10 s otherwise.
async fn prod_pointer(ctx: &Context, wanted: Option<&str>) -> Option<String> {
    pointer_showing(ctx, "prod", wanted).await
}

/// [`prod_pointer`] of any channel.
async fn pointer_showing(ctx: &Context, name: &str, wanted: Option<&str>) -> Option<String> {
    let mut found = None;
    for _ in 0..50 {
        found = pointers(ctx, &recipe())
            .await
            .expect("pointers")
            .remove(&channel(name))
            .map(|(image, _)| image);
        if found.as_deref() == wanted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    found
}

async fn channel_tag(ctx: &Context, image: &str) -> Option<String> {
    let described = kiln_testkit::own_images(ctx).await;
    let found = described
        .iter()
        .find(|i| i.image_id() == Some(image))
        .expect("the image");
    tag(found.tags(), "kiln:channel").map(str::to_owned)
}

#[tokio::test]
async fn a_promotion_moves_the_channel_in_every_region_to_that_regions_copy() {
    let two = two_regions().await;
    let (image, copied) = distributed_image(&two.ctx, &two.copy.load(), "b1", AWAY).await;

    let moved = promotion::promote(&two.ctx, &recipe(), &channel("prod"), &image, WHY, false)
        .await
        .expect("promote");

    assert_eq!(
        prod_pointer(&two.ctx, Some(image.as_str()))
            .await
            .as_deref(),
        Some(image.as_str())
    );
    assert_eq!(
        prod_pointer(&two.away, Some(copied.as_str()))
            .await
            .as_deref(),
        Some(copied.as_str()),
        "{AWAY}'s pointer names its own copy"
    );
    assert_eq!(moved.synced.regional.len(), 1, "{moved:#?}");
    assert_eq!(moved.synced.regional[0].to.as_ref(), Some(&copied));
    assert_eq!(
        channel_tag(&two.away, copied.as_str()).await.as_deref(),
        Some("prod")
    );
    let regional = history(&two.away, &recipe(), &channel("prod"))
        .await
        .expect("history");
    let record = regional[0].record.as_ref().expect("a record");
    assert_eq!(record.follows, Some(1), "it follows home version 1");
    assert_eq!(record.reason, "tests");
}

#[tokio::test]
async fn a_promotion_an_image_without_a_copy_in_a_region_is_refused_and_changes_nothing_anywhere() {
    let two = two_regions().await;
    let (first, first_copy) = distributed_image(&two.ctx, &two.copy.load(), "b1", AWAY).await;
    on_prod(&two, &first, &first_copy).await;
    let second = built_image(&two.ctx, "ubuntu-base", "b2", "tested").await;

    let err = promotion::promote(&two.ctx, &recipe(), &channel("prod"), &second, WHY, false)
        .await
        .expect_err("no copy in eu-west-1");

    assert_eq!(err.name(), "PromotionRefused");
    assert!(err.to_string().contains(AWAY), "{err}");
    let home = pointers(&two.ctx, &recipe()).await.expect("pointers");
    assert_eq!(
        home[&channel("prod")],
        (first.to_string(), 1),
        "home unchanged"
    );
    let there = pointers(&two.away, &recipe()).await.expect("pointers");
    assert_eq!(
        there[&channel("prod")],
        (first_copy.to_string(), 1),
        "{AWAY} unchanged"
    );
    assert_eq!(channel_tag(&two.ctx, second.as_str()).await, None);
    assert_eq!(
        channel_tag(&two.ctx, first.as_str()).await.as_deref(),
        Some("prod")
    );
    assert_eq!(
        channel_tag(&two.away, first_copy.as_str()).await.as_deref(),
        Some("prod")
    );
}

#[tokio::test]
async fn kiln_doctor_finishes_a_move_that_stopped_after_the_home_region() {
    let two = two_regions().await;
    let (first, first_copy) = distributed_image(&two.ctx, &two.copy.load(), "b1", AWAY).await;
    let (second, second_copy) = distributed_image(&two.ctx, &two.copy.load(), "b2", AWAY).await;
    on_prod(&two, &first, &first_copy).await;
    // A move that wrote the home pointer and stopped there.
    put_pointer(&two.ctx, "/kiln/ubuntu-base/prod", second.as_str()).await;
    prod_pointer(&two.ctx, Some(second.as_str())).await;
    assert_eq!(
        prod_pointer(&two.away, Some(first_copy.as_str()))
            .await
            .as_deref(),
        Some(first_copy.as_str()),
        "{AWAY} still names the old copy"
    );

    let doctor = kiln_testkit::kiln()
        .args(["doctor", "ubuntu-base"])
        .envs(two.emulator.env())
        .env("KILN_RECIPE_ROOT", two.copy.root.path())
        .assert()
        .success();

    let said = String::from_utf8_lossy(&doctor.get_output().stdout).into_owned();
    assert!(
        said.contains(AWAY) && said.contains(second_copy.as_str()),
        "{said}"
    );
    assert_eq!(
        prod_pointer(&two.away, Some(second_copy.as_str()))
            .await
            .as_deref(),
        Some(second_copy.as_str()),
        "rolled forward to the home pointer"
    );
    assert_eq!(
        channel_tag(&two.away, second_copy.as_str())
            .await
            .as_deref(),
        Some("prod")
    );
    assert_eq!(channel_tag(&two.away, first_copy.as_str()).await, None);
}

#[tokio::test]
async fn the_audit_of_a_distribution_region_counts_instances_on_its_copy_as_current() {
    let two = two_regions().await;
    let (_, old_copy) = distributed_image(&two.ctx, &two.copy.load(), "b0", AWAY).await;
    let (image, copied) = distributed_image(&two.ctx, &two.copy.load(), "b1", AWAY).await;
    on_prod(&two, &image, &copied).await;
    for on in [&copied, &copied, &old_copy] {
        kiln_testkit::launch(&two.away, on.as_str()).await;
    }

    let output = kiln_testkit::kiln()
        .envs(two.emulator.env())
        .args(["audit", "--region", AWAY, "--output", "json"])
        .output()
        .expect("run kiln");

    assert!(output.status.success(), "{output:?}");
    let report: kiln::fleet::report::Report =
        serde_json::from_slice(&output.stdout).expect("one JSON report");
    assert_eq!(report.summary.instances, 3, "{report:#?}");
    assert_eq!(
        report.summary.current, 2,
        "on {AWAY}'s copy of prod's image"
    );
    assert_eq!(report.summary.behind, 1, "on the copy of an older image");
}

/// Whether `image` still exists in `ctx`'s region.
async fn exists(ctx: &Context, image: &str) -> bool {
    kiln_testkit::own_images(ctx)
        .await
        .iter()
        .any(|i| i.image_id() == Some(image))
}

#[tokio::test]
async fn prune_removes_an_old_image_with_its_copies_and_keeps_what_any_region_holds() {
    let two = two_regions().await;
    let recipe_file = two.copy.load();
    let (old, old_copy) = distributed_image(&two.ctx, &recipe_file, "b0", AWAY).await;
    // EC2 dates images to the second: the others are newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (used, used_copy) = distributed_image(&two.ctx, &recipe_file, "b1", AWAY).await;
    let (lagging, lagging_copy) = distributed_image(&two.ctx, &recipe_file, "b2", AWAY).await;
    let (prod, prod_copy) = distributed_image(&two.ctx, &recipe_file, "b3", AWAY).await;
    on_prod(&two, &prod, &prod_copy).await;
    // Held only in the distribution region: an instance there runs the copy
    // of `used`; a pointer there still names the copy of `lagging`, as a
    // move that stopped after the home write leaves it.
    kiln_testkit::launch(&two.away, used_copy.as_str()).await;
    put_pointer(
        &two.away,
        "/kiln/ubuntu-base/staging",
        lagging_copy.as_str(),
    )
    .await;
    pointer_showing(&two.away, "staging", Some(lagging_copy.as_str())).await;
    let old_snapshots: Vec<String> = kiln_testkit::own_images(&two.away)
        .await
        .iter()
        .filter(|i| i.image_id() == Some(old_copy.as_str()))
        .flat_map(|i| i.block_device_mappings())
        .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_owned))
        .collect();
    assert_eq!(old_snapshots.len(), 1, "the copy's snapshot");

    // As retention's schedule would: deprecated, disabled an hour later,
    // deregistered once the 14 days' grace has passed.
    let now = jiff::Timestamp::now();
    let mut runs = Vec::new();
    for at in [
        now,
        now + jiff::SignedDuration::from_hours(1),
        now + jiff::SignedDuration::from_hours(24 * 15),
    ] {
        runs.push(
            kiln::channels::retention::prune(&two.ctx, &recipe(), 1, false, at)
                .await
                .expect("prune"),
        );
    }
    for (run, step) in runs
        .iter()
        .zip([Step::Deprecate, Step::Disable, Step::Deregister])
    {
        let taken: Vec<(&str, Step, usize)> = run
            .retiring
            .iter()
            .map(|r| (r.image_id.as_str(), r.step, r.copies.len()))
            .collect();
        assert_eq!(taken, [(old.as_str(), step, 1)], "{run:#?}");
    }
    let pruning = &runs[2];
    assert!(!exists(&two.ctx, old.as_str()).await);
    assert!(
        !exists(&two.away, old_copy.as_str()).await,
        "its copy went with it"
    );
    let snapshots = two
        .away
        .ec2()
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .expect("DescribeSnapshots");
    assert!(
        !snapshots
            .snapshots()
            .iter()
            .any(|s| s.snapshot_id() == Some(old_snapshots[0].as_str())),
        "and the copy's snapshot"
    );
    let why = |image: &AmiId| -> String {
        let kept = pruning
            .kept
            .iter()
            .find(|k| &k.image_id == image)
            .expect("kept");
        kept.why
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    assert!(why(&used).contains(&format!("in {AWAY}")), "{}", why(&used));
    assert!(
        why(&lagging).contains(&format!("staging in {AWAY}")),
        "{}",
        why(&lagging)
    );
    assert!(why(&prod).contains("on channel prod"), "{}", why(&prod));
    for copy in [&used_copy, &lagging_copy, &prod_copy] {
        assert!(exists(&two.away, copy.as_str()).await, "{copy} kept");
    }
}

#[tokio::test]
async fn kiln_distribute_brings_a_channel_to_a_region_added_later() {
    let emulator = Emulator::start().await;
    let copy = RecipeCopy::ubuntu_base();
    let ctx = emulator.context(copy.root.path());
    let image = built_image(&ctx, "ubuntu-base", "b1", "tested").await;
    promotion::promote(&ctx, &recipe(), &channel("prod"), &image, WHY, false)
        .await
        .expect("promote before any distribution");
    let (member, _) = emulator.distribute(&copy, AWAY);
    let away = ctx.in_region(AWAY);
    let distribute = || {
        kiln_testkit::kiln()
            .args(["distribute", "ubuntu-base", "--output", "json"])
            .envs(emulator.env())
            .env("KILN_RECIPE_ROOT", copy.root.path())
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };

    let done: serde_json::Value = serde_json::from_slice(&distribute()).expect("JSON");

    let copies = done["copies"].as_array().expect("copies");
    assert_eq!(copies.len(), 1, "{done:#}");
    assert_eq!(copies[0]["source"], image.as_str());
    assert_eq!(copies[0]["started"], true);
    let copied = copies[0]["image_id"].as_str().expect("the copy").to_owned();
    let held = kiln_testkit::own_images(&away).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].image_id(), Some(copied.as_str()));
    assert_eq!(tag(held[0].tags(), "kiln:copy-of"), Some(image.as_str()));
    assert_eq!(
        prod_pointer(&away, Some(copied.as_str())).await.as_deref(),
        Some(copied.as_str()),
        "{AWAY}'s prod names the copy"
    );
    assert_eq!(channel_tag(&away, &copied).await.as_deref(), Some("prod"));
    assert_eq!(done["shared_with"], serde_json::json!([member]));

    let again: serde_json::Value = serde_json::from_slice(&distribute()).expect("JSON");
    assert_eq!(again["copies"][0]["started"], false, "{again:#}");
    assert_eq!(again["copies"][0]["image_id"], copied.as_str());
    assert_eq!(
        kiln_testkit::own_images(&away).await.len(),
        1,
        "no second copy"
    );
}

/// A context acting in the member account ([`Seeded::member_role`]'s), in
/// the build region.
///
/// [`Seeded::member_role`]: kiln_testkit::Seeded
async fn member_context(two: &Two) -> Context {
    Context::new(
        &two.emulator.member_config().await,
        two.ctx.settings.clone(),
    )
}

#[tokio::test]
async fn a_member_account_resolves_the_channel_from_its_own_pointers_in_every_region() {
    let two = two_regions().await;
    let role = two.emulator.point_members(&two.copy);
    let recipe_file = two.copy.load();
    let member = member_context(&two).await;
    let member_away = member.in_region(AWAY);
    let share = |image: AmiId, copy: AmiId| {
        let recipe_file = recipe_file.clone();
        let ctx = two.ctx.clone();
        async move {
            let copies = [RegionCopy {
                region: AWAY.into(),
                image_id: copy,
                state: ImageState::Available,
            }];
            kiln::pipeline::copies::grant(&ctx, &recipe_file, &image, &copies)
                .await
                .expect("share");
        }
    };
    let (first, first_copy) = distributed_image(&two.ctx, &recipe_file, "b1", AWAY).await;
    share(first.clone(), first_copy.clone()).await;

    let moved = promotion::promote(&two.ctx, &recipe(), &channel("prod"), &first, WHY, false)
        .await
        .expect("promote");

    let account = role.split(':').nth(4).expect("account");
    let members: Vec<_> = moved
        .synced
        .regional
        .iter()
        .filter(|m| m.account.as_deref() == Some(account))
        .collect();
    assert_eq!(members.len(), 2, "home and {AWAY}: {moved:#?}");
    assert_eq!(
        prod_pointer(&member, Some(first.as_str())).await.as_deref(),
        Some(first.as_str()),
        "the member's pointer at home names the shared image"
    );
    assert_eq!(
        prod_pointer(&member_away, Some(first_copy.as_str()))
            .await
            .as_deref(),
        Some(first_copy.as_str()),
        "the member's pointer in {AWAY} names the shared copy"
    );
    let record = history(&member_away, &recipe(), &channel("prod"))
        .await
        .expect("history")[0]
        .record
        .clone()
        .expect("a record");
    assert_eq!((record.follows, record.reason.as_str()), (Some(1), "tests"));
    // What a deploy tool of the member account launches: its own pointer.
    member_away
        .ec2()
        .create_launch_template()
        .launch_template_name("service")
        .launch_template_data(
            aws_sdk_ec2::types::RequestLaunchTemplateData::builder()
                .image_id("resolve:ssm:/kiln/ubuntu-base/prod")
                .instance_type(aws_sdk_ec2::types::InstanceType::T3Small)
                .build(),
        )
        .send()
        .await
        .expect("CreateLaunchTemplate");
    let run = member_away
        .ec2()
        .run_instances()
        .launch_template(
            aws_sdk_ec2::types::LaunchTemplateSpecification::builder()
                .launch_template_name("service")
                .build(),
        )
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .expect("RunInstances in the member account");
    assert_eq!(run.instances()[0].image_id(), Some(first_copy.as_str()));

    // An image not shared with the member: home moves, the member's
    // pointers stay and say why, and the next sync moves them once shared.
    let (second, second_copy) = distributed_image(&two.ctx, &recipe_file, "b2", AWAY).await;
    let moved = promotion::promote(&two.ctx, &recipe(), &channel("prod"), &second, WHY, false)
        .await
        .expect("promote");
    let left: Vec<_> = moved
        .synced
        .regional
        .iter()
        .filter(|m| m.account.is_some())
        .collect();
    assert_eq!(left.len(), 2, "{moved:#?}");
    assert!(
        left.iter().all(|m| m.to.is_none()
            && m.problem
                .as_deref()
                .is_some_and(|p| p.contains("not shared"))),
        "{left:#?}"
    );
    assert_eq!(
        prod_pointer(&member_away, Some(first_copy.as_str()))
            .await
            .as_deref(),
        Some(first_copy.as_str())
    );
    share(second.clone(), second_copy.clone()).await;
    promotion::sync(&two.ctx, &recipe()).await.expect("sync");
    assert_eq!(
        prod_pointer(&member, Some(second.as_str()))
            .await
            .as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        prod_pointer(&member_away, Some(second_copy.as_str()))
            .await
            .as_deref(),
        Some(second_copy.as_str())
    );
}

/// A recipe distributing to [`AWAY`] whose prod is released behind
/// [`ALARM`]: `old` on prod (its copy on prod in [`AWAY`]), `new` to
/// release (each with its copy), the alarm in both regions, and a prod group
/// in each (their launch templates: home, away).
struct Released {
    two: Two,
    old: (AmiId, AmiId),
    new: (AmiId, AmiId),
    templates: (String, String),
}

const ALARM: &str = "web-5xx";

async fn a_release_in_two_regions() -> Released {
    let two = two_regions().await;
    two.copy.edit("recipe.toml", |text| {
        format!("{text}\n[[release]]\nchannel = \"prod\"\nalarms = [\"{ALARM}\"]\n")
    });
    let recipe_file = two.copy.load();
    let old = distributed_image(&two.ctx, &recipe_file, "b1", AWAY).await;
    let new = distributed_image(&two.ctx, &recipe_file, "b2", AWAY).await;
    on_prod(&two, &old.0, &old.1).await;
    alarm(&two.ctx, ALARM).await;
    alarm(&two.away, ALARM).await;
    let prod = opted_in("prod", None);
    let home = auto_scaling_group(&two.ctx, "web", old.0.as_str(), &prod).await;
    let away = auto_scaling_group(&two.away, "web-eu", old.1.as_str(), &prod).await;
    Released {
        two,
        old,
        new,
        templates: (home, away),
    }
}

/// The groups of the wave `release` rolls, with their regions.
fn rolling(release: &Release) -> Vec<(String, Option<String>)> {
    match &release.phase {
        Phase::Rollout { refreshes, .. } => refreshes
            .iter()
            .map(|r| (r.group.clone(), r.region.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

#[tokio::test]
async fn a_release_rolls_the_channels_groups_in_every_region_to_that_regions_image() {
    let Released {
        two,
        old,
        new,
        templates: (home, away),
    } = a_release_in_two_regions().await;

    let mut release = Release::new(recipe(), new.0.clone(), 1);
    let mut order = Vec::new();
    for _ in 0..30 {
        release = release_step(&two.ctx, release).await.expect("advance");
        order.push(rolling(&release));
        if release.status != Status::Waiting {
            break;
        }
    }

    assert_eq!(release.status, Status::Done, "{}", release.message);
    order.retain(|groups| !groups.is_empty());
    order.dedup();
    assert_eq!(
        order,
        [
            vec![("web".to_owned(), None)],
            vec![("web-eu".to_owned(), Some(AWAY.to_owned()))]
        ],
        "the build region first, then {AWAY}"
    );
    assert_eq!(
        template_versions(&two.ctx, &home).await,
        [(1, Some(old.0.to_string())), (2, Some(new.0.to_string()))]
    );
    assert_eq!(
        template_versions(&two.away, &away).await,
        [(1, Some(old.1.to_string())), (2, Some(new.1.to_string()))],
        "{AWAY}'s group rolls to {AWAY}'s copy"
    );
    assert_eq!(
        prod_pointer(&two.away, Some(new.1.as_str()))
            .await
            .as_deref(),
        Some(new.1.as_str())
    );
}

#[tokio::test]
async fn an_alarm_in_a_distribution_region_rolls_the_channel_back_everywhere() {
    let Released {
        two,
        old,
        new,
        templates: (home, _),
    } = a_release_in_two_regions().await;
    // A member account whose pointer role cannot be assumed: its pointers
    // cannot follow, and the release says so.
    let member = two
        .emulator
        .seeded
        .member_role
        .split(':')
        .nth(4)
        .expect("account")
        .to_owned();
    two.copy.edit("recipe.toml", |text| {
        text.replace(
            "\n[distribution.kms_keys]",
            &format!(
                "\npointer_roles = [\"arn:aws:iam::{member}:role/kiln-missing\"]\n[distribution.kms_keys]"
            ),
        )
    });
    let mut release = Release::new(recipe(), new.0.clone(), 1);
    for _ in 0..30 {
        release = release_step(&two.ctx, release).await.expect("advance");
        if rolling(&release).iter().any(|(_, r)| r.is_some()) || release.status != Status::Waiting {
            break;
        }
    }
    assert_eq!(
        rolling(&release),
        [("web-eu".to_owned(), Some(AWAY.to_owned()))]
    );

    set_alarm(&two.away, ALARM, StateValue::Alarm).await;
    let release = release_step(&two.ctx, release).await.expect("advance");

    assert_eq!(release.status, Status::RolledBack, "{}", release.message);
    assert!(
        release.message.contains(&format!("{ALARM} in {AWAY}")),
        "{}",
        release.message
    );
    assert!(
        release.message.contains("not followed yet") && release.message.contains("kiln-missing"),
        "the member account's pointers that could not follow: {}",
        release.message
    );
    assert_eq!(
        prod_pointer(&two.ctx, Some(old.0.as_str()))
            .await
            .as_deref(),
        Some(old.0.as_str()),
        "home goes back"
    );
    // One read, no retries: the release ended only once SSM showed every
    // region's pointer following the rollback.
    assert_eq!(
        pointers(&two.away, &recipe()).await.expect("pointers")[&channel("prod")].0,
        old.1.as_str(),
        "{AWAY} follows"
    );
    let regional = history(&two.away, &recipe(), &channel("prod"))
        .await
        .expect("history");
    let record = regional
        .last()
        .and_then(|v| v.record.clone())
        .expect("a record");
    assert_eq!(
        record.action,
        Action::Rollback,
        "{AWAY} records a rollback too"
    );
    assert!(record.reason.contains(ALARM), "{}", record.reason);
    let stopped = release.stopped.expect("why");
    assert_eq!(
        stopped
            .refreshes
            .iter()
            .map(|r| (r.group.as_str(), r.region.as_deref()))
            .collect::<Vec<_>>(),
        [("web-eu", Some(AWAY))],
        "{AWAY}'s refresh, rolled back"
    );
    let eu_refresh = groups::latest(&two.away, "web-eu")
        .await
        .expect("refreshes")
        .expect("web-eu's refresh");
    assert!(
        eu_refresh.status.starts_with("Rollback"),
        "{}",
        eu_refresh.status
    );
    assert_eq!(
        stopped
            .reverted
            .iter()
            .map(|r| r.group.as_str())
            .collect::<Vec<_>>(),
        ["web"],
        "the home group, already on the image, is sent back"
    );
    let back = groups::latest(&two.ctx, "web")
        .await
        .expect("refreshes")
        .expect("web's revert");
    assert_eq!(back.version, "1", "to the version it used before");
    assert_eq!(template_versions(&two.ctx, &home).await.len(), 2);
}

#[tokio::test]
async fn a_regional_pointer_records_each_home_version_it_follows() {
    let two = two_regions().await;
    let (image, copied) = distributed_image(&two.ctx, &two.copy.load(), "b1", AWAY).await;
    on_prod(&two, &image, &copied).await;
    // The home pointer written again with the same image (by hand, or a
    // rollback to it): version 2.
    put_pointer(&two.ctx, "/kiln/ubuntu-base/prod", image.as_str()).await;
    let mut version = 1;
    for _ in 0..20 {
        version = pointers(&two.ctx, &recipe()).await.expect("pointers")[&channel("prod")].1;
        if version == 2 {
            break;
        }
    }
    assert_eq!(version, 2);

    promotion::sync(&two.ctx, &recipe()).await.expect("sync");

    let mut regional = Vec::new();
    for _ in 0..20 {
        regional = history(&two.away, &recipe(), &channel("prod"))
            .await
            .expect("history");
        if regional.len() == 2 {
            break;
        }
    }
    let last = regional.last().expect("a version");
    assert_eq!(last.image_id, copied.as_str());
    assert_eq!(
        last.record.as_ref().and_then(|r| r.follows),
        Some(2),
        "{regional:#?}"
    );
}

async fn image_state(ctx: &Context, image: &AmiId) -> (Option<String>, Option<String>) {
    kiln_testkit::own_images(ctx)
        .await
        .into_iter()
        .find(|i| i.image_id() == Some(image.as_str()))
        .map(|i| {
            (
                i.state().map(|s| s.as_str().to_owned()),
                i.deregistration_protection().map(str::to_owned),
            )
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn copies_are_protected_retired_and_restored_with_their_image_and_shared_again() {
    let two = two_regions().await;
    let recipe_file = two.copy.load();
    let (old, old_copy) = distributed_image(&two.ctx, &recipe_file, "b0", AWAY).await;
    // EC2 dates images to the second: the others are newer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (prod, prod_copy) = distributed_image(&two.ctx, &recipe_file, "b1", AWAY).await;
    let copies = |copy: &AmiId| {
        vec![RegionCopy {
            region: AWAY.into(),
            image_id: copy.clone(),
            state: ImageState::Available,
        }]
    };
    let shared = kiln::pipeline::copies::grant(&two.ctx, &recipe_file, &old, &copies(&old_copy))
        .await
        .expect("share");
    assert_eq!(shared.len(), 1);
    on_prod(&two, &prod, &prod_copy).await;
    assert_eq!(
        image_state(&two.away, &prod_copy).await.1.as_deref(),
        Some("enabled-with-cooldown"),
        "the copy the regional pointer names is protected too"
    );

    let now = jiff::Timestamp::now();
    for at in [now, now + jiff::SignedDuration::from_hours(1)] {
        kiln::channels::retention::prune(&two.ctx, &recipe(), 1, false, at)
            .await
            .expect("prune");
    }
    for (ctx, image) in [(&two.ctx, &old), (&two.away, &old_copy)] {
        assert_eq!(image_state(ctx, image).await.0.as_deref(), Some("disabled"));
        assert!(
            kiln_testkit::launch_permissions(ctx, image.as_str())
                .await
                .is_empty(),
            "AWS drops them"
        );
    }

    let restored = kiln::ops::restore::restore(&two.ctx, &recipe(), &old)
        .await
        .expect("restore");
    assert_eq!(restored.copies.len(), 1);
    for (ctx, image) in [(&two.ctx, &old), (&two.away, &old_copy)] {
        assert_eq!(
            image_state(ctx, image).await.0.as_deref(),
            Some("available")
        );
        assert_eq!(
            kiln_testkit::launch_permissions(ctx, image.as_str()).await,
            shared,
            "shared again"
        );
    }
}
