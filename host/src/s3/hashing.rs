//! The plaintext digests of an upload (its MD5 and the client's checksums),
//! computed inline or on a task of their own.
//!
//! MD5 runs at about 0.6 GB/s on one core, slower than the rest of the
//! upload path: hashed inline, it set an SSE-S3 PUT's pace. A large body is
//! hashed on its own task instead, which the runtime runs on another core
//! beside the encryption; chunks pass by reference count, and the queue is
//! bounded ([`QUEUE_CHUNKS`]) so a slow hash holds the body back rather than
//! memory growing.

use std::future::Future as _;
use std::task::{Context, Poll};

use bytes::Bytes;
use s3s::checksum::ChecksumHasher;
use s3s::crypto::{Checksum as _, Md5};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::PollSender;

/// Bodies at least this long (or of unknown length) are hashed on a task.
pub(super) const PIPELINE_MIN: u64 = 1 << 20;

/// Chunks queued for the hashing task at most (a chunk is one socket read,
/// at most a few hundred KiB).
const QUEUE_CHUNKS: usize = 8;

/// The running digests.
#[derive(Default)]
pub(super) struct Digests {
    pub(super) md5: Option<Md5>,
    pub(super) checksums: ChecksumHasher,
}

impl Digests {
    /// Anything to compute at all?
    fn any(&self) -> bool {
        let c = &self.checksums;
        self.md5.is_some()
            || c.crc32.is_some()
            || c.crc32c.is_some()
            || c.sha1.is_some()
            || c.sha256.is_some()
            || c.crc64nvme.is_some()
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(m) = &mut self.md5 {
            m.update(data);
        }
        self.checksums.update(data);
    }
}

/// Where the digests are computed.
pub(super) enum Hashing {
    Inline(Box<Digests>),
    Task {
        // In a mutex only to be `Sync` (a body must be): always reached
        // through `&mut self`, so never locked.
        tx: std::sync::Mutex<PollSender<Bytes>>,
        /// A slot is reserved for the next chunk.
        reserved: bool,
        task: JoinHandle<Digests>,
    },
    Taken,
}

impl Hashing {
    /// Hash inline, or on a task when there is something to hash and the
    /// body is large (or of unknown length). Needs a Tokio runtime for the
    /// task.
    pub(super) fn new(digests: Digests, len: Option<u64>) -> Self {
        if !digests.any() || len.is_some_and(|l| l < PIPELINE_MIN) {
            return Self::Inline(Box::new(digests));
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE_CHUNKS);
        let task = tokio::spawn(async move {
            let mut d = digests;
            while let Some(chunk) = rx.recv().await {
                d.update(&chunk);
            }
            d
        });
        Self::Task { tx: std::sync::Mutex::new(PollSender::new(tx)), reserved: false, task }
    }

    /// Room for the next chunk.
    pub(super) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Self::Task { tx, reserved, .. } => {
                let tx = tx.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
                // A closed channel (the task is gone) is reported by
                // `poll_digests`; the body may go on until then.
                let r = std::task::ready!(tx.poll_reserve(cx));
                *reserved = r.is_ok();
                Poll::Ready(())
            }
            _ => Poll::Ready(()),
        }
    }

    /// Hash `chunk` (after `poll_ready` said there is room).
    pub(super) fn update(&mut self, chunk: &Bytes) {
        match self {
            Self::Inline(d) => d.update(chunk),
            Self::Task { tx, reserved, .. } => {
                let tx = tx.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
                // Without a reserved slot the chunk cannot be queued and
                // the digests would miss it: no digests at all then.
                if !std::mem::take(reserved) || tx.send_item(chunk.clone()).is_err() {
                    *self = Self::Taken;
                }
            }
            Self::Taken => {}
        }
    }

    /// The final digests, once every chunk is hashed; `None` if a chunk
    /// was lost (the digests would be of something else).
    pub(super) fn poll_digests(&mut self, cx: &mut Context<'_>) -> Poll<Option<Digests>> {
        match self {
            Self::Inline(_) => match std::mem::replace(self, Self::Taken) {
                Self::Inline(d) => Poll::Ready(Some(*d)),
                _ => unreachable!("matched Inline"),
            },
            Self::Task { tx, task, .. } => {
                let tx = tx.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
                // A slot reserved for a chunk that never came holds a
                // sender: give it back, or the channel never closes and
                // the task never ends.
                tx.abort_send();
                tx.close();
                let done = std::task::ready!(std::pin::Pin::new(task).poll(cx));
                *self = Self::Taken;
                Poll::Ready(done.ok())
            }
            Self::Taken => Poll::Ready(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5_of(parts: &[Bytes]) -> Vec<u8> {
        let mut m = Md5::new();
        parts.iter().for_each(|p| m.update(p));
        m.finalize().as_ref().to_vec()
    }

    /// The task computes what inline hashing computes, chunk order kept,
    /// with a queue far shorter than the body.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_task_hashes_every_chunk_in_order() {
        let chunks: Vec<Bytes> = (0..200u32).map(|i| Bytes::from(vec![(i % 256) as u8; 10_000 + i as usize])).collect();
        let digests = || Digests { md5: Some(Md5::new()), ..Default::default() };
        let mut h = Hashing::new(digests(), None);
        assert!(matches!(h, Hashing::Task { .. }));
        for c in &chunks {
            std::future::poll_fn(|cx| h.poll_ready(cx)).await;
            h.update(c);
        }
        let d = std::future::poll_fn(|cx| h.poll_digests(cx)).await.expect("digests");
        assert_eq!(d.md5.unwrap().finalize().as_ref(), md5_of(&chunks).as_slice());
        let small = Hashing::new(digests(), Some(PIPELINE_MIN - 1));
        assert!(matches!(small, Hashing::Inline(_)), "small bodies hash inline");
        assert!(matches!(Hashing::new(Digests::default(), None), Hashing::Inline(_)), "nothing to hash, no task");
    }

    /// A body that ends after a slot was reserved (a pass-through body
    /// reserves before it knows whether another chunk comes) still ends.
    #[tokio::test]
    async fn a_slot_reserved_for_nothing_does_not_hold_the_end() {
        let mut h = Hashing::new(Digests { md5: Some(Md5::new()), ..Default::default() }, None);
        std::future::poll_fn(|cx| h.poll_ready(cx)).await;
        h.update(&Bytes::from_static(b"abc"));
        std::future::poll_fn(|cx| h.poll_ready(cx)).await;
        let end = tokio::time::timeout(std::time::Duration::from_secs(10), std::future::poll_fn(|cx| h.poll_digests(cx)));
        let d = end.await.expect("the hashing task ends").expect("digests");
        assert_eq!(d.md5.unwrap().finalize().as_ref(), md5_of(&[Bytes::from_static(b"abc")]).as_slice());
    }

    /// A chunk sent without a reserved slot is lost: no digests then,
    /// never the digests of a different body.
    #[tokio::test]
    async fn a_lost_chunk_gives_no_digests() {
        let mut h = Hashing::new(Digests { md5: Some(Md5::new()), ..Default::default() }, None);
        h.update(&Bytes::from_static(b"not reserved"));
        assert!(std::future::poll_fn(|cx| h.poll_digests(cx)).await.is_none());
    }
}
