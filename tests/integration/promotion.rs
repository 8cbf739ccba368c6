//! Promote, roll back, demote against the emulator, asserting on the pointer
//! parameter and the image tags afterwards.

use std::collections::BTreeMap;

use kiln::aws::Context;
use kiln::channels::pointers::{self, Action, Why};
use kiln::channels::promotion;
use kiln::ids::{AmiId, Channel};
use kiln_testkit::{Emulator, RECIPE, built_image, channel, recipe, tag};

fn why(reason: &str) -> Why<'_> {
    Why {
        reason,
        actor: "test",
    }
}

/// What deploy tools see: the pointer's value, as `resolve:ssm:` would give it.
async fn pointer(ctx: &Context, channel: &str) -> Option<String> {
    ctx.ssm()
        .get_parameter()
        .name(format!("/kiln/{RECIPE}/{channel}"))
        .send()
        .await
        .ok()
        .and_then(|o| o.parameter().and_then(|p| p.value().map(str::to_owned)))
}

/// Every own image's (kiln:channel, kiln:previous) tags.
async fn channel_tags(ctx: &Context) -> BTreeMap<String, (Option<String>, Option<String>)> {
    kiln_testkit::own_images(ctx)
        .await
        .iter()
        .map(|i| {
            (
                i.image_id().unwrap_or_default().to_owned(),
                (
                    tag(i.tags(), "kiln:channel").map(str::to_owned),
                    tag(i.tags(), "kiln:previous").map(str::to_owned),
                ),
            )
        })
        .collect()
}

fn on(channels: Option<&str>) -> (Option<String>, Option<String>) {
    (channels.map(str::to_owned), None)
}

#[tokio::test]
async fn promote_promote_rollback_moves_the_pointer_and_the_tags_follow() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let a = built_image(&ctx, RECIPE, "build-a", "tested").await;

    let moved = promotion::promote(
        &ctx,
        &recipe(),
        &channel("prod"),
        &a,
        why("first golden image"),
        false,
    )
    .await
    .expect("promote A");
    assert!(moved.changed);
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(a.as_str()));
    assert_eq!(channel_tags(&ctx).await[a.as_str()], on(Some("prod")));

    let b = built_image(&ctx, RECIPE, "build-b", "tested").await;
    promotion::promote(
        &ctx,
        &recipe(),
        &channel("prod"),
        &b,
        why("November patches"),
        false,
    )
    .await
    .expect("promote B");
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(b.as_str()));
    let tags = channel_tags(&ctx).await;
    assert_eq!(tags[b.as_str()], on(Some("prod")));
    assert_eq!(
        tags[a.as_str()],
        (None, Some("prod".into())),
        "A is what prod would roll back to"
    );

    let back = promotion::rollback(&ctx, &recipe(), &channel("prod"), why("B breaks the agent"))
        .await
        .expect("rollback");
    assert_eq!((back.from.as_ref(), back.to.as_ref()), (Some(&b), Some(&a)));
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(a.as_str()));
    let tags = channel_tags(&ctx).await;
    assert_eq!(tags[a.as_str()], on(Some("prod")));
    assert_eq!(tags[b.as_str()], (None, None), "B carries no channel tag");

    let history = pointers::history(&ctx, &recipe(), &channel("prod"))
        .await
        .expect("history");
    let moves: Vec<_> = history
        .iter()
        .map(|v| {
            let record = v.record.as_ref().expect("kiln wrote each version");
            (v.image_id.as_str(), record.action, record.reason.as_str())
        })
        .collect();
    assert_eq!(
        moves,
        [
            (a.as_str(), Action::Promote, "first golden image"),
            (b.as_str(), Action::Promote, "November patches"),
            (a.as_str(), Action::Rollback, "B breaks the agent"),
        ]
    );

    let err = promotion::rollback(&ctx, &recipe(), &channel("prod"), why("again"))
        .await
        .expect_err("A was the first image");
    assert_eq!(err.name(), "NothingToRollBack", "{err}");
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(a.as_str()));
}

