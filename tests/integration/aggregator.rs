//! The audit's AWS Config path: one `SelectAggregateResourceConfig` query
//! (answered by `aws-smithy-mocks` in AWS's documented result format: moto
//! has no aggregate query) replaces the per-region sweep; the images and
//! pointers come from the emulator.

use aws_sdk_config::operation::select_aggregate_resource_config::SelectAggregateResourceConfigOutput;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use kiln::channels::pointers::Why;
use kiln::channels::promotion;
use kiln::fleet::aggregator;
use kiln::fleet::report::AuditPath;
use kiln::fleet::tally::Status;
use kiln::fleet::{Regions, Scope};
use kiln_testkit::{Emulator, built_image, channel, recipe_root};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const MEMBER: &str = "210987654321";
const AGGREGATOR: &str = "org-aggregator";

/// One result as AWS Config writes it: the selected properties, nested as
/// in the configuration item, and each aggregate under its expression.
fn result(account: &str, region: &str, image: &str, count: u64, captured: &str) -> String {
    serde_json::json!({
        "accountId": account,
        "awsRegion": region,
        "configuration": {"imageId": image},
        "COUNT(*)": count,
        "MAX(configurationItemCaptureTime)": captured,
    })
    .to_string()
}

#[tokio::test]
async fn one_aggregate_query_replaces_the_sweep_and_the_report_says_how_fresh_it_is() {
    let emu = Emulator::start().await;
    let east = emu.context_in(EAST, &recipe_root());
    let web = built_image(&east, "web", "web-1", "tested").await;
    promotion::promote(
        &east,
        &"web".parse().expect("recipe"),
        &channel("prod"),
        &web,
        Why {
            reason: "config path test",
            actor: "tests",
        },
        false,
    )
    .await
    .expect("promote");
    let home = emu.seeded.account.as_str();
    let canonical = emu.seeded.source_ami.as_str();
    let unknown = "ami-0123456789abcdef0";

    let page_one = vec![
        result(home, EAST, web.as_str(), 12, "2026-11-30T08:00:00.000Z"),
        result(MEMBER, EAST, web.as_str(), 3, "2026-11-30T09:00:00.000Z"),
        result(MEMBER, EAST, canonical, 4, "2026-11-29T09:00:00.000Z"),
    ];
    let page_two = vec![
        result(home, WEST, canonical, 2, "2026-11-30T07:00:00.000Z"),
        result(
            MEMBER,
            "eu-west-1",
            canonical,
            5,
            "2026-11-30T10:00:00.000Z",
        ),
        result(home, EAST, unknown, 1, "2026-11-30T09:30:00.000Z"),
    ];
    let first = mock!(aws_sdk_config::Client::select_aggregate_resource_config)
        .match_requests(|r| {
            r.next_token().is_none()
                && r.configuration_aggregator_name() == Some(AGGREGATOR)
                && r.limit() == Some(100)
                && r.expression().is_some_and(|e| {
                    e.ends_with("GROUP BY accountId, awsRegion, configuration.imageId")
                })
        })
        .then_output(move || {
            SelectAggregateResourceConfigOutput::builder()
                .set_results(Some(page_one.clone()))
                .next_token("page-2")
                .build()
        });
    let second = mock!(aws_sdk_config::Client::select_aggregate_resource_config)
        .match_requests(|r| r.next_token() == Some("page-2"))
        .then_output(move || {
            SelectAggregateResourceConfigOutput::builder()
                .set_results(Some(page_two.clone()))
                .build()
        });
    let client = mock_client!(aws_sdk_config, RuleMode::MatchAny, [&first, &second]);
    let scope = Scope {
        regions: Regions::List(vec![EAST.into(), WEST.into()]),
        config_aggregator: Some(AGGREGATOR.into()),
        ..Scope::new(channel("prod"))
    };
    let report = aggregator::audit(&emu.config, &client, &scope).await;

    assert_eq!(report.path, AuditPath::Config);
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report.summary.instances,
        12 + 3 + 4 + 2 + 1,
        "eu-west-1 was not asked for"
    );
    assert_eq!(
        report.summary.by_status[&Status::Current],
        15,
        "the member runs the shared image"
    );
    assert_eq!(
        report.summary.by_status[&Status::Foreign],
        4 + 2 + 1,
        "an image the home account cannot describe is foreign"
    );
    assert_eq!(report.summary.by_status[&Status::Deregistered], 0);
    let scopes: Vec<(&str, &str, u64)> = report
        .scopes
        .iter()
        .map(|s| (s.account.as_str(), s.region.as_str(), s.instances))
        .collect();
    assert_eq!(
        scopes,
        [(home, EAST, 13), (home, WEST, 2), (MEMBER, EAST, 7)]
    );
    assert_eq!(report.services.len(), 1);
    assert_eq!(report.services[0].service, aggregator::SERVICE);
    assert_eq!(
        report.data_as_of,
        Some("2026-11-30T09:30:00Z".parse().expect("time")),
        "the newest configuration item of the regions audited (eu-west-1's is newer)"
    );
    assert_eq!(
        report.api_calls.get("SelectAggregateResourceConfig"),
        Some(&2)
    );
    assert!(
        !report.api_calls.contains_key("DescribeInstances"),
        "no sweep: {:?}",
        report.api_calls
    );
    assert!(report.api_calls.contains_key("DescribeImages"));
    let table = report.table();
    assert!(
        table.contains("AWS Config, instances as recorded up to 2026-11-30 09:30 UTC"),
        "{table}"
    );
}

#[test]
fn a_result_kiln_cannot_read_is_named() {
    let err = aggregator::parse(r#"{"accountId": "1", "COUNT(*)": 2}"#).expect_err("refused");
    assert!(
        err.to_string()
            .contains("AWS Config answered a result kiln cannot read")
    );
}
