//! Least privilege that holds on real AWS: every call each function makes in
//! kiln's flows is granted to that function's role in `infra/template.yaml`,
//! with the resource types AWS authorizes it against, and every grant is
//! either used or says why it is there.
//!
//! The emulator does not evaluate IAM. Instead its Lambda proxy records each
//! call a function makes (each function runs with its own access key,
//! `kiln-function-<name>`), and `kiln_testkit::iam` checks the calls against
//! the template's policies as CloudFormation resolves them. The resource
//! types per action are the Service Authorization Reference's ("Actions,
//! resources, and condition keys for Amazon EC2", ... for AWS Systems
//! Manager, AWS Step Functions, Amazon EC2 Auto Scaling, Amazon CloudWatch,
//! Amazon S3, AWS STS).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_cloudwatch::types::StateValue;
use kiln::channels::pointers::Why;
use kiln::channels::promotion;
use kiln_testkit::iam::{self, ACCOUNT, Need, REGION, Roles, Statement};
use kiln_testkit::{
    Emulator, RECIPE, RecipeCopy, alarm, auto_scaling_group, distributed_image, inspector_finding,
    invoke_function, opted_in, pointer, recipe, set_alarm, source, template_versions,
};
use serde::Deserialize;
use serde_json::{Value, json};

/// The output bucket of a stack named `kiln`, as the template names it.
const OUTPUT_BUCKET: &str = "kiln-outputbucket";
const ALARM: &str = "web-5xx";
/// The role moto's CreateAccount makes in a new account of an organization.
const ORGANIZATION_ROLE: &str = "OrganizationAccountAccessRole";

/// What the emulator's Lambda proxy recorded of one call.
#[derive(Debug, Clone, Deserialize)]
struct Call {
    key: Option<String>,
    service: Option<String>,
    region: Option<String>,
    action: Option<String>,
    #[serde(default)]
    params: Value,
    /// The HTTP status moto answered (none for Lambda Invoke).
    #[serde(default)]
    status: Option<u16>,
}

impl Call {
    /// The function that made it, by its access key.
    fn function(&self) -> Option<&str> {
        self.key.as_deref()?.strip_prefix("kiln-function-")
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }

