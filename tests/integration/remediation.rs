//! Proof of remediation (`kiln::security::remediation`): a security
//! release watches its CVEs leave the fleet. With Inspector's
//! `ListFindings` mocked (aws-smithy-mocks) in its documented shape, check
//! by check; and through the release state machine against the emulator,
//! whose Inspector serves queued snapshots of findings
//! (patches/inspector_findings.py), up to the events and the metric.

use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataOutput;
use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_inspector2::operation::list_findings::{ListFindingsInput, ListFindingsOutput};
use aws_sdk_inspector2::types::{
    AwsEc2InstanceDetails, Finding, FindingStatus, FindingType, PackageVulnerabilityDetails,
    Resource, ResourceDetails, ResourceType, Severity,
};
use aws_sdk_sfn::types::ExecutionStatus;
use aws_smithy_mocks::{Rule, mock};
use aws_smithy_types::DateTime;
use jiff::{SignedDuration, Timestamp};
use kiln::aws::Context;
use kiln::security::remediation::{self, Exposure, Remediation, Watch};
use kiln_testkit::{Emulator, Mocks, RECIPE, RecipeCopy, built_image, inspector_finding};
use serde_json::{Value, json};

const CVE: &str = "CVE-2024-6387";
/// The recipe's image in the mocked tests.
const OURS: &str = "ami-0a1b2c3d4e5f60001";
/// An image of no recipe of kiln's.
const FOREIGN: &str = "ami-0ffffffffffffffff";

/// When Inspector first saw the CVE, in these tests.
fn t0() -> Timestamp {
    "2026-11-28T00:00:00Z".parse().expect("a time")
}

fn hours(h: i64) -> Timestamp {
    t0() + SignedDuration::from_hours(h)
}

fn secs(at: Timestamp) -> DateTime {
    DateTime::from_secs(at.as_second())
}

/// A finding of `CVE` on `instance` running `image`, in `ListFindings`'
/// shape: first seen at `first`, last updated at `updated`.
fn finding(
    instance: &str,
    image: &str,
    status: FindingStatus,
    first: Timestamp,
    updated: Timestamp,
) -> Finding {
    let details = ResourceDetails::builder()
        .aws_ec2_instance(AwsEc2InstanceDetails::builder().image_id(image).build())
        .build();
    Finding::builder()
        .finding_arn(format!(
            "arn:aws:inspector2:us-east-1:123456789012:finding/{instance}"
        ))
        .aws_account_id("123456789012")
        .r#type(FindingType::PackageVulnerability)
        .description("a race condition in sshd's signal handler")
        .severity(Severity::High)
        .status(status)
        .first_observed_at(secs(first))
        .last_observed_at(secs(updated))
        .updated_at(secs(updated))
        .resources(
            Resource::builder()
                .r#type(ResourceType::AwsEc2Instance)
                .id(instance)
                .region("us-east-1")
                .details(details)
                .build()
                .expect("a resource"),
        )
        .package_vulnerability_details(
            PackageVulnerabilityDetails::builder()
                .vulnerability_id(CVE)
                .source("UBUNTU_CVE")
                .build()
                .expect("details"),
        )
        .build()
        .expect("a finding")
}

/// Whether `input` asks what the watch must ask: the CVE's findings on EC2
/// instances, ACTIVE and CLOSED.
fn asks_for_the_cve(input: &ListFindingsInput) -> bool {
    let Some(criteria) = input.filter_criteria() else {
        return false;
    };
    let values = |filters: &[aws_sdk_inspector2::types::StringFilter]| -> Vec<String> {
        filters.iter().map(|f| f.value().to_owned()).collect()
    };
    values(criteria.vulnerability_id()) == [CVE]
        && values(criteria.finding_status()) == ["ACTIVE", "CLOSED"]
        && values(criteria.resource_type()) == ["AWS_EC2_INSTANCE"]
}

fn page(findings: Vec<Finding>, next: Option<&str>) -> ListFindingsOutput {
    ListFindingsOutput::builder()
        .set_findings(Some(findings))
        .set_next_token(next.map(str::to_owned))
        .build()
}

