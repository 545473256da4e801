//! `portcullis hash-password`: turns a password into the bcrypt or argon2
//! string that static-users' `pass` accepts, so a user directory never has
//! to hold plaintext; `--algorithm sha256-token` turns a shared token into
//! the `sha256:HEX` key of static-users' `tokens` (unsalted and fast: a
//! token is a high-entropy random secret, not a password a person chose).
//!
//! The password is read from stdin (one line) or, on a terminal, from a
//! prompt without echo: never from the command line, where it would land in
//! shell history and in every process listing.
//!
//! The hashing is a library function too: tests and benchmarks build user
//! directories with the very hashes the command prints.

use argon2::password_hash::{PasswordHasher as _, SaltString, rand_core::OsRng};
use std::io::{IsTerminal as _, Read};
use std::process::ExitCode;

/// Default bcrypt cost (2^cost rounds): the OWASP minimum. Every step
/// doubles the time a login takes (cost 12 is ~0.5 s inside a plugin).
pub const DEFAULT_BCRYPT_COST: u32 = 10;
/// Default argon2id memory in KiB, iterations and lanes: the OWASP
/// recommendation (19 MiB, 2 passes, 1 lane).
pub const DEFAULT_ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const DEFAULT_ARGON2_ITERATIONS: u32 = 2;
pub const DEFAULT_ARGON2_PARALLELISM: u32 = 1;
/// Longest password read from stdin.
const MAX_PASSWORD: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    Argon2id,
    Bcrypt,
    /// `sha256:HEX`, for static-users' `tokens`: only for random tokens
    /// (e.g. `openssl rand -hex 32`), never for passwords.
    Sha256Token,
}

/// How to hash.
#[derive(Debug, Clone, Copy)]
pub struct HashOptions {
    pub algorithm: Algorithm,
    pub bcrypt_cost: u32,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
}

impl Default for HashOptions {
    fn default() -> Self {
        HashOptions {
            algorithm: Algorithm::Argon2id,
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            argon2_memory_kib: DEFAULT_ARGON2_MEMORY_KIB,
            argon2_iterations: DEFAULT_ARGON2_ITERATIONS,
            argon2_parallelism: DEFAULT_ARGON2_PARALLELISM,
        }
    }
}

/// Errors never contain the password.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("cannot read the password: {0}")]
    Read(#[source] std::io::Error),
    #[error("the password is empty")]
    Empty,
    #[error("the password is longer than {MAX_PASSWORD} bytes")]
    TooLong,
    #[error("stdin holds more than one line; give the password alone")]
    MultipleLines,
    #[error("the passwords do not match")]
    Mismatch,
    #[error("bcrypt: {0} (bcrypt takes at most 72 bytes and a cost from 4 to 31)")]
    Bcrypt(#[source] bcrypt::BcryptError),
    #[error("argon2: {0}")]
    Argon2(String),
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, value_enum, default_value_t = Algorithm::Argon2id)]
    pub algorithm: Algorithm,
    /// bcrypt cost (4-31).
    #[arg(long, default_value_t = DEFAULT_BCRYPT_COST)]
    pub cost: u32,
    /// argon2id memory in KiB.
    #[arg(long, default_value_t = DEFAULT_ARGON2_MEMORY_KIB)]
    pub memory_kib: u32,
    /// argon2id passes over memory.
    #[arg(long, default_value_t = DEFAULT_ARGON2_ITERATIONS)]
    pub iterations: u32,
    /// argon2id lanes.
    #[arg(long, default_value_t = DEFAULT_ARGON2_PARALLELISM)]
    pub parallelism: u32,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let options = HashOptions {
        algorithm: args.algorithm,
        bcrypt_cost: args.cost,
        argon2_memory_kib: args.memory_kib,
        argon2_iterations: args.iterations,
        argon2_parallelism: args.parallelism,
    };
    let password = read_password()?;
    println!("{}", hash(&password, &options)?);
    Ok(ExitCode::SUCCESS)
}

/// Hash `password` as `options` say; the PHC (argon2) or modular crypt
/// (bcrypt) string.
pub fn hash(password: &str, options: &HashOptions) -> Result<String, HashError> {
    if password.is_empty() {
        return Err(HashError::Empty);
    }
    match options.algorithm {
        Algorithm::Sha256Token => Ok(format!(
            "sha256:{}",
            portcullis_protocol::digest::sha256_hex(password.as_bytes())
        )),
        // non_truncating: bcrypt silently ignores bytes past 72; refuse
        // instead of storing a hash that a prefix also matches.
        Algorithm::Bcrypt => {
            bcrypt::non_truncating_hash(password, options.bcrypt_cost).map_err(HashError::Bcrypt)
        }
        Algorithm::Argon2id => {
            let params = argon2::Params::new(
                options.argon2_memory_kib,
                options.argon2_iterations,
                options.argon2_parallelism,
                None,
            )
            .map_err(|e| HashError::Argon2(e.to_string()))?;
            let hasher =
                argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
            let salt = SaltString::generate(&mut OsRng);
            hasher
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| HashError::Argon2(e.to_string()))
        }
    }
}

