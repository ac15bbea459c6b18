//! The proxy's own error responses, with HAProxy's bodies so that monitoring and users
//! see what they saw before the migration.

use bytes::Bytes;

/// Body of a locally generated error, or `None` for statuses HAProxy has no page for.
pub fn body(status: u16) -> Option<Bytes> {
    let text: &'static str = match status {
        400 => "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n",
        408 => "<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n",
        // HAProxy 2.6 has no page of its own for these two (it answers 400); ours read
        // like its others.
        414 => "<html><body><h1>414 Request-URI Too Long</h1>\nYour browser sent a request whose URI is too long.\n</body></html>\n",
        431 => "<html><body><h1>431 Request Header Fields Too Large</h1>\nYour browser sent a request whose headers are too large.\n</body></html>\n",
        500 => "<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n</body></html>\n",
        502 => "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n",
        503 => "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
        504 => "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n",
        _ => return None,
    };
    Some(Bytes::from_static(text.as_bytes()))
}

/// HAProxy's reason phrase for the statuses the proxy answers on the raw socket.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        408 => "Request Time-out",
        414 => "Request-URI Too Long",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// A whole HTTP/1.1 error response as HAProxy writes it on the wire (its header names
/// and order, `Connection: close`, the page as body), for errors answered below hyper:
/// a slow request head (408) and the heads hyper's parser refuses (400/414/431).
pub fn raw(status: u16) -> Vec<u8> {
    let body = body(status).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n",
        reason(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The raw HTTP/1.1 408 written straight to the socket when hyper gives up on a slow
/// request head (hyper itself closes silently).
pub fn raw_408() -> Vec<u8> {
    raw(408)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_400_is_haproxys_bytes() {
        let want = "HTTP/1.1 400 Bad request\r\nContent-length: 90\r\nCache-Control: no-cache\r\nConnection: close\r\nContent-Type: text/html\r\n\r\n<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n";
        assert_eq!(String::from_utf8_lossy(&raw(400)), want);
        for s in [408, 414, 431] {
            let r = String::from_utf8_lossy(&raw(s)).into_owned();
            let (head, body) = r.split_once("\r\n\r\n").expect("head");
            assert!(
                head.contains(&format!("Content-length: {}", body.len())),
                "{r}"
            );
            assert!(body.starts_with(&format!("<html><body><h1>{s} ")), "{r}");
        }
    }
}
