//! Streaming encryption and decryption, one segment in memory at a time.
//!
//! [`EncryptStream`] turns a plaintext byte stream into format v1 ciphertext;
//! it holds one segment back until it knows whether more input follows, so
//! the final flag is always right. [`DecryptStream`] opens a run of sealed
//! segments and yields only authenticated plaintext, trimmed to a range.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use futures::Stream;
use s3s::stream::{ByteStream, RemainingLength};

use super::CryptoError;
use super::aead::{AeadImpl, SegmentCipher, TAG_LEN};
use super::format::{FormatParams, segment_aad, segment_nonce};
use super::keys::PartKey;
pub use super::layout::DecryptPlan;

/// Boxed error type of s3s byte streams.
pub type StdError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The length errors of a body unlike its declared length (compared by
/// value where they are mapped to S3 errors).
pub const BODY_LONGER: &str = "body longer than declared";
pub const BODY_SHORTER: &str = "body shorter than declared";

/// Sees every plaintext byte of an upload, and may veto it before the final
/// segment is released (checksum verification lives here).
pub trait PlaintextObserver: Send + Sync {
    /// Ready for the next chunk. An observer that hashes on another task
    /// answers `Pending` while its queue is full, so what it holds stays
    /// bounded; the stream reads no further until then.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Ready(())
    }
    /// The next plaintext chunk (by reference count: nothing is copied).
    fn update(&mut self, data: &Bytes);
    /// Called after the last plaintext byte, until it is ready; an error
    /// aborts the stream before the final segment is emitted, so nothing
    /// complete is stored.
    fn poll_finish(&mut self, cx: &mut Context<'_>, total: u64) -> Poll<Result<(), StdError>>;
    /// Called once when the stream ends in an error (of the body or of the
    /// stream itself), so the observer can keep the cause: the upstream
    /// client reports only that its body stream failed.
    fn failed(&mut self, _error: &StdError) {}
}

/// An observer that checks nothing.
pub struct NoObserver;

impl PlaintextObserver for NoObserver {
    fn update(&mut self, _: &Bytes) {}
    fn poll_finish(&mut self, _: &mut Context<'_>, _: u64) -> Poll<Result<(), StdError>> {
        Poll::Ready(Ok(()))
    }
}

/// Encrypts a plaintext stream into format v1 segments.
pub struct EncryptStream<S> {
    inner: S,
    cipher: SegmentCipher,
    part: u32,
    seg: usize,
    buf: BytesMut,
    carry: Bytes,
    index: u64,
    consumed: u64,
    expected_len: Option<u64>,
    params: FormatParams,
    emitted: u64,
    observer: Box<dyn PlaintextObserver>,
    ended: bool,
    done: bool,
}

impl<S> EncryptStream<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    /// `expected_len` is the declared plaintext length, when known: the
    /// stream then reports an exact ciphertext length and fails on a mismatch.
    pub fn new(
        inner: S,
        key: &PartKey,
        part: u32,
        params: FormatParams,
        expected_len: Option<u64>,
        observer: Box<dyn PlaintextObserver>,
    ) -> Self {
        let seg = params.segment_size() as usize;
        // A small object gets a buffer its size, not a segment's: a 1 MiB
        // buffer per 4 KiB PUT was fresh pages to fault in and clear.
        let first = expected_len.map_or(seg, |l| usize::try_from(l).unwrap_or(usize::MAX).min(seg));
        Self {
            inner,
            cipher: SegmentCipher::new(AeadImpl::AwsLc, key.as_bytes()),
            part,
            seg,
            buf: BytesMut::with_capacity(first + TAG_LEN),
            carry: Bytes::new(),
            index: 0,
            consumed: 0,
            expected_len,
            params,
            emitted: 0,
            observer,
            ended: false,
            done: false,
        }
    }

    fn seal(&mut self, last: bool) -> Result<Bytes, StdError> {
        let nonce = segment_nonce(self.part, self.index, last);
        let aad = segment_aad(self.part, self.index, last);
        self.cipher.seal(&nonce, &aad, &mut self.buf)?;
        self.index += 1;
        let out = self.buf.split().freeze();
        if !last {
            let left = self.expected_len.map_or(u64::MAX, |e| e.saturating_sub(self.consumed));
            self.buf.reserve(usize::try_from(left).unwrap_or(usize::MAX).min(self.seg) + TAG_LEN);
        }
        self.emitted += out.len() as u64;
        Ok(out)
    }

    fn fill_from_carry(&mut self) -> Result<(), StdError> {
        let n = (self.seg - self.buf.len()).min(self.carry.len());
        if n > 0 {
            let chunk = self.carry.split_to(n);
            self.observer.update(&chunk);
            self.buf.extend_from_slice(&chunk);
            self.consumed += n as u64;
            if self.expected_len.is_some_and(|e| self.consumed > e) {
                return Err(Box::new(CryptoError::Length(BODY_LONGER)));
            }
        }
        Ok(())
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StdError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            if !self.carry.is_empty() && self.buf.len() < self.seg && self.observer.poll_ready(cx).is_pending() {
                return Poll::Pending;
            }
            self.fill_from_carry()?;
            if self.ended {
                if let Some(e) = self.expected_len
                    && e != self.consumed
                {
                    self.done = true;
                    return Poll::Ready(Some(Err(Box::new(CryptoError::Length(BODY_SHORTER)))));
                }
                let verdict = ready!(self.observer.poll_finish(cx, self.consumed));
                self.done = true;
                verdict?;
                return Poll::Ready(Some(self.seal(true)));
            }
            if self.buf.len() == self.seg && !self.carry.is_empty() {
                return Poll::Ready(Some(self.seal(false)));
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.ended = true,
                Poll::Ready(Some(Ok(chunk))) => self.carry = chunk,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

impl<S> Stream for EncryptStream<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.step(cx) {
            Poll::Ready(Some(Err(e))) => {
                this.done = true;
                this.observer.failed(&e);
                Poll::Ready(Some(Err(e)))
            }
            other => other,
        }
    }
}

impl<S> ByteStream for EncryptStream<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    fn remaining_length(&self) -> RemainingLength {
        match self.expected_len {
            Some(len) => RemainingLength::new_exact((self.params.ciphertext_len(len) - self.emitted) as usize),
            None => RemainingLength::unknown(),
        }
    }
}

