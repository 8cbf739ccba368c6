//! Checks of a recipe's `[distribution]`, offline: the regions kiln knows,
//! well-formed accounts, organizational units and keys, and no sharing of an
//! image encrypted with the default EBS key. The build's first step checks
//! the regions again against the account's own (`DescribeRegions`).

use std::collections::BTreeSet;

use super::schema::{Distribution, RootVolume};
use crate::aws::roles::role_account;

/// The regions kiln knows (AWS's commercial, GovCloud and China regions as of
/// 2026-11). A region AWS opens later is refused offline until kiln knows it.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// A list of the section: its name, its items, the test each item must pass,
/// and what to say of one that does not.
type ListRule<'a> = (&'a str, &'a [String], fn(&str) -> bool, &'a str);

/// The alias of the AWS managed EBS key, which no other account can use.
const AWS_MANAGED_EBS_KEY: &str = "alias/aws/ebs";

/// Every problem of `distribution` (with the builder's root volume, whose
/// key encrypts the shared source image), as (field, message).
pub(crate) fn problems(distribution: &Distribution, root: &RootVolume) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut add = |field: String, message: String| found.push((field, message));
    let lists: [ListRule<'_>; 4] = [
        (
            "regions",
            &distribution.regions,
            |r| KNOWN_REGIONS.contains(&r),
            "is not a region kiln knows (like \"eu-west-1\")",
        ),
        (
            "accounts",
            &distribution.accounts,
            is_account,
            "is not a 12-digit AWS account id",
        ),
        (
            "organizational_units",
            &distribution.organizational_units,
            is_ou_arn,
            "is not an organizational unit ARN like \
             \"arn:aws:organizations::111111111111:ou/o-exampleorgid/ou-exam-12345678\"",
        ),
        (
            "pointer_roles",
            &distribution.pointer_roles,
            |r| role_account(r).is_some(),
            "is not an IAM role ARN like \"arn:aws:iam::210987654321:role/kiln-pointers\"",
        ),
    ];
    for (name, items, valid, invalid) in lists {
        let mut seen = BTreeSet::new();
        for item in items {
            if !valid(item) {
                add(
                    format!("distribution.{name}"),
                    format!("{item:?} {invalid}"),
                );
            }
            if !seen.insert(item) {
                add(
                    format!("distribution.{name}"),
                    format!("{item:?} is listed twice"),
                );
            }
        }
    }
    let mut accounts = BTreeSet::new();
    for role in &distribution.pointer_roles {
        let Some(account) = role_account(role) else {
            continue;
        };
        if !accounts.insert(account) {
            add(
                "distribution.pointer_roles".into(),
                format!("{role:?}: a second role in account {account} (one per account)"),
            );
        }
        if distribution.organizational_units.is_empty()
            && !distribution.accounts.iter().any(|a| a == account)
        {
            add(
                "distribution.pointer_roles".into(),
                format!(
                    "{role:?}: account {account} is not in distribution.accounts, so the images \
                     are not shared with it and its pointers could not name them"
                ),
            );
        }
    }
    for (region, key) in &distribution.kms_keys {
        let field = format!("distribution.kms_keys.{region}");
        if !distribution.regions.contains(region) {
            add(
                field.clone(),
                format!("{region} is not in distribution.regions: no copy is made there"),
            );
        }
        if kms_key_region(key) != Some(region.as_str()) {
            add(
                field,
                format!(
                    "{key:?} is not a KMS key ARN in {region} (like \
                     \"arn:aws:kms:{region}:111111111111:key/...\"): a copy is encrypted with a \
                     key of its own region"
                ),
            );
        } else if key.ends_with(&format!(":{AWS_MANAGED_EBS_KEY}")) {
            add(field, not_shareable("the AWS managed key aws/ebs"));
        }
    }
    if distribution.shares() {
        match root.kms_key_id.as_deref() {
            None => add(
                "builder.root_volume.kms_key_id".into(),
                not_shareable("the account's default EBS key"),
            ),
            Some(key) if key == AWS_MANAGED_EBS_KEY || key.ends_with(":alias/aws/ebs") => add(
                "builder.root_volume.kms_key_id".into(),
                not_shareable("the AWS managed key aws/ebs"),
            ),
            Some(_) => {}
        }
        let regions: BTreeSet<&String> = distribution.regions.iter().collect();
        for region in regions {
            if KNOWN_REGIONS.contains(&region.as_str())
                && !distribution.kms_keys.contains_key(region)
            {
                add(
                    format!("distribution.kms_keys.{region}"),
                    not_shareable(&format!("{region}'s default EBS key")),
                );
            }
        }
    }
    found
}

