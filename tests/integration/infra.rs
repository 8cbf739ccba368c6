//! `infra/template.yaml` (and `infra/member.yaml`, a member account's
//! pointer role): cfn-lint and checkov clean, translated offline to
//! plain CloudFormation and created as a stack in the emulator, and its event
//! patterns proved against sample events delivered through EventBridge.

use std::path::PathBuf;
use std::process::Command;

use kiln_testkit::Emulator;
use serde_json::{Value, json};

fn template() -> PathBuf {
    kiln_testkit::repo().join("infra/template.yaml")
}

/// Every template of `infra/`: the stack's and a member account's.
fn templates() -> [PathBuf; 2] {
    [template(), kiln_testkit::repo().join("infra/member.yaml")]
}

/// A tool of the infra virtual environment (`make infra-tools`).
fn tool(name: &str) -> Command {
    let path = kiln_testkit::repo().join(".tools/infra/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make infra-tools` (make test does)",
        path.display()
    );
    Command::new(path)
}

#[test]
fn cfn_lint_finds_nothing() {
    let output = tool("cfn-lint")
        .args(templates())
        .output()
        .expect("cfn-lint");
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn checkov_fails_nothing_and_every_skip_says_why() {
    let output = tool("checkov")
        .args([
            "--framework",
            "cloudformation",
            "--compact",
            "--quiet",
            "--skip-download",
            "-f",
        ])
        .args(templates())
        .output()
        .expect("checkov");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("Failed checks: 0"), "{report}");

    let text = templates()
        .iter()
        .map(|t| std::fs::read_to_string(t).expect("template"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut skips = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("- id: CKV_") {
            skips += 1;
            let next = text.lines().nth(i + 1).unwrap_or_default().trim();
            let comment = next.strip_prefix("comment:").map(str::trim);
            assert!(
                comment.is_some_and(|c| c.len() > 20),
                "the skip at line {} needs a comment saying why: {next:?}",
                i + 1
            );
        }
    }
    assert!(skips > 0, "the checker sees the skips");
}

/// Creates stack `stack` in `region` of `emulator`; returns what
/// `scripts/infra.py deploy` says of it (status, resources, template).
fn deploy_stack(emulator: &Emulator, stack: &str, region: &str) -> Value {
    let output = tool("python")
        .arg(kiln_testkit::repo().join("scripts/infra.py"))
        .arg("deploy")
        .arg(&emulator.seeded.endpoint)
        .arg(template())
        .args([stack, region])
        .output()
        .expect("infra.py deploy");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

/// Creates the stack `kiln` in `emulator`; returns the translated template
/// and the stack's resources by logical id.
fn deploy(emulator: &Emulator) -> (Value, Value) {
    let deployed = deploy_stack(emulator, "kiln", "us-east-1");
    assert_eq!(deployed["status"], "CREATE_COMPLETE", "{deployed:#}");
    (deployed["template"].clone(), deployed["resources"].clone())
}

fn of_type<'a>(resources: &'a Value, kind: &str) -> Vec<&'a str> {
    let mut ids: Vec<&str> = resources
        .as_object()
        .expect("resources")
        .iter()
        .filter(|(_, r)| r["type"] == kind)
        .map(|(id, _)| id.as_str())
        .collect();
    ids.sort_unstable();
    ids
}

