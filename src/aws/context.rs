//! The clients and the settings every step reads once at start.
//!
//! Clients come from the standard AWS environment (`AWS_REGION`,
//! `AWS_ENDPOINT_URL`, profiles, roles), so the same code runs against real
//! AWS and the local emulator.

use std::path::PathBuf;
use std::sync::OnceLock;

use aws_config::SdkConfig;

use super::sdk::Answer;
use crate::error::{Error, Result};
use crate::ids::RecipeName;
use crate::recipe::{Recipe, SourceLookup};

/// Where recipes live unless `KILN_RECIPE_ROOT` says otherwise.
pub const DEFAULT_RECIPE_ROOT: &str = "images";

/// Settings read once at start (environment for Lambdas, flags for the CLI).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// Directory holding one directory per recipe (`KILN_RECIPE_ROOT`).
    pub recipe_root: PathBuf,
    /// Replaces every recipe's `source.parameter`, not a `name_pattern` (`KILN_SOURCE_PARAMETER`): for
    /// a private mirror of the source parameter, or an emulator that reserves `/aws`.
    pub source_parameter: Option<String>,
    /// The instance profile of builders and test instances whose recipe
    /// names none (`KILN_INSTANCE_PROFILE`): the deployment's own.
    pub instance_profile: Option<String>,
    /// S3 bucket for Run Command output (`KILN_OUTPUT_BUCKET`); without one the
    /// API returns only the first 24,000 characters of a command's stdout.
    pub output_bucket: Option<String>,
    /// The build state machine (`KILN_STATE_MACHINE_ARN`): triggers start
    /// builds on it, the sweep asks it which builds still run.
    pub state_machine_arn: Option<String>,
    /// The release state machine (`KILN_RELEASE_STATE_MACHINE_ARN`):
    /// `kiln rollout` starts and stops releases on it.
    pub release_state_machine_arn: Option<String>,
    /// Security findings within this many seconds start one build per recipe
    /// (`KILN_SECURITY_WINDOW_SECONDS`; default 6 h).
    pub security_window_seconds: Option<u64>,
    /// The base poll interval of builds a trigger starts, when its input does
    /// not say (`KILN_WAIT_SECONDS`; default the state machine's, 30 s).
    pub wait_seconds: Option<u32>,
    /// S3 bucket the `audit-fleet` Lambda writes its reports to
    /// (`KILN_AUDIT_BUCKET`); without one it only puts metrics.
    pub audit_bucket: Option<String>,
    /// Regions an audit covers when its request names none
    /// (`KILN_AUDIT_REGIONS`, comma separated; `all` for every enabled one).
    pub audit_regions: Vec<String>,
    /// Roles an audit assumes when its request names none
    /// (`KILN_AUDIT_ROLES`, comma separated ARNs).
    pub audit_roles: Vec<String>,
    /// An audit takes its accounts from AWS Organizations when its request
    /// names no roles (`KILN_AUDIT_ORGANIZATION`: `all` for every account of
    /// the organization, or comma separated root and OU ids).
    pub audit_organization: Vec<String>,
    /// The role an organization audit assumes in each account
    /// (`KILN_AUDIT_ROLE_NAME`).
    pub audit_role_name: Option<String>,
    /// An audit reads the instances from this AWS Config aggregator when its
    /// request names no accounts (`KILN_AUDIT_CONFIG_AGGREGATOR`).
    pub audit_config_aggregator: Option<String>,
}

impl Settings {
    /// Reads the settings from the environment.
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            recipe_root: var("KILN_RECIPE_ROOT")
                .map_or_else(|| DEFAULT_RECIPE_ROOT.into(), PathBuf::from),
            source_parameter: var("KILN_SOURCE_PARAMETER"),
            instance_profile: var("KILN_INSTANCE_PROFILE"),
            output_bucket: var("KILN_OUTPUT_BUCKET"),
            state_machine_arn: var("KILN_STATE_MACHINE_ARN"),
            release_state_machine_arn: var("KILN_RELEASE_STATE_MACHINE_ARN"),
            security_window_seconds: var("KILN_SECURITY_WINDOW_SECONDS")
                .and_then(|v| v.parse().ok()),
            wait_seconds: var("KILN_WAIT_SECONDS").and_then(|v| v.parse().ok()),
            audit_bucket: var("KILN_AUDIT_BUCKET"),
            audit_regions: list(var("KILN_AUDIT_REGIONS")),
            audit_roles: list(var("KILN_AUDIT_ROLES")),
            audit_organization: list(var("KILN_AUDIT_ORGANIZATION")),
            audit_role_name: var("KILN_AUDIT_ROLE_NAME"),
            audit_config_aggregator: var("KILN_AUDIT_CONFIG_AGGREGATOR"),
        }
    }

    /// How `recipe`'s source image is found: the deployment's parameter
    /// replaces the recipe's, not a name pattern.
    pub fn source_lookup<'a>(&'a self, recipe: &'a Recipe) -> SourceLookup<'a> {
        match (recipe.file.source.lookup(), &self.source_parameter) {
            (SourceLookup::Parameter(_), Some(parameter)) => SourceLookup::Parameter(parameter),
            (lookup, _) => lookup,
        }
    }

    /// The instance profile `recipe`'s instances launch with: the recipe's,
    /// else the deployment's; an error before anything is launched when
    /// neither names one.
    pub fn instance_profile<'a>(&'a self, recipe: &'a Recipe) -> Result<&'a str> {
        recipe
            .file
            .builder
            .instance_profile
            .as_deref()
            .or(self.instance_profile.as_deref())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "recipe {} names no builder.instance_profile and the deployment sets no \
                     KILN_INSTANCE_PROFILE: the builder needs an instance profile with SSM access",
                    recipe.name
                ))
            })
    }
}

