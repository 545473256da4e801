//! Loading NKey seeds and the xkey box, in one place so that no seed ever
//! reaches a log line or an error message: errors name where a key came
//! from, never what it was.

use crypto_box::SalsaBox;
use crypto_box::aead::rand_core::RngCore as _;
use crypto_box::aead::{Aead, OsRng};
use nkeys::{KeyPair, KeyPairType, XKey};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use zeroize::Zeroizing;

/// True when `key` is a valid public NKey of the kind `prefix` names
/// (`N` server, `A` account, `U` user, `X` curve).
pub fn is_public_key(key: &str, prefix: char) -> bool {
    key.starts_with(prefix) && nkeys::from_public_key(key).is_ok()
}

/// Where a seed is read from: a file, or an environment variable
/// (`env:NAME` in the configuration). Never the command line.
#[derive(Clone, PartialEq, Eq)]
pub enum SeedSource {
    File(PathBuf),
    Env(String),
}

impl SeedSource {
    /// Parse a configuration value: `env:NAME` or a path, relative to `base`.
    pub fn parse(value: &str, base: &Path) -> SeedSource {
        match value.strip_prefix("env:") {
            Some(var) => SeedSource::Env(var.to_owned()),
            None => SeedSource::File(base.join(value)),
        }
    }
}

impl fmt::Display for SeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeedSource::File(p) => write!(f, "file {}", p.display()),
            SeedSource::Env(v) => write!(f, "environment variable {v}"),
        }
    }
}

impl fmt::Debug for SeedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read seed from {source_name}: {error}")]
    Read {
        source_name: SeedSource,
        #[source]
        error: std::io::Error,
    },
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("{0} does not contain a valid NKey seed")]
    NotASeed(SeedSource),
    #[error("{source_name} holds a {found} seed, expected {expected}")]
    WrongKind {
        source_name: SeedSource,
        expected: &'static str,
        found: String,
    },
    #[error("{0:?} is not a valid public {1} key")]
    BadPublicKey(String, &'static str),
    #[error("xkey box: {0}")]
    Box(&'static str),
}

pub type Result<T> = std::result::Result<T, KeyError>;

/// Read the text that holds a seed. Decorated files (`-----BEGIN ... SEED-----`
/// blocks, as nsc writes them) and bare seeds are both accepted: the first
/// line that starts with `S` and decodes as a seed wins.
fn read_seed(source: &SeedSource) -> Result<String> {
    let text = match source {
        SeedSource::File(path) => {
            std::fs::read_to_string(path).map_err(|error| KeyError::Read {
                source_name: source.clone(),
                error,
            })?
        }
        SeedSource::Env(var) => {
            std::env::var(var).map_err(|_| KeyError::MissingEnv(var.clone()))?
        }
    };
    text.lines()
        .map(str::trim)
        .find(|l| l.starts_with('S') && nkeys::decode_seed(l).is_ok())
        .map(str::to_owned)
        .ok_or_else(|| KeyError::NotASeed(source.clone()))
}

/// An account key pair (A...) from a seed source: the issuer in config mode,
/// an account or signing key in operator mode.
pub fn account_key(source: &SeedSource) -> Result<KeyPair> {
    key_of_kind(source, KeyPairType::Account, "account (SA...)")
}

/// An account key that signs on the request path: user JWTs and
/// responses, two signatures per login.
///
/// It signs with AWS-LC's `ED25519_sign` rather than nkeys'
/// ed25519-dalek: the signatures are the same bytes (Ed25519 is
/// deterministic), made in about half the time, and signing was a fifth of
/// the host's CPU per login.
#[derive(Clone)]
pub struct Signer {
    public: String,
    /// Seed then public key, the private key `ED25519_sign` takes.
    private: Zeroizing<[u8; 64]>,
}

impl Signer {
    /// The signer for the account key `source` holds.
    pub fn load(source: &SeedSource) -> Result<Signer> {
        Signer::new(&account_key(source)?).ok_or_else(|| KeyError::NotASeed(source.clone()))
    }

    /// The same key as `kp`, for fast signing. `None` only if `kp` holds
    /// no seed (a public key alone cannot sign).
    pub fn new(kp: &KeyPair) -> Option<Signer> {
        static INIT: Once = Once::new();
        // SAFETY: no arguments; sets up AWS-LC's CPU feature detection.
        INIT.call_once(|| unsafe { aws_lc_sys::CRYPTO_library_init() });
        let public = kp.public_key();
        let seed = Zeroizing::new(nkeys::decode_seed(&Zeroizing::new(kp.seed().ok()?)).ok()?.1);
        let (_, expected) = nkeys::from_public_key(&public).ok()?;
        let mut raw_public = [0; 32];
        let mut private = Zeroizing::new([0; 64]);
        // SAFETY: the pointers are to buffers of the sizes the function
        // writes (32, 64) and reads (32).
        unsafe {
            aws_lc_sys::ED25519_keypair_from_seed(
                raw_public.as_mut_ptr(),
                private.as_mut_ptr(),
                seed.as_ptr(),
            )
        };
        (raw_public == expected).then_some(Signer { public, private })
    }

    /// The public NKey (A...).
    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The ed25519 signature of `data`. `None` if AWS-LC reports failure
    /// (it cannot, short of running out of memory).
    pub fn sign(&self, data: &[u8]) -> Option<[u8; 64]> {
        let mut sig = [0; 64];
        // SAFETY: `sig` has the 64 bytes written, `data` is read for its
        // length, `private` is the 64-byte key the function reads.
        let ok = unsafe {
            aws_lc_sys::ED25519_sign(
                sig.as_mut_ptr(),
                data.as_ptr(),
                data.len(),
                self.private.as_ptr(),
            )
        };
        (ok == 1).then_some(sig)
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.public)
    }
}

