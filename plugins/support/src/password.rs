//! Stored passwords as the bundled user directories keep them (static-users'
//! `users.json`, sql-users' rows): plaintext, a bcrypt hash (`$2a$`, `$2b$`,
//! `$2y$`, verified natively by the host) or an argon2 PHC string
//! (`$argon2id$`, `$argon2i$`, `$argon2d$`, verified in the plugin), as
//! `portcullis hash-password` prints them.

use portcullis_sdk::host::{MAX_BCRYPT_COST, constant_time_eq, verify_password};

fn is_bcrypt(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

fn is_argon2(stored: &str) -> bool {
    ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// Why `stored` cannot be checked against (a malformed hash, a bcrypt
/// cost above the host's maximum), so a bad entry is reported as such
/// rather than as a wrong password.
pub fn check(stored: &str) -> Result<(), String> {
    if is_bcrypt(stored) {
        match bcrypt_cost(stored) {
            None => return Err("malformed bcrypt hash".into()),
            Some(cost) if cost > MAX_BCRYPT_COST => {
                return Err(format!(
                    "bcrypt cost of {cost}, above the host's maximum of {MAX_BCRYPT_COST}"
                ));
            }
            Some(_) => {}
        }
    }
    if is_argon2(stored) {
        argon2_hash(stored).map_err(|e| format!("malformed argon2 hash: {e}"))?;
    }
    Ok(())
}

/// Whether `given` is the password `stored` holds. bcrypt runs in the host
/// (natively, against the login's deadline); argon2 in the plugin;
/// plaintext is compared in constant time.
pub fn matches(stored: &str, given: &str) -> bool {
    if is_bcrypt(stored) {
        verify_password(given, stored)
    } else if is_argon2(stored) {
        use argon2::PasswordVerifier as _;
        // Parameters (variant, memory, passes, lanes) come from the hash
        // itself; [`check`] refuses ones argon2 does not accept.
        argon2_hash(stored).is_ok_and(|hash| {
            argon2::Argon2::default()
                .verify_password(given.as_bytes(), &hash)
                .is_ok()
        })
    } else {
        constant_time_eq(stored, given)
    }
}

/// Parse an argon2 PHC string and check its parameters are ones argon2
/// accepts.
fn argon2_hash(phc: &str) -> Result<argon2::PasswordHash<'_>, String> {
    let hash = argon2::PasswordHash::new(phc).map_err(|e| e.to_string())?;
    argon2::Algorithm::try_from(hash.algorithm).map_err(|e| e.to_string())?;
    argon2::Params::try_from(&hash).map_err(|e| e.to_string())?;
    if hash.hash.is_none() {
        return Err("no hash value".into());
    }
    Ok(hash)
}

fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.get(4..6)?
        .parse()
        .ok()
        .filter(|c| (4..=31).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_argon2_and_malformed_hashes() {
        assert!(matches("alice", "alice") && !matches("alice", "alicf") && !matches("alice", ""));
        let hash = "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$xAMWaGgK8mruxPM6JN9A4MWl5oGtgsap0PaSfrRGo2o";
        assert!(check(hash).is_ok());
        assert!(matches(hash, "s3cret") && !matches(hash, "s3cres"));
        assert!(
            check("$argon2id$garbage")
                .unwrap_err()
                .contains("malformed argon2")
        );
        assert!(
            check("$2b$xx$abc")
                .unwrap_err()
                .contains("malformed bcrypt")
        );
        assert!(
            check("$2b$15$abcdefghijklmnopqrstuv")
                .unwrap_err()
                .contains("maximum")
        );
    }
}
