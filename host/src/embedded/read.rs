//! GetObject's body, read from the data file in large blocks.
//!
//! s3s-fs streams an object in 4 KiB reads, and every read of a Tokio file
//! is a round trip to the blocking pool: a 64 MiB object took 16 384 of
//! them, and the consumer (the gateway's decryption, or a socket) woke as
//! often. The wrapper opens the same file under the same lock and streams
//! it in blocks of [`READ_BLOCK`] instead.

use s3s::dto::{Range, StreamingBlob};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

/// Bytes per read: one format segment, so the gateway opens a segment
/// from one or two chunks.
pub(super) const READ_BLOCK: usize = 1 << 20;

/// s3s-fs reads in 4 KiB blocks: an answer up to this long is left to it.
const SMALL: i64 = 64 << 10;

/// Is an answer of `content_length` bytes worth a second open?
pub(super) fn worth_reopening(content_length: i64) -> bool {
    content_length > SMALL
}

/// An object's data file, positioned at the start of the range asked for.
pub(super) struct Opened {
    file: tokio::fs::File,
    len: u64,
}

/// Open `path` for `range`; `None` when the file or the range is not
/// there (s3s-fs then answers with the error itself).
pub(super) async fn open(path: &std::path::Path, range: Option<&Range>) -> Option<Opened> {
    let mut file = tokio::fs::File::open(path).await.ok()?;
    let file_len = file.metadata().await.ok()?.len();
    let span = match range {
        None => 0..file_len,
        Some(r) => r.check(file_len).ok()?,
    };
    if span.start > 0 {
        file.seek(std::io::SeekFrom::Start(span.start)).await.ok()?;
    }
    Some(Opened { file, len: span.end - span.start })
}

impl Opened {
    /// The body, if it is as long as the answer says (it is: both were
    /// opened under the key's writer lock).
    pub(super) fn body(self, content_length: Option<i64>) -> Option<StreamingBlob> {
        if content_length != i64::try_from(self.len).ok() {
            return None;
        }
        Some(StreamingBlob::wrap(ReaderStream::with_capacity(self.file.take(self.len), READ_BLOCK)))
    }
}
