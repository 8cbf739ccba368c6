//! The accounts of an AWS Organization an audit covers: every active account
//! (`ListAccounts`), or the active accounts under the roots and OUs named,
//! nested OUs included (`ListAccountsForParent` and `ListChildren`), from
//! the management account or a delegated administrator alike.

use std::collections::BTreeSet;

use aws_sdk_organizations::types::{AccountState, ChildType};

use super::scope::Organization;
use crate::aws::sdk::Answer;
use crate::error::Result;

/// Adds the active accounts of `accounts` to `found`: suspended, closing
/// and pending accounts have no instances to audit.
fn add_active(found: &mut BTreeSet<String>, accounts: &[aws_sdk_organizations::types::Account]) {
    // `Status` was retired on 2026-09-09: `State` is the account's state.
    found.extend(
        accounts
            .iter()
            .filter(|account| account.state() == Some(&AccountState::Active))
            .filter_map(|account| account.id().map(str::to_owned)),
    );
}

/// The active accounts `organization` covers, as `organizations` sees them.
pub async fn members(
    organizations: &aws_sdk_organizations::Client,
    organization: &Organization,
) -> Result<BTreeSet<String>> {
    let mut members = BTreeSet::new();
    if organization.parents.is_empty() {
        let mut pages = organizations.list_accounts().into_paginator().send();
        while let Some(page) = pages.next().await {
            add_active(&mut members, page.or_aws("ListAccounts")?.accounts());
        }
        return Ok(members);
    }
    let mut parents: Vec<String> = organization.parents.clone();
    let mut seen: BTreeSet<String> = parents.iter().cloned().collect();
    while let Some(parent) = parents.pop() {
        let mut pages = organizations
            .list_accounts_for_parent()
            .parent_id(&parent)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            add_active(
                &mut members,
                page.or_aws("ListAccountsForParent")?.accounts(),
            );
        }
        let mut children = organizations
            .list_children()
            .parent_id(&parent)
            .child_type(ChildType::OrganizationalUnit)
            .into_paginator()
            .send();
        while let Some(page) = children.next().await {
            for child in page.or_aws("ListChildren")?.children() {
                if let Some(id) = child.id()
                    && seen.insert(id.to_owned())
                {
                    parents.push(id.to_owned());
                }
            }
        }
    }
    Ok(members)
}

/// The role named `name` in `account` of `partition`.
pub fn role_arn(partition: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{name}")
}
