//! The fleet audit of an AWS Organization, against the emulator: accounts
//! found through Organizations (active ones, under OUs, nested OUs
//! included), audited directly and through the audit state machine's
//! Distributed Map, with the same report.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_sfn::types::ExecutionStatus;
use kiln::aws::Context;
use kiln::channels::pointers::Why;
use kiln::channels::promotion;
use kiln::fleet::report::{AuditPath, ProblemKind, Report};
use kiln::fleet::tally::Status;
use kiln::fleet::{self, Organization, Regions, Scope};
use kiln_testkit::{Emulator, built_image, canonical_image, channel, launch_many, recipe_root};

const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";
const BUCKET: &str = "kiln-audit-reports";
/// The role moto's CreateAccount makes in each new account, trusting the
/// management account (as AWS Organizations does).
const ROLE: &str = "OrganizationAccountAccessRole";

/// The organization the test makes, and what it seeded.
struct Org {
    /// Audited accounts and their instances per region.
    seeded: BTreeMap<String, [u64; 2]>,
    /// The account whose role kiln cannot assume.
    broken: String,
    /// The suspended account (never audited).
    suspended: String,
    /// The OU holding two accounts, one of them through a nested OU.
    unit: String,
    /// Those two accounts.
    in_unit: Vec<String>,
}

fn organizations(config: &SdkConfig) -> aws_sdk_organizations::Client {
    aws_sdk_organizations::Client::new(config)
}

async fn account(org: &aws_sdk_organizations::Client, name: &str, role: &str) -> String {
    let created = org
        .create_account()
        .account_name(name)
        .email(format!("{name}@example.com"))
        .role_name(role)
        .send()
        .await
        .expect("CreateAccount");
    created
        .create_account_status()
        .and_then(|s| s.account_id())
        .expect("an account id")
        .to_owned()
}

async fn unit(org: &aws_sdk_organizations::Client, parent: &str, name: &str) -> String {
    org.create_organizational_unit()
        .parent_id(parent)
        .name(name)
        .send()
        .await
        .expect("CreateOrganizationalUnit")
        .organizational_unit()
        .and_then(|u| u.id())
        .expect("an OU id")
        .to_owned()
}

async fn move_to(org: &aws_sdk_organizations::Client, account: &str, from: &str, to: &str) {
    org.move_account()
        .account_id(account)
        .source_parent_id(from)
        .destination_parent_id(to)
        .send()
        .await
        .expect("MoveAccount");
}

/// `emu`'s configuration acting as `role`, in `region`.
async fn as_role(emu: &Emulator, role: &str, region: &str) -> SdkConfig {
    emu.config_as(role)
        .await
        .to_builder()
        .region(aws_sdk_ec2::config::Region::new(region.to_owned()))
        .build()
}

