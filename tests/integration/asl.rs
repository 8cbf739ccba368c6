//! Offline checks of `statemachine/pipeline.asl.json` and
//! `statemachine/release.asl.json`: valid ASL, and in step with the Rust code
//! (error names, function crates, state paths).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use kiln::pipeline::state::{
    BuildInput, BuildState, Builder, CaughtError, Cleanup, Distribution, Image, ImageState,
    Polling, Provision, Reason, RegionCopy, Sbom, Source, StepStatus, TestRun, TestStatus, Trigger,
};
use kiln::security::remediation::{Exposed, Exposure, Remediation, Watch};
use kiln_testkit::asl;
use serde_json::Value;

fn pipeline() -> PathBuf {
    kiln_testkit::repo().join("statemachine/pipeline.asl.json")
}

/// A state document with every field set, as the Rust types serialize it.
fn full_state() -> Value {
    let ami = "ami-0a1b2c3d4e5f60001".parse().expect("ami");
    let instance: kiln::ids::InstanceId = "i-0123456789abcdef0".parse().expect("id");
    let command: kiln::ids::CommandId = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
        .parse()
        .expect("command");
    let caught = CaughtError {
        error: "CommandFailed".into(),
        cause: "step setup failed".into(),
    };
    let polling = Polling {
        since: jiff::Timestamp::UNIX_EPOCH,
        wait_seconds: 30,
    };
    let state = BuildState {
        trigger: Trigger {
            started_at: Some(jiff::Timestamp::UNIX_EPOCH),
            fast_track: Some("CVE-2024-6387: an exploit is available".into()),
            exposure: Some(exposure()),
            ..kiln_testkit::trigger("b1")
        },
        source: Some(Source {
            source_ami: ami,
            source_name: "ubuntu".into(),
            serial: Some("20261118".into()),
            root_device_name: "/dev/sda1".into(),
            fingerprint: "ab".repeat(32).parse().expect("fingerprint"),
            skip: false,
            existing_image_id: None,
            started_at: jiff::Timestamp::UNIX_EPOCH,
            duration_seconds: Some(1),
            copy_regions: vec!["eu-west-1".into()],
            distributes: true,
        }),
        builder: Some(Builder {
            builder_instance_id: instance.clone(),
            instance_type: "t3.small".into(),
        }),
        provision: Some(Provision {
            step: 0,
            steps: 2,
            step_name: "setup".into(),
            command_id: Some(command.clone()),
            status: StepStatus::InProgress,
            polling,
        }),
        image: Some(Image {
            image_id: "ami-0fedcba9876543210".parse().expect("ami"),
            image_name: "kiln/x".into(),
            state: ImageState::Pending,
            polling,
        }),
        test: Some(TestRun {
            test_instance_id: instance,
            instance_type: "t3.small".into(),
            packages_command_id: Some(command.clone()),
            sbom: Some(Sbom {
                location: "s3://b/kiln-sbom/ami-0fedcba9876543210/sbom.cdx.json".into(),
                sha256: "0".repeat(64),
                packages: 1,
                findings: "s3://b/kiln-sbom/ami-0fedcba9876543210/findings.json".into(),
                critical: 0,
                high: 1,
            }),
            command_id: Some(command),
            status: TestStatus::InProgress,
            polling,
            duration_seconds: Some(1),
        }),
        distribution: Some(Distribution {
            copies: vec![RegionCopy {
                region: "eu-west-1".into(),
                image_id: "ami-0fedcba9876543211".parse().expect("ami"),
                state: ImageState::Pending,
            }],
            state: ImageState::Pending,
            shared_with: vec!["210987654321".into()],
            polling,
        }),
        error: Some(caught.clone()),
        cleanup: Some(Cleanup {
            duration_seconds: Some(1),
            ..Cleanup::default()
        }),
        cleanup_error: Some(caught.clone()),
        notify_error: Some(caught.clone()),
        release_error: Some(caught),
    };
    serde_json::to_value(state).expect("serialize")
}

/// An execution input with every field set.
fn full_input() -> Value {
    serde_json::to_value(BuildInput {
        recipe: "ubuntu-base".parse().expect("name"),
        reason: Some(Reason::Security),
        force: Some(true),
        wait_seconds: Some(1),
        fast_track: Some("CVE-2024-6387: an exploit is available".into()),
        exposure: Some(exposure()),
    })
    .expect("serialize")
}

