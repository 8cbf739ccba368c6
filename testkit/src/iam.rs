//! What IAM would say to the calls kiln makes: each function's role, read
//! from the template as CloudFormation resolves it (`scripts/infra.py
//! policies`), and the permissions each recorded call needs, with the
//! resource types and request context AWS checks (the Service Authorization
//! Reference, per action).
//!
//! Conditions on what the request carries (request tags, tag keys,
//! `ec2:CreateAction`, `ec2:MetadataHttpTokens`, `iam:PassedToService`, the
//! launch template) are evaluated; conditions on the tags a resource already
//! has (`aws:ResourceTag/...`) cannot be known from a request and count as
//! met, so the tag scoping is checked by reading the template, not here.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

use crate::repo;

/// The account and region of the stack the template is resolved for, and of
/// the emulator.
pub const ACCOUNT: &str = "123456789012";
/// See [`ACCOUNT`].
pub const REGION: &str = "us-east-1";

/// One statement of a role's policy.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    /// Its id, which names what it is for.
    #[serde(default)]
    pub sid: Option<String>,
    /// Allow or Deny.
    pub effect: String,
    /// The actions it grants.
    #[serde(default, deserialize_with = "one_or_many")]
    pub action: Vec<String>,
    /// The resources it grants them on.
    #[serde(default, deserialize_with = "one_or_many")]
    pub resource: Vec<String>,
    /// The resources it grants them on all but.
    #[serde(default, deserialize_with = "one_or_many")]
    pub not_resource: Vec<String>,
    /// Its conditions.
    #[serde(default)]
    pub condition: BTreeMap<String, BTreeMap<String, Value>>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

/// A role of the template.
#[derive(Debug, Clone, Deserialize)]
pub struct Role {
    /// The role's logical id.
    pub role: String,
    /// Its inline statements.
    pub statements: Vec<Statement>,
    /// The managed policies attached to it.
    #[serde(default)]
    pub managed: Vec<String>,
}

/// Every role of the template: the functions' (by binary), and the others
/// kiln's calls depend on (by logical id).
#[derive(Debug, Clone, Deserialize)]
pub struct Roles {
    /// Function binary -> its role.
    pub functions: BTreeMap<String, Role>,
    /// Other roles by logical id (the builders' `BuilderRole`).
    pub roles: BTreeMap<String, Role>,
}

/// The template's roles, resolved with `parameters` (`Name=value`).
pub fn roles(parameters: &[&str]) -> Roles {
    let output = Command::new(repo().join(".tools/infra/bin/python"))
        .arg(repo().join("scripts/infra.py"))
        .arg("policies")
        .args(parameters)
        .output()
        .expect("run scripts/infra.py policies (make infra-tools installs its Python)");
    assert!(
        output.status.success(),
        "infra.py policies: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the roles as JSON")
}

/// One permission a call needs: an action on a resource, with the request
/// context IAM evaluates conditions against.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Need {
    /// `service:Action`.
    pub action: String,
    /// The resource ARN (or `*` for actions without resource-level permissions).
    pub resource: String,
    /// Condition key -> its values in this request.
    pub context: BTreeMap<String, Vec<String>>,
    /// Why it is needed (the call, or the documented implicit check).
    pub why: String,
}

impl Need {
    /// `action` on `resource`, for `why`.
    pub fn new(action: &str, resource: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            action: action.to_owned(),
            resource: resource.into(),
            context: BTreeMap::new(),
            why: why.into(),
        }
    }

    /// With condition key `key` holding `values`.
    #[must_use]
    pub fn with(mut self, key: &str, values: &[&str]) -> Self {
        self.context.insert(
            key.to_owned(),
            values.iter().map(|v| (*v).to_owned()).collect(),
        );
        self
    }
}

/// `*` and `?` wildcards, as IAM matches actions and ARNs.
pub fn glob(pattern: &str, value: &str) -> bool {
    fn go(p: &[u8], v: &[u8]) -> bool {
        match (p.first(), v.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], v) || (!v.is_empty() && go(p, &v[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &v[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &v[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), value.as_bytes())
}

fn values(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().flat_map(values).collect(),
        Value::String(s) => vec![s.clone()],
        other => vec![other.to_string()],
    }
}

/// Whether one condition operator holds for `need`. Keys about a
/// resource's existing tags are unknown from a request and count as met.
fn holds(operator: &str, key: &str, wanted: &Value, need: &Need) -> bool {
    let unknown = [
        "aws:ResourceTag/",
        "ssm:resourceTag/",
        "autoscaling:ResourceTag/",
    ]
    .iter()
    .any(|prefix| key.starts_with(prefix));
    if unknown {
        return true;
    }
    let wanted = values(wanted);
    let have = need.context.get(key);
    let (set, operator) = match operator.split_once(':') {
        Some((set, operator)) => (Some(set), operator),
        None => (None, operator),
    };
    let matches = |value: &str| {
        wanted.iter().any(|w| match operator {
            "StringEquals" | "Bool" => w == value,
            "StringLike" | "ArnLike" => glob(w, value),
            _ => panic!("condition operator {operator} is not modelled"),
        })
    };
    match (operator, set) {
        ("Null", _) => have.is_none() == (wanted == ["true"]),
        (_, Some("ForAllValues")) => have.is_none_or(|have| have.iter().all(|v| matches(v))),
        (_, Some(_)) => have.is_some_and(|have| have.iter().any(|v| matches(v))),
        (_, None) => have.is_some_and(|have| !have.is_empty() && have.iter().all(|v| matches(v))),
    }
}

/// Whether `statement` allows `need`.
pub fn allows(statement: &Statement, need: &Need) -> bool {
    statement.effect == "Allow"
        && statement.action.iter().any(|a| glob(a, &need.action))
        && if statement.not_resource.is_empty() {
            statement.resource.iter().any(|r| glob(r, &need.resource))
        } else {
            !statement
                .not_resource
                .iter()
                .any(|r| glob(r, &need.resource))
        }
        && statement.condition.iter().all(|(operator, keys)| {
            keys.iter()
                .all(|(key, wanted)| holds(operator, key, wanted, need))
        })
}

/// The needs no statement of `statements` allows.
pub fn missing<'a>(statements: &[Statement], needs: &'a [Need]) -> Vec<&'a Need> {
    needs
        .iter()
        .filter(|need| !statements.iter().any(|s| allows(s, need)))
        .collect()
}
