//! How a connection ended, for `cdn_origin_connections_closed_total{reason}`: the error that
//! our HTTP/1 layer or hyper returned, read down its chain of sources.
//!
//! A deadline of `deadlines` that fired is the reason whatever the error says ([`reason`] asks
//! the connection's head signal first), because hyper ends an idle keep-alive connection whose
//! read failed as if the client had closed it.
//!
//! The requests hyper answers by itself (a head it cannot parse gets a 400, 414 or 431 and the
//! connection closes) never reach the router, so they are not in the request metrics; this is
//! where they, slow clients, idle keep-alive connections and clients that leave halfway show.

use std::error::Error;
use std::io;

use super::deadlines::Expired;
use crate::metrics::ConnectionEnd;

/// What serving a connection returned: `None` when it sent no request within the
/// first-request deadline.
pub type Served = Option<Result<(), Box<dyn Error + Send + Sync>>>;

/// The reason a connection ended: the deadline that fired on it, if one did, however the error
/// came back; else what serving it returned.
pub fn reason(served: &Served, expired: Option<Expired>) -> ConnectionEnd {
    if let Some(expired) = expired {
        return of_deadline(expired);
    }
    match served {
        None => ConnectionEnd::HeaderTimeout,
        Some(Ok(())) => ConnectionEnd::Closed,
        Some(Err(e)) => classify(&**e),
    }
}

/// The reason for a connection that ended with `err`.
pub fn classify(err: &(dyn Error + 'static)) -> ConnectionEnd {
    let mut saw_hyper = false;
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<io::Error>() {
            return of_io(e);
        }
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_parse_too_large() {
                return ConnectionEnd::BadRequest;
            }
            if h.is_timeout() {
                return ConnectionEnd::HeaderTimeout;
            }
            if h.is_incomplete_message() || h.is_body_write_aborted() || h.is_canceled() {
                return ConnectionEnd::ClientGone;
            }
            if h.is_user() {
                // Our side: a response body that failed (a store read cut off halfway).
                return ConnectionEnd::Other;
            }
            saw_hyper = true;
        }
        next = e.source();
    }
    // A hyper error with no I/O error under it is, on a server, HTTP/2's: a frame or a stream
    // the client got wrong (hyper's HTTP/1 errors are all told apart above).
    if saw_hyper {
        ConnectionEnd::Protocol
    } else {
        ConnectionEnd::Other
    }
}

/// The reason for a connection that one of its deadlines ended.
fn of_deadline(expired: Expired) -> ConnectionEnd {
    match expired {
        Expired::Head => ConnectionEnd::HeaderTimeout,
        Expired::Idle => ConnectionEnd::IdleTimeout,
    }
}

/// A response body's own error (a store read that failed or ended early), as our HTTP/1 layer
/// passes it on: the connection ends for our reason, not the client's.
#[derive(Debug)]
pub struct BodyFailed(pub io::Error);

impl std::fmt::Display for BodyFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "response body failed: {}", self.0)
    }
}

impl Error for BodyFailed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.0)
    }
}

/// A request our HTTP/1 layer answered with an error and a close before hyper would see it
/// (a request line past the head's size limit, 414, or another major HTTP version, 505): a
/// bad request.
#[derive(Debug)]
pub struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request refused")
    }
}

impl Error for Refused {}

fn of_io(e: &io::Error) -> ConnectionEnd {
    let inner = e.get_ref();
    if inner.is_some_and(|i| i.is::<Refused>()) {
        return ConnectionEnd::BadRequest;
    }
    if let Some(expired) = inner.and_then(|i| i.downcast_ref::<Expired>()) {
        return of_deadline(*expired);
    }
    if inner.is_some_and(|i| i.is::<BodyFailed>()) {
        return ConnectionEnd::Other;
    }
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::NotConnected
        | io::ErrorKind::WriteZero => ConnectionEnd::ClientGone,
        _ => ConnectionEnd::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type BoxError = Box<dyn Error + Send + Sync>;

    fn of(e: BoxError) -> ConnectionEnd {
        classify(&*e)
    }

    #[test]
    fn deadlines_are_told_apart_from_other_timeouts() {
        let head = io::Error::new(io::ErrorKind::TimedOut, Expired::Head);
        let idle = io::Error::new(io::ErrorKind::TimedOut, Expired::Idle);
        assert_eq!(of(head.into()), ConnectionEnd::HeaderTimeout);
        assert_eq!(of(idle.into()), ConnectionEnd::IdleTimeout);
        let other = io::Error::new(io::ErrorKind::TimedOut, "something else");
        assert_eq!(of(other.into()), ConnectionEnd::Other);
    }

    #[test]
    fn a_body_that_failed_is_ours_not_the_clients() {
        let cut = io::Error::from(io::ErrorKind::UnexpectedEof);
        let e = io::Error::new(io::ErrorKind::UnexpectedEof, BodyFailed(cut));
        assert_eq!(of(e.into()), ConnectionEnd::Other);
    }

    #[test]
    fn a_request_our_layer_refused_is_a_bad_request() {
        let e = io::Error::new(io::ErrorKind::InvalidData, Refused);
        assert_eq!(of(e.into()), ConnectionEnd::BadRequest);
    }

    #[test]
    fn a_client_that_left_is_client_gone() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::UnexpectedEof,
        ] {
            assert_eq!(
                of(io::Error::from(kind).into()),
                ConnectionEnd::ClientGone,
                "{kind:?}"
            );
        }
        assert_eq!(
            of(io::Error::from(io::ErrorKind::InvalidData).into()),
            ConnectionEnd::Other
        );
    }

    /// An error that wraps another, as hyper's and h2's errors do.
    #[derive(Debug)]
    struct Wrapping(BoxError);

    impl std::fmt::Display for Wrapping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapping")
        }
    }

    impl Error for Wrapping {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.0)
        }
    }

    #[test]
    fn the_chain_of_sources_is_read_down_to_the_io_error() {
        let inner = io::Error::new(io::ErrorKind::TimedOut, Expired::Idle);
        let e = Wrapping(Box::new(Wrapping(inner.into())));
        assert_eq!(of(Box::new(e)), ConnectionEnd::IdleTimeout);
        assert_eq!(
            of(Box::new(Wrapping("no io here".into()))),
            ConnectionEnd::Other
        );
    }
}
