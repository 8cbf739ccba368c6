//! The fleet audit against the emulator (exact counts over two regions and two
//! accounts, the API calls of a 2,500-instance region, parts that fail) and
//! with mocks (throttled pages), and its HTML page in headless Chromium.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use aws_sdk_ec2::operation::describe_images::DescribeImagesOutput;
use aws_sdk_ec2::operation::describe_instances::{DescribeInstancesInput, DescribeInstancesOutput};
use aws_sdk_ec2::types::{Image, ImageState, Instance, Reservation, Tag};
use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::mock;
use kiln::aws::Context;
use kiln::channels::pointers::Why;
use kiln::channels::promotion;
use kiln::fleet::report::{ProblemKind, Report};
use kiln::fleet::tally::Status;
use kiln::fleet::{self as audit, RegionClients, Regions, Scope, Target};
use kiln::ids::AmiId;
use kiln_testkit::{
    Emulator, Protocol, built_image, canonical_image, channel, launch_many, recipe_root, throttled,
};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

async fn promote(ctx: &Context, recipe: &str, image: &AmiId) {
    promotion::promote(
        ctx,
        &recipe.parse().expect("recipe"),
        &channel("prod"),
        image,
        Why {
            reason: "audit test",
            actor: "tests",
        },
        false,
    )
    .await
    .expect("promote");
}

/// Builds `recipe` images in order, one second apart (image creation times
/// have one-second precision).
async fn images(ctx: &Context, recipe: &str, builds: &[&str]) -> Vec<AmiId> {
    let mut made = Vec::new();
    for build in builds {
        if !made.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        }
        made.push(built_image(ctx, recipe, build, "tested").await);
    }
    made
}

fn services(tag: &str) -> [(&'static str, &str); 1] {
    [("Service", tag)]
}

/// The demo fleet: two regions of the home account and one of a member
/// account, with every status. Returns the expected instances per status.
async fn seed_fleet(emu: &Emulator) -> BTreeMap<Status, u64> {
    let root = recipe_root();
    let east = emu.context_in(EAST, &root);
    let west = emu.context_in(WEST, &root);
    let foreign = emu.seeded.source_ami.clone();

    let web = images(&east, "web", &["web-1", "web-2", "web-3", "web-4"]).await;
    let (stale, previous, current, newer) = (&web[0], &web[1], &web[2], &web[3]);
    promote(&east, "web", previous).await;
    promote(&east, "web", current).await;
    let api = built_image(&east, "api", "api-1", "tested").await;
    let gone = built_image(&east, "web", "web-0", "tested").await;
    launch_many(&east, current.as_str(), 80, &services("payments")).await;
    launch_many(&east, current.as_str(), 40, &services("search")).await;
    launch_many(&east, previous.as_str(), 30, &services("payments")).await;
    launch_many(&east, stale.as_str(), 20, &services("search")).await;
    launch_many(&east, newer.as_str(), 10, &services("canary")).await;
    launch_many(&east, api.as_str(), 15, &services("api")).await;
    launch_many(&east, &foreign, 25, &services("legacy")).await;
    launch_many(&east, &foreign, 5, &[]).await;
    launch_many(&east, gone.as_str(), 12, &services("batch")).await;
    launch_many(&east, &foreign, 3, &[("kiln:role", "builder")]).await;
    east.ec2()
        .deregister_image()
        .image_id(gone.as_str())
        .send()
        .await
        .expect("DeregisterImage");

    let west_foreign = canonical_image(&west).await;
    let web_west = images(&west, "web", &["west-1", "west-2", "west-3"]).await;
    promote(&west, "web", &web_west[1]).await;
    promote(&west, "web", &web_west[2]).await;
    launch_many(&west, web_west[2].as_str(), 60, &services("payments")).await;
    launch_many(&west, web_west[0].as_str(), 8, &services("search")).await;
    launch_many(&west, &west_foreign, 4, &services("legacy")).await;

    let member = Context::new(&emu.member_config().await, east.settings.clone());
    launch_many(&member, &foreign, 7, &services("partner")).await;

    BTreeMap::from([
        (Status::Current, 80 + 40 + 60),
        (Status::Newer, 10),
        (Status::Previous, 30),
        (Status::Stale, 20 + 8),
        (Status::Unpromoted, 15),
        (Status::Foreign, 25 + 5 + 4 + 7),
        (Status::Deregistered, 12),
    ])
}

fn scope(emu: &Emulator) -> Scope {
    Scope {
        regions: Regions::List(vec![EAST.into(), WEST.into(), "xx-nowhere-1".into()]),
        account_roles: vec![
            emu.seeded.member_role.clone(),
            "arn:aws:iam::210987654321:role/no-such-role".into(),
        ],
        ..Scope::new(channel("prod"))
    }
}

fn service<'a>(report: &'a Report, name: &str) -> &'a BTreeMap<Status, u64> {
    &report
        .services
        .iter()
        .find(|s| s.service == name)
        .unwrap_or_else(|| panic!("service {name} in the report"))
        .by_status
}

