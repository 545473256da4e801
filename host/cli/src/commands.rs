//! One module per command, named for it, holding the command's arguments
//! and what it does; `plugin` nests its subcommands the same way. The
//! modules that are not commands (`fleet`, `plugin::oci`) hold what
//! several commands share.

pub mod check;
pub mod fleet;
pub mod hash_password;
pub mod init;
pub mod plugin;
pub mod run;
pub mod status;
