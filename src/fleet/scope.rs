//! What an audit covers: its scope as asked for (by the `audit-fleet`
//! Lambda's event or the CLI's flags) and as checked, one target (a region of
//! an account), and the limits and defaults it runs with.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::aws::Settings;
use crate::error::{Error, Result};
use crate::ids::Channel;

/// Instances per `DescribeInstances` page (the API's maximum).
pub const INSTANCE_PAGE: i32 = 1000;
/// Image ids per `DescribeImages` call (values per filter).
pub const IMAGE_BATCH: usize = 200;
/// Pointers per `GetParameters` call (the API's maximum).
pub const POINTER_BATCH: usize = 10;
/// Regions and accounts audited at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 8;
/// The instance tag that names a service unless told otherwise.
pub const DEFAULT_SERVICE_TAG: &str = "Service";
/// Attempts per call, throttling included, with the SDK's exponential backoff.
pub(super) const MAX_ATTEMPTS: u32 = 8;
/// The session name of assumed roles, as CloudTrail shows it.
pub(super) const SESSION_NAME: &str = "kiln-audit";

/// Which regions to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regions {
    /// The configured region only.
    Configured,
    /// These regions (in every account).
    List(Vec<String>),
    /// Every region enabled in each account.
    AllEnabled,
}

/// The accounts an AWS Organization audit covers: the active accounts of the
/// organization, or of the roots and OUs named (nested OUs included), each
/// seen through one role name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    /// Roots and OUs whose accounts are audited; none means the whole organization.
    pub parents: Vec<String>,
    /// The role assumed in each account (`arn:PARTITION:iam::ACCOUNT:role/NAME`).
    pub role_name: String,
}

/// What to audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The regions.
    pub regions: Regions,
    /// Roles to assume, one per other account; the current account is always audited.
    pub account_roles: Vec<String>,
    /// Other accounts taken from AWS Organizations instead of `account_roles`.
    pub organization: Option<Organization>,
    /// The AWS Config aggregator whose recorded instances replace the
    /// per-region sweep (the aggregator names the accounts).
    pub config_aggregator: Option<String>,
    /// The channel whose pointers instances are compared against.
    pub channel: Channel,
    /// The instance tag naming the service an instance belongs to.
    pub service_tag: String,
    /// Regions audited at once (at least 1).
    pub concurrency: usize,
}

