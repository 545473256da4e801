//! `portcullis hash-password` as an operator runs it: the password on
//! stdin, the hash on stdout, nothing else anywhere.

use argon2::PasswordVerifier as _;
use std::io::Write as _;
use std::process::{Command, Stdio};

fn run(args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("hash-password")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("portcullis runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write password");
    child.wait_with_output().expect("portcullis exits")
}

#[test]
fn argon2id_from_stdin() {
    let out = run(
        &["--memory-kib", "1024", "--iterations", "1"],
        b"correct horse\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim_end();
    assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hash}");
    let parsed = argon2::PasswordHash::new(hash).unwrap();
    let argon = argon2::Argon2::default();
    assert!(argon.verify_password(b"correct horse", &parsed).is_ok());
    assert!(
        argon.verify_password(b"correct horse\n", &parsed).is_err(),
        "newline dropped"
    );
}

#[test]
fn bcrypt_from_stdin() {
    let out = run(&["--algorithm", "bcrypt", "--cost", "4"], b"s3cret");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("$2b$04$"), "{hash}");
    assert!(bcrypt::verify("s3cret", hash.trim_end()).unwrap());
}

#[test]
fn empty_or_multi_line_input_fails_without_echoing_it() {
    let out = run(&[], b"\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("the password is empty"));
    assert!(out.stdout.is_empty());

    let out = run(&[], b"hunter2\nhunter3\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("more than one line"), "{stderr}");
    assert!(!stderr.contains("hunter"), "{stderr}");
    assert!(out.stdout.is_empty());
}