fn only(counts: &BTreeMap<Status, u64>) -> BTreeMap<Status, u64> {
    counts
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(s, n)| (*s, *n))
        .collect()
}

#[tokio::test]
async fn every_count_is_exact_across_regions_and_accounts() {
    let emu = Emulator::start().await;
    let expected = seed_fleet(&emu).await;
    let report = audit::audit(&emu.config, &scope(&emu)).await;

    assert_eq!(report.summary.by_status, expected);
    assert_eq!(report.summary.instances, expected.values().sum::<u64>());
    assert_eq!(report.summary.current, 180);
    assert_eq!(report.summary.behind, 30 + 28 + 41 + 12);
    assert!(
        (report.summary.current_percent - 57.0).abs() < 1e-9,
        "180 of 316"
    );
    assert_eq!(report.summary.builders, 3);
    assert_eq!((report.summary.accounts, report.summary.regions), (2, 4));

    let counts: Vec<_> = report
        .scopes
        .iter()
        .map(|s| (s.account.as_str(), s.region.as_str(), s.instances))
        .collect();
    assert_eq!(
        counts,
        [
            ("123456789012", EAST, 237),
            ("123456789012", WEST, 72),
            ("210987654321", EAST, 7),
            ("210987654321", WEST, 0),
        ]
    );

    use Status::*;
    assert_eq!(
        only(service(&report, "payments")),
        BTreeMap::from([(Current, 140), (Previous, 30)])
    );
    assert_eq!(
        only(service(&report, "search")),
        BTreeMap::from([(Current, 40), (Stale, 28)])
    );
    assert_eq!(
        only(service(&report, "canary")),
        BTreeMap::from([(Newer, 10)])
    );
    assert_eq!(
        only(service(&report, "api")),
        BTreeMap::from([(Unpromoted, 15)])
    );
    assert_eq!(
        only(service(&report, "legacy")),
        BTreeMap::from([(Foreign, 29)])
    );
    assert_eq!(
        only(service(&report, "partner")),
        BTreeMap::from([(Foreign, 7)])
    );
    assert_eq!(
        only(service(&report, "(untagged)")),
        BTreeMap::from([(Foreign, 5)])
    );
    assert_eq!(
        only(service(&report, "batch")),
        BTreeMap::from([(Deregistered, 12)])
    );
    assert_eq!(
        report.services[0].service, "payments",
        "the most behind first"
    );

    let gone = report
        .images
        .iter()
        .find(|i| i.status == Deregistered)
        .expect("the deregistered image");
    assert_eq!(
        (gone.instances, gone.name.as_deref(), gone.age_days),
        (12, None, None)
    );
    let current = report
        .images
        .iter()
        .find(|i| i.status == Current)
        .expect("current");
    assert_eq!(current.age_days, Some(0));
    assert_eq!(current.recipe.as_ref().map(|r| r.as_str()), Some("web"));

    let pointers: Vec<_> = report
        .pointers
        .iter()
        .map(|p| (p.recipe.as_str(), p.region.as_str(), p.image_id.is_some()))
        .collect();
    assert_eq!(
        pointers,
        [
            ("api", EAST, false),
            ("web", EAST, true),
            ("web", WEST, true)
        ]
    );

    let problems: Vec<_> = report
        .problems
        .iter()
        .map(|p| (p.account.as_deref(), p.region.as_deref(), p.kind))
        .collect();
    assert_eq!(
        problems,
        [
            (Some("123456789012"), Some(EAST), ProblemKind::NoPointer),
            (
                Some("123456789012"),
                Some("xx-nowhere-1"),
                ProblemKind::UnknownRegion
            ),
            (Some("210987654321"), None, ProblemKind::RoleNotAssumed),
            (
                Some("210987654321"),
                Some("xx-nowhere-1"),
                ProblemKind::UnknownRegion
            ),
        ]
    );
    assert_eq!(
        report.incomplete(),
        3,
        "a missing pointer is a fact, not a failure"
    );
    let table = report.table();
    assert!(
        table.contains("316 instances: 57% on the promoted image (180), 111 behind"),
        "{table}"
    );
}