impl Scope {
    /// The configured region of the current account, against `channel`.
    pub fn new(channel: Channel) -> Self {
        Self {
            regions: Regions::Configured,
            account_roles: Vec::new(),
            organization: None,
            config_aggregator: None,
            channel,
            service_tag: DEFAULT_SERVICE_TAG.to_owned(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// An audit as asked for by the `audit-fleet` Lambda's event or the CLI's
/// flags; every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Request {
    /// Regions to audit; none means the configured region.
    pub regions: Vec<String>,
    /// Every region enabled in each account (not with `regions`).
    pub all_regions: bool,
    /// Roles to assume in other accounts.
    pub account_roles: Vec<String>,
    /// Take the other accounts from AWS Organizations (not with `account_roles`).
    pub organization: bool,
    /// Roots and OUs whose accounts an organization audit covers (implies
    /// `organization`); none means every account of the organization.
    pub organizational_units: Vec<String>,
    /// The role an organization audit assumes in each account.
    pub role_name: Option<String>,
    /// Read the instances from this AWS Config aggregator (one query)
    /// instead of each region (not with roles or an organization).
    pub config_aggregator: Option<String>,
    /// The channel to compare against.
    pub channel: Channel,
    /// The instance tag naming services.
    pub service_tag: String,
    /// Regions audited at once.
    pub concurrency: usize,
}

impl Default for Request {
    fn default() -> Self {
        let scope = Scope::new(default_channel());
        Self {
            regions: Vec::new(),
            all_regions: false,
            account_roles: scope.account_roles,
            organization: false,
            organizational_units: Vec::new(),
            role_name: None,
            config_aggregator: None,
            channel: scope.channel,
            service_tag: scope.service_tag,
            concurrency: scope.concurrency,
        }
    }
}

/// In `KILN_AUDIT_REGIONS`, every region enabled in each account.
pub const ALL_REGIONS: &str = "all";

/// In `KILN_AUDIT_ORGANIZATION`, every account of the organization.
pub const WHOLE_ORGANIZATION: &str = "all";

/// The channel audits compare against unless told otherwise.
pub const DEFAULT_CHANNEL: &str = "prod";

fn default_channel() -> Channel {
    Channel::try_from(DEFAULT_CHANNEL.to_owned())
        .unwrap_or_else(|_| unreachable!("a valid channel"))
}

impl Request {
    /// The request with the deployment's defaults where it names no regions
    /// or accounts (`all` among the regions means every enabled region, and
    /// as the organization, the whole organization).
    pub fn or_defaults(mut self, settings: &Settings) -> Self {
        if self.regions.is_empty() && !self.all_regions {
            if settings.audit_regions.iter().any(|r| r == ALL_REGIONS) {
                self.all_regions = true;
            } else {
                self.regions.clone_from(&settings.audit_regions);
            }
        }
        if self.account_roles.is_empty() && !self.covers_organization() {
            self.account_roles.clone_from(&settings.audit_roles);
            if settings
                .audit_organization
                .iter()
                .any(|p| p == WHOLE_ORGANIZATION)
            {
                self.organization = true;
            } else {
                self.organizational_units
                    .clone_from(&settings.audit_organization);
            }
        }
        if self.role_name.is_none() && self.covers_organization() {
            self.role_name.clone_from(&settings.audit_role_name);
        }
        if self.config_aggregator.is_none()
            && self.account_roles.is_empty()
            && !self.covers_organization()
        {
            self.config_aggregator
                .clone_from(&settings.audit_config_aggregator);
        }
        self
    }

    /// The aggregator, checked against AWS's rules for its name (AWS Config
    /// API Reference, SelectAggregateResourceConfig
    /// `ConfigurationAggregatorName`: 1 to 256 of `[\w\-]`).
    fn aggregator(&self) -> Result<Option<String>> {
        let Some(name) = &self.config_aggregator else {
            return Ok(None);
        };
        if !self.account_roles.is_empty() || self.covers_organization() {
            return Err(Error::InvalidInput(
                "config_aggregator names its own accounts: give it without account_roles or an organization".into(),
            ));
        }
        let fits = (1..=256).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !fits {
            return Err(Error::InvalidInput(format!(
                "{name:?} is not a Config aggregator name (1-256 of letters, digits, _ and -)"
            )));
        }
        Ok(Some(name.clone()))
    }

    fn covers_organization(&self) -> bool {
        self.organization || !self.organizational_units.is_empty()
    }

    /// The organization part of the scope, checked against AWS's rules for
    /// parent ids and role names.
    fn organization_scope(&self) -> Result<Option<Organization>> {
        if !self.covers_organization() {
            if self.role_name.is_some() {
                return Err(Error::InvalidInput(
                    "role_name is the role of an organization audit: give organization or organizational_units too".into(),
                ));
            }
            return Ok(None);
        }
        if !self.account_roles.is_empty() {
            return Err(Error::InvalidInput(
                "give account_roles or an organization, not both".into(),
            ));
        }
        let Some(role_name) = self.role_name.clone() else {
            return Err(Error::InvalidInput(
                "an organization audit needs role_name: the role it assumes in each account".into(),
            ));
        };
        if !is_role_name(&role_name) {
            return Err(Error::InvalidInput(format!(
                "role_name {role_name:?} is not an IAM role name (1-64 of letters, digits and +=,.@_-)"
            )));
        }
        if let Some(bad) = self.organizational_units.iter().find(|p| !is_parent_id(p)) {
            return Err(Error::InvalidInput(format!(
                "{bad:?} is neither a root id (r-...) nor an OU id (ou-...-...)"
            )));
        }
        let mut seen = HashSet::new();
        let mut parents = self.organizational_units.clone();
        parents.retain(|parent| seen.insert(parent.clone()));
        Ok(Some(Organization { parents, role_name }))
    }

    /// The scope to audit; refused before any call when it contradicts itself.
    pub fn scope(self) -> Result<Scope> {
        let organization = self.organization_scope()?;
        let config_aggregator = self.aggregator()?;
        let regions = match (self.all_regions, self.regions.is_empty()) {
            (true, false) => {
                return Err(Error::InvalidInput(
                    "give regions or all_regions, not both".into(),
                ));
            }
            (true, true) => Regions::AllEnabled,
            (false, true) => Regions::Configured,
            (false, false) => {
                let mut seen = HashSet::new();
                let mut regions = self.regions;
                regions.retain(|region| seen.insert(region.clone()));
                Regions::List(regions)
            }
        };
        if self.concurrency == 0 {
            return Err(Error::InvalidInput("concurrency must be at least 1".into()));
        }
        if self.service_tag.is_empty() {
            return Err(Error::InvalidInput("service_tag must not be empty".into()));
        }
        Ok(Scope {
            regions,
            account_roles: self.account_roles,
            organization,
            config_aggregator,
            channel: self.channel,
            service_tag: self.service_tag,
            concurrency: self.concurrency,
        })
    }
}

/// An IAM role name: 1 to 64 of letters, digits and `+=,.@_-` (IAM API
/// Reference, CreateRole `RoleName`).
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// A root id (`r-` and 4-32 of lowercase letters and digits) or an OU id
/// (`ou-`, 4-32 of them, `-`, 8-32 of them): Organizations API Reference,
/// ListAccountsForParent `ParentId`.
fn is_parent_id(id: &str) -> bool {
    let part = |s: &str, min: usize| {
        (min..=32).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if let Some(root) = id.strip_prefix("r-") {
        return part(root, 4);
    }
    id.strip_prefix("ou-")
        .and_then(|rest| rest.split_once('-'))
        .is_some_and(|(root, unit)| part(root, 4) && part(unit, 8))
}

/// One region of one account to audit.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The audited account.
    pub account: &'a str,
    /// The account holding kiln's pointers and images.
    pub home_account: &'a str,
    /// The region.
    pub region: &'a str,
    /// The channel.
    pub channel: &'a Channel,
    /// The service tag key.
    pub service_tag: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployment_fills_in_regions_and_roles_a_request_leaves_out() {
        let settings = Settings {
            audit_regions: vec!["us-east-1".into(), "eu-west-1".into()],
            audit_roles: vec!["arn:aws:iam::210987654321:role/kiln-audit".into()],
            ..Settings::default()
        };
        let filled = Request::default().or_defaults(&settings);
        assert_eq!(filled.regions, settings.audit_regions);
        assert_eq!(filled.account_roles, settings.audit_roles);
        let asked = Request {
            regions: vec!["ap-south-1".into()],
            ..Request::default()
        };
        assert_eq!(asked.or_defaults(&settings).regions, ["ap-south-1"]);
        let twice = Request {
            regions: vec!["eu-west-1".into(), "us-east-1".into(), "eu-west-1".into()],
            ..Request::default()
        };
        let scope = twice.scope().expect("a scope");
        assert_eq!(
            scope.regions,
            Regions::List(vec!["eu-west-1".into(), "us-east-1".into()]),
            "each region once, in the order given"
        );
        let all = Settings {
            audit_regions: vec!["all".into()],
            ..Settings::default()
        };
        let filled = Request::default().or_defaults(&all);
        assert!(filled.all_regions && filled.regions.is_empty());
    }

    #[test]
    fn an_organization_audit_is_checked_before_any_call() {
        let refused = |request: Request, says: &str| {
            let err = request.scope().expect_err("refused");
            assert!(err.to_string().contains(says), "{err}");
        };
        let org = Request {
            organization: true,
            role_name: Some("kiln-audit".into()),
            ..Request::default()
        };
        refused(
            Request {
                account_roles: vec!["arn:aws:iam::210987654321:role/kiln-audit".into()],
                ..org.clone()
            },
            "not both",
        );
        refused(
            Request {
                role_name: None,
                ..org.clone()
            },
            "needs role_name",
        );
        refused(
            Request {
                role_name: Some("a".repeat(65)),
                ..org.clone()
            },
            "not an IAM role name",
        );
        refused(
            Request {
                organizational_units: vec!["ou-ab12-".into()],
                ..org.clone()
            },
            "neither a root id",
        );
        refused(
            Request {
                role_name: Some("kiln-audit".into()),
                ..Request::default()
            },
            "give organization",
        );
        let units = Request {
            organizational_units: vec![
                "ou-ab12-cdef3456".into(),
                "r-ab12".into(),
                "ou-ab12-cdef3456".into(),
            ],
            ..org
        };
        let scope = units.scope().expect("a scope");
        assert_eq!(
            scope.organization,
            Some(Organization {
                parents: vec!["ou-ab12-cdef3456".into(), "r-ab12".into()],
                role_name: "kiln-audit".into(),
            })
        );
        let deployed = Settings {
            audit_organization: vec!["all".into()],
            audit_role_name: Some("kiln-audit".into()),
            ..Settings::default()
        };
        let refused_aggregator = Request {
            config_aggregator: Some("org aggregator".into()),
            ..Request::default()
        };
        assert!(
            refused_aggregator.scope().is_err(),
            "a space is not in an aggregator name"
        );
        let both = Request {
            config_aggregator: Some("org-aggregator".into()),
            organization: true,
            role_name: Some("kiln-audit".into()),
            ..Request::default()
        };
        assert!(
            both.scope().is_err(),
            "the aggregator names its own accounts"
        );
        let filled = Request::default().or_defaults(&deployed).scope();
        assert_eq!(
            filled.expect("a scope").organization,
            Some(Organization {
                parents: Vec::new(),
                role_name: "kiln-audit".into(),
            })
        );
    }
}
