//! Hands-off releases: a tested image moves through its recipe's release
//! policy (`[[release]]`) by itself, and comes back by itself when health
//! fails.
//!
//! A release is one execution of the release state machine, which calls
//! [`advance`] again and again and does every wait itself. Each call reads
//! the world (pointers, alarms, groups, refreshes), makes the next move, and
//! answers either how long to wait before the next call or how the release
//! ended. Every move is safe to repeat, so a retried or crashed call resumes
//! where the last one stopped.
//!
//! Per stage of the policy, in order:
//! 1. **Gate**: the image soaks in the previous stage's channel (for the
//!    first stage: since the release started) for the stage's `soak_hours`,
//!    while its `alarms` are watched. An alarm in ALARM rolls the previous
//!    channel back: the image never reaches this one.
//! 2. **Promote** the stage's channel to the image.
//! 3. **Roll** the Auto Scaling groups that follow the channel, wave by wave
//!    ([`groups`]), in the build region and then in each distribution region
//!    in the recipe's order (`waves`): an instance refresh per group to its
//!    region's image, with the stage's alarms (of its region) as its alarm
//!    specification and auto rollback on. A refresh that ends
//!    without success, or an alarm in ALARM in any region where the channel's
//!    groups rolled, rolls the channel's pointer back (everywhere),
//!    rolls back the refreshes still running, sends the groups already on
//!    the image back to their previous version, and starts no further wave.
//!
//! When every stage is done, a release of a build that a security finding
//! started hands over to the remediation watch
//! ([`crate::security::remediation`]), which the release state machine runs
//! until the finding's CVE is gone from the fleet or overdue.
//!
//! An image a channel was rolled back from is never promoted again by a
//! release; a later build may try again. Of two releases of one recipe, the
//! newer image's goes on and the older stops where it stands ([`rivals`]).

mod advance;
pub mod control;
pub mod gates;
pub mod groups;
mod release;
pub mod rivals;
mod stages;
pub mod templates;
mod waves;

pub use advance::advance;
pub use release::{ACTOR, DEFAULT_CHECK_SECONDS, MAX_SOAK_CHECKS, Phase, Release, Status, Stopped};