#[tokio::test]
async fn every_refusal_leaves_the_pointer_and_the_tags_as_they_were() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let current = built_image(&ctx, RECIPE, "build-current", "tested").await;
    promotion::promote(
        &ctx,
        &recipe(),
        &channel("prod"),
        &current,
        why("baseline"),
        false,
    )
    .await
    .expect("promote");
    let untested = built_image(&ctx, RECIPE, "build-candidate", "candidate").await;
    let failed = built_image(&ctx, RECIPE, "build-failed", "failed").await;
    let foreign = built_image(&ctx, "other-recipe", "build-other", "tested").await;
    let gone = built_image(&ctx, RECIPE, "build-gone", "tested").await;
    ctx.ec2()
        .deregister_image()
        .image_id(gone.as_str())
        .send()
        .await
        .expect("deregister");
    let west = emulator.context_in("us-west-2", &kiln_testkit::recipe_root());
    let elsewhere = built_image(&west, RECIPE, "build-west", "tested").await;
    let canonical: AmiId = "ami-0a1b2c3d4e5f60001".parse().expect("seeded");

    let before = (pointer(&ctx, "prod").await, channel_tags(&ctx).await);
    let cases: [(&AmiId, &str, &str); 6] = [
        (&untested, "PromotionRefused", "candidate, not tested"),
        (&failed, "PromotionRefused", "failed, not tested"),
        (&foreign, "PromotionRefused", "built by recipe other-recipe"),
        (
            &gone,
            "PromotionRefused",
            "deregistered, or lives in another region",
        ),
        (&elsewhere, "PromotionRefused", "no such image in us-east-1"),
        (&canonical, "PromotionRefused", "not built by kiln"),
    ];
    for (image, name, message) in cases {
        let err = promotion::promote(&ctx, &recipe(), &channel("prod"), image, why("try"), false)
            .await
            .expect_err("refused");
        assert_eq!(err.name(), name, "{image}: {err}");
        assert!(err.to_string().contains(message), "{image}: {err}");
        assert!(err.to_string().contains("nothing changed"), "{err}");
    }
    let err = promotion::promote(&ctx, &recipe(), &channel("prod"), &untested, why(" "), true)
        .await
        .expect_err("no reason");
    assert_eq!(err.name(), "InvalidInput", "{err}");
    let err = promotion::rollback(&ctx, &recipe(), &channel("prod"), why("nothing before"))
        .await
        .expect_err("one version only");
    assert_eq!(err.name(), "NothingToRollBack", "{err}");
    let err = promotion::rollback(&ctx, &recipe(), &"staging".parse().expect("c"), why("x"))
        .await
        .expect_err("no such channel");
    assert_eq!(err.name(), "NothingToRollBack", "{err}");
    assert!(err.to_string().contains("no pointer"), "{err}");
    let same = promotion::promote(
        &ctx,
        &recipe(),
        &channel("prod"),
        &current,
        why("again"),
        false,
    )
    .await
    .expect("a no-op");
    assert!(!same.changed);
    assert!(same.message.contains("already on prod"), "{}", same.message);

    let after = (pointer(&ctx, "prod").await, channel_tags(&ctx).await);
    assert_eq!(before, after, "nothing changed");
    let versions = pointers::history(&ctx, &recipe(), &channel("prod"))
        .await
        .expect("history");
    assert_eq!(versions.len(), 1, "no version was written");

    let forced = promotion::promote(
        &ctx,
        &recipe(),
        &channel("prod"),
        &untested,
        why("hotfix, tested by hand"),
        true,
    )
    .await
    .expect("forced");
    assert!(forced.changed);
    let versions = pointers::history(&ctx, &recipe(), &channel("prod"))
        .await
        .expect("history");
    assert!(
        versions
            .last()
            .and_then(|v| v.record.as_ref())
            .is_some_and(|r| r.forced),
        "the history says it was forced"
    );
}

