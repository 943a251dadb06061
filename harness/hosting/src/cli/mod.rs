//! The host's commands, one module each: its arguments and the call that
//! runs it. A binary's `main` tables them, with commands of its own.

pub mod args;
pub mod bridge;
pub mod deploy;
pub mod list;
pub mod logs;
pub mod meta;
pub mod run;
pub mod test;
pub mod topic;
pub mod user;
pub mod validate;