/// A user key pair (U...) from a seed source, for connecting to NATS.
pub fn user_key(source: &SeedSource) -> Result<KeyPair> {
    key_of_kind(source, KeyPairType::User, "user (SU...)")
}

fn key_of_kind(source: &SeedSource, kind: KeyPairType, expected: &'static str) -> Result<KeyPair> {
    let seed = read_seed(source)?;
    let kp = KeyPair::from_seed(&seed).map_err(|_| KeyError::NotASeed(source.clone()))?;
    let found = kp.key_pair_type();
    if found == kind {
        Ok(kp)
    } else {
        Err(KeyError::WrongKind {
            source_name: source.clone(),
            expected,
            found: format!("{found:?}").to_lowercase(),
        })
    }
}

/// The service's curve key (SX...) that the server encrypts requests to.
pub fn xkey(source: &SeedSource) -> Result<Xkey> {
    let seed = read_seed(source)?;
    if !seed.starts_with("SX") {
        return Err(KeyError::WrongKind {
            source_name: source.clone(),
            expected: "curve (SX...)",
            found: "non-curve".into(),
        });
    }
    let not_a_seed = || KeyError::NotASeed(source.clone());
    let (_, raw) = nkeys::decode_seed(&seed).map_err(|_| not_a_seed())?;
    let public = XKey::from_seed(&seed)
        .map_err(|_| not_a_seed())?
        .public_key();
    Ok(Xkey {
        public,
        secret: crypto_box::SecretKey::from_bytes(raw),
        boxes: Mutex::new(HashMap::new()),
        nonce_prefix: {
            let mut prefix = [0u8; NONCE_PREFIX_LEN];
            OsRng.fill_bytes(&mut prefix);
            prefix
        },
        nonces: AtomicU64::new(0),
    })
}

/// Peers whose precomputed box is kept. A host talks to a handful of
/// servers; the bound only stops a flood of fake senders from growing it.
const MAX_CACHED_PEERS: usize = 256;
/// `xkv1` + 24-byte nonce + NaCl box, as nats-server and the nkeys
/// libraries write it.
const XKEY_V1: &[u8] = b"xkv1";
const NONCE_LEN: usize = 24;
/// The random part of the nonces one [`Xkey`] seals with; the rest is a
/// counter.
const NONCE_PREFIX_LEN: usize = NONCE_LEN - 8;

/// Our side of the xkey box.
///
/// The X25519 exchange is most of the cost of opening and sealing, and it
/// only depends on the peer's key, so the box per peer is computed once.
pub struct Xkey {
    public: String,
    secret: crypto_box::SecretKey,
    boxes: Mutex<HashMap<String, Arc<SalsaBox>>>,
    /// Sealing needs a nonce never used twice with the same pair of keys.
    /// A random prefix, drawn once, and a counter give that without a
    /// `getrandom` system call per response (one per login before): the
    /// counter never repeats within this key, and hosts sharing the xkey
    /// seed differ in the 128-bit prefix.
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    nonces: AtomicU64,
}

impl Xkey {
    pub fn public_key(&self) -> String {
        self.public.clone()
    }

    fn salsa_box(&self, peer: &str) -> Result<Arc<SalsaBox>> {
        let mut boxes = self.boxes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = boxes.get(peer) {
            return Ok(b.clone());
        }
        let bad = || KeyError::BadPublicKey(peer.to_owned(), "curve");
        if !peer.starts_with('X') {
            return Err(bad());
        }
        let (_, raw) = nkeys::from_public_key(peer).map_err(|_| bad())?;
        let b = Arc::new(SalsaBox::new(
            &crypto_box::PublicKey::from(raw),
            &self.secret,
        ));
        if boxes.len() >= MAX_CACHED_PEERS {
            boxes.clear();
        }
        boxes.insert(peer.to_owned(), b.clone());
        Ok(b)
    }

    /// Open a request the server sealed to us; `sender` is the server's
    /// public xkey from the `Nats-Server-Xkey` header.
    pub fn open(&self, sealed: &[u8], sender: &str) -> Result<Vec<u8>> {
        let b = self.salsa_box(sender)?;
        let body = sealed
            .strip_prefix(XKEY_V1)
            .filter(|rest| rest.len() > NONCE_LEN)
            .ok_or(KeyError::Box("not an xkv1 box"))?;
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        b.decrypt(crypto_box::Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| KeyError::Box("cannot open: not sealed for this xkey, or tampered"))
    }