/// The items of a comma-separated list, trimmed, empty ones dropped.
fn list(value: Option<String>) -> Vec<String> {
    value
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The clients and settings a step works with. Cheap to share: clients are
/// pooled. Each client is made on its first use: a function builds only the
/// clients it calls (each takes about half a millisecond of a cold start).
#[derive(Debug, Clone)]
pub struct Context {
    clients: Clients,
    /// The configuration the clients come from, for work that makes its own
    /// (an audit, per region and account).
    pub config: SdkConfig,
    /// Settings.
    pub settings: Settings,
}

/// The clients of a [`Context`]: each empty until first used, or given (a
/// test's mocked clients).
#[derive(Debug, Clone, Default)]
pub struct Clients {
    /// EC2 Auto Scaling.
    pub autoscaling: OnceLock<aws_sdk_autoscaling::Client>,
    /// CloudWatch (release gates).
    pub cloudwatch: OnceLock<aws_sdk_cloudwatch::Client>,
    /// EC2.
    pub ec2: OnceLock<aws_sdk_ec2::Client>,
    /// Amazon Inspector (findings, for the remediation watch).
    pub inspector2: OnceLock<aws_sdk_inspector2::Client>,
    /// Amazon Inspector's SBOM scan (`inspector-scan`).
    pub inspector_scan: OnceLock<aws_sdk_inspectorscan::Client>,
    /// Systems Manager.
    pub ssm: OnceLock<aws_sdk_ssm::Client>,
    /// Step Functions.
    pub sfn: OnceLock<aws_sdk_sfn::Client>,
}

/// The accessor of one client, made from the context's configuration on first use.
macro_rules! client {
    ($name:ident, $sdk:ident, $service:literal) => {
        #[doc = concat!("The ", $service, " client.")]
        pub fn $name(&self) -> &$sdk::Client {
            self.clients
                .$name
                .get_or_init(|| $sdk::Client::new(&self.config))
        }
    };
}

impl Context {
    /// A context whose clients come from `config`, each when first used.
    pub fn new(config: &SdkConfig, settings: Settings) -> Self {
        Self::with_clients(config, settings, Clients::default())
    }

    /// A context with `clients` given (the rest from `config` when first used).
    pub fn with_clients(config: &SdkConfig, settings: Settings, clients: Clients) -> Self {
        Self {
            clients,
            config: config.clone(),
            settings,
        }
    }

    client!(autoscaling, aws_sdk_autoscaling, "EC2 Auto Scaling");
    client!(cloudwatch, aws_sdk_cloudwatch, "CloudWatch (release gates)");
    client!(ec2, aws_sdk_ec2, "EC2");
    client!(inspector2, aws_sdk_inspector2, "Inspector");
    client!(inspector_scan, aws_sdk_inspectorscan, "Inspector Scan");
    client!(ssm, aws_sdk_ssm, "Systems Manager");
    client!(sfn, aws_sdk_sfn, "Step Functions");

    /// Clients and settings from the standard AWS environment.
    pub async fn from_env() -> Self {
        let config = aws_config::load_from_env().await;
        Self::new(&config, Settings::from_env())
    }

    /// Like [`Context::from_env`], for a Lambda: HTTPS trusts the root
    /// certificates compiled in unless the environment names others (see
    /// `roots`), which keeps the system's certificate store out of a cold start.
    pub async fn for_lambda() -> Self {
        let mut loader = aws_config::from_env();
        if let Some(client) = super::roots::http_client() {
            loader = loader.http_client(client);
        }
        Self::new(&loader.load().await, Settings::from_env())
    }

    /// The SSM parameter `name` (or `name:version`), or `None` when it (or
    /// that version) does not exist.
    pub(crate) async fn parameter(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_ssm::types::Parameter>> {
        let found = self
            .ssm()
            .get_parameter()
            .name(name)
            .send()
            .await
            .or_missing("GetParameter", |err| {
                err.as_service_error().is_some_and(|e| {
                    e.is_parameter_not_found() || e.is_parameter_version_not_found()
                })
            })?;
        Ok(found.and_then(|output| output.parameter))
    }

    /// The same context in `region` (of the same account and settings).
    pub fn in_region(&self, region: &str) -> Self {
        let config = self
            .config
            .to_builder()
            .region(aws_config::Region::new(region.to_owned()))
            .build();
        Self::new(&config, self.settings.clone())
    }

    /// The region this context calls, or [`Error::InvalidInput`] when none
    /// is configured.
    pub fn region(&self) -> Result<String> {
        self.config
            .region()
            .map(ToString::to_string)
            .ok_or_else(|| Error::InvalidInput("no AWS region is configured (AWS_REGION)".into()))
    }

    /// Every recipe of the recipe root that loads (a directory that does not
    /// hold a valid recipe is skipped).
    pub fn recipes(&self) -> Vec<Recipe> {
        let Ok(entries) = std::fs::read_dir(&self.settings.recipe_root) else {
            return Vec::new();
        };
        entries
            .filter_map(|entry| Recipe::load(&entry.ok()?.path()).ok())
            .collect()
    }

    /// Loads the recipe called `name` from the recipe root.
    pub fn recipe(&self, name: &RecipeName) -> Result<Recipe> {
        Recipe::load(&self.settings.recipe_root.join(name.as_str()))
    }
}