/// A context of `copy`'s recipe whose EC2 answers `images`, Inspector
/// `findings` and CloudWatch `put`.
fn answering(copy: &RecipeCopy, images: &Rule, findings: &Rule, put: &Rule) -> Context {
    kiln_testkit::mocked_with(
        copy.root.path(),
        &Mocks {
            ec2: &[images],
            inspector2: &[findings],
            cloudwatch: &[put],
            ..Mocks::default()
        },
    )
}

fn recipe_with_deadline(hours: u32) -> RecipeCopy {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        format!("{text}\n[security]\nremediation_deadline_hours = {hours}\n")
    });
    copy
}

/// A watch of `CVE` after a release of the recipe in `copy`, started at
/// `start`; the trigger saw the CVE first at `seen`.
fn watch(copy: &RecipeCopy, seen: Timestamp, start: Timestamp) -> Remediation {
    let exposure = Exposure {
        cves: vec![CVE.into()],
        first_seen: Some(seen),
    };
    let image = "ami-0a1b2c3d4e5f60002".parse().expect("ami");
    Remediation::new(
        &copy.load(),
        image,
        &exposure,
        vec!["us-east-1".into()],
        60,
        start,
    )
}

#[tokio::test]
async fn findings_going_from_active_to_closed_complete_the_watch_with_the_hours_and_the_metric() {
    let copy = recipe_with_deadline(48);
    let ours = mock!(aws_sdk_ec2::Client::describe_images)
        .match_requests(|input| {
            input
                .filters()
                .iter()
                .any(|f| f.name() == Some("tag:kiln:recipe") && f.values() == [RECIPE.to_owned()])
        })
        .then_output(|| {
            DescribeImagesOutput::builder()
                .images(aws_sdk_ec2::types::Image::builder().image_id(OURS).build())
                .build()
        });
    let findings = mock!(aws_sdk_inspector2::Client::list_findings)
        .match_requests(asks_for_the_cve)
        .sequence()
        // The first check: still ACTIVE on one of ours; a foreign image's
        // finding, seen earlier, counts for nothing, nor does one of ours
        // closed before the trigger saw the CVE (an earlier exposure).
        .output(move || {
            page(
                vec![
                    finding("i-1", OURS, FindingStatus::Active, t0(), hours(19)),
                    finding(
                        "i-9",
                        FOREIGN,
                        FindingStatus::Active,
                        hours(-100),
                        hours(19),
                    ),
                    finding("i-7", OURS, FindingStatus::Closed, hours(-500), hours(-400)),
                ],
                None,
            )
        })
        // The second: one closed, one still ACTIVE.
        .output(move || {
            page(
                vec![
                    finding("i-1", OURS, FindingStatus::Active, t0(), hours(24)),
                    finding("i-2", OURS, FindingStatus::Closed, hours(2), hours(24)),
                ],
                None,
            )
        })
        // The third, in two pages: every finding of ours closed.
        .output(move || {
            page(
                vec![finding("i-1", OURS, FindingStatus::Closed, t0(), hours(30))],
                Some("page-2"),
            )
        })
        .output(move || {
            page(
                vec![
                    finding("i-2", OURS, FindingStatus::Closed, hours(2), hours(24)),
                    finding(
                        "i-9",
                        FOREIGN,
                        FindingStatus::Active,
                        hours(-100),
                        hours(31),
                    ),
                ],
                None,
            )
        })
        .build();
    let put = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .match_requests(|input| {
            let datum = &input.metric_data()[0];
            input.namespace() == Some("Kiln/Security")
                && datum.metric_name() == Some("RemediationHours")
                && datum.value() == Some(30.0)
                && datum.dimensions()[0].value() == Some(RECIPE)
        })
        .then_output(|| PutMetricDataOutput::builder().build());
    let ctx = answering(&copy, &ours, &findings, &put);
    let started = hours(18);
    let first = watch(&copy, hours(1), started);
    assert_eq!(
        first.deadline,
        hours(49),
        "48 h after the trigger's first sight"
    );

    let first = remediation::check(&ctx, first, hours(20))
        .await
        .expect("a check");
    assert_eq!(
        (first.status, first.exposed, first.wait_seconds),
        (Watch::Watching, 1, 48 * 3600 / 500),
        "a 48 h deadline spread over at most 500 checks, more than the 60 s interval"
    );
    assert_eq!(first.first_seen, Some(t0()), "the earliest finding of ours");
    assert_eq!(first.deadline, hours(48));
    assert_eq!(first.instances[0].instance, "i-1");
    assert_eq!(put.num_calls(), 0);

    let second = remediation::check(&ctx, first, hours(25))
        .await
        .expect("a check");
    assert_eq!((second.status, second.exposed), (Watch::Watching, 1));

    let done = remediation::check(&ctx, second, hours(31))
        .await
        .expect("a check");
    assert_eq!(done.status, Watch::Complete, "{}", done.message);
    assert_eq!(done.closed_at, Some(hours(30)), "the last finding closed");
    assert_eq!(done.hours, Some(30.0));
    assert_eq!((done.exposed, done.checks, done.wait_seconds), (0, 3, 0));
    assert_eq!(findings.num_calls(), 4);
    assert_eq!(put.num_calls(), 1, "RemediationHours put once");
}

