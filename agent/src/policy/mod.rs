//! Policies: YAML rules compiled once into matchers over domain events; the rules and
//! response stages of the pipeline. The language is documented in `docs/policy.md`.
//!
//! In the order a policy meets them: [`yaml`](self) (nodes with positions) -> `rule` (a
//! file's rules, every problem a [`CheckError`] with file, line, column and field) ->
//! [`field`] and [`operator`] inside [`condition`] (compiled tests) -> [`action`] (modes,
//! severities, what the kernel can enforce) -> [`engine`] ([`PolicySet`]: rules indexed by
//! kind, pure evaluation) -> [`stage`] (the pipeline stage) -> [`response`] (monitor or
//! enforce, the [`Responder`] contract) -> [`finding`] (the finding event). [`load`] builds a
//! set from the embedded [`pack`] and a directory, [`reload`] swaps it on SIGHUP or on change,
//! [`cases`] runs behaviour cases.

pub mod action;
pub mod cases;
pub mod condition;
pub mod config;
pub mod engine;
pub mod error;
pub mod field;
pub mod finding;
pub mod kind;
pub mod load;
pub mod operator;
pub mod pack;
pub mod reload;
pub mod response;
mod rule;
pub mod stage;
mod yaml;

pub use action::{Action, Mode, Severity};
pub use config::PolicyConfig;
pub use engine::PolicySet;
pub use error::{CheckError, CheckErrors, PolicyError};
pub use finding::Finding;
pub use response::{DryRunResponder, Outcome, Responder, Status, Target};
pub use rule::{Rule, RuleInfo};
pub use stage::{PolicyStage, PolicyStats};

#[cfg(test)]
mod tests;