/// Why an image encrypted with `key` cannot be shared, and the fix.
fn not_shareable(key: &str) -> String {
    format!(
        "the image is shared (distribution.accounts or organizational_units), and an image \
         encrypted with {key} cannot be: name a customer managed key whose key policy lets the \
         target accounts (and their Auto Scaling service-linked role) use it"
    )
}

fn is_account(value: &str) -> bool {
    value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:aws[-*]:organizations::ACCOUNT:ou/o-ORG/ou-ROOT-UNIT` (AWS's pattern:
/// org `[a-z0-9]{10,32}`, root `[0-9a-z]{4,32}`, unit `[0-9a-z]{8,32}`).
fn is_ou_arn(value: &str) -> bool {
    let lower_alnum = |s: &str, min: usize, max: usize| {
        (min..=max).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let Some(rest) = value.strip_prefix("arn:") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(':') else {
        return false;
    };
    let Some(rest) = rest.strip_prefix("organizations::") else {
        return false;
    };
    let Some((account, path)) = rest.split_once(":ou/o-") else {
        return false;
    };
    let Some((org, unit)) = path.split_once("/ou-") else {
        return false;
    };
    let Some((root, unit)) = unit.split_once('-') else {
        return false;
    };
    (partition == "aws" || partition.starts_with("aws-"))
        && is_account(account)
        && lower_alnum(org, 10, 32)
        && lower_alnum(root, 4, 32)
        && lower_alnum(unit, 8, 32)
}

/// The region of a KMS key or alias ARN
/// (`arn:PARTITION:kms:REGION:ACCOUNT:key/ID` or `...:alias/NAME`).
fn kms_key_region(value: &str) -> Option<&str> {
    let mut parts = value.splitn(6, ':');
    let (arn, _partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let resource_ok = ["key/", "alias/"].iter().any(|p| {
        resource
            .strip_prefix(p)
            .is_some_and(|rest| !rest.is_empty())
    });
    (arn == "arn" && service == "kms" && is_account(account) && resource_ok).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_unit_arns_follow_aws_pattern() {
        for good in [
            "arn:aws:organizations::111111111111:ou/o-abcdefghij/ou-abcd-12345678",
            "arn:aws-us-gov:organizations::111111111111:ou/o-abcdefghij0123/ou-ab12-abcdefgh9",
        ] {
            assert!(is_ou_arn(good), "{good}");
        }
        for bad in [
            "arn:aws:organizations::111111111111:ou/o-abc/ou-def",
            "arn:aws:organizations::11111111111:ou/o-abcdefghij/ou-abcd-12345678",
            "arn:aws:organizations::111111111111:ou/o-ABCDEFGHIJ/ou-abcd-12345678",
            "arn:aws:organizations::111111111111:organization/o-abcdefghij",
            "ou-abcd-12345678",
            "arn:gcp:organizations::111111111111:ou/o-abcdefghij/ou-abcd-12345678",
        ] {
            assert!(!is_ou_arn(bad), "{bad}");
        }
    }

    #[test]
    fn a_kms_key_arn_names_its_region() {
        let key = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(kms_key_region(key), Some("eu-west-1"));
        let alias = "arn:aws:kms:us-west-2:111111111111:alias/kiln";
        assert_eq!(kms_key_region(alias), Some("us-west-2"));
        for bad in [
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/kiln",
            "arn:aws:kms:eu-west-1:111111111111:key/",
            "arn:aws:s3:eu-west-1:111111111111:key/x",
        ] {
            assert_eq!(kms_key_region(bad), None, "{bad}");
        }
    }
}
