fn main() -> std::process::ExitCode {
    match fleetdeck::cli::run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fleetdeck: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
