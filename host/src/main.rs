//! The `portcullis` binary: all logic lives in the library (`cli`).

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