/// What a security build remedies, every field set.
fn exposure() -> Exposure {
    Exposure {
        cves: vec!["CVE-2024-6387".into()],
        first_seen: Some(jiff::Timestamp::UNIX_EPOCH),
    }
}

/// A remediation watch with every field set.
fn remediation() -> Remediation {
    let at = jiff::Timestamp::UNIX_EPOCH;
    Remediation {
        recipe: "ubuntu-base".parse().expect("name"),
        image_id: "ami-0fedcba9876543210".parse().expect("ami"),
        cves: vec!["CVE-2024-6387".into()],
        regions: vec!["us-east-1".into()],
        first_seen: Some(at),
        started_at: at,
        deadline_hours: 72,
        deadline: at,
        check_seconds: 1,
        status: Watch::Overdue,
        wait_seconds: 1,
        checks: 1,
        exposed: 1,
        instances: vec![Exposed {
            account: "123456789012".into(),
            region: "us-east-1".into(),
            instance: "i-0123456789abcdef0".into(),
            image_id: "ami-0a1b2c3d4e5f60001".into(),
            cve: "CVE-2024-6387".into(),
        }],
        closed_at: Some(at),
        hours: Some(1.5),
        message: "m".into(),
    }
}

fn release_machine() -> PathBuf {
    kiln_testkit::repo().join("statemachine/release.asl.json")
}

/// A release document with every field set, as the Rust types serialize it,
/// plus the error a failed step leaves.
fn full_release() -> Value {
    let refresh = kiln::channels::rollout::groups::Refresh {
        group: "web".into(),
        region: Some("eu-west-1".into()),
        refresh_id: "r-1".into(),
        version: "2".into(),
        status: "InProgress".into(),
        percent: Some(50),
        status_reason: Some("why".into()),
        from_version: Some("1".into()),
    };
    let release = kiln::channels::rollout::Release {
        status: kiln::channels::rollout::Status::RolledBack,
        wait_seconds: 1,
        message: "m".into(),
        stopped: Some(kiln::channels::rollout::Stopped {
            channel: "prod".parse().expect("channel"),
            reason: "alarm".into(),
            rolled_back_to: Some("ami-0a1b2c3d4e5f60001".parse().expect("ami")),
            refreshes: vec![refresh.clone()],
            reverted: vec![refresh.clone()],
            superseded_by: Some(kiln::channels::rollout::rivals::Winner {
                image_id: "ami-0a1b2c3d4e5f60002".parse().expect("ami"),
                execution: "arn:aws:states:us-east-1:123456789012:execution:kiln-release:x".into(),
                forced: Some("why".into()),
            }),
        }),
        forced: Some("why".into()),
        fast_track: Some("CVE-2024-6387: an exploit is available".into()),
        state_machine: Some(
            "arn:aws:states:us-east-1:123456789012:stateMachine:kiln-release".into(),
        ),
        rolled: [("prod".parse().expect("channel"), vec![refresh])].into(),
        security: [(
            "prod".parse().expect("channel"),
            kiln::security::gate::Summary {
                rule: kiln::security::gate::Rule::Compared {
                    current: "ami-0a1b2c3d4e5f60001".parse().expect("ami"),
                },
                regressions: vec!["CVE-2099-0001 libc6".into()],
                accepted: Vec::new(),
                fixed: vec!["CVE-2099-0002 curl".into()],
            },
        )]
        .into(),
        exposure: Some(exposure()),
        remediation: Some(remediation()),
        ..kiln::channels::rollout::Release::new(
            "ubuntu-base".parse().expect("name"),
            "ami-0fedcba9876543210".parse().expect("ami"),
            1,
        )
    };
    let mut value = serde_json::to_value(release).expect("serialize");
    value["error"] = serde_json::json!({"Error": "Throttled", "Cause": "c"});
    value
}

fn functions() -> PathBuf {
    kiln_testkit::repo().join("functions")
}

