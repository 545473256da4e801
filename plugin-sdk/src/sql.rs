//! The operator's SQL statements (`grants = { sql = ["NAME"] }`): a plugin
//! names a configured database and one of its queries and supplies the
//! parameters; the host runs the statement within the login's deadline
//! and returns the rows. A plugin never writes SQL.
//!
//! Natively (plugin unit tests) there is no host: [`stub`] sets what
//! [`query`] answers on the current thread; without one it answers
//! `unavailable`.

pub use crate::bindings::portcullis::authenticator::sql::{Column, Error, Value};

/// One result row: its columns in the statement's order.
pub type Row = Vec<Column>;

/// Run statement `name` of `database` with `params` (`$1`, `$2`, ...).
/// Fails with [`Error::NotGranted`] unless the plugin's entry grants
/// `database`; every other error is the host's reason kind (the host logs
/// the details).
pub fn query(database: &str, name: &str, params: &[Value]) -> Result<Vec<Row>, Error> {
    #[cfg(target_arch = "wasm32")]
    return crate::bindings::portcullis::authenticator::sql::query(database, name, params);
    #[cfg(not(target_arch = "wasm32"))]
    native::query(database, name, params)
}

/// The value of column `name` in `row`, if the statement returns one.
pub fn column<'a>(row: &'a [Column], name: &str) -> Option<&'a Value> {
    row.iter().find(|c| c.name == name).map(|c| &c.value)
}

/// A short description of `error` for a deny reason: its kind and the
/// host's detail.
pub fn describe(error: &Error) -> String {
    match error {
        Error::NotGranted(db) => format!("not granted database {db:?}"),
        Error::UnknownQuery(q) => format!("unknown query {q:?}"),
        Error::BadParameters(m) => format!("bad parameters: {m}"),
        Error::Timeout => "timeout".to_owned(),
        Error::Unavailable(m) => format!("unavailable: {m}"),
        Error::TooLarge(m) => format!("too large: {m}"),
        Error::Failed(m) => format!("failed: {m}"),
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::stub;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use super::{Error, Row, Value};
    use std::cell::RefCell;

    type Answer = Box<dyn Fn(&str, &str, &[Value]) -> Result<Vec<Row>, Error>>;

    thread_local! {
        static STUB: RefCell<Option<Answer>> = const { RefCell::new(None) };
    }

    /// Answer this thread's [`query`](super::query) calls with `answer`
    /// (database, query name, parameters) until the next `stub`.
    pub fn stub(answer: impl Fn(&str, &str, &[Value]) -> Result<Vec<Row>, Error> + 'static) {
        STUB.with(|s| *s.borrow_mut() = Some(Box::new(answer)));
    }

    pub fn query(database: &str, name: &str, params: &[Value]) -> Result<Vec<Row>, Error> {
        STUB.with(|s| match &*s.borrow() {
            Some(answer) => answer(database, name, params),
            None => Err(Error::Unavailable(
                "no host (set sql::stub in tests)".into(),
            )),
        })
    }
}
