//! Roles kiln assumes in other accounts: an audit's, and the roles that keep
//! a channel's pointers in member accounts. One rule for reading a role ARN
//! and one for turning an assumed role into SDK configuration.

use aws_config::SdkConfig;
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};

use crate::error::Error;

/// The account id in a role ARN (`arn:PARTITION:iam::ACCOUNT:role/NAME`).
pub fn role_account(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, resource]
            if account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource
                    .strip_prefix("role/")
                    .is_some_and(|n| !n.is_empty()) =>
        {
            Some(account)
        }
        _ => None,
    }
}

/// `config` acting as `role` (assumed with `sts`, session `session` as
/// CloudTrail shows it), with the role's account; the message says why it
/// could not be assumed.
pub async fn assume(
    sts: &aws_sdk_sts::Client,
    config: &SdkConfig,
    role: &str,
    session: &str,
) -> std::result::Result<(String, SdkConfig), String> {
    let Some(account) = role_account(role) else {
        return Err(format!(
            "{role:?} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ));
    };
    let output = sts
        .assume_role()
        .role_arn(role)
        .role_session_name(session)
        .send()
        .await
        .map_err(|err| format!("cannot assume {role}: {}", Error::aws("AssumeRole", err)))?;
    let credentials = output
        .credentials()
        .ok_or_else(|| format!("AssumeRole of {role} returned no credentials"))?;
    let credentials = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_owned()),
        std::time::SystemTime::try_from(*credentials.expiration()).ok(),
        "kiln-assumed-role",
    );
    Ok((
        account.to_owned(),
        config
            .to_builder()
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build(),
    ))
}

#[cfg(test)]
mod tests {
    use super::role_account;

    #[test]
    fn role_arns_name_their_account() {
        assert_eq!(
            role_account("arn:aws:iam::210987654321:role/kiln-pointers"),
            Some("210987654321")
        );
        assert_eq!(
            role_account("arn:aws-cn:iam::210987654321:role/path/kiln"),
            Some("210987654321")
        );
        for bad in [
            "kiln-pointers",
            "arn:aws:iam::21098765432:role/kiln",
            "arn:aws:iam::210987654321:user/kiln",
            "arn:aws:iam::210987654321:role/",
            "arn:aws:sts::210987654321:role/kiln",
        ] {
            assert_eq!(role_account(bad), None, "{bad}");
        }
    }
}