/// Two promotions at once, each on its own thread (separate callers: two
/// people, or a person and a release): whatever order their pointer writes,
/// SSM's validations and their tag syncs interleave in, the tags end agreeing
/// with the pointer, since each sync reads the pointers again after writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_promotions_end_with_the_tags_agreeing_with_the_pointer() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let a = built_image(&ctx, RECIPE, "build-a", "tested").await;
    let b = built_image(&ctx, RECIPE, "build-b", "tested").await;
    let c = built_image(&ctx, RECIPE, "build-c", "tested").await;

    let race = |image: AmiId, reason: &'static str| {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            promotion::promote(
                &ctx,
                &recipe(),
                &channel("prod"),
                &image,
                why(reason),
                false,
            )
            .await
        })
    };
    for round in 0..5 {
        let (x, y) = if round % 2 == 0 { (&a, &b) } else { (&b, &c) };
        let (first, second) = (race(x.clone(), "race x"), race(y.clone(), "race y"));
        first.await.expect("join x").expect("x");
        second.await.expect("join y").expect("y");

        let pointer = pointer(&ctx, "prod").await.expect("a pointer");
        let on_prod: Vec<String> = channel_tags(&ctx)
            .await
            .into_iter()
            .filter(|(_, (channels, _))| channels.as_deref() == Some("prod"))
            .map(|(image, _)| image)
            .collect();
        assert_eq!(on_prod, [pointer], "round {round}");
    }
}

/// Two tested images: `a`, promoted to prod, and `b`.
async fn a_on_prod_and_b(ctx: &Context) -> (AmiId, AmiId) {
    let a = built_image(ctx, RECIPE, "build-a", "tested").await;
    let b = built_image(ctx, RECIPE, "build-b", "tested").await;
    promotion::promote(ctx, &recipe(), &channel("prod"), &a, why("first"), false)
        .await
        .expect("promote a");
    (a, b)
}

#[tokio::test]
async fn a_crash_between_pointer_and_tags_is_repaired_by_the_next_operation() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let (a, b) = a_on_prod_and_b(&ctx).await;
    // The pointer moved, then the process died before the tags.
    kiln_testkit::put_pointer(&ctx, &format!("/kiln/{RECIPE}/prod"), b.as_str()).await;
    assert_eq!(channel_tags(&ctx).await[a.as_str()], on(Some("prod")));

    let repaired = promotion::sync(&ctx, &recipe()).await.expect("doctor").tags;
    assert_eq!(repaired.len(), 3, "{repaired:#?}");
    let tags = channel_tags(&ctx).await;
    assert_eq!(tags[b.as_str()], on(Some("prod")));
    assert_eq!(tags[a.as_str()], (None, Some("prod".into())));
    assert!(
        promotion::sync(&ctx, &recipe())
            .await
            .expect("again")
            .tags
            .is_empty(),
        "a second doctor finds nothing"
    );
}

#[tokio::test]
async fn channels_are_independent_and_demote_removes_one() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let a = built_image(&ctx, RECIPE, "build-a", "tested").await;
    let staging: Channel = "staging".parse().expect("channel");
    promotion::promote(&ctx, &recipe(), &staging, &a, why("soak"), false)
        .await
        .expect("staging");
    promotion::promote(&ctx, &recipe(), &channel("prod"), &a, why("soaked"), false)
        .await
        .expect("prod");
    assert_eq!(
        channel_tags(&ctx).await[a.as_str()],
        on(Some("prod staging"))
    );

    let demoted = promotion::demote(&ctx, &recipe(), &staging, why("staging retired"))
        .await
        .expect("demote");
    assert!(demoted.changed);
    assert!(demoted.message.contains("fail"), "{}", demoted.message);
    assert_eq!(pointer(&ctx, "staging").await, None);
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(a.as_str()));
    assert_eq!(channel_tags(&ctx).await[a.as_str()], on(Some("prod")));

    let again = promotion::demote(&ctx, &recipe(), &staging, why("twice"))
        .await
        .expect("a no-op");
    assert!(!again.changed, "{}", again.message);
}

