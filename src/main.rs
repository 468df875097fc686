use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    layer_server::cli::main().await
}
