//! Test support for kiln's tests: a seeded emulator per test, copies of the
//! example recipe to edit, mocked clients, and helpers to read what the
//! emulator holds.
//!
//! Each test starts its own emulator (`scripts/emulator serve` on a free port,
//! ready in about a second), so tests are isolated under any parallel runner.
//! The emulator stops when its [`Emulator`] is dropped, or when the test
//! process dies (it watches its stdin).

pub mod asl;
mod emulator;
mod fixtures;
mod hooks;
pub mod iam;
mod mocks;
mod process;

pub use emulator::{Emulator, EventCapture, Seeded};
pub use fixtures::*;
pub use mocks::{Mocks, Protocol, mocked, mocked_with, throttled};
pub use process::{function_binary, invoke_function, kiln, recipe_root, render_page, repo};