#[tokio::test]
async fn a_failed_builds_cleanup_spares_an_image_the_pointer_names_whatever_its_tags_say() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let image = built_image(&ctx, RECIPE, "build-hotfix", "candidate").await;
    promotion::promote(
        &ctx,
        &recipe(),
        &channel("prod"),
        &image,
        why("hotfix"),
        true,
    )
    .await
    .expect("forced");
    // The tags have not caught up (an interrupted or not yet visible move).
    ctx.ec2()
        .delete_tags()
        .resources(image.as_str())
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("kiln:channel")
                .build(),
        )
        .send()
        .await
        .expect("untag");

    let build_id = "build-hotfix".parse().expect("id");
    let cleaned = kiln::pipeline::cleanup::cleanup(
        &ctx,
        &build_id,
        &kiln::pipeline::cleanup::Policy::failed_build(None),
    )
    .await
    .expect("cleanup");

    assert!(cleaned.deregistered.is_empty(), "{cleaned:?}");
    assert!(
        kiln_testkit::own_images(&ctx)
            .await
            .iter()
            .any(|i| i.image_id() == Some(image.as_str())),
        "the image prod names is still there"
    );
}

/// The promote Lambda's answer to `request`.
async fn lambda(
    ctx: &Context,
    request: serde_json::Value,
) -> kiln::error::Result<serde_json::Value> {
    let answer = kiln::lambda::answer(&kiln::channels::handle, ctx, request).await?;
    Ok(serde_json::to_value(answer).expect("json"))
}

/// The number of versions the pointer of `channel` shows.
async fn versions(ctx: &Context, channel: &str) -> usize {
    pointers::history(ctx, &recipe(), &self::channel(channel))
        .await
        .expect("history")
        .len()
}

#[tokio::test]
async fn a_move_is_written_then_confirmed_and_one_ssm_refuses_changes_no_tag() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let (a, b) = a_on_prod_and_b(&ctx).await;
    let tags_before = channel_tags(&ctx).await;

    let promote_b = serde_json::json!({
        "action": "promote", "recipe": RECIPE, "channel": "prod",
        "image_id": b, "reason": "b is better",
    });
    let written = lambda(&ctx, promote_b.clone()).await.expect("written");
    assert_eq!(written["status"], "written", "{written}");
    assert_eq!(written["version"], 2, "{written}");
    assert_eq!(
        channel_tags(&ctx).await,
        tags_before,
        "no tag moves before SSM has validated the write"
    );
    // The image disappears before SSM validated the pointer: the value
    // never becomes the parameter (PutParameter, DataType aws:ec2:image).
    ctx.ec2()
        .deregister_image()
        .image_id(b.as_str())
        .send()
        .await
        .expect("deregister");
    let refused = lambda(
        &ctx,
        serde_json::json!({"action": "confirm", "written": written}),
    )
    .await
    .expect_err("SSM refuses a deregistered image");
    assert_eq!(refused.name(), "PointerNotValidated", "{refused}");
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(a.as_str()));
    assert_eq!(versions(&ctx, "prod").await, 1, "version 2 never showed");
    assert_eq!(channel_tags(&ctx).await[a.as_str()], on(Some("prod")));

    let c = built_image(&ctx, RECIPE, "build-c", "tested").await;
    let written = lambda(
        &ctx,
        serde_json::json!({
            "action": "promote", "recipe": RECIPE, "channel": "prod",
            "image_id": c, "reason": "c, then",
        }),
    )
    .await
    .expect("written");
    assert_eq!(written["status"], "written", "{written}");
    let mut answer = written;
    for _ in 0..3 {
        if answer["status"] != "written" {
            break;
        }
        answer = lambda(
            &ctx,
            serde_json::json!({"action": "confirm", "written": answer}),
        )
        .await
        .expect("confirm");
    }
    assert_eq!(answer["status"], "moved", "{answer}");
    assert_eq!(answer["to"], c.as_str(), "{answer}");
    let tags = channel_tags(&ctx).await;
    assert_eq!(
        tags[c.as_str()],
        on(Some("prod")),
        "confirmed: the tags follow"
    );
    assert_eq!(tags[a.as_str()], (None, Some("prod".into())));
}

