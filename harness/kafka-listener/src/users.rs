//! The listener's SASL users, kept in the data folder. As in Redpanda
//! (`security/credential_store.h`, `redpanda/admin/security.cc`), a user has
//! one SCRAM credential, of the mechanism it was created with; the password
//! itself is never kept, only what RFC 5802 lets a server check it with.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use nisshi_sans_io::ScramMechanism;
use nisshi_storage::ScramCredential;
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::PKey;
use openssl::sign::Signer;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use topics::Topics;

/// Every user, in one entry: there are few, and a deletion is a rewrite.
const USERS_KEY: &str = "kafka/users";

/// What rsasl's SCRAM server answers for an unknown user (with a made-up
/// salt), so that its first message does not tell who exists; above
/// Redpanda's `min_iterations`, 4,096 (`security/scram_algorithm.h`).
const ITERATIONS: u32 = 16_384;

const SALT_BYTES: usize = 32;

/// Why a change to the users was refused.
#[derive(Debug)]
pub enum UserError {
    /// The request itself is wrong: the message says how.
    Invalid(String),
    /// The user does not exist.
    NotFound(String),
    /// The data folder could not keep it.
    Store(anyhow::Error),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::Invalid(message) | UserError::NotFound(message) => f.write_str(message),
            UserError::Store(e) => write!(f, "keeping the users: {e:#}"),
        }
    }
}

impl std::error::Error for UserError {}

/// A SCRAM mechanism, by the name clients and rpk give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Mechanism::ScramSha256 => MessageDigest::sha256(),
            Mechanism::ScramSha512 => MessageDigest::sha512(),
        }
    }

    fn of(mechanism: ScramMechanism) -> Mechanism {
        match mechanism {
            ScramMechanism::Scram256 => Mechanism::ScramSha256,
            ScramMechanism::Scram512 => Mechanism::ScramSha512,
        }
    }
}

impl std::str::FromStr for Mechanism {
    type Err = String;

    /// As rpk takes it: any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "SCRAM-SHA-256" => Ok(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(Mechanism::ScramSha512),
            _ => Err(format!(
                "Unknown scram algorithm: {s} (SCRAM-SHA-256 or SCRAM-SHA-512)"
            )),
        }
    }
}

#[derive(Serialize, Deserialize, PartialEq)]
struct StoredUser {
    mechanism: Mechanism,
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

impl StoredUser {
    fn derive(mechanism: Mechanism, password: &str, salt: Vec<u8>, iterations: u32) -> StoredUser {
        let (stored_key, server_key) = keys(mechanism.digest(), password, &salt, iterations)
            .expect("OpenSSL's PBKDF2, HMAC and hashes take any input");
        StoredUser {
            mechanism,
            salt,
            iterations,
            stored_key,
            server_key,
        }
    }