/// Decrypts a run of sealed segments, across one or more consecutive parts
/// read from one ciphertext stream; yields only authenticated plaintext.
pub struct DecryptStream<S> {
    inner: S,
    params: FormatParams,
    /// Parts still to read, front = current; each with its cipher.
    parts: std::collections::VecDeque<(SegmentCipher, DecryptPlan)>,
    next: u64,
    buf: BytesMut,
    carry: Bytes,
    done: bool,
}

impl<S> DecryptStream<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    pub fn new(inner: S, key: &PartKey, params: FormatParams, plan: DecryptPlan) -> Self {
        Self::with_impl(inner, key, params, plan, AeadImpl::AwsLc)
    }

    pub fn with_impl(inner: S, key: &PartKey, params: FormatParams, plan: DecryptPlan, imp: AeadImpl) -> Self {
        Self::build(inner, params, vec![(SegmentCipher::new(imp, key.as_bytes()), plan)])
    }

    /// Decrypt consecutive parts from one stream (a range spanning parts).
    pub fn multipart(inner: S, params: FormatParams, parts: Vec<(PartKey, DecryptPlan)>) -> Self {
        let parts = parts.into_iter().map(|(k, p)| (SegmentCipher::new(AeadImpl::AwsLc, k.as_bytes()), p)).collect();
        Self::build(inner, params, parts)
    }

    fn build(inner: S, params: FormatParams, parts: Vec<(SegmentCipher, DecryptPlan)>) -> Self {
        let parts: std::collections::VecDeque<_> = parts.into();
        Self {
            inner,
            params,
            next: parts.front().map_or(0, |(_, p)| p.first_segment),
            parts,
            // Sized per segment as it starts (a small object's one segment
            // is small).
            buf: BytesMut::new(),
            carry: Bytes::new(),
            done: false,
        }
    }

    fn step(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StdError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let Some((cipher, plan)) = self.parts.front_mut() else {
                self.done = true;
                return Poll::Ready(None);
            };
            // Every planned segment is opened, even when no byte of it is
            // returned: an empty object still authenticates its one segment.
            if self.next > plan.last_segment {
                self.parts.pop_front();
                if let Some((_, p)) = self.parts.front() {
                    self.next = p.first_segment;
                }
                continue;
            }
            let want = self.params.sealed_segment_len(plan.part_plain_len, self.next) as usize;
            if self.buf.is_empty() {
                self.buf.reserve(want);
            }
            let n = (want - self.buf.len()).min(self.carry.len());
            self.buf.extend_from_slice(&self.carry[..n]);
            self.carry.advance(n);
            if self.buf.len() == want {
                let last = self.next == self.params.segment_count(plan.part_plain_len) - 1;
                let nonce = segment_nonce(plan.part, self.next, last);
                let aad = segment_aad(plan.part, self.next, last);
                cipher.open(&nonce, &aad, &mut self.buf)?;
                self.next += 1;
                let mut plain = self.buf.split().freeze();
                let skip = (plan.skip as usize).min(plain.len());
                plain.advance(skip);
                plan.skip -= skip as u64;
                let keep = (plan.take as usize).min(plain.len());
                plain.truncate(keep);
                plan.take -= keep as u64;
                if !plain.is_empty() {
                    return Poll::Ready(Some(Ok(plain)));
                }
                continue;
            }
            match Pin::new(&mut self.inner).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Some(Err(Box::new(CryptoError::Length("ciphertext truncated"))))),
                Poll::Ready(Some(Ok(chunk))) => self.carry = chunk,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            }
        }
    }
}

impl<S> Stream for DecryptStream<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    type Item = Result<Bytes, StdError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let r = this.step(cx);
        if let Poll::Ready(Some(Err(_))) = &r {
            // Never continue past a failed segment.
            this.done = true;
            this.buf.clear();
        }
        r
    }
}

impl<S> ByteStream for DecryptStream<S>
where
    S: Stream<Item = Result<Bytes, StdError>> + Unpin,
{
    fn remaining_length(&self) -> RemainingLength {
        let left: u64 = if self.done { 0 } else { self.parts.iter().map(|(_, p)| p.take).sum() };
        RemainingLength::new_exact(left as usize)
    }
}

#[cfg(test)]
mod tests;
