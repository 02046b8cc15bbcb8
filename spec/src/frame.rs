//! Framing: a 4-byte big-endian body length, then the body (UTF-8 JSON).
//!
//! As in mini-redis, "not enough bytes yet" ([`FrameCheck::Incomplete`]) is kept apart from
//! "this stream is broken" ([`FrameError`]); a cheap [`check`] looks at the header before any
//! body is touched. A declared length above [`MAX_MESSAGE_SIZE`] is fatal for the connection
//! (Python stops reading too): skipping it would mean trusting the sender to send it.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

pub use crate::message::MAX_MESSAGE_SIZE;

/// Length of the header.
pub const HEADER_SIZE: usize = 4;

/// Most the decoder reserves ahead of the bytes it has.
const RESERVE_STEP: usize = 64 * 1024;

/// What [`check`] found at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameCheck {
    /// A whole frame with a body of this many bytes is buffered.
    Complete(usize),
    /// More bytes are needed; the value is how many in total make the frame, when known.
    Incomplete(Option<usize>),
}

/// A stream that cannot be framed any further.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame declares {declared} bytes, more than the {MAX_MESSAGE_SIZE}-byte limit")]
    TooLarge { declared: usize },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Looks at the header without consuming anything.
pub fn check(buf: &[u8]) -> Result<FrameCheck, FrameError> {
    let Some(header) = buf.get(..HEADER_SIZE) else {
        return Ok(FrameCheck::Incomplete(None));
    };
    let declared = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if declared > MAX_MESSAGE_SIZE {
        return Err(FrameError::TooLarge { declared });
    }
    if buf.len() - HEADER_SIZE >= declared {
        Ok(FrameCheck::Complete(declared))
    } else {
        Ok(FrameCheck::Incomplete(Some(HEADER_SIZE + declared)))
    }
}

/// Header plus body as one buffer.
pub fn frame_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_SIZE + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// `tokio_util` codec yielding raw bodies; decode them with [`crate::message::Message::decode`].
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameCodec;

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        match check(src)? {
            FrameCheck::Complete(len) => {
                src.advance(HEADER_SIZE);
                Ok(Some(src.split_to(len).freeze()))
            }
            FrameCheck::Incomplete(total) => {
                // Room grows with the bytes that actually arrive: a header declaring 10 MiB
                // and nothing after it costs the sender, not us.
                if let Some(total) = total {
                    src.reserve(total.saturating_sub(src.len()).min(RESERVE_STEP));
                }
                Ok(None)
            }
        }
    }
}

impl Encoder<&[u8]> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, body: &[u8], dst: &mut BytesMut) -> Result<(), FrameError> {
        if body.len() > MAX_MESSAGE_SIZE {
            return Err(FrameError::TooLarge { declared: body.len() });
        }
        dst.reserve(HEADER_SIZE + body.len());
        dst.put_u32(body.len() as u32);
        dst.extend_from_slice(body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_incomplete_from_invalid() {
        assert_eq!(check(&[0, 0]).unwrap(), FrameCheck::Incomplete(None));
        assert_eq!(check(&[0, 0, 0, 3, b'{']).unwrap(), FrameCheck::Incomplete(Some(7)));
        assert_eq!(check(&[0, 0, 0, 2, b'{', b'}']).unwrap(), FrameCheck::Complete(2));
        assert!(matches!(check(&[0, 0xa0, 0, 1]), Err(FrameError::TooLarge { declared: 0xa00001 })));
        let exactly_max = (MAX_MESSAGE_SIZE as u32).to_be_bytes();
        assert_eq!(check(&exactly_max).unwrap(), FrameCheck::Incomplete(Some(HEADER_SIZE + MAX_MESSAGE_SIZE)));
    }

    #[test]
    fn decoder_splits_back_to_back_frames() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&frame_bytes(b"{}"));
        buf.extend_from_slice(&frame_bytes(b"[1]"));
        buf.extend_from_slice(&[0, 0]);
        let mut codec = FrameCodec;
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), Bytes::from_static(b"{}"));
        assert_eq!(codec.decode(&mut buf).unwrap().unwrap(), Bytes::from_static(b"[1]"));
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn a_declared_length_reserves_no_more_than_a_step() {
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(MAX_MESSAGE_SIZE as u32).to_be_bytes());
        assert!(FrameCodec.decode(&mut buf).unwrap().is_none());
        assert!(buf.capacity() <= HEADER_SIZE + RESERVE_STEP + 64, "capacity {}", buf.capacity());
    }
}
