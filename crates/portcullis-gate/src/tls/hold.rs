//! A TLS 1.3 server's session tickets, sent with the first response instead of on their
//! own.
//!
//! A TLS 1.3 server sends its tickets once it has read the client's Finished, and
//! tokio-rustls writes them before the handshake future completes: a `writev` and a TCP
//! segment of their own on every connection, full or resumed, for something the client
//! needs only on its next connection. Held back, they go out in the same `writev` as the
//! first response (or the HTTP/2 server's SETTINGS), and the client reads one segment
//! instead of two.
//!
//! What is held is recognised from below TLS, while the handshake runs: a write made only
//! of whole application-data records (type 23, which is everything TLS 1.3 encrypts) that
//! comes after the client sent something and does not finish a partial write. The
//! server's first flight starts with a handshake record (ServerHello, type 22) and TLS
//! 1.2's last flight holds a ChangeCipherSpec (type 20): neither is ever held, so the
//! client never waits for a held byte to finish its handshake. An encrypted alert that
//! ends a failed handshake is held as well, and written when the stream is dropped.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The most a connection holds back: two tickets with a chain of a few certificates take
/// 3 KB.
const MAX_HELD: usize = 16 * 1024;

/// The client's TCP stream under TLS, holding back the tickets until [`TicketHold::release`]
/// and the next write.
#[derive(Debug)]
pub(crate) struct TicketHold {
    tcp: TcpStream,
    /// Until `release`: whether a write may be held.
    handshaking: bool,
    /// Whether the client sent something since the last write went out.
    read_since_write: bool,
    /// Whether the last write went out whole: the rest of a partial one is never held.
    last_write_whole: bool,
    held: Vec<u8>,
}

impl TicketHold {
    pub(crate) fn new(tcp: TcpStream) -> TicketHold {
        TicketHold {
            tcp,
            handshaking: true,
            read_since_write: false,
            last_write_whole: true,
            held: Vec::new(),
        }
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The handshake is over: nothing more is held, and what was goes out first with the
    /// next write (or the shutdown).
    pub(crate) fn release(&mut self) {
        self.handshaking = false;
    }

    /// Whether a write may be held; [`only_application_data`] decides on its bytes.
    fn may_hold(&self, bufs: &[IoSlice<'_>]) -> bool {
        if !(self.handshaking && self.read_since_write && self.last_write_whole) {
            return false;
        }
        // The first flight, the largest write, starts with a handshake record: no copy.
        if bufs.iter().find(|b| !b.is_empty()).and_then(|b| b.first()) != Some(&23) {
            return false;
        }
        // Each ticket seals the client's chain, which the client chooses: past the cap the
        // tickets go out now, as they used to.
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        self.held.len() + total <= MAX_HELD
    }

    /// Writes what is held, then `bufs`, in one call where the socket takes it; returns
    /// how much of `bufs` went out.
    fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        while !self.held.is_empty() {
            let mut all = Vec::with_capacity(bufs.len() + 1);
            all.push(IoSlice::new(&self.held));
            all.extend(bufs.iter().map(|b| IoSlice::new(b)));
            let n = ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, &all))?;
            if n == 0 {
                return Poll::Ready(Ok(0));
            }
            let from_held = n.min(self.held.len());
            self.held.drain(..from_held);
            if self.held.is_empty() {
                self.held = Vec::new();
                if n > from_held {
                    return Poll::Ready(Ok(self.sent(n - from_held, total)));
                }
            }
        }
        if total == 0 {
            // A shutdown with nothing held: no empty `writev`.
            return Poll::Ready(Ok(0));
        }
        let n = ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs))?;
        Poll::Ready(Ok(self.sent(n, total)))
    }

    fn sent(&mut self, n: usize, of: usize) -> usize {
        self.read_since_write = false;
        self.last_write_whole = n == of;
        n
    }
}

/// Whether `bytes` are whole TLS records, at least one, all of type 23 (application data).
fn only_application_data(mut bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return false;
    }
    while let [kind, _, _, hi, lo, rest @ ..] = bytes {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if *kind != 23 || rest.len() < len {
            return false;
        }
        bytes = &rest[len..];
    }
    bytes.is_empty()
}

impl AsyncRead for TicketHold {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.read_since_write = true;
        }
        polled
    }
}