    /// Seal a response for the server whose public xkey is `recipient`.
    pub fn seal(&self, plain: &[u8], recipient: &str) -> Result<Vec<u8>> {
        let b = self.salsa_box(recipient)?;
        let mut nonce = crypto_box::Nonce::default();
        let (prefix, counter) = nonce.split_at_mut(NONCE_PREFIX_LEN);
        prefix.copy_from_slice(&self.nonce_prefix);
        counter.copy_from_slice(&self.nonces.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let ciphertext = b
            .encrypt(&nonce, plain)
            .map_err(|_| KeyError::Box("cannot seal"))?;
        let mut out = Vec::with_capacity(XKEY_V1.len() + NONCE_LEN + ciphertext.len());
        out.extend_from_slice(XKEY_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }
}

impl fmt::Debug for Xkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Xkey({})", self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> SeedSource {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        SeedSource::File(path)
    }

    #[test]
    fn sealed_responses_never_reuse_a_nonce_even_across_hosts_sharing_the_seed() {
        let seed = XKey::new().seed().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let source = write(dir.path(), "x.nk", &seed);
        // Two hosts started with the same xkey seed, answering one server.
        let hosts = [xkey(&source).unwrap(), xkey(&source).unwrap()];
        let server = XKey::new();
        let mut nonces = std::collections::HashSet::new();
        for i in 0..500 {
            for host in &hosts {
                let reply = host.seal(b"response", &server.public_key()).unwrap();
                let nonce = reply[XKEY_V1.len()..XKEY_V1.len() + NONCE_LEN].to_vec();
                assert!(nonces.insert(nonce), "nonce reused at response {i}");
                let opened = server
                    .open(&reply, &XKey::from_public_key(&host.public_key()).unwrap())
                    .unwrap();
                assert_eq!(opened, b"response");
            }
        }
    }

    #[test]
    fn xkey_round_trip_between_server_and_service() {
        let server = XKey::new();
        let service_seed = XKey::new().seed().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ours = xkey(&write(dir.path(), "x.nk", &service_seed)).unwrap();
        let server_pub = server.public_key();

        // What nats-server sends: sealed by its xkey to our public xkey.
        let sealed = server
            .seal(
                b"request",
                &XKey::from_public_key(&ours.public_key()).unwrap(),
            )
            .unwrap();
        assert!(sealed.starts_with(b"xkv1"));
        assert_eq!(ours.open(&sealed, &server_pub).unwrap(), b"request");

        // What we answer: the server opens it with our public xkey.
        let reply = ours.seal(b"response", &server_pub).unwrap();
        let opened = server
            .open(&reply, &XKey::from_public_key(&ours.public_key()).unwrap())
            .unwrap();
        assert_eq!(opened, b"response");

        // A different sender, or a flipped byte, does not open.
        assert!(ours.open(&sealed, &XKey::new().public_key()).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(ours.open(&tampered, &server_pub).is_err());
    }

    #[test]
    fn seed_errors_name_the_source_never_the_seed() {
        let dir = tempfile::tempdir().unwrap();
        let user_seed = KeyPair::new_user().seed().unwrap();
        let src = write(dir.path(), "user.nk", &user_seed);
        let err = account_key(&src).unwrap_err().to_string();
        assert!(
            err.contains("user.nk") && err.contains("expected account"),
            "{err}"
        );
        assert!(!err.contains(&user_seed[2..]), "seed leaked: {err}");

        let err = account_key(&write(dir.path(), "junk.nk", "SAnotaseed\n")).unwrap_err();
        assert!(matches!(err, KeyError::NotASeed(_)));
        assert!(!err.to_string().contains("SAnotaseed"));

        let missing = SeedSource::File(dir.path().join("absent.nk"));
        assert!(matches!(account_key(&missing), Err(KeyError::Read { .. })));
    }

    #[test]
    fn signer_signs_what_nkeys_signs_and_verifies() {
        let kp = KeyPair::new_account();
        let signer = Signer::new(&kp).unwrap();
        assert_eq!(signer.public_key(), kp.public_key());
        let data = b"eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30";
        let sig = signer.sign(data).unwrap();
        assert_eq!(sig.to_vec(), kp.sign(data).unwrap());
        assert!(kp.verify(data, &sig).is_ok());
        assert!(kp.verify(b"other", &sig).is_err());
        assert!(Signer::new(&KeyPair::from_public_key(&kp.public_key()).unwrap()).is_none());
        assert_eq!(
            format!("{signer:?}"),
            format!("Signer({})", kp.public_key())
        );
    }

    #[test]
    fn decorated_seed_files_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let kp = KeyPair::new_account();
        let text = format!(
            "-----BEGIN ACCOUNT NKEY SEED-----\n{}\n------END ACCOUNT NKEY SEED------\n",
            kp.seed().unwrap()
        );
        let loaded = account_key(&write(dir.path(), "a.nk", &text)).unwrap();
        assert_eq!(loaded.public_key(), kp.public_key());
    }
}