    /// `Name.1`, `Name.2`, ... of a query request, or the JSON array `name`.
    fn list(&self, query: &str, json: &str) -> Vec<String> {
        if let Some(items) = self.params.get(json).and_then(Value::as_array) {
            return items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        (1..)
            .map_while(|i| self.param(&format!("{query}.{i}")).map(str::to_owned))
            .collect()
    }

    /// The tags of each `TagSpecification.N` by resource type.
    fn tag_specifications(&self) -> BTreeMap<String, Vec<(String, String)>> {
        let mut found = BTreeMap::new();
        for n in 1.. {
            let Some(kind) = self.param(&format!("TagSpecification.{n}.ResourceType")) else {
                break;
            };
            let tags = (1..)
                .map_while(|m| {
                    let key = self.param(&format!("TagSpecification.{n}.Tag.{m}.Key"))?;
                    let value = self.param(&format!("TagSpecification.{n}.Tag.{m}.Value"));
                    Some((key.to_owned(), value.unwrap_or_default().to_owned()))
                })
                .collect();
            found.insert(kind.to_owned(), tags);
        }
        found
    }

    /// The tags of a `CreateTags`/`DeleteTags` request (`Tag.N`).
    fn tags(&self) -> Vec<(String, String)> {
        (1..)
            .map_while(|n| {
                let key = self.param(&format!("Tag.{n}.Key"))?;
                let value = self.param(&format!("Tag.{n}.Value"));
                Some((key.to_owned(), value.unwrap_or_default().to_owned()))
            })
            .collect()
    }
}

fn ec2(kind: &str, id: &str) -> String {
    ec2_in(REGION, kind, id)
}

fn ec2_in(region: &str, kind: &str, id: &str) -> String {
    match kind {
        "image" | "snapshot" => format!("arn:aws:ec2:{region}::{kind}/{id}"),
        _ => format!("arn:aws:ec2:{region}:{ACCOUNT}:{kind}/{id}"),
    }
}

/// The EC2 resource an id names in `region`, by the id's prefix.
fn ec2_id(region: &str, id: &str) -> String {
    let kind = match id.split('-').next() {
        Some("i") => "instance",
        Some("ami") => "image",
        Some("snap") => "snapshot",
        Some("vol") => "volume",
        Some("sg") => "security-group",
        Some("lt") => "launch-template",
        other => panic!("no EC2 resource type for {id} ({other:?})"),
    };
    ec2_in(region, kind, id)
}

/// A parameter's ARN. The emulator reserves `/aws/...`, so the source
/// parameter lives at `/kiln-emulator/canonical/...`: on AWS it is
/// Canonical's public one (with an empty account in its ARN).
fn parameter(region: &str, name: &str) -> String {
    let name = name.replacen("/kiln-emulator/canonical/", "/aws/service/canonical/", 1);
    if name.starts_with("/aws/service/") {
        format!("arn:aws:ssm:{region}::parameter{name}")
    } else {
        format!("arn:aws:ssm:{region}:{ACCOUNT}:parameter{name}")
    }
}

/// Request tags as condition context: `aws:RequestTag/K` and `aws:TagKeys`.
fn tagged(mut need: Need, tags: &[(String, String)]) -> Need {
    for (key, value) in tags {
        need.context
            .entry(format!("aws:RequestTag/{key}"))
            .or_default()
            .push(value.clone());
    }
    need.context.insert(
        "aws:TagKeys".into(),
        tags.iter().map(|(k, _)| k.clone()).collect(),
    );
    need
}

/// The permissions `call` needs (its action on each resource type AWS
/// checks, and the tagging a creating call's TagSpecifications imply), and
/// the builder role's, for calls that hand the builders work.
fn needs(call: &Call, builder_role: &str) -> (Vec<Need>, Vec<Need>) {
    let action = call.action.as_deref().unwrap_or_default();
    let prefix = match call.service.as_deref().unwrap_or_default() {
        "monitoring" => "cloudwatch",
        other => other,
    };
    let name = format!("{prefix}:{action}");
    let why = format!("{name} {}", call.params);
    let need = |resource: String| Need::new(&name, resource, why.clone());
    // Resources of the region the call is made in (a copy's, a cleanup's
    // in a distribution region).
    let region = call.region.as_deref().unwrap_or(REGION);
    let ec2 = |kind: &str, id: &str| ec2_in(region, kind, id);
    let parameter = |name: &str| parameter(region, name);
    let mut needs = Vec::new();
    let mut builder = Vec::new();
    let specifications = call.tag_specifications();
    let tags_of = |kind: &str| specifications.get(kind).cloned().unwrap_or_default();
    // Tags in a creating call are authorized as CreateTags with
    // ec2:CreateAction (EC2 User Guide, "Grant permission to tag resources
    // during creation").
    let tag_on_create = |kind: &str, resource: String| {
        tagged(
            Need::new("ec2:CreateTags", resource, why.clone()).with("ec2:CreateAction", &[action]),
            &tags_of(kind),
        )
    };
    match (prefix, action) {
        ("ec2", "RunInstances") => {
            let tokens = call
                .param("MetadataOptions.HttpTokens")
                .unwrap_or("optional");
            needs.push(
                tagged(need(ec2("instance", "*")), &tags_of("instance"))
                    .with("ec2:MetadataHttpTokens", &[tokens]),
            );
            needs.push(tagged(need(ec2("volume", "*")), &tags_of("volume")));
            needs.push(need(ec2("image", call.param("ImageId").unwrap_or("*"))));
            needs.push(need(ec2("network-interface", "*")));
            needs.push(need(ec2("subnet", call.param("SubnetId").unwrap_or("*"))));
            for group in call.list("SecurityGroupId", "SecurityGroupIds") {
                needs.push(need(ec2("security-group", &group)));
            }
            for kind in specifications.keys() {
                needs.push(tag_on_create(kind, ec2(kind, "*")));
            }
            if call.param("IamInstanceProfile.Name").is_some() {
                needs.push(
                    Need::new("iam:PassRole", builder_role, why.clone())
                        .with("iam:PassedToService", &["ec2.amazonaws.com"]),
                );
            }
        }
        ("ec2", "CreateImage") => {
            needs.push(need(ec2(
                "instance",
                call.param("InstanceId").unwrap_or("*"),
            )));
            needs.push(tagged(need(ec2("image", "*")), &tags_of("image")));
            needs.push(tagged(need(ec2("snapshot", "*")), &tags_of("snapshot")));
            for kind in specifications.keys() {
                needs.push(tag_on_create(kind, ec2(kind, "*")));
            }
        }
        // The source image, in its region; the copy and its snapshots, in
        // the region the call is made in (Service Authorization Reference,
        // CopyImage; EC2 User Guide, "Grant permissions to copy Amazon EC2
        // AMIs").
        ("ec2", "CopyImage") => {
            let source = ec2_in(
                call.param("SourceRegion").unwrap_or(REGION),
                "image",
                call.param("SourceImageId").unwrap_or("*"),
            );
            needs.push(tagged(need(source), &tags_of("image")));
            needs.push(tagged(need(ec2("image", "*")), &tags_of("image")));
            needs.push(tagged(need(ec2("snapshot", "*")), &tags_of("snapshot")));
            for kind in specifications.keys() {
                needs.push(tag_on_create(kind, ec2(kind, "*")));
            }
        }
        ("ec2", "CreateSecurityGroup") => {
            needs.push(tagged(
                need(ec2("security-group", "*")),
                &tags_of("security-group"),
            ));
            needs.push(need(ec2("vpc", call.param("VpcId").unwrap_or("*"))));
            needs.push(tag_on_create("security-group", ec2("security-group", "*")));
        }
        ("ec2", "CreateTags" | "DeleteTags") => {
            for id in call.list("ResourceId", "Resources") {
                needs.push(tagged(need(ec2_id(region, &id)), &call.tags()));
            }
        }
        ("ec2", "TerminateInstances") => {
            needs.extend(
                call.list("InstanceId", "InstanceIds")
                    .iter()
                    .map(|id| need(ec2("instance", id))),
            );
        }
        // One image each (Service Authorization Reference, Amazon EC2: the
        // resource type of each is image).
        (
            "ec2",
            "DeregisterImage"
            | "ModifyImageAttribute"
            | "EnableImageDeregistrationProtection"
            | "DisableImageDeregistrationProtection"
            | "EnableImageDeprecation"
            | "DisableImageDeprecation"
            | "DisableImage"
            | "EnableImage",
        ) => {
            needs.push(need(ec2("image", call.param("ImageId").unwrap_or("*"))));
        }
        ("ec2", "DeleteSnapshot") => {
            needs.push(need(ec2(
                "snapshot",
                call.param("SnapshotId").unwrap_or("*"),
            )));
        }
        ("ec2", "DeleteSecurityGroup") => {
            needs.push(need(ec2(
                "security-group",
                call.param("GroupId").unwrap_or("*"),
            )));
        }
        ("ec2", "CreateLaunchTemplateVersion") => {
            needs.push(need(ec2(
                "launch-template",
                call.param("LaunchTemplateId").unwrap_or("*"),
            )));
        }
        ("ec2", describe) if describe.starts_with("Describe") => needs.push(need("*".into())),
        ("ssm", "GetParameter" | "PutParameter" | "DeleteParameter" | "GetParameterHistory") => {
            needs.push(need(parameter(call.param("Name").unwrap_or_default())));
        }
        ("ssm", "GetParameters") => {
            needs.extend(
                call.list("Names", "Names")
                    .iter()
                    .map(|n| need(parameter(n))),
            );
        }
        ("ssm", "GetParametersByPath") => {
            needs.push(need(parameter(call.param("Path").unwrap_or_default())));
        }
        ("ssm", "SendCommand") => {
            let document = call.param("DocumentName").unwrap_or_default();
            needs.push(need(format!("arn:aws:ssm:{REGION}::document/{document}")));
            needs.extend(
                call.list("InstanceIds", "InstanceIds")
                    .iter()
                    .map(|id| need(ec2("instance", id))),
            );
            // The SSM agent on the builder writes the output with the
            // builder's role (Systems Manager User Guide, "Configure instance
            // permissions required for Systems Manager": s3:PutObject, and
            // s3:GetEncryptionConfiguration for an encrypted bucket).
            if let Some(bucket) = call.param("OutputS3BucketName") {
                let prefix = call.param("OutputS3KeyPrefix").unwrap_or_default();
                let agent = format!("the SSM agent writing the output of {why}");
                builder.push(Need::new(
                    "s3:PutObject",
                    format!("arn:aws:s3:::{bucket}/{prefix}/stdout"),
                    agent.clone(),
                ));
                builder.push(Need::new(
                    "s3:GetEncryptionConfiguration",
                    format!("arn:aws:s3:::{bucket}"),
                    agent,
                ));
            }
        }
        ("ssm", "ListCommands" | "GetCommandInvocation") => needs.push(need("*".into())),
        ("states", "StartExecution" | "ListExecutions") => {
            needs.push(need(
                call.param("stateMachineArn").unwrap_or_default().to_owned(),
            ));
        }
        ("states", "DescribeExecution" | "StopExecution" | "GetExecutionHistory") => {
            needs.push(need(
                call.param("executionArn").unwrap_or_default().to_owned(),
            ));
        }
        (
            "autoscaling",
            "StartInstanceRefresh" | "RollbackInstanceRefresh" | "CancelInstanceRefresh",
        ) => {
            let group = call.param("AutoScalingGroupName").unwrap_or_default();
            needs.push(need(format!(
                "arn:aws:autoscaling:{region}:{ACCOUNT}:autoScalingGroup:00000000-0000-0000-0000-000000000000:autoScalingGroupName/{group}"
            )));
            // Auto Scaling checks that whoever starts a refresh to a launch
            // template could launch it (Auto Scaling User Guide, "Control
            // Amazon EC2 launch template usage in Auto Scaling groups"):
            // RunInstances through the template, and the tags it puts.
            if let Some(template) =
                call.param("DesiredConfiguration.LaunchTemplate.LaunchTemplateId")
            {
                let template = ec2("launch-template", template);
                let check = format!("Auto Scaling's launch check of {why}");
                let launch = |resource: String| {
                    Need::new("ec2:RunInstances", resource, check.clone())
                        .with("ec2:LaunchTemplate", &[template.as_str()])
                        .with("ec2:IsLaunchTemplateResource", &["true"])
                };
                needs.push(launch(template.clone()));
                needs.push(launch(ec2("instance", "*")));
                needs.push(launch(ec2("volume", "*")));
                needs.push(
                    Need::new("ec2:CreateTags", ec2("instance", "*"), check.clone())
                        .with("ec2:CreateAction", &["RunInstances"]),
                );
            }
        }
        ("autoscaling", describe) if describe.starts_with("Describe") => {
            needs.push(need("*".into()))
        }
        ("cloudwatch", "DescribeAlarms") => needs.push(need("*".into())),
        ("cloudwatch", "DescribeAlarmHistory") => {
            let alarm = call.param("AlarmName").unwrap_or_default();
            needs.push(need(format!(
                "arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{alarm}"
            )));
        }
        ("cloudwatch", "PutMetricData") => {
            let namespace = call.param("Namespace").unwrap_or_default();
            needs.push(need("*".into()).with("cloudwatch:namespace", &[namespace]));
        }
        ("s3", "PutObject" | "GetObject" | "DeleteObject") => {
            let (bucket, key) = (
                call.param("Bucket").unwrap_or_default(),
                call.param("Key").unwrap_or_default(),
            );
            needs.push(need(format!("arn:aws:s3:::{bucket}/{key}")));
            // S3 answers a missing key 404 (NoSuchKey) only to a caller that
            // may list the bucket, 403 (AccessDenied) to the others (Amazon
            // S3 API Reference, GetObject, "Permissions"): kiln reads a
            // missing key as "none yet", which needs the 404.
            if action == "GetObject" && call.status == Some(404) {
                needs.push(Need::new(
                    "s3:ListBucket",
                    format!("arn:aws:s3:::{bucket}"),
                    why.clone(),
                ));
            }
        }
        ("sts", "AssumeRole") => {
            needs.push(need(call.param("RoleArn").unwrap_or_default().to_owned()))
        }
        // The Service Authorization Reference's AWS Organizations table
        // names no resource type for the List actions: "*".
        ("organizations", "ListAccounts" | "ListAccountsForParent" | "ListChildren") => {
            needs.push(need("*".into()))
        }
        // The Service Authorization Reference's Amazon InspectorScan table:
        // ScanSbom has no resource type ("Resource": "*").
        ("inspector-scan", "ScanSbom") => needs.push(need("*".into())),
        // The Service Authorization Reference's Amazon Inspector table:
        // ListFindings has no resource type ("Resource": "*").
        ("inspector2", "ListFindings") => needs.push(need("*".into())),
        // STS API Reference, GetCallerIdentity: "No permissions are required".
        ("sts", "GetCallerIdentity") => {}
        _ => panic!("{name} is not modelled here: add the resources AWS checks for it"),
    }
    (needs, builder)
}

/// Every function's calls, and which statements of its role they used.
struct Checked {
    missing: Vec<String>,
    used: BTreeMap<String, BTreeSet<usize>>,
}

fn check(roles: &Roles, calls: &[Call]) -> Checked {
    let builder_role = format!("arn:aws:iam::{ACCOUNT}:role/kiln-builderrole");
    let mut checked = Checked {
        missing: Vec::new(),
        used: BTreeMap::new(),
    };
    let mut record = |who: &str, statements: &[Statement], needs: &[Need]| {
        for need in needs {
            let allowed: Vec<usize> = statements
                .iter()
                .enumerate()
                .filter(|(_, s)| iam::allows(s, need))
                .map(|(i, _)| i)
                .collect();
            if allowed.is_empty() {
                checked.missing.push(format!(
                    "{who}: {} on {} ({:?}) for {}",
                    need.action, need.resource, need.context, need.why
                ));
            }
            checked
                .used
                .entry(who.to_owned())
                .or_default()
                .extend(allowed);
        }
    };
    for call in calls {
        let Some(function) = call.function() else {
            continue;
        };
        let role = roles
            .functions
            .get(function)
            .unwrap_or_else(|| panic!("no function {function} in the template"));
        let (needs, builder) = needs(call, &builder_role);
        record(function, &role.statements, &needs);
        record(
            "BuilderRole",
            &roles.roles["BuilderRole"].statements,
            &builder,
        );
    }
    checked
}

/// Grants no flow here exercises, each with why it stays (the same reason
/// stands beside the statement in the template).
const NOT_EXERCISED: &[(&str, &str, &str)] = &[
    (
        "audit-fleet",
        "sqs:SendMessage",
        "Lambda's own: an asynchronous event the function failed goes to the dead-letter queue",
    ),
    (
        "cleanup-build",
        "sqs:SendMessage",
        "Lambda's own: an asynchronous event the function failed goes to the dead-letter queue",
    ),
    (
        "promote",
        "sqs:SendMessage",
        "Lambda's own: an asynchronous event the function failed goes to the dead-letter queue",
    ),
    (
        "start-build",
        "sqs:SendMessage",
        "Lambda's own: an asynchronous event the function failed goes to the dead-letter queue",
    ),
    (
        "test-image",
        "CreateOnlyKilnBuilderGroups",
        "shares launch-builder's launch statements",
    ),
    (
        "test-image",
        "CreateBuilderGroupsInAnyVpc",
        "shares launch-builder's launch statements",
    ),
    (
        "cleanup-build",
        "MarkImagesOfABuildFailedOnly",
        "only for recipes that keep failed images (image.keep_failed)",
    ),
    (
        "cleanup-build",
        "DeleteOnlyKilnBuilderGroups",
        "only when a VPC's builder group is unused",
    ),
    (
        "create-image",
        "MarkImagesOfABuildFailedOnly",
        "only for an image without ENA that the recipe requires",
    ),
];

#[test]
fn a_role_without_a_grant_its_function_uses_fails_the_check_and_tag_tricks_are_refused() {
    let roles = iam::roles(&[]);
    let launch: Call = serde_json::from_value(json!({
        "key": "kiln-function-launch-builder", "service": "ec2", "action": "RunInstances",
        "params": {"ImageId": "ami-0123456789abcdef0", "SecurityGroupId.1": "sg-0123456789abcdef0",
                   "MetadataOptions.HttpTokens": "required", "IamInstanceProfile.Name": "kiln-builder",
                   "TagSpecification.1.ResourceType": "instance",
                   "TagSpecification.1.Tag.1.Key": "kiln:build-id", "TagSpecification.1.Tag.1.Value": "b1",
                   "TagSpecification.2.ResourceType": "volume",
                   "TagSpecification.2.Tag.1.Key": "kiln:build-id", "TagSpecification.2.Tag.1.Value": "b1"}
    }))
    .expect("a call");
    assert!(
        check(&roles, std::slice::from_ref(&launch))
            .missing
            .is_empty()
    );

    let mut broken = roles.clone();
    let statements = &mut broken
        .functions
        .get_mut("launch-builder")
        .expect("launch-builder")
        .statements;
    statements.retain(|s| s.sid.as_deref() != Some("LaunchOnlyTaggedIMDSv2Instances"));
    let missing = check(&broken, std::slice::from_ref(&launch)).missing;
    assert_eq!(missing.len(), 1, "{missing:#?}");
    assert!(
        missing[0].contains("ec2:RunInstances on arn:aws:ec2:us-east-1:123456789012:instance/*"),
        "{missing:#?}"
    );

    let mut without_imdsv2 = launch;
    without_imdsv2.params["MetadataOptions.HttpTokens"] = "optional".into();
    assert_eq!(
        check(&roles, &[without_imdsv2]).missing.len(),
        1,
        "an instance without IMDSv2 is refused"
    );

    let tag = |function: &str, image: &str, key: &str, value: &str| -> Call {
        serde_json::from_value(json!({
            "key": format!("kiln-function-{function}"), "service": "ec2", "action": "CreateTags",
            "params": {"ResourceId.1": image, "Tag.1.Key": key, "Tag.1.Value": value}
        }))
        .expect("a call")
    };
    let image = "ami-0123456789abcdef0";
    assert!(
        check(&roles, &[tag("test-image", image, "kiln:stage", "tested")])
            .missing
            .is_empty()
    );
    for refused in [
        tag("create-image", image, "kiln:stage", "tested"),
        tag("promote", image, "kiln:stage", "tested"),
        tag("cleanup-build", image, "kiln:stage", "tested"),
        tag("promote", image, "kiln:build-id", "b1"),
        tag("create-image", image, "kiln:build-id", "b1"),
        tag("create-image", "i-0123456789abcdef0", "kiln:build-id", "b1"),
        tag("promote", "snap-0123456789abcdef0", "kiln:recipe", "x"),
    ] {
        assert_eq!(
            check(&roles, std::slice::from_ref(&refused)).missing.len(),
            1,
            "{refused:?} must be refused"
        );
    }
}

#[test]
fn only_the_fleets_roles_may_be_passed_and_only_to_ec2() {
    let fleet = "arn:aws:iam::123456789012:role/web-instances";
    let pass = |role: &str, service: &str| {
        Need::new("iam:PassRole", role, "launch check").with("iam:PassedToService", &[service])
    };
    let none = iam::roles(&[]);
    assert_eq!(
        iam::missing(
            &none.functions["promote"].statements,
            &[pass(fleet, "ec2.amazonaws.com")]
        )
        .len(),
        1
    );
    let configured = iam::roles(&[&format!("FleetInstanceRoles={fleet}")]);
    let statements = &configured.functions["promote"].statements;
    assert!(iam::missing(statements, &[pass(fleet, "ec2.amazonaws.com")]).is_empty());
    for refused in [
        pass("arn:aws:iam::123456789012:role/admin", "ec2.amazonaws.com"),
        pass(fleet, "lambda.amazonaws.com"),
    ] {
        assert_eq!(
            iam::missing(statements, std::slice::from_ref(&refused)).len(),
            1,
            "{refused:?}"
        );
    }
}

/// Every statement of a function's role that `used` does not name, as
/// (function, its Sid, or its actions when it has none).
fn unused(roles: &Roles, used: &BTreeMap<String, BTreeSet<usize>>) -> Vec<(String, String)> {
    let mut unused = Vec::new();
    for (function, role) in &roles.functions {
        for (i, statement) in role.statements.iter().enumerate() {
            if !used.get(function).is_some_and(|u| u.contains(&i)) {
                let name = statement
                    .sid
                    .clone()
                    .unwrap_or_else(|| statement.action.join(","));
                unused.push((function.clone(), name));
            }
        }
    }
    unused
}

#[tokio::test]
async fn every_call_each_function_makes_is_granted_to_its_role() {
    let (calls, member_role) = flows().await;
    let roles = iam::roles(&[
        &format!("PointerAccountRoles={member_role}"),
        "AuditOrganization=all",
        &format!("AuditRoleName={ORGANIZATION_ROLE}"),
    ]);
    let functions: BTreeSet<&str> = calls.iter().filter_map(Call::function).collect();
    let expected: BTreeSet<&str> = roles.functions.keys().map(String::as_str).collect();
    assert_eq!(
        functions, expected,
        "every function made calls in the flows"
    );

    let made: BTreeSet<(&str, String)> = calls
        .iter()
        .filter_map(|c| {
            let action = format!("{}:{}", c.service.as_deref()?, c.action.as_deref()?);
            Some((c.function()?, action))
        })
        .collect();
    for expected in [
        ("launch-builder", "ec2:RunInstances"),
        ("run-ssm-provision", "ssm:SendCommand"),
        ("create-image", "ec2:CreateImage"),
        ("create-image", "ec2:ModifyImageAttribute"),
        ("copy-image", "ec2:CopyImage"),
        ("copy-image", "ec2:ModifyImageAttribute"),
        ("test-image", "ec2:CreateTags"),
        ("test-image", "s3:GetObject"),
        ("test-image", "s3:PutObject"),
        ("promote", "autoscaling:StartInstanceRefresh"),
        ("promote", "autoscaling:RollbackInstanceRefresh"),
        ("promote", "ssm:PutParameter"),
        ("promote", "sts:AssumeRole"),
        ("promote", "ec2:DeregisterImage"),
        ("promote", "ec2:EnableImageDeregistrationProtection"),
        ("promote", "ec2:EnableImageDeprecation"),
        ("promote", "ec2:DisableImage"),
        ("promote", "s3:GetObject"),
        ("promote", "inspector2:ListFindings"),
        ("promote", "monitoring:PutMetricData"),
        ("cleanup-build", "ec2:TerminateInstances"),
        ("cleanup-build", "ec2:DeleteSnapshot"),
        ("cleanup-build", "s3:DeleteObject"),
        ("promote", "s3:DeleteObject"),
        ("start-build", "states:StartExecution"),
        ("start-build", "states:DescribeExecution"),
        ("audit-fleet", "s3:PutObject"),
        ("audit-fleet", "monitoring:PutMetricData"),
        ("audit-fleet", "organizations:ListAccounts"),
        ("audit-fleet", "sts:AssumeRole"),
        ("audit-fleet", "s3:GetObject"),
    ] {
        let found = made.contains(&(expected.0, expected.1.to_owned()));
        assert!(found, "{expected:?} was never made: {made:#?}");
    }

    let checked = check(&roles, &calls);
    assert!(
        checked.missing.is_empty(),
        "not granted:\n{}",
        checked.missing.join("\n")
    );

    let unused = unused(&roles, &checked.used);
    let stale: Vec<_> = NOT_EXERCISED
        .iter()
        .filter(|(f, s, _)| !unused.iter().any(|(uf, us)| uf == f && us == s))
        .collect();
    assert!(
        stale.is_empty(),
        "exercised after all, or gone: take them out of NOT_EXERCISED: {stale:#?}"
    );
    let mut unexplained = Vec::new();
    for (function, sid) in unused {
        if !NOT_EXERCISED
            .iter()
            .any(|(f, s, _)| *f == function && *s == sid)
        {
            unexplained.push(format!("{function}: {sid}"));
        }
    }
    assert!(
        unexplained.is_empty(),
        "granted, never used, and no reason given (remove them, or say why in NOT_EXERCISED and beside the statement):\n{}",
        unexplained.join("\n")
    );
}

/// Polls `check` every 100 ms for up to 120 s.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..1200 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen in 120 s");
}