impl AsyncWrite for TicketHold {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.may_hold(bufs) {
            // Copied once, then looked at: kept if it is tickets, given back if not.
            let start = self.held.len();
            for b in bufs {
                self.held.extend_from_slice(b);
            }
            if only_application_data(&self.held[start..]) {
                return Poll::Ready(Ok(self.held.len() - start));
            }
            self.held.truncate(start);
        }
        self.poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // What is held waits for the next write even past a flush: tokio-rustls flushes
        // right after writing the tickets, and hyper flushes before it has anything to
        // send. Nothing written after `release` is ever held, so a flush still delivers
        // everything its caller wrote.
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_send(cx, &[]))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

impl Drop for TicketHold {
    /// The alert of a failed handshake, or tickets no response took along: written if the
    /// socket takes them now, as the kernel would have sent them.
    fn drop(&mut self) {
        if !self.held.is_empty() {
            let _ = self.tcp.try_write(&self.held);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::{MAX_HELD, TicketHold, only_application_data};

    fn record(kind: u8, body: &[u8]) -> Vec<u8> {
        let len = u16::try_from(body.len()).unwrap().to_be_bytes();
        [&[kind, 3, 3, len[0], len[1]][..], body].concat()
    }

    /// A connected pair over loopback: the peer's end, and the gate's end in a hold.
    async fn pair() -> (TcpStream, TicketHold) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        (client, TicketHold::new(listener.accept().await.unwrap().0))
    }

    /// `n` bytes from the peer's end, or `None` when they do not come within a second.
    async fn read(client: &mut TcpStream, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; n];
        let read = client.read_exact(&mut buf);
        match tokio::time::timeout(Duration::from_secs(1), read).await {
            Ok(Ok(_)) => Some(buf),
            _ => None,
        }
    }

    /// Over loopback: what is held reaches the peer with the first write after the
    /// handshake, before it and in order, not with a flush; past the cap nothing is held.
    #[tokio::test]
    async fn held_records_go_first_with_the_next_write_and_the_cap_holds() {
        let (mut client, mut hold) = pair().await;
        // The ClientHello came in; the first flight goes out at once.
        hold.read_since_write = true;
        let flight = record(22, &[1; 100]);
        hold.write_all(&flight).await.unwrap();
        hold.flush().await.unwrap();
        assert_eq!(read(&mut client, flight.len()).await.unwrap(), flight);
        // The client's flight came in; the tickets are held, even past a flush.
        hold.read_since_write = true;
        let ticket = record(23, &[2; 1000]);
        hold.write_all(&ticket).await.unwrap();
        hold.flush().await.unwrap();
        assert_eq!(read(&mut client, 1).await, None, "a held ticket went out");
        hold.release();
        let response = record(23, &[3; 50]);
        hold.write_all(&response).await.unwrap();
        let both = [ticket, response].concat();
        assert_eq!(read(&mut client, both.len()).await.unwrap(), both);

        // Tickets sealing a large client chain: past the cap they go out at once.
        let (mut client, mut hold) = pair().await;
        hold.read_since_write = true;
        let big = record(23, &vec![4; MAX_HELD]);
        hold.write_all(&big).await.unwrap();
        assert_eq!(read(&mut client, big.len()).await.unwrap(), big);
    }

    #[test]
    fn only_whole_application_data_records_are_held() {
        let ticket = record(23, &[7; 40]);
        assert!(only_application_data(&ticket));
        assert!(only_application_data(
            &[ticket.clone(), ticket.clone()].concat()
        ));
        // The first flight (ServerHello first), TLS 1.2's ChangeCipherSpec, a plaintext
        // alert: never held.
        assert!(!only_application_data(
            &[record(22, &[1; 60]), ticket.clone()].concat()
        ));
        assert!(!only_application_data(
            &[ticket.clone(), record(20, &[1])].concat()
        ));
        assert!(!only_application_data(&record(21, &[2, 40])));
        // Part of a record (the rest of a partial write, or a cut one), or nothing.
        assert!(!only_application_data(&ticket[..20]));
        assert!(!only_application_data(&ticket[3..]));
        assert!(!only_application_data(
            &[ticket.clone(), vec![23, 3]].concat()
        ));
        assert!(!only_application_data(&[]));
    }
}
