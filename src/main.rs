use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: glibc's took about 17% of the server's CPU in a fan-out
/// (many small, short-lived JSON values across threads); see docs/performance.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    layer_server::cli::main().await
}