/// An organization of the emulator's account: two accounts under an OU (one
/// of them in a nested OU), two at the root, one whose kiln role is missing,
/// one suspended. The home account runs a promoted image (current) and a
/// Canonical one; every audited member account runs Canonical images
/// (foreign), one also the home account's promoted image, shared with it.
async fn seed(emu: &Emulator) -> Org {
    let org = organizations(&emu.config);
    org.create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    let root = org.list_roots().send().await.expect("ListRoots").roots()[0]
        .id()
        .expect("a root id")
        .to_owned();
    let prod = unit(&org, &root, "prod").await;
    let web = unit(&org, &prod, "web").await;
    let mut members = Vec::new();
    for (i, parent) in [Some(&prod), Some(&web), None, None]
        .into_iter()
        .enumerate()
    {
        let id = account(&org, &format!("member-{i}"), ROLE).await;
        if let Some(parent) = parent {
            move_to(&org, &id, &root, parent).await;
        }
        members.push(id);
    }
    let broken = account(&org, "no-kiln-role", "SomeOtherRole").await;
    let suspended = account(&org, "closed", ROLE).await;
    org.close_account()
        .account_id(&suspended)
        .send()
        .await
        .expect("CloseAccount");

    let root_dir = recipe_root();
    let east = emu.context_in(EAST, &root_dir);
    let west = emu.context_in(WEST, &root_dir);
    let current = built_image(&east, "web", "web-1", "tested").await;
    promotion::promote(
        &east,
        &"web".parse().expect("recipe"),
        &channel("prod"),
        &current,
        Why {
            reason: "organization audit test",
            actor: "tests",
        },
        false,
    )
    .await
    .expect("promote");
    let service = [("Service", "payments")];
    launch_many(&east, current.as_str(), 20, &service).await;
    launch_many(&west, &canonical_image(&west).await, 5, &service).await;
    let mut seeded = BTreeMap::from([(emu.seeded.account.clone(), [20, 5])]);

    for (i, member) in members.iter().enumerate() {
        let role = format!("arn:aws:iam::{member}:role/{ROLE}");
        let mut counts = [0; 2];
        for (r, region) in [EAST, WEST].into_iter().enumerate() {
            let ctx = Context::new(&as_role(emu, &role, region).await, east.settings.clone());
            let n = u64::try_from(i + 1 + r).expect("small");
            let count = i32::try_from(n).expect("small");
            launch_many(&ctx, &canonical_image(&ctx).await, count, &service).await;
            counts[r] = n;
        }
        seeded.insert(member.clone(), counts);
    }
    let shared_with = &members[0];
    east.ec2()
        .modify_image_attribute()
        .image_id(current.as_str())
        .launch_permission(
            aws_sdk_ec2::types::LaunchPermissionModifications::builder()
                .add(
                    aws_sdk_ec2::types::LaunchPermission::builder()
                        .user_id(shared_with)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("share");
    let role = format!("arn:aws:iam::{shared_with}:role/{ROLE}");
    let ctx = Context::new(&as_role(emu, &role, EAST).await, east.settings.clone());
    launch_many(&ctx, current.as_str(), 6, &service).await;
    if let Some(counts) = seeded.get_mut(shared_with) {
        counts[0] += 6;
    }
    Org {
        seeded,
        broken,
        suspended,
        unit: prod,
        in_unit: members[..2].to_vec(),
    }
}

fn request(units: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "organization": true,
        "organizational_units": units,
        "role_name": ROLE,
        "regions": [EAST, WEST],
    })
}

/// Runs the audit state machine on `input`; returns the execution's status.
async fn run_audit(emu: &Emulator, name: &str, input: &serde_json::Value) -> ExecutionStatus {
    let machine = emu
        .seeded
        .audit_state_machine_arn
        .as_deref()
        .expect("the audit machine");
    let described = emu.run_execution(machine, name, input).await;
    assert_eq!(
        described.status(),
        &ExecutionStatus::Succeeded,
        "{:?} {:?}",
        described.error(),
        described.cause()
    );
    described.status().clone()
}

async fn object(emu: &Emulator, key: &str) -> Option<Vec<u8>> {
    let got = emu
        .s3()
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(got.body.collect().await.ok()?.into_bytes().to_vec())
}

/// `report` without what differs between two audits of one fleet: when and
/// how long, the calls, and the path.
fn comparable(mut report: Report) -> Report {
    report.generated_at = jiff::Timestamp::UNIX_EPOCH;
    report.duration_ms = 0;
    report.api_calls.clear();
    report.path = AuditPath::Direct;
    for scope in &mut report.scopes {
        scope.api_calls.clear();
    }
    report
}

