//! `harness user`: the SASL users of `harness up`'s Kafka listener, as
//! `rpk security user` manages Redpanda's, through the same admin API
//! routes.

use std::io::Write;

use super::args::AdminArgs;
use admin::NewUser;
use anyhow::{Context, Result};
use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use clap::{Args, Subcommand};

#[derive(Args)]
#[command(
    after_help = "Users are kept in up's data folder, each with one SCRAM credential (never the \
password itself). Kafka clients log in with sasl.mechanism=SCRAM-SHA-256 (or -512), sasl.username and \
sasl.password, once up runs with --kafka-sasl.\n\nExamples:\n  harness user create alice\n  harness user \
create bob --password 's3cret' --mechanism SCRAM-SHA-512\n  harness user list"
)]
pub struct UserArgs {
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; without --password, one is generated and printed once.
    Create(CreateArgs),
    /// Give a user a new password (and mechanism).
    Update(UpdateArgs),
    /// Delete a user.
    Delete(NameArgs),
    /// List the users.
    #[command(alias = "ls")]
    List(ListArgs),
}

#[derive(Args)]
struct CreateArgs {
    name: String,
    /// The password [default: a random one, printed once].
    #[arg(long, short)]
    password: Option<String>,
    #[command(flatten)]
    mechanism: MechanismArg,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Args)]
struct UpdateArgs {
    name: String,
    #[arg(long)]
    new_password: String,
    #[command(flatten)]
    mechanism: MechanismArg,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Args)]
struct MechanismArg {
    /// SCRAM-SHA-256 or SCRAM-SHA-512, as clients' sasl.mechanism names it.
    #[arg(long, default_value = "SCRAM-SHA-256")]
    mechanism: String,
}

#[derive(Args)]
struct NameArgs {
    name: String,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Args)]
struct ListArgs {
    #[command(flatten)]
    admin: AdminArgs,
}

pub fn run(args: UserArgs) -> Result<()> {
    match args.command {
        UserCommand::Create(args) => create(args),
        UserCommand::Update(args) => update(args),
        UserCommand::Delete(args) => delete(args),
        UserCommand::List(args) => list(args),
    }
}

fn create(args: CreateArgs) -> Result<()> {
    let generated = args.password.is_none();
    let password = match args.password {
        Some(password) => password,
        None => random_password()?,
    };
    let mechanism = args.mechanism.mechanism.to_ascii_uppercase();
    args.admin
        .client()?
        .create_user(&NewUser {
            username: Some(args.name.clone()),
            password: password.clone(),
            algorithm: mechanism.clone(),
        })
        .with_context(|| format!("unable to create user {:?}", args.name))?;
    println!("Created user {:?} ({mechanism}).", args.name);
    if generated {
        println!("Its password, shown once: {password}");
    }
    Ok(())
}

fn update(args: UpdateArgs) -> Result<()> {
    let mechanism = args.mechanism.mechanism.to_ascii_uppercase();
    args.admin
        .client()?
        .update_user(
            &args.name,
            &NewUser {
                username: Some(args.name.clone()),
                password: args.new_password,
                algorithm: mechanism.clone(),
            },
        )
        .with_context(|| format!("unable to update user {:?}", args.name))?;
    println!("Updated user {:?} ({mechanism}).", args.name);
    Ok(())
}

fn delete(args: NameArgs) -> Result<()> {
    args.admin
        .client()?
        .delete_user(&args.name)
        .with_context(|| format!("unable to delete user {:?}", args.name))?;
    println!("Deleted user {:?}.", args.name);
    Ok(())
}

fn list(args: ListArgs) -> Result<()> {
    let users = args
        .admin
        .client()?
        .users()
        .context("unable to list users")?;
    // Written, not printed: `| head` ends the command, not panics it.
    let mut out = std::io::stdout();
    writeln!(out, "USERNAME")?;
    for user in users {
        writeln!(out, "{user}")?;
    }
    Ok(())
}

/// 24 random bytes, as 32 characters a shell and a properties file take
/// unquoted.
fn random_password() -> Result<String> {
    let mut bytes = [0; 24];
    openssl::rand::rand_bytes(&mut bytes).context("no random password")?;
    Ok(BASE64_URL_SAFE_NO_PAD.encode(bytes))
}
