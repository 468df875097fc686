//! Rich content transfer (client-api.md §3.6, client-wire-protocol.md §6.4): where the bytes are
//! kept (`storage`) and the signed URLs through which clients upload and download them
//! (`signing`). Records and access rules live in `store::content` and `service::content`.

pub mod signing;
pub mod storage;

pub use signing::{Purpose, UrlSigner};
pub use storage::{PutError, Storage, Stored, Timeout, Timeouts};