#[tokio::test]
async fn an_organization_audited_through_the_state_machine_equals_the_direct_audit() {
    let emu = Emulator::start_audit(BUCKET, &[]).await;
    emu.bucket(BUCKET).await;
    let org = seed(&emu).await;

    run_audit(&emu, "audit-org", &request(&[])).await;
    let latest = object(&emu, "kiln/audit/latest.json")
        .await
        .expect("the fold wrote the report");
    let fanned: Report = serde_json::from_slice(&latest).expect("a report");
    assert_eq!(fanned.path, AuditPath::StateMachine);

    let per_account: BTreeMap<String, [u64; 2]> =
        fanned
            .scopes
            .iter()
            .fold(BTreeMap::new(), |mut counts, scope| {
                let region = usize::from(scope.region == WEST);
                counts.entry(scope.account.clone()).or_insert([0; 2])[region] += scope.instances;
                counts
            });
    assert_eq!(
        per_account, org.seeded,
        "exactly what was seeded, per account and region"
    );
    assert_eq!(fanned.summary.accounts, 5);
    assert_eq!(
        fanned.summary.by_status.get(&Status::Current),
        Some(&26),
        "the home account's 20 and the 6 of the account it shared the image with"
    );
    let problems: Vec<_> = fanned
        .problems
        .iter()
        .filter(|p| p.kind != ProblemKind::NoPointer)
        .map(|p| (p.account.as_deref(), p.kind))
        .collect();
    assert_eq!(
        problems,
        [(Some(org.broken.as_str()), ProblemKind::RoleNotAssumed)]
    );
    assert!(
        !fanned.scopes.iter().any(|s| s.account == org.suspended),
        "a suspended account is not audited"
    );
    for account in org.seeded.keys() {
        let seen_as = if *account == emu.seeded.account {
            "home".to_owned()
        } else {
            ROLE.to_owned()
        };
        let key = format!("kiln/audit/runs/audit-org/parts/{account}/{seen_as}.json");
        assert!(object(&emu, &key).await.is_some(), "{key}");
    }

    let mut direct = fleet::audit(
        &emu.config,
        &Scope {
            regions: Regions::List(vec![EAST.into(), WEST.into()]),
            organization: Some(Organization {
                parents: Vec::new(),
                role_name: ROLE.into(),
            }),
            ..Scope::new(channel("prod"))
        },
    )
    .await;
    assert_eq!(direct.path, AuditPath::Direct);
    fleet::guard::annotate(&emu.context(&recipe_root()), &mut direct).await;
    assert_eq!(comparable(fanned), comparable(direct));

    run_audit(&emu, "audit-prod-ou", &request(&[&org.unit])).await;
    let latest = object(&emu, "kiln/audit/latest.json")
        .await
        .expect("a report");
    let unit: Report = serde_json::from_slice(&latest).expect("a report");
    let scopes: Vec<(&str, &str)> = unit
        .scopes
        .iter()
        .map(|s| (s.account.as_str(), s.region.as_str()))
        .collect();
    let mut expected = vec![emu.seeded.account.as_str()];
    expected.extend(org.in_unit.iter().map(String::as_str));
    expected.sort_unstable();
    let expected: Vec<(&str, &str)> = expected
        .into_iter()
        .flat_map(|a| [(a, EAST), (a, WEST)])
        .collect();
    assert_eq!(
        scopes, expected,
        "the home account and the OU's two accounts (one in a nested OU), in both regions"
    );
}

/// Runs one step of the audit state machine as its Lambda would.
async fn step(ctx: &Context, event: serde_json::Value) -> serde_json::Value {
    let reply = kiln::lambda::answer(&fleet::handle, ctx, event)
        .await
        .expect("the step");
    serde_json::to_value(reply).expect("an answer")
}

#[tokio::test]
async fn an_account_whose_part_never_arrives_is_reported_unfinished() {
    let emu = Emulator::start().await;
    let mut ctx = emu.context(&recipe_root());
    ctx.settings.audit_bucket = Some(BUCKET.into());
    emu.bucket(BUCKET).await;
    let planned = step(
        &ctx,
        serde_json::json!({"action": "plan", "run": "r-1", "request": {
            "account_roles": [emu.seeded.member_role], "regions": [EAST]}}),
    )
    .await;
    assert_eq!(planned["accounts"], 2, "{planned}");
    let items = object(&emu, "kiln/audit/runs/r-1/items.json")
        .await
        .expect("the map's items");
    let items: Vec<serde_json::Value> = serde_json::from_slice(&items).expect("a JSON array");
    assert_eq!(items.len(), 2);
    let home = &items[0];
    assert_eq!(home["account"], emu.seeded.account.as_str());
    let member = items[1]["account"].as_str().expect("the member").to_owned();

    let done = step(
        &ctx,
        serde_json::json!({"action": "part", "run": "r-1", "request": planned["request"],
            "home": planned["home"], "items": [home]}),
    )
    .await;
    assert_eq!(done["accounts"], serde_json::json!([emu.seeded.account]));

    let answer = step(
        &ctx,
        serde_json::json!({"action": "fold", "run": "r-1", "map": {
            "Error": "States.ExceedToleratedFailureThreshold", "Cause": "1 of 2 items failed"}}),
    )
    .await;
    let report: Report = serde_json::from_slice(
        &object(&emu, "kiln/audit/latest.json")
            .await
            .expect("the fold wrote the report"),
    )
    .expect("a report");
    assert_eq!(report.summary.accounts, 1);
    let unfinished: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::Unfinished)
        .map(|p| p.account.as_deref())
        .collect();
    assert_eq!(unfinished, [Some(member.as_str())]);
    assert_eq!(report.incomplete(), 1);
    assert!(
        answer["problems"]
            .to_string()
            .contains("ExceedToleratedFailureThreshold"),
        "{answer}"
    );
}
