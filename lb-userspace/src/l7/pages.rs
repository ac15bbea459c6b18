//! The proxy's own error responses, with HAProxy's bodies so that monitoring and users
//! see what they saw before the migration.

use bytes::Bytes;

/// Body of a locally generated error, or `None` for statuses HAProxy has no page for.
pub fn body(status: u16) -> Option<Bytes> {
    let text: &'static str = match status {
        400 => "<html><body><h1>400 Bad request</h1>\nYour browser sent an invalid request.\n</body></html>\n",
        408 => "<html><body><h1>408 Request Time-out</h1>\nYour browser didn't send a complete request in time.\n</body></html>\n",
        500 => "<html><body><h1>500 Internal Server Error</h1>\nAn internal server error occurred.\n</body></html>\n",
        502 => "<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n",
        503 => "<html><body><h1>503 Service Unavailable</h1>\nNo server is available to handle this request.\n</body></html>\n",
        504 => "<html><body><h1>504 Gateway Time-out</h1>\nThe server didn't respond in time.\n</body></html>\n",
        _ => return None,
    };
    Some(Bytes::from_static(text.as_bytes()))
}

/// The raw HTTP/1.1 408 written straight to the socket when hyper gives up on a slow
/// request head (hyper itself closes silently).
pub fn raw_408() -> Vec<u8> {
    let body = body(408).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 408 Request Time-out\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}