#[tokio::test]
async fn the_stack_creates_with_every_function_role_rule_and_the_state_machine() {
    let emulator = Emulator::start_for_stack().await;
    let (cfn, resources) = deploy(&emulator);

    let functions = of_type(&resources, "AWS::Lambda::Function");
    let crates: Vec<String> = std::fs::read_dir(kiln_testkit::repo().join("functions"))
        .expect("functions")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert_eq!(
        functions.len(),
        crates.len(),
        "one function per crate: {functions:?}"
    );
    for function in &functions {
        let binary = &cfn["Resources"][function]["Metadata"]["BuildProperties"]["Binary"];
        let binary = binary.as_str().unwrap_or_default();
        assert!(
            crates.iter().any(|c| c == binary),
            "{function} builds {binary:?}"
        );
        let properties = &cfn["Resources"][function]["Properties"];
        assert_eq!(properties["Architectures"], json!(["arm64"]), "{function}");
        assert_eq!(properties["Runtime"], "provided.al2023", "{function}");
    }
    let roles = of_type(&resources, "AWS::IAM::Role");
    for function in &functions {
        assert!(
            roles.contains(&format!("{function}Role").as_str()),
            "{function} has its own role"
        );
    }
    assert!(roles.contains(&"BuilderRole"));
    assert_eq!(
        of_type(&resources, "AWS::IAM::InstanceProfile"),
        ["BuilderInstanceProfile"]
    );
    let params: Vec<&String> = cfn["Parameters"]
        .as_object()
        .expect("parameters")
        .keys()
        .collect();
    for name in [
        "Recipe",
        "Channel",
        "NightlySchedule",
        "ReleaseCheckSchedule",
        "AuditSchedule",
        "AuditRegions",
        "AuditAccountRoles",
        "VpcId",
        "SubnetId",
    ] {
        assert!(
            params.iter().any(|p| *p == name),
            "parameter {name}: {params:?}"
        );
    }
    let inputs: Vec<Value> = cfn["Resources"]
        .as_object()
        .expect("resources")
        .values()
        .filter(|r| r["Type"] == "AWS::Scheduler::Schedule")
        .map(|r| r["Properties"]["Target"]["Input"].clone())
        .collect();
    let inputs = serde_json::to_string(&inputs).expect("json");
    for expected in [
        r#"\"reason\": \"schedule\""#,
        r#"\"reason\": \"release\""#,
        r#"\"action\": \"sweep\""#,
        r#"\"action\": \"prune\""#,
        r#"\"channel\": \"${Channel}\""#,
    ] {
        assert!(
            inputs.contains(expected),
            "a schedule sends {expected}: {inputs}"
        );
    }

    // Every placeholder of each definition has its substitution (the
    // emulator ignores DefinitionSubstitutions; AWS fills them in).
    for (resource, definition) in [
        ("BuildStateMachine", "statemachine/pipeline.asl.json"),
        ("ReleaseStateMachine", "statemachine/release.asl.json"),
        ("AuditStateMachine", "statemachine/audit.asl.json"),
    ] {
        let machine = &cfn["Resources"][resource]["Properties"];
        let substituted: Vec<&String> = machine["DefinitionSubstitutions"]
            .as_object()
            .expect("substitutions")
            .keys()
            .collect();
        let definition = kiln_testkit::asl::load(&kiln_testkit::repo().join(definition));
        for placeholder in kiln_testkit::asl::placeholders(&definition) {
            assert!(
                substituted.contains(&&placeholder),
                "{resource}: ${{{placeholder}}} has no substitution"
            );
        }
    }

    // What the emulator holds.
    let created = emulator
        .sfn()
        .describe_state_machine()
        .state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:kiln-build")
        .send()
        .await
        .expect("the state machine exists");
    assert!(
        created.definition().contains("\"Cleanup\""),
        "the pipeline's definition"
    );
    let release = emulator
        .sfn()
        .describe_state_machine()
        .state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:kiln-release")
        .send()
        .await
        .expect("the release state machine exists");
    assert!(release.definition().contains("\"Advance\""));
    let audit = emulator
        .sfn()
        .describe_state_machine()
        .state_machine_arn("arn:aws:states:us-east-1:123456789012:stateMachine:kiln-audit")
        .send()
        .await
        .expect("the audit state machine exists");
    assert!(audit.definition().contains("\"DISTRIBUTED\""));
    let rules = emulator.events().list_rules().send().await.expect("rules");
    let names: Vec<&str> = rules.rules().iter().filter_map(|r| r.name()).collect();
    assert_eq!(
        names.len(),
        3,
        "execution end, Inspector, security update: {names:?}"
    );
}

