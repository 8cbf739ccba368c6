//! Contexts whose clients answer from `aws-smithy-mocks` rules, for the
//! error paths the emulator cannot produce (throttling, capacity, command
//! failures), and the error answers AWS gives.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_ec2::config::Region;
use aws_smithy_mocks::{Rule, RuleMode, mock_client};
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use kiln::aws::{Clients, Context, Settings};

/// A context whose clients answer from mock rules (matched in any order) and
/// retry like the SDK's standard mode, without the waiting; recipes are read
/// from `recipe_root`.
pub fn mocked(recipe_root: &Path, ec2: &[&Rule], ssm: &[&Rule]) -> Context {
    mocked_with(
        recipe_root,
        &Mocks {
            ec2,
            ssm,
            ..Mocks::default()
        },
    )
}

/// Mock rules per client, for [`mocked_with`].
#[derive(Default)]
pub struct Mocks<'a> {
    /// EC2.
    pub ec2: &'a [&'a Rule],
    /// Systems Manager.
    pub ssm: &'a [&'a Rule],
    /// EC2 Auto Scaling.
    pub autoscaling: &'a [&'a Rule],
    /// CloudWatch.
    pub cloudwatch: &'a [&'a Rule],
    /// Inspector.
    pub inspector2: &'a [&'a Rule],
    /// Inspector Scan.
    pub inspector_scan: &'a [&'a Rule],
}

/// Like [`mocked`], with rules for every client that has some.
pub fn mocked_with(recipe_root: &Path, mocks: &Mocks<'_>) -> Context {
    let retry = RetryConfig::standard()
        .with_max_attempts(3)
        .with_initial_backoff(Duration::from_millis(1));
    // A client answering from `rules`, retrying as above.
    macro_rules! mocked {
        ($sdk:ident, $rules:expr) => {
            OnceLock::from(mock_client!($sdk, RuleMode::MatchAny, $rules, |c| c
                .retry_config(retry.clone())))
        };
    }
    let clients = Clients {
        autoscaling: mocked!(aws_sdk_autoscaling, mocks.autoscaling),
        cloudwatch: mocked!(aws_sdk_cloudwatch, mocks.cloudwatch),
        ec2: mocked!(aws_sdk_ec2, mocks.ec2),
        inspector2: mocked!(aws_sdk_inspector2, mocks.inspector2),
        inspector_scan: mocked!(aws_sdk_inspectorscan, mocks.inspector_scan),
        ssm: mocked!(aws_sdk_ssm, mocks.ssm),
        sfn: OnceLock::from(mock_client!(aws_sdk_sfn, RuleMode::MatchAny, &[])),
    };
    // Clients made from it (an audit's) reach nothing.
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .region(Region::new("us-east-1"))
        .build();
    let settings = Settings {
        recipe_root: recipe_root.to_owned(),
        instance_profile: Some(crate::fixtures::INSTANCE_PROFILE.to_owned()),
        ..Settings::default()
    };
    Context::with_clients(&config, settings, clients)
}

/// The wire protocols of the services kiln's tests mock, for their errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// EC2's query protocol (`<Response><Errors>`).
    Ec2,
    /// AWS JSON 1.1 (Systems Manager, Step Functions).
    Json,
    /// The AWS query protocol (Auto Scaling, CloudWatch).
    Query,
}

/// A throttling answer, as the service of `protocol` gives it.
pub fn throttled(protocol: Protocol) -> Response {
    let (status, body) = match protocol {
        Protocol::Ec2 => (
            503,
            "<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit \
             exceeded.</Message></Error></Errors><RequestID>1</RequestID></Response>",
        ),
        Protocol::Json => (
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        Protocol::Query => (
            400,
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>\
             <Message>Rate exceeded</Message></Error></ErrorResponse>",
        ),
    };
    Response::new(
        StatusCode::try_from(status).expect("status"),
        SdkBody::from(body),
    )
}