/// The password from a prompt (twice, without echo) when stdin is a
/// terminal, else the one line on stdin.
pub fn read_password() -> Result<String, HashError> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(HashError::Read)?;
        let second = rpassword::prompt_password("Again: ").map_err(HashError::Read)?;
        if first != second {
            return Err(HashError::Mismatch);
        }
        return check_length(first);
    }
    read_line(std::io::stdin().lock())
}

/// One line from `input`: a single trailing newline (`\n` or `\r\n`) is
/// dropped, anything else is part of the password.
pub fn read_line(input: impl Read) -> Result<String, HashError> {
    let mut bytes = Vec::new();
    input
        .take(MAX_PASSWORD as u64 + 3)
        .read_to_end(&mut bytes)
        .map_err(HashError::Read)?;
    let mut text = String::from_utf8(bytes).map_err(|_| {
        HashError::Read(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the password is not UTF-8",
        ))
    })?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.contains('\n') {
        return Err(HashError::MultipleLines);
    }
    check_length(text)
}

fn check_length(password: String) -> Result<String, HashError> {
    match password.len() {
        0 => Err(HashError::Empty),
        n if n > MAX_PASSWORD => Err(HashError::TooLong),
        _ => Ok(password),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier as _;

    fn small(algorithm: Algorithm) -> HashOptions {
        HashOptions {
            algorithm,
            bcrypt_cost: 4,
            argon2_memory_kib: 256,
            argon2_iterations: 1,
            ..HashOptions::default()
        }
    }

    #[test]
    fn argon2id_hashes_verify_and_are_salted() {
        let a = hash("s3cret", &small(Algorithm::Argon2id)).unwrap();
        let b = hash("s3cret", &small(Algorithm::Argon2id)).unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        let parsed = argon2::PasswordHash::new(&a).unwrap();
        assert!(
            argon2::Argon2::default()
                .verify_password(b"s3cret", &parsed)
                .is_ok()
        );
        assert!(
            argon2::Argon2::default()
                .verify_password(b"s3cres", &parsed)
                .is_err()
        );
        let defaults = hash("x", &HashOptions::default()).unwrap();
        assert!(
            defaults.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{defaults}"
        );
    }

    #[test]
    fn bcrypt_hashes_verify_and_refuse_truncation() {
        let h = hash("s3cret", &small(Algorithm::Bcrypt)).unwrap();
        assert!(h.starts_with("$2b$04$"), "{h}");
        assert!(bcrypt::verify("s3cret", &h).unwrap());
        assert!(!bcrypt::verify("s3cres", &h).unwrap());
        let long = "x".repeat(73);
        assert!(matches!(
            hash(&long, &small(Algorithm::Bcrypt)),
            Err(HashError::Bcrypt(_))
        ));
        let mut bad_cost = small(Algorithm::Bcrypt);
        bad_cost.bcrypt_cost = 3;
        assert!(hash("x", &bad_cost).is_err());
    }

    #[test]
    fn tokens_hash_to_the_sha256_key_static_users_reads() {
        assert_eq!(
            hash("abc", &small(Algorithm::Sha256Token)).unwrap(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(matches!(
            hash("", &small(Algorithm::Sha256Token)),
            Err(HashError::Empty)
        ));
    }

    #[test]
    fn reads_one_line_and_never_echoes_it_in_errors() {
        assert_eq!(
            read_line(&b"pw with spaces \n"[..]).unwrap(),
            "pw with spaces "
        );
        assert_eq!(read_line(&b"pw\r\n"[..]).unwrap(), "pw");
        assert_eq!(read_line(&b"pw"[..]).unwrap(), "pw");
        assert!(matches!(read_line(&b"\n"[..]), Err(HashError::Empty)));
        assert!(matches!(read_line(&b""[..]), Err(HashError::Empty)));
        let err = read_line(&b"hunter2\nsecond\n"[..]).unwrap_err();
        assert!(matches!(err, HashError::MultipleLines));
        assert!(!err.to_string().contains("hunter2"));
        let long = vec![b'a'; MAX_PASSWORD + 1];
        assert!(matches!(read_line(&long[..]), Err(HashError::TooLong)));
        assert!(matches!(
            hash("", &HashOptions::default()),
            Err(HashError::Empty)
        ));
    }
}