/// Inspector's finding as AWS documents it, at `severity`, with `fix`
/// (`YES`, `PARTIAL` or `NO`) available.
fn inspector_finding(severity: &str, fix: &str) -> Value {
    json!({
        "awsAccountId": "123456789012",
        "description": "A flaw was found in openssl.",
        "findingArn": "arn:aws:inspector2:us-east-1:123456789012:finding/FINDING_ID",
        "firstObservedAt": "Apr 29, 2022, 9:26:17 PM",
        "fixAvailable": fix,
        "inspectorScore": 7.5,
        "packageVulnerabilityDetails": {"vulnerabilityId": "CVE-2022-0778", "source": "UBUNTU_CVE"},
        "remediation": {"recommendation": {"text": "None Provided"}},
        "resources": [{
            "details": {"awsEc2Instance": {"imageId": "ami-0a1b2c3d4e5f60001", "platform": "UBUNTU_24_04"}},
            "id": "i-0123456789abcdef0", "partition": "aws", "region": "us-east-1",
            "type": "AWS_EC2_INSTANCE"
        }],
        "severity": severity,
        "status": "ACTIVE",
        "title": "CVE-2022-0778 - openssl",
        "type": "PACKAGE_VULNERABILITY"
    })
}

#[tokio::test]
async fn the_event_patterns_match_the_samples_and_nothing_else() {
    let emulator = Emulator::start_for_stack().await;
    deploy(&emulator);
    let events = emulator.events();
    let rules = events.list_rules().send().await.expect("rules");
    let pattern = |part: &str| -> String {
        rules
            .rules()
            .iter()
            .find(|r| r.name().is_some_and(|n| n.contains(part)))
            .and_then(|r| r.event_pattern())
            .unwrap_or_else(|| panic!("a rule named *{part}*"))
            .to_owned()
    };
    // The emulator cannot deliver to the stack's Lambda targets (PutEvents
    // fails): detach them; a twin of each rule, targeting a queue, receives
    // what the rule would.
    for rule in rules.rules().iter().filter_map(|r| r.name()) {
        let targets = events
            .list_targets_by_rule()
            .rule(rule)
            .send()
            .await
            .expect("targets");
        let ids: Vec<String> = targets
            .targets()
            .iter()
            .map(|t| t.id().to_owned())
            .collect();
        events
            .remove_targets()
            .rule(rule)
            .set_ids(Some(ids))
            .send()
            .await
            .expect("remove targets");
    }
    let inspector = emulator
        .capture("inspector", &pattern("InspectorFinding"))
        .await;
    let advisory = emulator
        .capture("advisory", &pattern("SecurityUpdate"))
        .await;
    let ended = emulator.capture("ended", &pattern("ExecutionEnded")).await;

    let kiln_machine = "arn:aws:states:us-east-1:123456789012:stateMachine:kiln-build";
    let execution = |machine: &str, status: &str| {
        json!({"executionArn": format!("{machine}:b1"), "stateMachineArn": machine, "name": "b1",
               "status": status, "input": "{\"recipe\": \"ubuntu-base\"}"})
    };
    let samples = [
        (
            "aws.inspector2",
            "Inspector2 Finding",
            inspector_finding("HIGH", "YES"),
        ),
        (
            "aws.inspector2",
            "Inspector2 Finding",
            inspector_finding("CRITICAL", "PARTIAL"),
        ),
        (
            "aws.inspector2",
            "Inspector2 Finding",
            inspector_finding("LOW", "YES"),
        ),
        (
            "aws.inspector2",
            "Inspector2 Finding",
            inspector_finding("CRITICAL", "NO"),
        ),
        (
            "kiln",
            "Security Update Available",
            json!({"recipe": "ubuntu-base"}),
        ),
        (
            "aws.states",
            "Step Functions Execution Status Change",
            execution(kiln_machine, "ABORTED"),
        ),
        (
            "aws.states",
            "Step Functions Execution Status Change",
            execution(kiln_machine, "TIMED_OUT"),
        ),
        (
            "aws.states",
            "Step Functions Execution Status Change",
            execution(kiln_machine, "SUCCEEDED"),
        ),
        (
            "aws.states",
            "Step Functions Execution Status Change",
            execution(
                "arn:aws:states:us-east-1:123456789012:stateMachine:other",
                "FAILED",
            ),
        ),
    ];
    for (source, detail_type, detail) in samples {
        emulator.put_event(source, detail_type, &detail).await;
    }

    let severities: Vec<String> = inspector
        .received()
        .await
        .iter()
        .map(|e| {
            e["detail"]["severity"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        severities,
        ["HIGH", "CRITICAL"],
        "a LOW finding, or one without a fix, starts nothing"
    );
    assert_eq!(advisory.received().await.len(), 1);
    let statuses: Vec<String> = ended
        .received()
        .await
        .iter()
        .map(|e| {
            e["detail"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statuses,
        ["ABORTED", "TIMED_OUT"],
        "only kiln's machine, only endings without cleanup"
    );
}

#[tokio::test]
async fn stacks_in_two_regions_of_one_account_deploy_and_a_second_in_one_region_is_refused() {
    let emulator = Emulator::start_for_stack().await;
    let east = deploy_stack(&emulator, "kiln", "us-east-1");
    let west = deploy_stack(&emulator, "kiln-west", "us-west-2");
    assert_eq!(east["status"], "CREATE_COMPLETE", "{east:#}");
    assert_eq!(west["status"], "CREATE_COMPLETE", "{west:#}");
    let profile = |stack: &Value| stack["resources"]["BuilderInstanceProfile"]["id"].clone();
    assert_eq!(
        [profile(&east), profile(&west)],
        [
            json!("kiln-us-east-1-builder"),
            json!("kiln-west-us-west-2-builder")
        ],
        "IAM names are global to the account: each stack names its own"
    );

    // A second kiln in the same account and region would move the first
    // one's channels: its /kiln/_stack marker is refused.
    let second = deploy_stack(&emulator, "kiln-second", "us-east-1");
    assert_eq!(second["status"], "CREATE_FAILED", "{second:#}");
    assert!(
        second["reason"]
            .as_str()
            .is_some_and(|r| r.contains("ParameterAlreadyExists")),
        "{second:#}"
    );
    let marker = aws_sdk_ssm::Client::new(&emulator.config)
        .get_parameter()
        .name("/kiln/_stack")
        .send()
        .await
        .expect("the marker");
    assert_eq!(
        marker.parameter().and_then(|p| p.value()),
        Some("kiln"),
        "the first stack keeps the region"
    );
}

#[test]
fn cargo_selects_every_functions_binary_where_sam_builds_it() {
    // SAM's rust-cargolambda build runs `cargo lambda build --release
    // --arm64 --bin <Binary>` in the function's CodeUri; cargo looks for
    // the binary among the workspace's default members there. This asks
    // cargo for those members and their targets, as that build would.
    let text = templates()
        .iter()
        .map(|t| std::fs::read_to_string(t).expect("template"))
        .collect::<Vec<_>>()
        .join("\n");
    let code_uri = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("CodeUri: "))
        .expect("the functions' CodeUri");
    let root = template().parent().expect("infra/").join(code_uri);
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata");
    let defaults: Vec<&str> = metadata["workspace_default_members"]
        .as_array()
        .expect("default members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let binaries: Vec<(String, String)> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["id"].as_str().is_some_and(|id| defaults.contains(&id)))
        .flat_map(|p| {
            p["targets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|t| t["kind"] == json!(["bin"]))
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or_default().to_owned(),
                        p["name"].as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect();
    let wanted: Vec<&str> = text
        .lines()
        .filter_map(|line| line.split("Binary: ").nth(1))
        .map(|rest| rest.trim_end_matches(|c: char| c == '}' || c.is_whitespace()))
        .collect();
    let functions = std::fs::read_dir(root.join("functions"))
        .expect("functions/")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.path().join("Cargo.toml").is_file())
        })
        .count();
    assert_eq!(
        wanted.len(),
        functions,
        "one SAM function per crate of functions/: {wanted:?}"
    );
    for binary in wanted {
        let found: Vec<_> = binaries.iter().filter(|(name, _)| name == binary).collect();
        assert_eq!(
            found.len(),
            1,
            "cargo --bin {binary} at {} selects {found:?}",
            root.display()
        );
    }
    let kiln: Vec<_> = binaries.iter().filter(|(name, _)| name == "kiln").collect();
    assert_eq!(kiln.len(), 1, "`cargo run` runs the CLI: {binaries:?}");
}
