//! The chunked transfer coding (RFC 9112 §7.1), read from a connection's buffer: the framing
//! of response bodies from origins ([`crate::origin`]) and of request bodies from clients
//! ([`crate::h1`]). The chunk-size line is parsed by `httparse`; this is the state machine
//! around it.

use bytes::{Buf, BytesMut};

/// The longest chunk-size line, and the most trailer bytes, accepted in a chunked body.
pub const MAX_CHUNK_LINE: usize = 4096;

/// Where a chunked body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many bytes of the chunk's data are left (the caller takes them from the buffer).
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// Trailer lines (dropped) up to the empty line; the bytes of them seen.
    Trailers(usize),
    /// The body is complete (its last byte consumed).
    End,
}

impl Chunk {
    /// Consumes the framing at the start of `buf` that comes next (not a chunk's data:
    /// [`Chunk::Data`] is returned as it is): the state after it, or `None` when `buf` does
    /// not hold it whole yet. The error says what is wrong ("an invalid chunk size", …).
    pub fn advance(self, buf: &mut BytesMut) -> Result<Option<Chunk>, &'static str> {
        Ok(Some(match self {
            Chunk::Data(_) | Chunk::End => self,
            Chunk::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    buf.advance(used);
                    if size == 0 {
                        Chunk::Trailers(0)
                    } else {
                        Chunk::Data(size)
                    }
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_CHUNK_LINE => {
                    return Err("a chunk-size line too long");
                }
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(_) => return Err("an invalid chunk size"),
            },
            Chunk::DataEnd => match buf.get(..2) {
                Some(b"\r\n") => {
                    buf.advance(2);
                    Chunk::Size
                }
                Some(_) => return Err("no CRLF after a chunk's data"),
                None => return Ok(None),
            },
            Chunk::Trailers(seen) => match buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    buf.advance(2);
                    Chunk::End
                }
                Some(end) if seen + end <= MAX_CHUNK_LINE => {
                    buf.advance(end + 2);
                    Chunk::Trailers(seen + end + 2)
                }
                None if seen + buf.len() <= MAX_CHUNK_LINE => return Ok(None),
                _ => return Err("trailers too long"),
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `body` fed to the state machine `step` bytes at a time.
    fn decode(body: &[u8], step: usize) -> Result<Vec<u8>, &'static str> {
        let (mut buf, mut out, mut chunk) = (BytesMut::new(), Vec::new(), Chunk::Size);
        let mut input = body.chunks(step);
        loop {
            match chunk {
                Chunk::End => return Ok(out),
                Chunk::Data(left) if !buf.is_empty() => {
                    let n = buf.len().min(left as usize);
                    out.extend_from_slice(&buf.split_to(n));
                    chunk = if n as u64 == left {
                        Chunk::DataEnd
                    } else {
                        Chunk::Data(left - n as u64)
                    };
                    continue;
                }
                _ => {}
            }
            match chunk.advance(&mut buf)? {
                Some(next) if next != chunk => chunk = next,
                _ => match input.next() {
                    Some(bytes) => buf.extend_from_slice(bytes),
                    None => return Err("cut short"),
                },
            }
        }
    }

    #[test]
    fn chunks_extensions_and_trailers_decode_whatever_the_reads() {
        let body = b"5;ext=1\r\nhello\r\n1\r\n \r\nb\r\nworld, bye!\r\n0\r\nx-t: 1\r\n\r\n";
        for step in 1..body.len() {
            assert_eq!(
                decode(body, step).as_deref(),
                Ok(b"hello world, bye!".as_slice()),
                "{step}"
            );
        }
    }

    #[test]
    fn broken_framing_is_named() {
        assert_eq!(decode(b"zz\r\n", 64), Err("an invalid chunk size"));
        assert_eq!(
            decode(b"2\r\nabX\r\n", 64),
            Err("no CRLF after a chunk's data")
        );
        let long = [b"0\r\nx: ".as_slice(), &[b'a'; MAX_CHUNK_LINE + 8]].concat();
        assert_eq!(decode(&long, 64), Err("trailers too long"));
        assert_eq!(decode(b"3\r\nab", 64), Err("cut short"));
    }
}