#[tokio::test]
async fn a_2500_instance_region_takes_the_minimum_calls() {
    let emu = Emulator::start().await;
    let ctx = emu.context(&recipe_root());
    let web = images(&ctx, "web", &["web-1", "web-2"]).await;
    promote(&ctx, "web", &web[1]).await;
    let foreign = emu.seeded.source_ami.clone();
    for (image, service) in [
        (web[1].as_str(), "a"),
        (web[1].as_str(), "b"),
        (web[1].as_str(), "c"),
        (web[1].as_str(), "d"),
        (web[0].as_str(), "e"),
        (web[0].as_str(), "f"),
        (foreign.as_str(), "g"),
        (foreign.as_str(), "h"),
        (foreign.as_str(), "i"),
        (foreign.as_str(), "j"),
    ] {
        launch_many(&ctx, image, 250, &services(service)).await;
    }

    let report = audit::audit(&emu.config, &Scope::new(channel("prod"))).await;
    assert_eq!(report.summary.instances, 2500);
    let calls = &report.scopes[0].api_calls;
    let minimum = BTreeMap::from([
        ("DescribeInstances".to_owned(), 3),
        ("DescribeImages".to_owned(), 1),
        ("GetParameters".to_owned(), 1),
    ]);
    assert_eq!(
        calls, &minimum,
        "ceil(2500/1000) pages, one image batch, one pointer batch"
    );
    assert_eq!(report.api_calls.get("GetCallerIdentity"), Some(&1));
    assert_eq!(report.api_calls.get("DescribeRegions"), Some(&1));
    assert_eq!(report.api_calls.values().sum::<u64>(), 7);
}

fn instance(image: &str, service: &str) -> Instance {
    Instance::builder()
        .image_id(image)
        .tags(Tag::builder().key("Service").value(service).build())
        .build()
}

/// A page of `count` instances of `image`, in reservations of 100.
fn page(image: &str, count: usize, next: Option<&str>) -> DescribeInstancesOutput {
    let reservations = (0..count / 100).map(|_| {
        Reservation::builder()
            .set_instances(Some(vec![instance(image, "svc"); 100]))
            .build()
    });
    DescribeInstancesOutput::builder()
        .set_reservations(Some(reservations.collect()))
        .set_next_token(next.map(str::to_owned))
        .build()
}

#[tokio::test]
async fn throttled_pages_are_retried_and_nothing_is_asked_twice() {
    const CURRENT: &str = "ami-0000000000000c001";
    const FOREIGN: &str = "ami-0000000000000f001";
    let first = |i: &DescribeInstancesInput| i.next_token().is_none();
    let pages = [
        mock!(aws_sdk_ec2::Client::describe_instances)
            .match_requests(first)
            .then_output(|| page(CURRENT, 1000, Some("p2"))),
        mock!(aws_sdk_ec2::Client::describe_instances)
            .match_requests(|i| i.next_token() == Some("p2"))
            .sequence()
            .http_response(|| throttled(Protocol::Ec2))
            .times(2)
            .output(|| page(CURRENT, 1000, Some("p3")))
            .build(),
        mock!(aws_sdk_ec2::Client::describe_instances)
            .match_requests(|i| i.next_token() == Some("p3"))
            .then_output(|| page(FOREIGN, 500, None)),
    ];
    let described = mock!(aws_sdk_ec2::Client::describe_images).then_output(|| {
        let image = |id: &str, tags: Vec<Tag>| {
            Image::builder()
                .image_id(id)
                .state(ImageState::Available)
                .creation_date("2026-11-20T00:00:00.000Z")
                .set_tags(Some(tags))
                .build()
        };
        DescribeImagesOutput::builder()
            .images(image(
                CURRENT,
                vec![Tag::builder().key("kiln:recipe").value("web").build()],
            ))
            .images(image(FOREIGN, Vec::new()))
            .build()
    });
    let parameters = mock!(aws_sdk_ssm::Client::get_parameters)
        .match_requests(|i| i.names() == ["/kiln/web/prod"])
        .then_output(|| {
            GetParametersOutput::builder()
                .parameters(
                    Parameter::builder()
                        .name("/kiln/web/prod")
                        .value(CURRENT)
                        .build(),
                )
                .build()
        });
    let rules: Vec<_> = pages.iter().chain([&described]).collect();
    let ctx = kiln_testkit::mocked(Path::new("."), &rules, &[&parameters]);
    let clients = RegionClients {
        ec2: ctx.ec2().clone(),
        home_ec2: ctx.ec2().clone(),
        home_ssm: ctx.ssm().clone(),
    };
    let target = Target {
        account: "123456789012",
        home_account: "123456789012",
        region: EAST,
        channel: &channel("prod"),
        service_tag: "Service",
    };
    let region = audit::audit_region(&clients, target)
        .await
        .expect("audited");
    assert_eq!(region.instances, 2500);
    let statuses: Vec<_> = region
        .images
        .iter()
        .map(|i| (i.image_id.as_str(), i.status, i.instances))
        .collect();
    assert_eq!(
        statuses,
        [
            (CURRENT, Status::Current, 2000),
            (FOREIGN, Status::Foreign, 500)
        ]
    );
    let calls: Vec<_> = pages.iter().map(|r| r.num_calls()).collect();
    assert_eq!(
        calls,
        [1, 3, 1],
        "the throttled page twice more, the others once"
    );
    assert_eq!(described.num_calls(), 1);
    assert_eq!(parameters.num_calls(), 1);
}

