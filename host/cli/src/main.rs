//! The `portcullis` binary; the command line lives in the library.

fn main() -> std::process::ExitCode {
    portcullis_cli::main()
}