#[tokio::test]
async fn a_write_ssm_never_shows_is_refused_after_the_validation_timeout() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let a = built_image(&ctx, RECIPE, "build-a", "tested").await;
    promotion::promote(&ctx, &recipe(), &channel("prod"), &a, why("first"), false)
        .await
        .expect("promote a");
    let parameter = format!("/kiln/{RECIPE}/prod");
    // A value SSM will not accept, written as version 2.
    kiln_testkit::put_pointer(&ctx, &parameter, "ami-0123456789abcdef0").await;
    let pending = |minutes: i64| pointers::Written {
        recipe: recipe(),
        channel: channel("prod"),
        action: Action::Promote,
        parameter: parameter.clone(),
        image: a.clone(),
        version: 2,
        before: Some((a.clone(), 1)),
        written_at: jiff::Timestamp::now() - jiff::SignedDuration::from_mins(minutes),
    };
    let still = promotion::confirm(&ctx, pending(4)).await.expect("pending");
    assert!(
        matches!(still, promotion::Move::Written(_)),
        "4 minutes in, SSM may still validate: {still:?}"
    );
    let err = promotion::confirm(&ctx, pending(6))
        .await
        .expect_err("6 minutes in, it never will");
    assert_eq!(err.name(), "PointerNotValidated", "{err}");
    assert!(err.to_string().contains("300 s"), "{err}");
    assert_eq!(versions(&ctx, "prod").await, 1);
}

#[tokio::test]
async fn a_retried_move_is_reported_not_made_twice_and_a_moved_pointer_refuses() {
    let emulator = Emulator::start().await;
    let ctx = emulator.context(&kiln_testkit::recipe_root());
    let (_, b) = a_on_prod_and_b(&ctx).await;
    let promote_b = serde_json::json!({
        "action": "promote", "recipe": RECIPE, "channel": "prod", "image_id": b,
        "reason": "release", "actor": "kiln release", "expected_version": 1,
    });
    let written = lambda(&ctx, promote_b.clone()).await.expect("written");
    assert_eq!(written["status"], "written", "{written}");
    // The retry comes while SSM still validates the first attempt's write.
    let pending = lambda(&ctx, promote_b.clone())
        .await
        .expect_err("SSM refuses a second write while it validates");
    assert_eq!(pending.name(), "PointerPending", "{pending}");
    lambda(
        &ctx,
        serde_json::json!({"action": "confirm", "written": written}),
    )
    .await
    .expect("confirm");

    let retried = lambda(&ctx, promote_b.clone()).await.expect("a retry");
    assert_eq!(retried["status"], "moved", "{retried}");
    assert_eq!(retried["version"], 2, "{retried}");
    assert_eq!(retried["to"], b.as_str(), "{retried}");
    assert!(
        retried["message"]
            .as_str()
            .is_some_and(|m| m.contains("earlier attempt")),
        "{retried}"
    );
    assert_eq!(versions(&ctx, "prod").await, 2, "the retry wrote nothing");

    let other = lambda(
        &ctx,
        serde_json::json!({
            "action": "rollback", "recipe": RECIPE, "channel": "prod",
            "reason": "b looks bad", "expected_version": 1,
        }),
    )
    .await
    .expect_err("the pointer moved since version 1");
    assert_eq!(other.name(), "PointerMoved", "{other}");
    assert_eq!(versions(&ctx, "prod").await, 2, "nothing written");
    assert_eq!(pointer(&ctx, "prod").await.as_deref(), Some(b.as_str()));
    assert_eq!(channel_tags(&ctx).await[b.as_str()], on(Some("prod")));
}