#[tokio::test]
async fn the_cli_reports_the_rest_and_exits_1_when_a_part_fails() {
    let emu = Emulator::start().await;
    let ctx = emu.context(&recipe_root());
    launch_many(&ctx, &emu.seeded.source_ami, 4, &services("legacy")).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let html = dir.path().join("report.html");
    let output = kiln_testkit::kiln()
        .envs(emu.env())
        .args([
            "audit",
            "--region",
            EAST,
            "--region",
            "xx-nowhere-1",
            "--output",
            "json",
        ])
        .arg("--html")
        .arg(&html)
        .output()
        .expect("run kiln");
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let report: Report = serde_json::from_slice(&output.stdout).expect("one JSON report");
    assert_eq!(report.summary.instances, 4);
    assert_eq!(report.problems.len(), 1);
    assert_eq!(report.problems[0].kind, ProblemKind::UnknownRegion);
    let page = std::fs::read_to_string(&html).expect("the HTML report");
    assert!(page.contains("unknown-region"));

    let text = kiln_testkit::kiln()
        .envs(emu.env())
        .args(["audit", "--region", EAST, "--region", "xx-nowhere-1"])
        .output()
        .expect("run kiln");
    assert_eq!(text.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.starts_with("Fleet audit against channel prod"),
        "{stdout}"
    );
    assert!(
        stdout.contains("4 instances: 0% on the promoted image (0), 4 behind"),
        "{stdout}"
    );
    assert!(
        stdout.contains("unknown-region: region xx-nowhere-1 does not exist"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.contains("error[AuditIncomplete]"), "{stderr}");
}

#[tokio::test]
async fn the_html_report_renders_in_chromium_with_its_totals() {
    let emu = Emulator::start().await;
    seed_fleet(&emu).await;
    let report = audit::audit(&emu.config, &scope(&emu)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let page = dir.path().join("report.html");
    std::fs::write(&page, audit::html::render(&report)).expect("write");
    let shot = dir.path().join("report.png");
    let rendered = kiln_testkit::render_page(&page, &shot);

    assert_eq!(rendered["errors"], serde_json::json!([]), "{rendered}");
    assert_eq!(
        rendered["external_requests"],
        serde_json::json!([]),
        "{rendered}"
    );
    let text = |id: &str| {
        rendered["tiles"][id]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(text("instances"), "316 instances");
    assert_eq!(text("current"), "57% on the promoted image (180)");
    assert_eq!(text("behind"), "111 behind");
    assert_eq!(rendered["bars"], serde_json::json!(report.images.len()));
    let drift = rendered["drift"].as_array().expect("drift rows");
    let behind: Vec<_> = drift
        .iter()
        .map(|row| (row[0].clone(), row[2].clone()))
        .collect();
    let expected = [
        ("payments", "30"),
        ("legacy", "29"),
        ("search", "28"),
        ("batch", "12"),
        ("partner", "7"),
        ("(untagged)", "5"),
    ];
    assert_eq!(behind, expected.map(|(s, n)| (s.into(), n.into())));
    assert!(std::fs::metadata(&shot).expect("a screenshot").len() > 10_000);
}

/// Makes the reports bucket (`fleet-reports`); answers the environment
/// audit-fleet and the CLI need to use it.
async fn reports_bucket(emu: &Emulator) -> Vec<(&'static str, String)> {
    emu.bucket("fleet-reports").await;
    let mut env = emu.env();
    env.push(("KILN_AUDIT_BUCKET", "fleet-reports".into()));
    env
}

#[tokio::test]
async fn the_audit_fleet_lambda_writes_its_reports_and_metrics() {
    let emu = Emulator::start().await;
    let ctx = emu.context(&recipe_root());
    let web = images(&ctx, "web", &["web-1"]).await;
    promote(&ctx, "web", &web[0]).await;
    launch_many(&ctx, web[0].as_str(), 6, &services("payments")).await;
    launch_many(&ctx, &emu.seeded.source_ami, 2, &services("legacy")).await;
    let s3 = emu.s3();
    let env = reports_bucket(&emu).await;
    let (ok, answer) = kiln_testkit::invoke_function(
        "audit-fleet",
        &env,
        &serde_json::json!({"service_tag": "Service"}),
    );
    assert!(ok, "{answer}");
    assert_eq!(answer["summary"]["instances"], 8);
    assert_eq!(answer["summary"]["current"], 6);
    assert_eq!(
        answer["published"]["keys"].as_array().map(Vec::len),
        Some(6),
        "the dated and latest JSON and HTML, the daily summary, the trend page"
    );

    let latest = s3
        .get_object()
        .bucket("fleet-reports")
        .key("kiln/audit/latest.json")
        .send()
        .await
        .expect("the latest report");
    let body = latest.body.collect().await.expect("body").into_bytes();
    let report: Report = serde_json::from_slice(&body).expect("a report");
    assert_eq!(report.summary.by_status[&Status::Foreign], 2);
    let keys = emu.keys("fleet-reports").await;
    assert_eq!(keys.len(), 6, "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.ends_with(".html") && k != "kiln/audit/latest.html")
    );
    let today = jiff::tz::Offset::UTC
        .to_datetime(report.generated_at)
        .date()
        .strftime("%Y-%m-%d")
        .to_string();
    let daily = format!("kiln-history/audit/prod/{today}.json");
    assert!(keys.contains(&daily), "{keys:?}");
    assert!(
        keys.contains(&"kiln/audit/trend.html".to_owned()),
        "{keys:?}"
    );
    let summary = s3
        .get_object()
        .bucket("fleet-reports")
        .key(&daily)
        .send()
        .await
        .expect("the daily summary")
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes();
    let summary: serde_json::Value = serde_json::from_slice(&summary).expect("JSON");
    let east = &summary["recipes"]["web"][EAST];
    assert_eq!(
        (east["instances"].as_u64(), east["current"].as_u64()),
        (Some(6), Some(6))
    );
    assert_eq!(east["pointer"]["image_id"], web[0].as_str());
    assert!(
        east["pointer"]["moved"].is_string(),
        "when the pointer moved: {summary}"
    );
    assert_eq!(summary["services"]["legacy"]["behind"], 2);

    let cloudwatch = aws_sdk_cloudwatch::Client::new(&emu.config);
    let value = |dimensions: &[(&str, &str)]| {
        let request = cloudwatch
            .get_metric_statistics()
            .namespace(kiln::fleet::publish::NAMESPACE)
            .metric_name(kiln::fleet::publish::INSTANCES)
            .set_dimensions(Some(
                dimensions
                    .iter()
                    .map(|(n, v)| {
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name(*n)
                            .value(*v)
                            .build()
                    })
                    .collect(),
            ))
            .start_time(aws_smithy_types::DateTime::from_secs(
                jiff::Timestamp::now().as_second() - 3600,
            ))
            .end_time(aws_smithy_types::DateTime::from_secs(
                jiff::Timestamp::now().as_second() + 3600,
            ))
            .period(60)
            .statistics(aws_sdk_cloudwatch::types::Statistic::Maximum);
        // None when nothing was published: a zero must be a datapoint.
        async move {
            let answer = request.send().await.expect("GetMetricStatistics");
            let points: Vec<f64> = answer
                .datapoints()
                .iter()
                .filter_map(|d| d.maximum())
                .collect();
            (!points.is_empty()).then(|| points.iter().sum::<f64>())
        }
    };
    let current = value(&[("Channel", "prod"), ("Status", "current")]).await;
    let foreign = value(&[("Channel", "prod"), ("Status", "foreign")]).await;
    let web_current = value(&[
        ("Channel", "prod"),
        ("Recipe", "web"),
        ("Status", "current"),
    ])
    .await;
    let web_stale = value(&[("Channel", "prod"), ("Recipe", "web"), ("Status", "stale")]).await;
    assert_eq!(
        (current, foreign, web_current, web_stale),
        (Some(6.0), Some(2.0), Some(6.0), Some(0.0)),
        "zeros are published too"
    );
}

/// An image of `ctx`'s account named `name` (not as a recipe names its
/// images), shared with `account`.
async fn shared_image(ctx: &Context, name: &str, account: &str) -> String {
    let source = canonical_image(ctx).await;
    let instance = kiln_testkit::launch(ctx, &source).await;
    let image = ctx
        .ec2()
        .create_image()
        .instance_id(&instance)
        .name(name)
        .send()
        .await
        .expect("CreateImage")
        .image_id()
        .expect("an image id")
        .to_owned();
    share(ctx, &image, account).await;
    image
}

async fn share(ctx: &Context, image: &str, account: &str) {
    use aws_sdk_ec2::types::{LaunchPermission, LaunchPermissionModifications};
    ctx.ec2()
        .modify_image_attribute()
        .image_id(image)
        .launch_permission(
            LaunchPermissionModifications::builder()
                .add(LaunchPermission::builder().user_id(account).build())
                .build(),
        )
        .send()
        .await
        .expect("share");
}

async fn allowed_images_state(ec2: &aws_sdk_ec2::Client) -> (String, usize) {
    let got = ec2
        .get_allowed_images_settings()
        .send()
        .await
        .expect("GetAllowedImagesSettings");
    (
        got.state().unwrap_or_default().to_owned(),
        got.image_criteria().len(),
    )
}

#[tokio::test]
async fn the_guard_counts_what_it_would_block_and_enables_only_once_nothing_running_would_be() {
    use kiln::fleet::guard::{self, Mode, Options};
    let emu = Emulator::start().await;
    let root = recipe_root();
    let mut ctx = emu.context(&root);
    let member_role = emu.seeded.member_role.clone();
    let member_account = kiln::aws::roles::role_account(&member_role)
        .expect("a role ARN")
        .to_owned();
    let home_account = kiln_testkit::iam::ACCOUNT.to_owned();
    let member = Context::new(&emu.member_config().await, ctx.settings.clone());
    // The member runs 40 instances of an image the build account shares but
    // no recipe names, 5 of a kiln image, 3 of Canonical's; the build
    // account runs its own unnamed image (an account's own images are never
    // restricted).
    let legacy = shared_image(&ctx, "legacy/app-7", &member_account).await;
    let kiln_image = built_image(&ctx, "ubuntu-base", "g-1", "tested").await;
    share(&ctx, kiln_image.as_str(), &member_account).await;
    let canonical = canonical_image(&member).await;
    launch_many(&member, &legacy, 40, &services("legacy")).await;
    launch_many(&member, kiln_image.as_str(), 5, &services("web")).await;
    launch_many(&member, &canonical, 3, &services("batch")).await;
    launch_many(&ctx, &legacy, 4, &services("legacy")).await;

    // The daily audit-fleet Lambda reports the figure per account.
    let mut env = reports_bucket(&emu).await;
    env.push(("KILN_RECIPE_ROOT", root.display().to_string()));
    let (ok, answer) = kiln_testkit::invoke_function(
        "audit-fleet",
        &env,
        &serde_json::json!({"account_roles": [member_role]}),
    );
    assert!(ok, "{answer}");
    ctx.settings.audit_bucket = Some("fleet-reports".into());
    let (_, report) = kiln::fleet::publish::latest(&ctx)
        .await
        .expect("the report")
        .expect("written");
    assert_eq!(
        report.would_block,
        Some(BTreeMap::from([
            (home_account.clone(), 0),
            (member_account.clone(), 40)
        ]))
    );

    let plan = guard::plan(&ctx, &Options::default()).await.expect("plan");
    assert_eq!(
        plan.blocked_by_account,
        BTreeMap::from([(member_account.clone(), 40)])
    );
    assert_eq!(plan.blocked.len(), 1);
    assert_eq!(plan.blocked[0].image_id, legacy);
    kiln_testkit::kiln()
        .args(["guard", "plan"])
        .envs(env.clone())
        .assert()
        .success()
        .stdout(predicates::str::contains("40 instance(s) would be blocked"));

    let member_ec2 = member.ec2().clone();
    let role_name = member_role.rsplit('/').next().expect("a role name");
    let refused = guard::apply(&ctx, &plan, Mode::Enabled, role_name, None)
        .await
        .expect_err("40 would be blocked");
    assert_eq!(refused.name(), "GuardRefused");
    assert_eq!(
        allowed_images_state(&member_ec2).await,
        ("disabled".into(), 0)
    );

    let applied = guard::apply(&ctx, &plan, Mode::AuditMode, role_name, None)
        .await
        .expect("audit-mode");
    assert_eq!(applied.len(), 2, "{applied:?}");
    assert!(
        applied
            .iter()
            .all(|a| a.problem.is_none() && a.state.as_deref() == Some("audit-mode"))
    );
    assert_eq!(
        allowed_images_state(&member_ec2).await,
        ("audit-mode".into(), 2)
    );
    // What EC2 now says of each image in the member account is what the plan said.
    let allowed = |image: String| {
        let ec2 = member_ec2.clone();
        async move {
            ec2.describe_images()
                .image_ids(image)
                .send()
                .await
                .expect("DescribeImages")
                .images()[0]
                .image_allowed()
        }
    };
    assert_eq!(allowed(legacy.clone()).await, Some(false));
    assert_eq!(allowed(kiln_image.to_string()).await, Some(true));
    assert_eq!(allowed(canonical.clone()).await, Some(true));

    // Beyond AWS's limits (51 names in one criterion): refused, before any call.
    let many = Options {
        names: (0..50).map(|i| format!("team-{i}/*")).collect(),
        ..Options::default()
    };
    let invalid = guard::plan(&ctx, &many).await.expect_err("51 names");
    assert_eq!(invalid.name(), "ImageCriteriaInvalid");
    let mut args = vec!["guard", "apply", "--mode", "enabled", "--output", "json"];
    let names: Vec<String> = (0..50).map(|i| format!("team-{i}/*")).collect();
    for name in &names {
        args.extend(["--name", name.as_str()]);
    }
    kiln_testkit::kiln()
        .args(&args)
        .envs(env)
        .assert()
        .failure()
        .stdout(predicates::str::contains("ImageCriteriaInvalid"));
    assert_eq!(
        allowed_images_state(&member_ec2).await,
        ("audit-mode".into(), 2)
    );
}

#[tokio::test]
async fn kiln_audit_shows_its_progress_on_a_terminal_and_nowhere_else() {
    let emu = Emulator::start().await;
    let ctx = emu.context(&recipe_root());
    launch_many(&ctx, &emu.seeded.source_ami, 1234, &services("legacy")).await;
    let kiln = kiln_testkit::function_binary("kiln");
    let command = format!(
        "{} audit --region {EAST} --region {WEST} --account-role {}",
        kiln.display(),
        emu.seeded.member_role
    );
    // script(1) gives the command a terminal, as a person running it has.
    let terminal = Command::new("script")
        .args([
            "--quiet",
            "--return",
            "--flush",
            "--command",
            &command,
            "/dev/null",
        ])
        .envs(emu.env())
        .output()
        .expect("script (bsdutils)");
    assert!(terminal.status.success(), "{terminal:?}");
    let seen = String::from_utf8_lossy(&terminal.stdout);
    assert!(
        seen.contains("auditing: accounts 2/2 · regions 4/4 · 1,234 instances"),
        "the last count, shown before the report: {seen}"
    );
    let report_at = seen.find("Fleet audit against").expect("the report");
    assert!(
        seen[..report_at].contains("\r\x1b[2K"),
        "the line is cleared: {seen:?}"
    );

    let piped = kiln_testkit::kiln()
        .envs(emu.env())
        .args(["audit", "--region", EAST, "--output", "json"])
        .output()
        .expect("run kiln");
    assert!(piped.status.success(), "{piped:?}");
    let report: Report = serde_json::from_slice(&piped.stdout).expect("only the JSON report");
    assert_eq!(report.summary.instances, 1234);
    assert!(
        !String::from_utf8_lossy(&piped.stderr).contains("auditing"),
        "no progress where no one watches"
    );
}
