//! The triggers against the emulator running the real build state machine:
//! the nightly schedule's input builds, the release check with an unchanged
//! source starts nothing, a burst of security findings starts one build, and
//! an exploited CVE starts its own build, whose release soaks the security
//! hours.

use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, HistoryEventType};
use kiln::aws::Context;
use kiln::pipeline::state::Reason;
use kiln_testkit::{Emulator, RecipeCopy};
use serde_json::{Value, json};

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

/// Inspector's finding event in the shape of AWS's documented sample (Amazon
/// Inspector User Guide, "Amazon EventBridge event schema for Amazon
/// Inspector events": the EC2 package vulnerability finding), about
/// `instance` running `image`: `cve`, its exploit available or not, scored
/// `score`.
fn sample_finding(instance: &str, image: &str, cve: &str, exploit: bool, score: f64) -> Value {
    let yes_no = if exploit { "YES" } else { "NO" };
    json!({
        "version": "0", "id": "66a7a279-5f92-971c-6d3e-c92da0950992",
        "detail-type": "Inspector2 Finding", "source": "aws.inspector2",
        "account": "123456789012", "time": "2026-11-30T02:00:00Z", "region": "us-east-1",
        "resources": [format!("arn:aws:ec2:us-east-1:123456789012:instance/{instance}")],
        "detail": {
            "awsAccountId": "123456789012",
            "description": "A race condition in sshd's signal handler.",
            "exploitAvailable": yes_no,
            "exploitabilityDetails": {"lastKnownExploitAt": "Nov 20, 2026, 1:00:00 AM"},
            "findingArn": "arn:aws:inspector2:us-east-1:123456789012:finding/FINDING_ID",
            "firstObservedAt": "Nov 30, 2026, 2:00:00 AM",
            "fixAvailable": "YES",
            "inspectorScore": score,
            "inspectorScoreDetails": {"adjustedCvss": {"score": score, "scoreSource": "UBUNTU_CVE",
                                                       "scoringVector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H",
                                                       "version": "3.1"}},
            "lastObservedAt": "Nov 30, 2026, 2:00:00 AM",
            "packageVulnerabilityDetails": {
                "cvss": [{"baseScore": score, "scoringVector": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:H/A:H",
                          "source": "UBUNTU_CVE", "version": "3.1"}],
                "referenceUrls": [format!("https://ubuntu.com/security/{cve}")],
                "source": "UBUNTU_CVE", "sourceUrl": format!("https://ubuntu.com/security/{cve}"),
                "vendorSeverity": "high", "vulnerabilityId": cve,
                "vulnerablePackages": [{"arch": "X86_64", "epoch": 1, "fixedInVersion": "1:9.6p1-3ubuntu13.3",
                                        "name": "openssh-server", "packageManager": "OS",
                                        "release": "3ubuntu13", "version": "9.6p1"}]
            },
            "remediation": {"recommendation": {"text": "None Provided"}},
            "resources": [{
                "details": {"awsEc2Instance": {"imageId": image, "platform": "UBUNTU_24_04",
                                               "type": "t3.micro"}},
                "id": instance, "partition": "aws", "region": "us-east-1", "type": "AWS_EC2_INSTANCE"
            }],
            "severity": "HIGH", "status": "ACTIVE", "title": format!("{cve} - openssh-server"),
            "type": "PACKAGE_VULNERABILITY", "updatedAt": "Nov 30, 2026, 2:00:00 AM"
        }
    })
}

