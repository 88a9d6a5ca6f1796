//! `edgetrace account …`, `edgetrace token …`, `edgetrace key …`: accounts and credentials in
//! a data directory, in a form scripts can use (the one value asked for on stdout, messages on
//! stderr). They work while `serve` runs on the same directory.

use crate::serve::data_dir;
use anyhow::Context;
use edgetrace_store::{PERMISSIONS, Store};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct DataDir {
    /// Directory of the SQLite database [default: ./edgetrace-data].
    #[arg(long, value_name = "DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL (postgres://USER@HOST/DB) instead of the data directory: the database
    /// that `serve --database` replicas share.
    #[arg(long, value_name = "URL", global = true, conflicts_with = "data_dir")]
    database: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum Account {
    /// Creates an account; prints only its id (32 hex characters).
    Create {
        /// A name for people.
        #[arg(long)]
        name: String,
    },
    /// Lists accounts: id and name, tab-separated.
    List,
}

#[derive(clap::Subcommand, Debug)]
pub enum Token {
    /// Creates an API token; prints only its secret, once (only a hash is kept).
    #[command(after_help = format!("Permissions: {}", PERMISSIONS.join(", ")))]
    Create {
        /// Account the token acts on.
        #[arg(long, value_name = "ID")]
        account: String,
        /// A permission, by its Cloudflare name; repeat for more (e.g. "Magic Transit Write").
        /// A "… Write" permission implies the matching "… Read".
        #[arg(
            long = "permission",
            value_name = "NAME",
            required_unless_present = "all_permissions"
        )]
        permissions: Vec<String>,
        /// Every permission edgetrace knows.
        #[arg(long, conflicts_with = "permissions")]
        all_permissions: bool,
        /// A name for people.
        #[arg(long, default_value = "token")]
        name: String,
    },
    /// Lists tokens: id, account, status, name and permissions, tab-separated.
    List {
        /// Only this account's tokens.
        #[arg(long, value_name = "ID")]
        account: Option<String>,
    },
    /// Revokes a token; requests with it fail from then on.
    Revoke {
        /// The token's id (from `token list`).
        id: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum Key {
    /// Gives a user (by email) a new global API key for X-Auth-Email/X-Auth-Key and membership
    /// of an account; prints only the key, once. An existing key of that user stops working.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_name = "ID")]
        account: String,
    },
}

fn block_on<T>(dir: DataDir, f: impl AsyncFnOnce(Store) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async move {
        let store = match &dir.database {
            Some(url) => {
                crate::serve::check_database_url(url)?;
                Store::open(url).await?
            }
            None => Store::open_data_dir(&data_dir(dir.data_dir)).await?,
        };
        let out = f(store.clone()).await;
        store.close().await;
        out
    })
}

fn finish(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgetrace: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn account(dir: DataDir, cmd: Account) -> ExitCode {
    finish(block_on(dir, async |store| {
        match cmd {
            Account::Create { name } => println!("{}", store.create_account(&name).await?.id),
            Account::List => {
                for a in store.accounts().await? {
                    println!("{}\t{}", a.id, a.name);
                }
            }
        }
        Ok(())
    }))
}

pub fn token(dir: DataDir, cmd: Token) -> ExitCode {
    finish(block_on(dir, async |store| {
        match cmd {
            Token::Create {
                account,
                permissions,
                all_permissions,
                name,
            } => {
                let permissions = if all_permissions {
                    PERMISSIONS.iter().map(|p| p.to_string()).collect()
                } else {
                    permissions
                };
                let (token, secret) = store.create_token(&account, &name, &permissions).await?;
                eprintln!("edgetrace: created token {}", token.id);
                println!("{secret}");
            }
            Token::List { account } => {
                for t in store.tokens(account.as_deref()).await? {
                    println!(
                        "{}\t{}\t{}\t{}\t{}",
                        t.id,
                        t.account_id,
                        t.status,
                        t.name,
                        t.permissions.join(", ")
                    );
                }
            }
            Token::Revoke { id } => {
                if store.revoke_token(&id).await? {
                    eprintln!("edgetrace: token {id} revoked");
                } else {
                    eprintln!("edgetrace: token {id} was already revoked");
                }
            }
        }
        Ok(())
    }))
}

pub fn key(dir: DataDir, cmd: Key) -> ExitCode {
    finish(block_on(dir, async |store| {
        let Key::Create { email, account } = cmd;
        println!("{}", store.create_global_key(&email, &account).await?);
        Ok(())
    }))
}