#[tokio::test]
async fn findings_still_active_after_the_deadline_make_the_watch_overdue_naming_the_instances() {
    let copy = recipe_with_deadline(48);
    let ours = mock!(aws_sdk_ec2::Client::describe_images).then_output(|| {
        DescribeImagesOutput::builder()
            .images(aws_sdk_ec2::types::Image::builder().image_id(OURS).build())
            .build()
    });
    let still = || {
        page(
            vec![
                finding("i-3", OURS, FindingStatus::Active, t0(), hours(40)),
                finding("i-1", OURS, FindingStatus::Active, t0(), hours(40)),
                finding("i-2", OURS, FindingStatus::Closed, t0(), hours(30)),
            ],
            None,
        )
    };
    let findings = mock!(aws_sdk_inspector2::Client::list_findings)
        .match_requests(asks_for_the_cve)
        .sequence()
        .output(still)
        .output(still)
        .build();
    let put = mock!(aws_sdk_cloudwatch::Client::put_metric_data)
        .then_output(|| PutMetricDataOutput::builder().build());
    let ctx = answering(&copy, &ours, &findings, &put);
    let just_before = hours(48) - SignedDuration::from_secs(100);
    let before = remediation::check(&ctx, watch(&copy, t0(), hours(40)), just_before)
        .await
        .expect("a check");
    assert_eq!(before.status, Watch::Watching, "{}", before.message);
    assert_eq!(
        before.wait_seconds, 101,
        "the next check comes at the deadline"
    );

    let after = remediation::check(&ctx, before, hours(49))
        .await
        .expect("a check");
    assert_eq!(after.status, Watch::Overdue, "{}", after.message);
    assert_eq!(after.deadline, hours(48));
    assert_eq!(after.exposed, 2);
    let named: Vec<(&str, &str)> = after
        .instances
        .iter()
        .map(|e| (e.instance.as_str(), e.cve.as_str()))
        .collect();
    assert_eq!(named, [("i-1", CVE), ("i-3", CVE)]);
    assert_eq!((after.closed_at, after.hours), (None, None));
    assert_eq!(
        put.num_calls(),
        0,
        "no RemediationHours for an open exposure"
    );
    let again = remediation::check(&ctx, after, hours(50)).await;
    assert_eq!(
        again.expect_err("an ended watch").name(),
        "InvalidInput",
        "an ended watch is not checked again"
    );
}

/// Runs the release of `image` with `exposure` on the emulator's release
/// machine, to its end: its status.
async fn release(emulator: &Emulator, image: &str, exposure: Value) -> ExecutionStatus {
    let machine = emulator
        .seeded
        .release_state_machine_arn
        .as_deref()
        .expect("the release machine");
    let input =
        json!({"recipe": RECIPE, "image_id": image, "check_seconds": 1, "exposure": exposure});
    emulator
        .run_execution(machine, image, &input)
        .await
        .status()
        .clone()
}

/// The one event of `detail_type` among `events`.
fn the_event<'a>(events: &'a [Value], detail_type: &str) -> &'a Value {
    let matching: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == detail_type)
        .collect();
    assert_eq!(matching.len(), 1, "one {detail_type}: {events:#?}");
    &matching[0]["detail"]
}