/// The release document as the release machine's first `Wait` got it, for
/// the release of the image `build` made.
async fn first_release_wait(emulator: &Emulator, ctx: &Context, build: &str) -> Value {
    let images = kiln_testkit::own_images(ctx).await;
    let image = images
        .iter()
        .find(|i| kiln_testkit::tag(i.tags(), "kiln:build-id") == Some(build))
        .and_then(|i| i.image_id())
        .unwrap_or_else(|| panic!("the image of {build}"))
        .to_owned();
    let machine = emulator
        .seeded
        .release_state_machine_arn
        .as_deref()
        .expect("the release machine");
    let arn = format!(
        "{}:{image}",
        machine.replacen(":stateMachine:", ":execution:", 1)
    );
    for _ in 0..600 {
        let history = emulator
            .sfn()
            .get_execution_history()
            .execution_arn(&arn)
            .send()
            .await;
        let waited = history.ok().and_then(|h| {
            h.events()
                .iter()
                .filter(|e| e.r#type() == &HistoryEventType::WaitStateEntered)
                .find_map(|e| e.state_entered_event_details()?.input().map(str::to_owned))
        });
        if let Some(input) = waited {
            return serde_json::from_str(&input).expect("the release document");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the release of {image} did not wait in 120 s");
}

#[tokio::test]
async fn an_exploited_cve_skips_the_window_once_and_its_release_soaks_the_security_hours() {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        format!(
            "{text}\n[[release]]\nchannel = \"prod\"\nsoak_hours = 48\nsecurity_soak_hours = 2\n\n\
             [security]\nfast_track_cvss = 9.0\n"
        )
    });
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx: Context = emulator.context(copy.root.path());
    let image = kiln_testkit::built_image(&ctx, "ubuntu-base", "b0", "tested").await;
    let instance = kiln_testkit::launch(&ctx, image.as_str()).await;
    let at = now();
    let trigger = |event: Value| {
        let ctx = &ctx;
        async move {
            let triggered = kiln::ops::trigger::on_input(ctx, event, at)
                .await
                .expect("a finding");
            assert_eq!(triggered.len(), 1);
            (
                triggered[0].build.clone().expect("a build"),
                triggered[0].existing,
            )
        }
    };

    // An exploit is available: a build of its own, once per CVE.
    let exploited = sample_finding(&instance, image.as_str(), "CVE-2024-6387", true, 8.1);
    let (fast, existing) = trigger(exploited.clone()).await;
    assert_eq!(
        (fast.as_str(), existing),
        ("ubuntu-base-cve-2024-6387", false)
    );
    assert_eq!(trigger(exploited).await.0, fast, "once per CVE");
    let named = executions(&emulator).await;
    assert_eq!(
        named.iter().filter(|(name, _)| *name == fast).count(),
        1,
        "{named:?}"
    );
    settle(&emulator).await;
    let waiting = first_release_wait(&emulator, &ctx, &fast).await;
    assert_eq!(
        waiting["fast_track"],
        "CVE-2024-6387: an exploit is available"
    );
    assert_eq!(
        waiting["exposure"],
        json!({"cves": ["CVE-2024-6387"], "first_seen": "2026-11-30T02:00:00Z"}),
        "the release will watch the CVE, first seen when the finding says"
    );
    let message = waiting["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(
            "s left, the security fast track's 2 h (CVE-2024-6387: an exploit is available)"
        ),
        "{message}"
    );
    let left: i64 = message
        .split(" (")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("seconds left in {message}"));
    assert!((7_000..=7_200).contains(&left), "2 h, not 48: {left}");
    stop_releases(&emulator).await;

    // No exploit, scored below fast_track_cvss: the window's build, the
    // normal soak.
    let routine = sample_finding(&instance, image.as_str(), "CVE-2024-0002", false, 7.5);
    let (windowed, _) = trigger(routine).await;
    assert!(windowed.contains("-sec-"), "{windowed}");
    settle(&emulator).await;
    let waiting = first_release_wait(&emulator, &ctx, &windowed).await;
    assert_eq!(waiting.get("fast_track"), None);
    assert_eq!(waiting["exposure"]["cves"], json!(["CVE-2024-0002"]));
    let message = waiting["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("s left); gates clear") && message.contains("(172"),
        "{message}"
    );
    stop_releases(&emulator).await;

    // No exploit, but scored at fast_track_cvss: the fast track.
    let severe = sample_finding(&instance, image.as_str(), "CVE-2024-0003", false, 9.0);
    assert_eq!(
        trigger(severe).await,
        ("ubuntu-base-cve-2024-0003".to_owned(), false)
    );
}

/// Stops every running release (rivals would stop each other).
async fn stop_releases(emulator: &Emulator) {
    let arn = emulator
        .seeded
        .release_state_machine_arn
        .clone()
        .expect("the release machine");
    let running = emulator
        .sfn()
        .list_executions()
        .state_machine_arn(arn)
        .status_filter(ExecutionStatus::Running)
        .send()
        .await
        .expect("ListExecutions");
    for execution in running.executions() {
        emulator
            .sfn()
            .stop_execution()
            .execution_arn(execution.execution_arn())
            .send()
            .await
            .expect("StopExecution");
    }
}