#[test]
fn the_pipeline_names_only_what_the_rust_code_has() {
    let machine = asl::load(&pipeline());
    assert!(
        asl::paths(&machine).len() > 10,
        "the checker sees the paths: {:?}",
        asl::paths(&machine)
    );
    assert!(asl::error_names(&machine).contains("BuilderNotReady"));
    assert!(asl::placeholders(&machine).contains("CleanupBuildFunction"));
    let problems = asl::problems(&machine, &full_state(), &full_input(), &functions());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_release_machine_names_only_what_the_rust_code_has() {
    let machine = asl::load(&release_machine());
    let input = serde_json::json!({
        "recipe": "r", "image_id": "ami-0", "check_seconds": 1, "forced": "why", "fast_track": "CVE-1: why",
        "exposure": {"cves": ["CVE-1"], "first_seen": "2026-11-30T02:00:00Z"},
    });
    assert!(asl::placeholders(&machine).contains("PromoteFunction"));
    assert!(asl::paths(&machine).contains("$.stopped.rolled_back_to"));
    let problems = asl::problems(&machine, &full_release(), &input, &functions());
    assert!(problems.is_empty(), "{problems:#?}");
    let advance = &machine["States"]["Advance"];
    assert_eq!(advance["Parameters"]["action"], "release");
    assert!(advance["TimeoutSeconds"].as_u64().is_some());
    assert!(
        asl::error_names(&machine).contains("Throttled"),
        "the step is retried when throttled"
    );
}

#[test]
fn the_release_machine_starts_as_a_release_document() {
    let machine = asl::load(&release_machine());
    let start = &machine["States"]["Start"]["Parameters"];
    let document = serde_json::json!({
        "recipe": "ubuntu-base",
        "image_id": "ami-0fedcba9876543210",
        "check_seconds": 300,
        "started_at": "2026-11-26T07:00:00.000Z",
        "forced": null,
        "fast_track": null,
        "exposure": null,
        "state_machine": "arn:aws:states:us-east-1:123456789012:stateMachine:kiln-release",
    });
    let fields: Vec<&str> = start
        .as_object()
        .expect("parameters")
        .keys()
        .map(|k| k.trim_end_matches(".$"))
        .collect();
    let expected: Vec<&str> = document
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields.len(), expected.len(), "{fields:?}");
    for field in &fields {
        assert!(expected.contains(field), "{field}");
    }
    let release: kiln::channels::rollout::Release =
        serde_json::from_value(document).expect("a release");
    assert_eq!(release.status, kiln::channels::rollout::Status::Waiting);
    assert_eq!(release.phase, kiln::channels::rollout::Phase::Gate);
}

#[test]
fn the_pipelines_document_starts_with_every_field_of_the_trigger() {
    let machine = asl::load(&pipeline());
    let fields: BTreeSet<&str> = machine["States"]["Trigger"]["Parameters"]
        .as_object()
        .expect("parameters")
        .keys()
        .map(|k| k.trim_end_matches(".$"))
        .collect();
    let trigger = serde_json::to_value(kiln_testkit::trigger("b1")).expect("serialize");
    let expected: BTreeSet<&str> = trigger
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields, expected,
        "a field the document does not carry is lost"
    );
}

#[test]
fn the_pipeline_fills_in_the_input_as_the_lambdas_would() {
    let machine = asl::load(&pipeline());
    let merge = machine["States"]["Init"]["Parameters"]["input.$"]
        .as_str()
        .expect("Init merges defaults into the input");
    let defaults = merge
        .split_once("StringToJson('")
        .and_then(|(_, rest)| rest.split_once("')"))
        .map(|(json, _)| json)
        .expect("a StringToJson literal");
    let defaults: Value = serde_json::from_str(defaults).expect("defaults are JSON");
    let minimal = serde_json::json!({"recipe": "ubuntu-base", "build_id": "b1"});
    let trigger: Trigger = serde_json::from_value(minimal).expect("trigger");
    let trigger = serde_json::to_value(trigger).expect("serialize");
    for (field, value) in defaults.as_object().expect("an object") {
        assert_eq!(&trigger[field], value, "default of {field}");
    }
    assert_eq!(
        defaults.as_object().map(|d| d.len()),
        Some(5),
        "reason, force, wait_seconds, fast_track and exposure have defaults: {defaults}"
    );
}

#[test]
fn a_misspelt_copy_is_caught() {
    let text = std::fs::read_to_string(pipeline()).expect("read");
    let broken = text
        .replacen("\"BuilderNotReady\"", "\"BuilderNotRedy\"", 1)
        .replacen("${CreateImageFunction}", "${CreateImagesFunction}", 1)
        .replacen("$.source.fingerprint", "$.source.fingerprnt", 1);
    let problems = asl::problems(
        &serde_json::from_str(&broken).expect("json"),
        &full_state(),
        &full_input(),
        &functions(),
    );
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].contains("BuilderNotRedy"), "{problems:#?}");
    assert!(
        problems[1].contains("functions/create-images"),
        "{problems:#?}"
    );
    assert!(problems[2].contains("$.source.fingerprnt"), "{problems:#?}");
}