    /// Whether `password` is this user's, with `mechanism`.
    fn is(&self, mechanism: Mechanism, password: &str) -> bool {
        self.mechanism == mechanism
            && StoredUser::derive(mechanism, password, self.salt.clone(), self.iterations) == *self
    }
}

/// RFC 5802's StoredKey and ServerKey of a password.
fn keys(
    digest: MessageDigest,
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> Result<(Vec<u8>, Vec<u8>), openssl::error::ErrorStack> {
    let mut salted = vec![0; digest.size()];
    openssl::pkcs5::pbkdf2_hmac(
        password.as_bytes(),
        salt,
        iterations as usize,
        digest,
        &mut salted,
    )?;
    let client_key = hmac(digest, &salted, b"Client Key")?;
    Ok((
        hash(digest, &client_key)?.to_vec(),
        hmac(digest, &salted, b"Server Key")?,
    ))
}

fn hmac(
    digest: MessageDigest,
    key: &[u8],
    text: &[u8],
) -> Result<Vec<u8>, openssl::error::ErrorStack> {
    let key = PKey::hmac(key)?;
    let mut signer = Signer::new(digest, &key)?;
    signer.update(text)?;
    signer.sign_to_vec()
}

/// The users, over the topics' meta entries: written with the topics,
/// flushed before a change is acknowledged.
#[derive(Clone)]
pub struct Users {
    topics: Topics,
    /// Held from a read of the users to its rewrite.
    changing: Arc<Mutex<()>>,
}

type Stored = BTreeMap<String, StoredUser>;

impl Users {
    pub fn new(topics: Topics) -> Users {
        Users {
            topics,
            changing: Arc::default(),
        }
    }

    /// Every user's name, sorted.
    pub fn list(&self) -> Vec<String> {
        self.stored().into_keys().collect()
    }

    /// Creates a user. Creating it again with the same password and
    /// mechanism changes nothing, as in Redpanda; with others, it is refused.
    pub fn create(
        &self,
        name: &str,
        password: &str,
        mechanism: Mechanism,
    ) -> Result<(), UserError> {
        check_name(name)?;
        check_password(password)?;
        self.change(|users| match users.get(name) {
            Some(user) if user.is(mechanism, password) => Ok(false),
            Some(_) => Err(UserError::Invalid(format!(
                "User already exists: {name} (change its password with `harness user update`)"
            ))),
            None => {
                new_user(mechanism, password).map(|user| users.insert(name.into(), user).is_none())
            }
        })
    }

    /// Gives an existing user a new password, and possibly mechanism.
    pub fn update(
        &self,
        name: &str,
        password: &str,
        mechanism: Mechanism,
    ) -> Result<(), UserError> {
        check_password(password)?;
        self.change(|users| match users.get_mut(name) {
            None => Err(UserError::NotFound(format!("User does not exist: {name}"))),
            Some(user) if user.is(mechanism, password) => Ok(false),
            Some(user) => {
                *user = new_user(mechanism, password)?;
                Ok(true)
            }
        })
    }

    /// Removes a user; an unknown one is no error, as in Redpanda.
    pub fn delete(&self, name: &str) -> Result<(), UserError> {
        self.change(|users| Ok(users.remove(name).is_some()))
    }

    /// What a SCRAM exchange checks `name`'s proof against, if it has a
    /// credential of that mechanism.
    pub(crate) fn credential(
        &self,
        name: &str,
        mechanism: ScramMechanism,
    ) -> Option<ScramCredential> {
        let user = self.stored().remove(name)?;
        (user.mechanism == Mechanism::of(mechanism)).then(|| ScramCredential {
            salt: Bytes::from(user.salt),
            iterations: user.iterations as i32,
            stored_key: Bytes::from(user.stored_key),
            server_key: Bytes::from(user.server_key),
        })
    }

    fn stored(&self) -> Stored {
        let Some(value) = self.topics.meta(USERS_KEY) else {
            return Stored::new();
        };
        serde_json::from_slice(&value).unwrap_or_else(|e| {
            tracing::warn!("the stored users cannot be read, so none can log in: {e}");
            Stored::new()
        })
    }

    /// Applies `edit`, and keeps the users if it says they changed.
    fn change(
        &self,
        edit: impl FnOnce(&mut Stored) -> Result<bool, UserError>,
    ) -> Result<(), UserError> {
        let _changing = self.changing.lock();
        let mut users = self.stored();
        if !edit(&mut users)? {
            return Ok(());
        }
        let value = serde_json::to_vec(&users).map_err(|e| UserError::Store(e.into()))?;
        self.topics.set_meta(USERS_KEY, value);
        self.topics.flush().map_err(UserError::Store)
    }
}

fn new_user(mechanism: Mechanism, password: &str) -> Result<StoredUser, UserError> {
    let mut salt = vec![0; SALT_BYTES];
    openssl::rand::rand_bytes(&mut salt)
        .map_err(|e| UserError::Store(anyhow::anyhow!("no random salt: {e}")))?;
    Ok(StoredUser::derive(mechanism, password, salt, ITERATIONS))
}

/// A name SCRAM can carry: RFC 5802's saslname without its escapes, as
/// Redpanda's `validate_scram_username` allows.
fn check_name(name: &str) -> Result<(), UserError> {
    if name.is_empty()
        || name.len() > 128
        || name.chars().any(|c| c.is_control() || c == ',' || c == '=')
    {
        return Err(UserError::Invalid(format!(
            "Invalid SCRAM username {{{}}}: 1 to 128 characters, without control characters, `,` or `=`",
            name.escape_debug()
        )));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::Invalid("the password is empty".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use topics::{DataFolder, Retention};

    /// RFC 7677's example exchange: user "user", password "pencil". The
    /// server's signature over its AuthMessage comes from our ServerKey,
    /// and the client's proof, XORed with its signature, gives back a
    /// ClientKey whose hash is our StoredKey.
    #[test]
    fn the_keys_are_rfc_7677s() {
        use base64::prelude::{Engine, BASE64_STANDARD};
        let salt = BASE64_STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let user = StoredUser::derive(Mechanism::ScramSha256, "pencil", salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sign =
            |key: &[u8]| hmac(MessageDigest::sha256(), key, auth_message.as_bytes()).unwrap();
        assert_eq!(
            BASE64_STANDARD.encode(sign(&user.server_key)),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let proof = BASE64_STANDARD
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        let client_key: Vec<u8> = proof
            .iter()
            .zip(sign(&user.stored_key))
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(
            hash(MessageDigest::sha256(), &client_key).unwrap().to_vec(),
            user.stored_key
        );
        assert!(user.is(Mechanism::ScramSha256, "pencil"));
        assert!(!user.is(Mechanism::ScramSha256, "pencil2"));
        assert!(!user.is(Mechanism::ScramSha512, "pencil"));
    }

    #[test]
    fn users_are_kept_in_the_data_folder_with_one_mechanism_each() {
        let dir = tempfile::tempdir().unwrap();
        let open =
            || Topics::open(DataFolder::open(dir.path()).unwrap(), Retention::default()).unwrap();
        let topics = open();
        let users = Users::new(topics.clone());
        users
            .create("alice", "s3cret", Mechanism::ScramSha256)
            .unwrap();
        users
            .create("bob", "hunter2", Mechanism::ScramSha512)
            .unwrap();
        // Again with the same password: nothing changes.
        users
            .create("alice", "s3cret", Mechanism::ScramSha256)
            .unwrap();
        let e = users
            .create("alice", "other", Mechanism::ScramSha256)
            .unwrap_err();
        assert!(e.to_string().contains("User already exists"), "{e}");
        drop(users);
        topics.shut_down().unwrap();
        drop(topics);

        let topics = open();
        let users = Users::new(topics.clone());
        assert_eq!(users.list(), ["alice", "bob"]);
        assert!(users
            .credential("alice", ScramMechanism::Scram256)
            .is_some());
        assert!(users
            .credential("alice", ScramMechanism::Scram512)
            .is_none());
        assert!(users
            .credential("carol", ScramMechanism::Scram256)
            .is_none());
        let before = users.credential("bob", ScramMechanism::Scram512).unwrap();
        users.update("bob", "new", Mechanism::ScramSha512).unwrap();
        let after = users.credential("bob", ScramMechanism::Scram512).unwrap();
        assert_ne!(before.stored_key, after.stored_key);
        assert!(matches!(
            users.update("carol", "x", Mechanism::ScramSha256),
            Err(UserError::NotFound(_))
        ));
        users.delete("alice").unwrap();
        users.delete("alice").unwrap();
        assert_eq!(users.list(), ["bob"]);
        topics.shut_down().unwrap();
    }

    #[test]
    fn bad_names_and_passwords_say_why() {
        let users = Users::new(Topics::in_memory(1 << 20));
        for name in ["", "a,b", "a=b", "tab\there"] {
            let e = users.create(name, "p", Mechanism::ScramSha256).unwrap_err();
            assert!(e.to_string().contains("Invalid SCRAM username"), "{e}");
        }
        let e = users
            .create("alice", "", Mechanism::ScramSha256)
            .unwrap_err();
        assert!(e.to_string().contains("password is empty"), "{e}");
        assert_eq!(
            "scram-sha-512".parse::<Mechanism>(),
            Ok(Mechanism::ScramSha512)
        );
        assert!("PLAIN"
            .parse::<Mechanism>()
            .unwrap_err()
            .contains("SCRAM-SHA-256"));
        assert!(users.list().is_empty());
    }
}
