//! A channel's pointers in member accounts. A recipe's
//! `distribution.pointer_roles` names a role in each member account that
//! should resolve the channel itself: kiln assumes it and keeps a pointer of
//! the same name (`/kiln/<recipe>/<channel>`) in the build region and in
//! every distribution region of that account, naming the image shared with
//! it (the home image at home, the region's copy elsewhere). A launch
//! template of the member account then says
//! `resolve:ssm:/kiln/<recipe>/prod` as it would in the home account, and
//! the member's own parameter history records each move.
//!
//! Member pointers follow the home pointers like the regional ones do: in
//! the sync every operation ends with, and in `kiln doctor`. A member
//! account that cannot be reached (a role not assumed, a call refused) does
//! not stop the home account's move, which is already made: its pointers
//! are reported as left where they were, with the reason, and the next sync
//! moves them.

use std::collections::BTreeMap;

use tracing::warn;

use super::pointers::pointer_name;
use super::regional::{self, Place, RegionalMove};
use crate::aws::{Context, roles};
use crate::error::Result;
use crate::ids::{Channel, RecipeName};

/// The session name of the roles kiln assumes to move member pointers, as
/// CloudTrail in the member account shows it.
pub const SESSION_NAME: &str = "kiln-pointers";

/// Moves `recipe`'s pointers in each account of `roles` (in the home region
/// and each of `regions`) to follow `home`; answers each move, and each
/// pointer left as it was with the reason.
pub async fn follow(
    ctx: &Context,
    recipe: &RecipeName,
    roles: &[String],
    regions: &[String],
    home: &BTreeMap<Channel, (String, i64)>,
) -> Result<Vec<RegionalMove>> {
    let home_region = ctx.region()?;
    let everywhere: Vec<&String> = std::iter::once(&home_region).chain(regions).collect();
    let sts = aws_sdk_sts::Client::new(&ctx.config);
    let mut moves = Vec::new();
    for role in roles {
        let account = roles::role_account(role).unwrap_or(role.as_str());
        let member = match roles::assume(&sts, &ctx.config, role, SESSION_NAME).await {
            Ok((_, config)) => Context::new(&config, ctx.settings.clone()),
            Err(problem) => {
                for region in &everywhere {
                    moves.extend(left(recipe, home, region, account, &problem));
                }
                continue;
            }
        };
        for region in &everywhere {
            let owner = ctx.in_region(region);
            let writer = member.in_region(region);
            let place = Place {
                owner: &owner,
                writer: &writer,
                account: Some(account),
            };
            match regional::follow(ctx, &place, recipe, home).await {
                Ok(moved) => moves.extend(moved),
                Err(err) => moves.extend(left(recipe, home, region, account, &err.to_string())),
            }
        }
    }
    Ok(moves)
}

/// Each of `home`'s channels' pointers in `account` and `region`, left as
/// it was for `problem`.
fn left(
    recipe: &RecipeName,
    home: &BTreeMap<Channel, (String, i64)>,
    region: &str,
    account: &str,
    problem: &str,
) -> Vec<RegionalMove> {
    warn!(%recipe, region, account, problem, "a member account's pointers are left as they were");
    home.keys()
        .map(|channel| RegionalMove {
            region: region.to_owned(),
            account: Some(account.to_owned()),
            parameter: pointer_name(recipe, channel),
            from: None,
            to: None,
            problem: Some(problem.to_owned()),
        })
        .collect()
}
