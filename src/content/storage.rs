//! The bytes of rich content, through `object_store`: a local directory or an S3-compatible
//! bucket. Uploads are streamed in bounded chunks (multipart), measured and hashed on the way;
//! an upload only becomes visible when complete, so a failed one leaves nothing behind.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::{ContentBackend, Settings};

/// Bytes buffered before a part is sent to the store (S3's minimum part size is 5 MiB).
const CHUNK_BYTES: usize = 5 * 1024 * 1024;
/// Parts in flight at once per upload (bounds memory to about this many chunks).
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum PutError {
    /// More bytes than allowed arrived; nothing was stored.
    #[error("the upload exceeds {limit} bytes")]
    TooLarge { limit: u64 },
    /// The client's body broke off.
    #[error("reading the upload failed: {0}")]
    Body(String),
    /// The client sent nothing for `idle`, or did not finish within `total`.
    #[error("the upload timed out")]
    TimedOut(Timeout),
    #[error("content store: {0}")]
    Store(#[from] object_store::Error),
}

/// Bounds on a transfer's duration: the longest pause between two chunks, and the whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub idle: Duration,
    pub total: Duration,
}

/// Which of the `Timeouts` ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    Idle(Duration),
    Total(Duration),
}

impl std::fmt::Display for Timeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Timeout::Idle(d) => write!(f, "no data for {} s", d.as_secs()),
            Timeout::Total(d) => write!(f, "not done within {} s", d.as_secs()),
        }
    }
}

impl Timeouts {
    /// Waits for the next item of `stream`, at most until the pause or the whole runs out.
    pub async fn next<S: Stream + Unpin>(
        &self,
        stream: &mut S,
        deadline: tokio::time::Instant,
    ) -> Result<Option<S::Item>, Timeout> {
        let now = tokio::time::Instant::now();
        let wait = self.idle.min(deadline.saturating_duration_since(now));
        match tokio::time::timeout(wait, stream.next()).await {
            Ok(item) => Ok(item),
            Err(_) if tokio::time::Instant::now() >= deadline => Err(Timeout::Total(self.total)),
            Err(_) => Err(Timeout::Idle(self.idle)),
        }
    }

    /// `stream` cut off with an error when a pause or the whole takes too long (checked while
    /// the stream is polled).
    pub fn limit<S, T, E>(
        self,
        stream: S,
    ) -> impl Stream<Item = Result<T, std::io::Error>> + Send + 'static
    where
        S: Stream<Item = Result<T, E>> + Unpin + Send + 'static,
        E: std::fmt::Display,
        T: Send + 'static,
    {
        let deadline = tokio::time::Instant::now() + self.total;
        futures_util::stream::unfold(Some(stream), move |state| async move {
            let mut stream = state?;
            match self.next(&mut stream, deadline).await {
                Ok(Some(Ok(item))) => Some((Ok(item), Some(stream))),
                Ok(Some(Err(err))) => Some((Err(std::io::Error::other(err.to_string())), None)),
                Ok(None) => None,
                Err(timeout) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        timeout.to_string(),
                    )),
                    None,
                )),
            }
        })
    }
}

/// What a complete upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: String,
}

/// A readable object: its size and its bytes as a stream.
pub struct Object {
    pub size: u64,
    pub stream: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
}

#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    /// Key prefix inside the bucket, without slashes around it.
    prefix: String,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({})", self.store)
    }
}

impl Storage {
    /// The store the settings describe (creating the local directory if needed).
    pub fn open(settings: &Settings) -> anyhow::Result<Self> {
        let content = &settings.content;
        match content.store {
            ContentBackend::Local => {
                let dir = if content.local_dir.is_empty() {
                    settings.data_dir.join("content")
                } else {
                    content.local_dir.clone().into()
                };
                std::fs::create_dir_all(&dir)?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?;
                Ok(Self::new(Arc::new(store), ""))
            }
            ContentBackend::S3 => {
                let s3 = &content.s3;
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region);
                if !s3.endpoint.is_empty() {
                    builder = builder
                        .with_endpoint(&s3.endpoint)
                        .with_allow_http(s3.endpoint.starts_with("http://"));
                }
                if !s3.access_key_id.is_empty() {
                    builder = builder
                        .with_access_key_id(&s3.access_key_id)
                        .with_secret_access_key(s3.secret_access_key.expose_secret());
                }
                Ok(Self::new(Arc::new(builder.build()?), &s3.prefix))
            }
        }
    }

    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Storage {
            store,
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    /// Streams `body` to `key`, at most `limit` bytes. The object appears (replacing an earlier
    /// one) only once the whole body has arrived; on any error the partial upload is aborted.
    pub async fn put<S, E>(
        &self,
        key: &str,
        body: S,
        limit: u64,
        timeouts: Timeouts,
    ) -> Result<Stored, PutError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let upload = self.store.put_multipart(&self.path(key)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK_BYTES);
        match copy(&mut writer, body, limit, timeouts).await {
            Ok(stored) => {
                writer.finish().await?;
                Ok(stored)
            }
            Err(err) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, key, "aborting a failed upload failed");
                }
                Err(err)
            }
        }
    }

    /// The object, or `None` when the store has no such key.
    pub async fn get(&self, key: &str) -> object_store::Result<Option<Object>> {
        match self.store.get(&self.path(key)).await {
            Ok(result) => Ok(Some(Object {
                size: result.meta.size,
                stream: result.into_stream(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Deletes the object; a missing one is not an error.
    pub async fn delete(&self, key: &str) -> object_store::Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

async fn copy<S, E>(
    writer: &mut WriteMultipart,
    mut body: S,
    limit: u64,
    timeouts: Timeouts,
) -> Result<Stored, PutError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut size: u64 = 0;
    let mut hash = Sha256::new();
    let deadline = tokio::time::Instant::now() + timeouts.total;
    while let Some(chunk) = timeouts
        .next(&mut body, deadline)
        .await
        .map_err(PutError::TimedOut)?
    {
        let chunk = chunk.map_err(|e| PutError::Body(e.to_string()))?;
        size = size.saturating_add(chunk.len() as u64);
        if size > limit {
            return Err(PutError::TooLarge { limit });
        }
        hash.update(&chunk);
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        writer.put(chunk);
    }
    Ok(Stored {
        size,
        sha256: hex::encode(hash.finalize()),
    })
}
