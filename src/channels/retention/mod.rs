//! The images of a recipe, what holds on to each ([`images`]), and
//! retention: images nothing needs any more are deprecated, then disabled,
//! then deregistered with their snapshots once the recipe's grace period has
//! passed ([`prune`]); until then `kiln restore` brings a disabled one back
//! (`crate::ops::restore`).

mod holds;
mod inventory;
mod prune;

pub use holds::{Audited, Sighting};
pub use inventory::{CopyInfo, ImageInfo, images};
pub use prune::{Keep, Kept, Pruning, Retiring, Step, prune};
