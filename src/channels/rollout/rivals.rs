//! Two releases of one recipe at once: which one goes on.
//!
//! The release of the newer image (by the creation time of the image its
//! build made) supersedes the older; a release started with `--force` and a
//! reason supersedes every release started without, and the latest forced
//! one wins among those. The loser stops at its next step, where it stands,
//! undoing nothing: its pointers stay, its refreshes run to their end, and
//! the winner waits for them before it rolls those groups. One rule
//! ([`winner`]) serves both the release step and `kiln rollout start`,
//! which refuses to start a release that would lose at once.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::aws::executions;
use crate::aws::{Context, images};
use crate::error::Result;
use crate::ids::{AmiId, RecipeName};

/// A release that wins over another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Winner {
    /// The image it releases.
    pub image_id: AmiId,
    /// Its execution.
    pub execution: String,
    /// Why it was forced, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced: Option<String>,
}

impl Winner {
    /// Why it wins, in words.
    pub fn why(&self) -> String {
        match &self.forced {
            Some(reason) => format!("started by force: {reason}"),
            None => "a newer image".to_owned(),
        }
    }
}

/// A release in the contest: running, or about to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contender {
    /// The image it releases.
    pub image_id: AmiId,
    /// Its execution (none before it starts).
    pub execution: Option<String>,
    /// Why it was forced, when it was.
    pub forced: Option<String>,
    /// When it started.
    pub started: Timestamp,
    /// When its image was created (`None`: EC2 no longer has it).
    pub created: Option<Timestamp>,
}

/// The release that goes on among `contenders`: a forced one over any
/// other, the latest started among the forced; otherwise the newest image
/// (the image id breaks a tie, as EC2 dates images to the second).
pub fn winner(contenders: &[Contender]) -> Option<&Contender> {
    contenders.iter().max_by_key(|c| {
        (
            c.forced.is_some(),
            c.forced.as_ref().map(|_| c.started),
            c.created,
            c.image_id.as_str(),
        )
    })
}

/// The release of `recipe` on `machine` that wins over `me`, when one does.
pub async fn superseding(
    ctx: &Context,
    machine: &str,
    recipe: &RecipeName,
    me: Contender,
) -> Result<Option<Winner>> {
    let mut contenders: Vec<Contender> = executions::running(ctx.sfn(), machine)
        .await?
        .into_iter()
        .filter_map(|execution| {
            let input: serde_json::Value =
                serde_json::from_str(execution.input.as_deref()?).ok()?;
            let image_id: AmiId = input["image_id"].as_str()?.parse().ok()?;
            (input["recipe"] == recipe.as_str() && image_id != me.image_id).then(|| Contender {
                image_id,
                forced: input["forced"].as_str().map(str::to_owned),
                started: execution.started.parse().unwrap_or(me.started),
                execution: Some(execution.arn),
                created: None,
            })
        })
        .collect();
    if contenders.is_empty() {
        return Ok(None);
    }
    let mine = me.image_id.clone();
    contenders.push(me);
    let ids: Vec<&str> = contenders.iter().map(|c| c.image_id.as_str()).collect();
    let found = images::own(ctx, vec![images::filter("image-id", ids)]).await?;
    for contender in &mut contenders {
        contender.created = found
            .iter()
            .find(|image| image.image_id() == Some(contender.image_id.as_str()))
            .and_then(|image| image.creation_date())
            .and_then(|date| date.parse().ok());
    }
    Ok(winner(&contenders)
        .filter(|best| best.image_id != mine)
        .map(|best| Winner {
            image_id: best.image_id.clone(),
            execution: best.execution.clone().unwrap_or_default(),
            forced: best.forced.clone(),
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contender(image: &str, created: i64, forced: Option<(&str, i64)>) -> Contender {
        Contender {
            image_id: image.parse().expect("ami"),
            execution: Some(image.to_owned()),
            forced: forced.map(|(why, _)| why.to_owned()),
            started: Timestamp::from_second(forced.map_or(0, |(_, at)| at)).expect("time"),
            created: Some(Timestamp::from_second(created).expect("time")),
        }
    }

    fn won(contenders: &[Contender]) -> &str {
        winner(contenders).expect("a winner").image_id.as_str()
    }

    #[test]
    fn the_newest_image_wins_unless_a_release_was_forced() {
        let old = contender("ami-00000000000000001", 100, None);
        let new = contender("ami-00000000000000002", 200, None);
        assert_eq!(won(&[old.clone(), new.clone()]), new.image_id.as_str());
        assert_eq!(won(&[new.clone(), old.clone()]), new.image_id.as_str());

        let forced_old = contender("ami-00000000000000001", 100, Some(("new one breaks x", 50)));
        assert_eq!(
            won(&[forced_old.clone(), new.clone()]),
            forced_old.image_id.as_str()
        );
        let forced_later = contender("ami-00000000000000003", 10, Some(("back to 3", 60)));
        assert_eq!(
            won(&[forced_old, new, forced_later.clone()]),
            forced_later.image_id.as_str(),
            "the latest forced release wins among the forced"
        );
    }

    #[test]
    fn an_image_ec2_no_longer_has_loses_and_equal_dates_fall_to_the_id() {
        let gone = Contender {
            created: None,
            ..contender("ami-00000000000000009", 0, None)
        };
        let kept = contender("ami-00000000000000001", 100, None);
        assert_eq!(won(&[gone, kept.clone()]), kept.image_id.as_str());
        let twin = contender("ami-00000000000000002", 100, None);
        assert_eq!(won(&[kept, twin.clone()]), twin.image_id.as_str());
    }
}
