//! One module per command: its arguments and the call that runs it.

pub mod args;
pub mod bench;
pub mod bridge;
pub mod deploy;
pub mod list;
pub mod logs;
pub mod meta;
pub mod run;
pub mod test;
pub mod topic;
pub mod up;
pub mod validate;