/// History events one round of the loop from `choice`'s `pending` branch
/// back to `choice` adds: each state's entered and exited, and a task's
/// scheduled, started and succeeded (Step Functions' execution history).
fn events_per_round(machine: &Value, choice: &str) -> u64 {
    let states = &machine["States"];
    let pending = states[choice]["Choices"]
        .as_array()
        .expect("choices")
        .iter()
        .find(|c| c["StringEquals"] == "pending")
        .expect("a pending branch");
    let mut name = pending["Next"].as_str().expect("next").to_owned();
    let mut events = 2;
    while name != choice {
        let state = &states[name.as_str()];
        events += if state["Type"] == "Task" { 5 } else { 2 };
        name = state["Next"].as_str().expect("a loop").to_owned();
    }
    events
}

#[test]
fn a_three_hour_copy_stays_far_below_the_history_limit() {
    // Step Functions keeps at most 25,000 events per execution; the whole
    // build's other states must fit beside the copies. One task follows
    // every region's copy, so the count does not grow with the regions.
    const LIMIT: u64 = 25_000;
    let machine = asl::load(&pipeline());
    let per_round = events_per_round(&machine, "CopiesDone");
    assert_eq!(per_round, 9, "Wait, Task, Choice");
    let three_hours = jiff::SignedDuration::from_hours(3);
    for base in [0, 1, 30, 60] {
        let trigger = Trigger {
            wait_seconds: base,
            ..kiln_testkit::trigger("b1")
        };
        let since = jiff::Timestamp::UNIX_EPOCH;
        let mut polling = Polling {
            since,
            wait_seconds: base,
        };
        let (mut now, mut rounds) = (since, 0_u64);
        while now.duration_since(since) < three_hours {
            now += jiff::SignedDuration::from_secs(i64::from(polling.wait_seconds.max(1)));
            polling = trigger.pace_at(&polling, now);
            rounds += 1;
        }
        assert!(
            rounds * per_round < LIMIT / 10,
            "base {base}s: {rounds} polls of a 3-hour copy cost {} events",
            rounds * per_round
        );
    }
}

#[test]
fn every_function_task_has_a_timeout_a_retry_and_a_way_to_cleanup() {
    let machine = asl::load(&pipeline());
    for (name, state) in machine["States"].as_object().expect("states") {
        let resource = state["Resource"].as_str().unwrap_or_default();
        if !resource.ends_with("Function}") {
            continue;
        }
        assert!(
            state["TimeoutSeconds"].as_u64().is_some(),
            "{name} has no TimeoutSeconds"
        );
        assert!(
            state["Retry"].as_array().is_some_and(|r| !r.is_empty()),
            "{name} has no Retry"
        );
        let catch_to = state["Catch"][0]["Next"].as_str();
        let expected = if name == "Cleanup" {
            "CleanupFailed"
        } else {
            "Cleanup"
        };
        assert_eq!(
            catch_to,
            Some(expected),
            "{name} must catch every error into {expected}"
        );
        assert_eq!(state["Catch"][0]["ErrorEquals"][0], "States.ALL", "{name}");
    }
}