#[tokio::test]
async fn a_security_release_ends_with_the_proof_its_cve_left_the_fleet_or_names_who_is_late() {
    let copy = recipe_with_deadline(1);
    copy.edit("recipe.toml", |text| {
        format!("{text}\n[[release]]\nchannel = \"prod\"\n")
    });
    let emulator = Emulator::start_pipeline(copy.root.path(), &[]).await;
    let ctx = emulator.context(copy.root.path());
    let events = emulator.capture_events().await;
    let old = built_image(&ctx, RECIPE, "b0", "tested").await;
    let fixed = built_image(&ctx, RECIPE, "b1", "tested").await;
    let now = Timestamp::now();
    let ago = |m: i64| now - SignedDuration::from_mins(m);
    let (old, fixed) = (old.as_str(), fixed.as_str());
    emulator.queue_findings(&[
        json!([
            inspector_finding(CVE, "i-1", old, "ACTIVE", ago(40), ago(1)),
            inspector_finding(CVE, "i-2", old, "ACTIVE", ago(39), ago(1)),
            inspector_finding(CVE, "i-9", FOREIGN, "ACTIVE", ago(400), ago(1)),
        ]),
        json!([
            inspector_finding(CVE, "i-1", old, "ACTIVE", ago(40), ago(1)),
            inspector_finding(CVE, "i-2", old, "CLOSED", ago(39), ago(12)),
        ]),
        json!([
            inspector_finding(CVE, "i-1", old, "CLOSED", ago(40), ago(10)),
            inspector_finding(CVE, "i-2", old, "CLOSED", ago(39), ago(12)),
            inspector_finding(CVE, "i-9", FOREIGN, "ACTIVE", ago(400), ago(1)),
        ]),
    ]);
    let exposure = json!({"cves": [CVE], "first_seen": ago(38).to_string()});

    assert_eq!(
        release(&emulator, fixed, exposure.clone()).await,
        ExecutionStatus::Succeeded
    );
    let received = events.received().await;
    the_event(&received, "Image Rollout Succeeded");
    let complete = the_event(&received, "Security Remediation Complete");
    assert_eq!(complete["recipe"], RECIPE);
    assert_eq!(complete["image_id"], fixed);
    assert_eq!(complete["cves"], json!([CVE]));
    let at =
        |field: &str| -> Timestamp { complete[field].as_str().expect(field).parse().expect(field) };
    assert_eq!(at("first_seen").as_second(), ago(40).as_second());
    assert_eq!(at("closed_at").as_second(), ago(10).as_second());
    assert_eq!(complete["hours"], json!(0.5), "40 min ago to 10 min ago");
    assert_eq!(complete["checks"], json!(3));
    let metric = ctx
        .cloudwatch()
        .get_metric_statistics()
        .namespace("Kiln/Security")
        .metric_name("RemediationHours")
        .dimensions(
            aws_sdk_cloudwatch::types::Dimension::builder()
                .name("Recipe")
                .value(RECIPE)
                .build(),
        )
        .start_time(secs(now - SignedDuration::from_hours(1)))
        .end_time(secs(now + SignedDuration::from_hours(1)))
        .period(60)
        .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum)
        .send()
        .await
        .expect("GetMetricStatistics");
    let values: Vec<f64> = metric
        .datapoints()
        .iter()
        .filter_map(|d| d.maximum())
        .collect();
    assert_eq!(values, [0.5], "RemediationHours put once");

    // Another fix, whose CVE stays ACTIVE on an instance past the deadline.
    let late = built_image(&ctx, RECIPE, "b2", "tested").await;
    emulator.queue_findings(&[json!([
        inspector_finding(CVE, "i-1", old, "CLOSED", ago(40), ago(10)),
        inspector_finding(CVE, "i-4", fixed, "ACTIVE", ago(90), ago(1)),
    ])]);
    assert_eq!(
        release(&emulator, late.as_str(), exposure).await,
        ExecutionStatus::Succeeded,
        "the release itself succeeded"
    );
    let received = events.received().await;
    let overdue = the_event(&received, "Security Remediation Overdue");
    assert_eq!(overdue["image_id"], late.as_str());
    assert_eq!(overdue["exposed"], json!(1));
    assert_eq!(
        overdue["instances"],
        json!([{"account": "123456789012", "region": "us-east-1", "instance": "i-4",
                "image_id": fixed, "cve": CVE}])
    );
    let deadline: Timestamp = overdue["deadline"]
        .as_str()
        .expect("deadline")
        .parse()
        .expect("a time");
    assert_eq!(
        deadline.as_second(),
        (ago(90) + SignedDuration::from_hours(1)).as_second()
    );
}
