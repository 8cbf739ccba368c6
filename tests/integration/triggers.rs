//! The triggers against the emulator running the real build state machine:
//! the nightly schedule's input builds, the release check with an unchanged
//! source starts nothing, and a burst of security findings starts one build.

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use kiln::aws::Context;
use kiln::pipeline::state::Reason;
use kiln_testkit::{Emulator, RecipeCopy};
use serde_json::json;

/// Every execution of the pipeline, by name and status.
async fn executions(emulator: &Emulator) -> Vec<(String, ExecutionStatus)> {
    emulator
        .sfn()
        .list_executions()
        .state_machine_arn(emulator.pipeline())
        .send()
        .await
        .expect("list")
        .executions()
        .iter()
        .map(|e| (e.name().to_owned(), e.status().clone()))
        .collect()
}

/// Waits until every execution has ended.
async fn settle(emulator: &Emulator) -> Vec<(String, ExecutionStatus)> {
    for _ in 0..600 {
        let all = executions(emulator).await;
        if all.iter().all(|(_, s)| s != &ExecutionStatus::Running) {
            return all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("executions still running after 120 s");
}

/// An Inspector finding about an instance running `image`, as EventBridge
/// delivers it (the shape of AWS's documented sample).
fn finding(instance: &str, image: &str) -> serde_json::Value {
    json!({
        "version": "0", "id": "66a7a279-5f92-971c-6d3e-c92da0950992",
        "detail-type": "Inspector2 Finding", "source": "aws.inspector2",
        "account": "123456789012", "time": "2026-11-26T02:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance}")],
        "detail": {
            "awsAccountId": "123456789012",
            "description": "A flaw was found in openssl.",
            "severity": "HIGH", "status": "ACTIVE", "type": "PACKAGE_VULNERABILITY",
            "resources": [{
                "id": instance, "type": "AWS_EC2_INSTANCE", "partition": "aws", "region": "us-east-1",
                "details": {"awsEc2Instance": {"imageId": image, "platform": "UBUNTU_24_04"}}
            }]
        }
    })
}

fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

#[tokio::test]
async fn nightly_builds_release_skips_and_a_burst_of_findings_starts_one_build() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx: Context = emulator.context(copy.root.path());

    // The nightly schedule's input to start-build, as infra/template.yaml
    // gives it (the context polls at once, as KILN_WAIT_SECONDS=0 would).
    let nightly = json!({"recipe": "ubuntu-base", "reason": "schedule"});
    let started = kiln::ops::trigger::on_input(&ctx, nightly.clone(), now())
        .await
        .expect("nightly");
    assert_eq!(started.len(), 1);
    let build = started[0].build.clone().expect("a build started");
    assert_eq!(started[0].reason, Reason::Schedule);
    let ended = settle(&emulator).await;
    assert_eq!(ended, [(build.clone(), ExecutionStatus::Succeeded)]);
    let images = kiln_testkit::own_images(&ctx).await;
    assert_eq!(images.len(), 1, "the nightly build made its image");
    let image = images[0].image_id().expect("id").to_owned();

    // The hourly release check with the same source, and the nightly again.
    for input in [
        json!({"recipe": "ubuntu-base", "reason": "release"}),
        nightly,
    ] {
        let checked = kiln::ops::trigger::on_input(&ctx, input, now())
            .await
            .expect("check");
        assert_eq!(checked[0].build, None, "nothing new: nothing started");
        assert_eq!(
            checked[0].up_to_date.as_ref().map(|i| i.to_string()),
            Some(image.clone())
        );
    }
    assert_eq!(executions(&emulator).await.len(), 1, "no execution started");

    // A burst of 20 findings about instances running the image.
    let instance = kiln_testkit::launch(&ctx, &image).await;
    let at = now();
    let mut builds = Vec::new();
    for _ in 0..20 {
        let triggered = kiln::ops::trigger::on_input(&ctx, finding(&instance, &image), at)
            .await
            .expect("finding");
        assert_eq!(triggered.len(), 1);
        assert_eq!(triggered[0].reason, Reason::Security);
        builds.push(triggered[0].build.clone().expect("a build"));
    }
    builds.dedup();
    assert_eq!(builds.len(), 1, "one build for the burst: {builds:?}");
    let all = executions(&emulator).await;
    let security: Vec<_> = all
        .iter()
        .filter(|(name, _)| name.contains("-sec-"))
        .collect();
    assert_eq!(security.len(), 1, "one execution for the burst: {all:?}");
    let all = settle(&emulator).await;
    assert!(
        all.iter()
            .all(|(_, status)| status == &ExecutionStatus::Succeeded),
        "{all:?}"
    );

    // A finding about an instance on a foreign or a deregistered image starts nothing.
    let foreign =
        kiln::ops::trigger::on_input(&ctx, finding(&instance, &emulator.seeded.source_ami), now())
            .await
            .expect("foreign");
    assert!(foreign.is_empty());
    let gone =
        kiln::ops::trigger::on_input(&ctx, finding(&instance, "ami-0123456789abcdef0"), now())
            .await
            .expect("gone");
    assert!(gone.is_empty());
}

#[tokio::test]
async fn a_build_that_failed_is_tried_again_by_the_next_trigger() {
    let copy = RecipeCopy::ubuntu_base();
    let emulator =
        Emulator::start_pipeline(copy.root.path(), &["create-image:start:ImageFailed"]).await;
    let ctx: Context = emulator.context(copy.root.path());
    let nightly = json!({"recipe": "ubuntu-base", "reason": "schedule"});

    let first = kiln::ops::trigger::on_input(&ctx, nightly.clone(), now())
        .await
        .expect("first");
    let first = first[0].build.clone().expect("a build");
    assert_eq!(
        settle(&emulator).await,
        [(first.clone(), ExecutionStatus::Failed)]
    );

    let second = kiln::ops::trigger::on_input(&ctx, nightly, now())
        .await
        .expect("second");
    assert_eq!(
        second[0].build.as_deref(),
        Some(format!("{first}-2").as_str()),
        "the failed attempt does not block the change"
    );
    assert!(!second[0].existing);
}