#[test]
fn every_machine_validates_as_asl() {
    let validator = kiln_testkit::repo().join(".tools/node_modules/.bin/asl-validator");
    assert!(
        validator.is_file(),
        "{} is missing: run `make tools` (make test does)",
        validator.display()
    );
    for machine in [pipeline(), release_machine(), audit_machine()] {
        let output = Command::new(&validator)
            .arg("--json-path")
            .arg(&machine)
            .output()
            .expect("run asl-validator");
        assert!(
            output.status.success(),
            "asl-validator refused {}:\n{}{}",
            machine.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

fn audit_machine() -> PathBuf {
    kiln_testkit::repo().join("statemachine/audit.asl.json")
}

/// The audit machine's state after Plan (kiln::fleet::fanout::Planned) and
/// its Map, with every field set.
fn full_audit_state() -> Value {
    use kiln::fleet::accounts::Home;
    let planned = kiln::fleet::fanout::Planned {
        run: "audit-1".into(),
        items: "kiln/audit/runs/audit-1/items.json".into(),
        accounts: 2,
        request: kiln::fleet::Request::default(),
        home: Some(Home {
            account: "123456789012".into(),
            partition: "aws".into(),
        }),
    };
    let mut state = serde_json::to_value(planned).expect("serialize");
    state["map"] = serde_json::json!({"MapRunArn": "arn", "ResultWriterDetails": {}});
    state
}

/// What one child execution of the Map gets: a batch of the plan's items
/// with the batcher's input (AWS: `{"Items": [...], "BatchInput": ...}`).
fn audit_batch() -> Value {
    let state = full_audit_state();
    let items = vec![kiln::fleet::accounts::Member {
        account: "210987654321".into(),
        role: Some("arn:aws:iam::210987654321:role/kiln-audit".into()),
    }];
    serde_json::json!({
        "Items": items,
        "BatchInput": {"run": state["run"], "request": state["request"], "home": state["home"]},
    })
}

#[test]
fn the_audit_machine_names_only_what_the_rust_code_has() {
    let machine = asl::load(&audit_machine());
    assert!(asl::placeholders(&machine).contains("AuditFleetFunction"));
    assert!(
        asl::paths(&machine).contains("$.items"),
        "the reader's key is checked"
    );
    let problems = asl::problems(&machine, &full_audit_state(), &Value::Null, &functions());
    assert!(problems.is_empty(), "{problems:#?}");
    let processor = asl::processor(&machine, "Accounts");
    let problems = asl::problems(&processor, &audit_batch(), &Value::Null, &functions());
    assert!(problems.is_empty(), "{problems:#?}");
    let part: kiln::fleet::fanout::Step = serde_json::from_value(serde_json::json!({
        "action": processor["States"]["Part"]["Parameters"]["action"],
        "run": "audit-1",
        "request": audit_batch()["BatchInput"]["request"],
        "home": audit_batch()["BatchInput"]["home"],
        "items": audit_batch()["Items"],
    }))
    .expect("the Part task's parameters are a part step");
    assert!(matches!(part, kiln::fleet::fanout::Step::Part(_)));
}

#[test]
fn the_audit_machine_fans_out_batches_of_accounts_and_always_folds() {
    let machine = asl::load(&audit_machine());
    let map = &machine["States"]["Accounts"];
    assert_eq!(
        map["ItemProcessor"]["ProcessorConfig"]["Mode"],
        "DISTRIBUTED"
    );
    let batch = map["ItemBatcher"]["MaxItemsPerBatch"]
        .as_u64()
        .expect("batched");
    assert!(
        (1..=100).contains(&batch),
        "a few accounts per child, not one each: {batch}"
    );
    let tolerated = map["ToleratedFailurePercentage"]
        .as_f64()
        .expect("a tolerance");
    assert!(
        tolerated > 0.0 && tolerated <= 100.0,
        "a broken account is tolerated"
    );
    assert!(map["MaxConcurrency"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(map["ItemReader"]["ReaderConfig"]["InputType"], "JSON");
    assert_eq!(map["ItemReader"]["Parameters"]["Bucket"], "${AuditBucket}");
    assert_eq!(
        map["ResultWriter"]["Resource"],
        "arn:aws:states:::s3:putObject"
    );
    assert_eq!(
        map["ResultWriter"]["Parameters"]["Bucket"],
        "${AuditBucket}"
    );
    assert_eq!(map["Next"], "Fold");
    assert_eq!(
        map["Catch"][0]["Next"], "Fold",
        "a map beyond its tolerance still folds"
    );
    assert_eq!(map["Catch"][0]["ResultPath"], map["ResultPath"]);
    for (name, state) in [
        ("Plan", &machine["States"]["Plan"]),
        ("Part", &map["ItemProcessor"]["States"]["Part"]),
        ("Fold", &machine["States"]["Fold"]),
    ] {
        assert!(state["TimeoutSeconds"].as_u64().is_some(), "{name}");
        let retried = state["Retry"][0]["ErrorEquals"]
            .as_array()
            .expect("retried");
        assert!(retried.iter().any(|e| e == "Throttled"), "{name}");
    }
    let fold: kiln::fleet::fanout::Step = serde_json::from_value(serde_json::json!({
        "action": machine["States"]["Fold"]["Parameters"]["action"],
        "run": "audit-1",
        "map": {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "c"},
    }))
    .expect("the Fold task's parameters are a fold step, after a failed map too");
    assert!(matches!(fold, kiln::fleet::fanout::Step::Fold(_)));
}