/// Runs function `name` as the deployment would, for one `event`; returns
/// its answer, which must not be an error.
fn run(
    emulator: &Emulator,
    copy: &RecipeCopy,
    name: &str,
    event: &Value,
    extra: &[(&'static str, String)],
) -> Value {
    let mut env = emulator.function_env(name, copy.root.path());
    // Every function of the stack has the output bucket (Globals).
    env.push(("KILN_OUTPUT_BUCKET", OUTPUT_BUCKET.to_owned()));
    env.extend_from_slice(extra);
    let (ok, answer) = invoke_function(name, &env, event);
    assert!(ok, "{name} failed: {answer:#}");
    answer
}

/// Runs the promote Lambda's move `request`, then confirms the write in
/// later invocations (as the release state machine does after its Wait)
/// until SSM has accepted it.
fn moved(emulator: &Emulator, copy: &RecipeCopy, request: &Value) -> Value {
    let mut answer = run(emulator, copy, "promote", request, &[]);
    for _ in 0..30 {
        if answer["status"] != "written" {
            return answer;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        let confirm = json!({"action": "confirm", "written": answer});
        answer = run(emulator, copy, "promote", &confirm, &[]);
    }
    panic!("SSM never decided on the move: {answer:#}");
}

/// kiln's flows, each function doing its job as the deployment would have
/// it do: a scheduled build and its release through staging and prod (the
/// prod canary meets an alarm and everything goes back), a build that
/// failed and its cleanup, the sweep, the end of a stopped build, a security
/// finding, every pointer move and retention, and the fleet audit. Returns
/// every call the functions made, and the member account's pointer role.
async fn flows() -> (Vec<Call>, String) {
    let copy = RecipeCopy::ubuntu_base();
    copy.edit("recipe.toml", |text| {
        format!("{text}\n[[release]]\nchannel = \"staging\"\n[[release]]\nchannel = \"prod\"\nalarms = [\"{ALARM}\"]\n")
    });
    let emulator = Emulator::start_pipeline_with_env(
        copy.root.path(),
        &[],
        &[("KILN_OUTPUT_BUCKET", OUTPUT_BUCKET)],
    )
    .await;
    // The test instance's package listing (the image's SBOM).
    emulator.print_packages("os\tubuntu\t24.04\tnoble\npkg\tbash\t5.2.21-2ubuntu4\tamd64\t\tii \n");
    // Tested images go to a second region too, shared with another account,
    // which keeps the channels' pointers too.
    emulator.distribute(&copy, "eu-west-1");
    let member_role = emulator.point_members(&copy);
    let ctx = emulator.context(copy.root.path());
    emulator.bucket(OUTPUT_BUCKET).await;
    alarm(&ctx, ALARM).await;
    // The image the channels name before this night's build, and an older
    // one nothing needs any more (retention's).
    distributed_image(&ctx, &copy.load(), "iam-spare", "eu-west-1").await;
    // Two more retention meets later in their lives: one past its
    // deprecation time (disabled next), one disabled long ago (deregistered).
    let retired = distributed_image(&ctx, &copy.load(), "iam-retired", "eu-west-1").await;
    let gone = distributed_image(&ctx, &copy.load(), "iam-gone", "eu-west-1").await;
    let (old, old_copy) = distributed_image(&ctx, &copy.load(), "iam-old", "eu-west-1").await;
    let old_copy = old_copy.to_string();
    for channel in ["staging", "prod"] {
        let why = Why {
            reason: "before the flows",
            actor: "tests",
        };
        promotion::promote(
            &ctx,
            &recipe(),
            &kiln_testkit::channel(channel),
            &old,
            why,
            false,
        )
        .await
        .expect("promote the old image");
    }
    let old = old.to_string();
    auto_scaling_group(&ctx, "staging-web", &old, &opted_in("staging", None)).await;
    // Staging has groups in the distribution region too: the release rolls them there.
    let away = ctx.in_region("eu-west-1");
    let staging_away =
        auto_scaling_group(&away, "staging-eu", &old_copy, &opted_in("staging", None)).await;
    let canary = auto_scaling_group(&ctx, "canary", &old, &opted_in("prod", Some("0"))).await;
    auto_scaling_group(&ctx, "web", &old, &opted_in("prod", None)).await;

    // The nightly schedule starts a build; it releases its image.
    let started = run(
        &emulator,
        &copy,
        "start-build",
        &json!({"recipe": RECIPE, "reason": "schedule", "wait_seconds": 0}),
        &[],
    );
    let build = started[0]["build"].as_str().expect("a build").to_owned();
    // The release check an hour later, while the build runs: the same build.
    let again = run(
        &emulator,
        &copy,
        "start-build",
        &json!({"recipe": RECIPE, "reason": "release", "wait_seconds": 0}),
        &[],
    );
    assert_eq!(again[0]["build"], build.as_str(), "{again:#}");
    eventually("the prod canary's new version", || async {
        template_versions(&ctx, &canary).await.len() == 2
    })
    .await;
    assert_eq!(
        template_versions(&away, &staging_away).await.len(),
        2,
        "staging rolled in eu-west-1 before prod began"
    );
    set_alarm(&ctx, ALARM, StateValue::Alarm).await;
    let sfn = emulator.sfn();
    eventually("the release's end", || async {
        let releases = sfn
            .list_executions()
            .state_machine_arn(
                emulator
                    .seeded
                    .release_state_machine_arn
                    .as_deref()
                    .expect("release machine"),
            )
            .send()
            .await
            .expect("ListExecutions");
        releases
            .executions()
            .iter()
            .any(|e| e.status().as_str() != "RUNNING")
    })
    .await;
    set_alarm(&ctx, ALARM, StateValue::Ok).await;

    // A build that failed after it launched its builder and made its image.
    let trigger = json!({"recipe": RECIPE, "build_id": "iam-failed", "wait_seconds": 0});
    let mut launch = trigger.clone();
    launch["source"] = serde_json::to_value(source()).expect("source");
    let builder = run(&emulator, &copy, "launch-builder", &launch, &[]);
    let mut image = launch.clone();
    image["action"] = "start".into();
    image["builder"] = builder;
    run(&emulator, &copy, "create-image", &image, &[]);
    run(&emulator, &copy, "cleanup-build", &trigger, &[]);
    // The sweep, and the end of an execution that was stopped.
    run(
        &emulator,
        &copy,
        "cleanup-build",
        &json!({"action": "sweep"}),
        &[],
    );
    let machine = emulator.pipeline();
    let execution = format!(
        "{}:{build}",
        machine.replace(":stateMachine:", ":execution:")
    );
    run(
        &emulator,
        &copy,
        "cleanup-build",
        &json!({
        "version": "0", "id": "e1", "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states", "account": ACCOUNT, "time": "2026-11-30T02:00:00Z", "region": REGION,
        "resources": [], "detail": {"executionArn": execution, "stateMachineArn": machine,
        "name": build, "status": "ABORTED", "input": json!({"recipe": RECIPE}).to_string()}}),
        &[],
    );
    // A security advisory forces a build.
    run(
        &emulator,
        &copy,
        "start-build",
        &json!({"detail-type": "Security Update Available", "source": "kiln", "detail": {"recipe": RECIPE}}),
        &[],
    );

    // Every move of a channel by hand.
    let tested = pointer(&ctx, "staging")
        .await
        .expect("staging names the new image");
    let promote = json!({"action": "promote", "recipe": RECIPE, "channel": "qa", "image_id": tested, "reason": "iam flows"});
    assert_eq!(moved(&emulator, &copy, &promote)["status"], "moved");
    moved(
        &emulator,
        &copy,
        &json!({"action": "promote", "recipe": RECIPE, "channel": "qa", "image_id": tested, "reason": "again", "force": true}),
    );
    run(
        &emulator,
        &copy,
        "promote",
        &json!({"action": "demote", "recipe": RECIPE, "channel": "qa", "reason": "iam flows"}),
        &[],
    );
    assert_eq!(
        moved(
            &emulator,
            &copy,
            &json!({"action": "rollback", "recipe": RECIPE, "channel": "staging", "reason": "iam flows"}),
        )["status"],
        "moved"
    );
    // A security release's remediation watch: its CVE's last finding on
    // the recipe's instances is closed.
    let now = jiff::Timestamp::now();
    let seen = now - jiff::SignedDuration::from_hours(5);
    emulator.queue_findings(&[json!([inspector_finding(
        "CVE-2024-6387",
        "i-0123456789abcdef0",
        tested.as_str(),
        "CLOSED",
        seen,
        now,
    )])]);
    let watch = json!({
        "recipe": RECIPE, "image_id": tested, "cves": ["CVE-2024-6387"],
        "regions": [emulator.seeded.region], "first_seen": seen, "started_at": now,
        "deadline_hours": 72, "deadline": now + jiff::SignedDuration::from_hours(67),
        "check_seconds": 1,
    });
    let watched = run(
        &emulator,
        &copy,
        "promote",
        &json!({"action": "remediation", "remediation": watch}),
        &[],
    );
    assert_eq!(watched["status"], "complete", "{watched:#}");
    // Retention before any audit: it finds no report (S3's 404 to a role
    // that may list the bucket).
    let before = run(
        &emulator,
        &copy,
        "promote",
        &json!({"action": "prune", "recipe": RECIPE, "keep": 1, "dry_run": true}),
        &[("KILN_AUDIT_BUCKET", OUTPUT_BUCKET.to_owned())],
    );
    assert_eq!(before["audit"]["report"], Value::Null, "{before}");
    // The daily fleet audit, with its reports and metrics.
    run(
        &emulator,
        &copy,
        "audit-fleet",
        &json!({"channel": "prod"}),
        &[("KILN_AUDIT_BUCKET", OUTPUT_BUCKET.to_owned())],
    );

    // The audit state machine's steps over an organization with one member.
    let organizations = aws_sdk_organizations::Client::new(&emulator.config);
    organizations
        .create_organization()
        .send()
        .await
        .expect("CreateOrganization");
    organizations
        .create_account()
        .account_name("member")
        .email("member@example.com")
        .send()
        .await
        .expect("CreateAccount");
    let audit_env = [
        ("KILN_AUDIT_BUCKET", OUTPUT_BUCKET.to_owned()),
        ("KILN_AUDIT_ORGANIZATION", "all".to_owned()),
        ("KILN_AUDIT_ROLE_NAME", ORGANIZATION_ROLE.to_owned()),
    ];
    let planned = run(
        &emulator,
        &copy,
        "audit-fleet",
        &json!({"action": "plan", "run": "iam-flows", "request": {"channel": "prod"}}),
        &audit_env,
    );
    assert_eq!(planned["accounts"], 2, "{planned}");
    let items = emulator
        .s3()
        .get_object()
        .bucket(OUTPUT_BUCKET)
        .key("kiln/audit/runs/iam-flows/items.json")
        .send()
        .await
        .expect("the planned accounts")
        .body
        .collect()
        .await
        .expect("their body")
        .into_bytes();
    let items: Value = serde_json::from_slice(&items).expect("JSON");
    run(
        &emulator,
        &copy,
        "audit-fleet",
        &json!({"action": "part", "run": "iam-flows", "request": planned["request"],
            "home": planned["home"], "items": items}),
        &audit_env,
    );
    run(
        &emulator,
        &copy,
        "audit-fleet",
        &json!({"action": "fold", "run": "iam-flows"}),
        &audit_env,
    );

    // Retention, which reads the audit's report.
    let day = std::time::Duration::from_secs(86_400);
    let long_ago = (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * 30)).to_string();
    for (region, image) in [(REGION, &retired.0), ("eu-west-1", &retired.1)] {
        emulator.deprecated_since(image.as_str(), region, day);
    }
    for (region, image) in [(REGION, &gone.0), ("eu-west-1", &gone.1)] {
        let there = ctx.in_region(region);
        there
            .ec2()
            .disable_image()
            .image_id(image.as_str())
            .send()
            .await
            .expect("DisableImage");
        there
            .ec2()
            .create_tags()
            .resources(image.as_str())
            .tags(kiln::tags::tag("kiln:disabled-at", &long_ago))
            .send()
            .await
            .expect("CreateTags");
    }
    run(
        &emulator,
        &copy,
        "promote",
        &json!({"action": "prune", "recipe": RECIPE, "keep": 1}),
        &[("KILN_AUDIT_BUCKET", OUTPUT_BUCKET.to_owned())],
    );

    let calls = serde_json::from_value(emulator.calls()).expect("the recorded calls");
    (calls, member_role)
}

#[test]
fn the_config_path_queries_only_this_accounts_aggregators_and_only_when_one_is_named() {
    let query = |account: &str| {
        Need::new(
            "config:SelectAggregateResourceConfig",
            format!(
                "arn:aws:config:{REGION}:{account}:config-aggregator/config-aggregator-abcd1234"
            ),
            "the Config path",
        )
    };
    let without = iam::roles(&[]);
    assert!(
        !iam::missing(
            &without.functions["audit-fleet"].statements,
            &[query(ACCOUNT)]
        )
        .is_empty()
    );
    let with = iam::roles(&["AuditConfigAggregator=org-aggregator"]);
    let statements = &with.functions["audit-fleet"].statements;
    assert!(iam::missing(statements, &[query(ACCOUNT)]).is_empty());
    assert!(!iam::missing(statements, &[query("210987654321")]).is_empty());
}

#[test]
fn each_role_reaches_no_further_than_its_job() {
    let roles = iam::roles(&[]);
    let allowed =
        |statements: &[Statement], need: Need| iam::missing(statements, &[need]).is_empty();
    let builder = &roles.roles["BuilderRole"].statements;
    let bucket = "arn:aws:s3:::kiln-outputbucket";
    assert!(allowed(
        builder,
        Need::new(
            "s3:PutObject",
            format!("{bucket}/kiln/builds/ubuntu-base/b1/setup/stdout"),
            "output"
        )
    ));
    for (action, resource) in [
        ("s3:PutObject", format!("{bucket}/kiln/audit/latest.json")),
        (
            "s3:PutObject",
            format!("{bucket}/kiln/ubuntu-base/b1/setup/stdout"),
        ),
        (
            "logs:PutLogEvents",
            format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/kiln/kiln:*"),
        ),
    ] {
        assert!(
            !allowed(builder, Need::new(action, &resource, "builder")),
            "the builder may not {action} {resource}"
        );
    }

    let test = &roles.functions["test-image"].statements;
    for (action, resource) in [
        ("s3:PutObject", format!("{bucket}/kiln/audit/latest.json")),
        (
            "s3:PutObject",
            format!("{bucket}/kiln-history/audit/prod/d.json"),
        ),
        ("s3:GetObject", format!("{bucket}/kiln/audit/latest.json")),
    ] {
        assert!(
            !allowed(test, Need::new(action, &resource, "test")),
            "test-image may not {action} {resource}"
        );
    }
    let tag_image = |key: &str| {
        Need::new("ec2:CreateTags", ec2("image", "ami-1"), "tag").with("aws:TagKeys", &[key])
    };
    assert!(allowed(test, tag_image("kiln:sbom-sha256")));
    assert!(allowed(test, tag_image("kiln:findings")));
    assert!(
        !allowed(test, tag_image("kiln:channel")),
        "test-image tags the SBOM's digest and findings, not a channel"
    );

    let launch = &roles.functions["launch-builder"].statements;
    let group = |tags: &[(&str, &str)]| {
        let mut need = Need::new(
            "ec2:CreateSecurityGroup",
            ec2("security-group", "*"),
            "group",
        );
        for (k, v) in tags {
            need = need.with(&format!("aws:RequestTag/{k}"), &[v]);
        }
        need
    };
    assert!(allowed(launch, group(&[("kiln:role", "builder-sg")])));
    assert!(
        !allowed(launch, group(&[])),
        "a group kiln does not tag as its own"
    );

    let promote = &roles.functions["promote"].statements;
    let run = Need::new("ec2:RunInstances", ec2("instance", "*"), "launch");
    assert!(
        !allowed(promote, run.clone()),
        "promote launches nothing itself"
    );
    let through = |template: &str| {
        run.clone()
            .with("ec2:LaunchTemplate", &[template])
            .with("ec2:IsLaunchTemplateResource", &["true"])
    };
    assert!(allowed(
        promote,
        through(&ec2("launch-template", "lt-0123456789abcdef0"))
    ));
    let overridden = run
        .clone()
        .with(
            "ec2:LaunchTemplate",
            &[&ec2("launch-template", "lt-0123456789abcdef0")],
        )
        .with("ec2:IsLaunchTemplateResource", &["false"]);
    assert!(
        !allowed(promote, overridden),
        "nothing the template says may be overridden"
    );
    let pointer_role = "arn:aws:iam::210987654321:role/kiln-pointers";
    let assume = |role: &str| Need::new("sts:AssumeRole", role, "member pointers");
    assert!(
        !allowed(promote, assume(pointer_role)),
        "no pointer role named, none assumed"
    );
    let named = iam::roles(&[&format!("PointerAccountRoles={pointer_role}")]);
    let promote_named = &named.functions["promote"].statements;
    assert!(allowed(promote_named, assume(pointer_role)));
    assert!(
        !allowed(
            promote_named,
            assume("arn:aws:iam::210987654321:role/OrganizationAccountAccessRole")
        ),
        "only the roles named"
    );

    let key = format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let grant = |for_aws: &str| {
        Need::new("kms:CreateGrant", &key, "EBS").with("kms:GrantIsForAWSResource", &[for_aws])
    };
    assert!(!allowed(launch, grant("true")), "no KMS without EbsKmsKeys");
    let keyed = iam::roles(&[&format!("EbsKmsKeys={key}")]);
    let launch = &keyed.functions["launch-builder"].statements;
    assert!(allowed(launch, grant("true")));
    assert!(
        !allowed(launch, grant("false")),
        "grants only for AWS resources"
    );
    let decrypt = |via: &str| Need::new("kms:Decrypt", &key, "EBS").with("kms:ViaService", &[via]);
    assert!(allowed(
        launch,
        decrypt(&format!("ec2.{REGION}.amazonaws.com"))
    ));
    assert!(
        !allowed(launch, decrypt("s3.us-east-1.amazonaws.com")),
        "through EC2 only"
    );
}
