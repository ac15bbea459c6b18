//! HTTP Basic authentication of the stats page (HAProxy's `stats auth`) and the
//! anti-CSRF token of its admin form.
//!
//! Passwords are compared in time that does not depend on where they differ, and every
//! configured user is tried, so timing tells nothing about which user or which byte.

use crate::l7::StatsUser;
use std::io::Read;

/// Decodes standard base64 (RFC 4648, padding optional); `None` on any invalid input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let s = s.trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Whether `a == b`, in time that depends only on the longer length, not on the content.
pub fn fixed_time_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(std::hint::black_box(x ^ y));
    }
    std::hint::black_box(diff) == 0
}

/// The user an `Authorization: Basic ...` header value authenticates, if any.
pub fn authenticate<'a>(users: &'a [StatsUser], header: Option<&[u8]>) -> Option<&'a str> {
    let h = std::str::from_utf8(header?).ok()?.trim();
    let (scheme, token) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let creds = base64_decode(token.trim())?;
    let colon = creds.iter().position(|&b| b == b':')?;
    let (name, password) = (&creds[..colon], &creds[colon + 1..]);
    let mut found = None;
    // Every user is compared, whatever matched first.
    for u in users {
        let ok =
            fixed_time_eq(name, u.name.as_bytes()) & fixed_time_eq(password, u.password.as_bytes());
        if ok && found.is_none() {
            found = Some(u.name.as_str());
        }
    }
    found
}

/// A per-process secret put in the admin form as a hidden field: a cross-site page
/// cannot read it, so it cannot forge the POST even though the browser would send the
/// Basic credentials along.
#[derive(Clone)]
pub struct CsrfToken(String);

impl std::fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfToken(..)")
    }
}

impl CsrfToken {
    /// 128 random bits from the kernel, hex-encoded.
    pub fn generate() -> std::io::Result<CsrfToken> {
        let mut b = [0u8; 16];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
        Ok(CsrfToken(b.iter().map(|x| format!("{x:02x}")).collect()))
    }

    /// The value for the form's hidden field.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a submitted value is this token (fixed time).
    pub fn verify(&self, submitted: &str) -> bool {
        fixed_time_eq(submitted.as_bytes(), self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Vec<StatsUser> {
        vec![
            StatsUser {
                name: "someuser".into(),
                password: "somepassword".into(),
            },
            StatsUser {
                name: "ops".into(),
                password: "p:w".into(),
            },
        ]
    }

    #[test]
    fn base64_round_trips_known_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(base64_decode(enc).as_deref(), Some(dec.as_bytes()), "{enc}");
        }
        for bad in ["Z", "Zm9v!", "Zm 9v", "Zm9vY"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn basic_auth_accepts_each_user_and_nothing_else() {
        let u = users();
        let hdr = |s: &str| format!("Basic {s}");
        // someuser:somepassword, ops:p:w
        assert_eq!(
            authenticate(&u, Some(hdr("c29tZXVzZXI6c29tZXBhc3N3b3Jk").as_bytes())),
            Some("someuser")
        );
        assert_eq!(
            authenticate(&u, Some(hdr("b3BzOnA6dw==").as_bytes())),
            Some("ops")
        );
        assert_eq!(authenticate(&u, Some(b"basic b3BzOnA6dw==")), Some("ops"));
        for bad in [
            "c29tZXVzZXI6c29tZXBhc3N3b3JE", // wrong last letter
            "c29tZXVzZXI6",                 // empty password
            "b3BzOnA=",                     // ops:p
            "bm9jb2xvbg==",                 // no colon
            "!!!",
        ] {
            assert_eq!(authenticate(&u, Some(hdr(bad).as_bytes())), None, "{bad}");
        }
        assert_eq!(authenticate(&u, None), None);
        assert_eq!(
            authenticate(&u, Some(b"Bearer c29tZXVzZXI6c29tZXBhc3N3b3Jk")),
            None
        );
        assert_eq!(
            authenticate(&[], Some(hdr("b3BzOnA6dw==").as_bytes())),
            None
        );
    }

    #[test]
    fn fixed_time_eq_compares() {
        assert!(fixed_time_eq(b"abc", b"abc"));
        assert!(!fixed_time_eq(b"abc", b"abd"));
        assert!(!fixed_time_eq(b"abc", b"abcd"));
        assert!(fixed_time_eq(b"", b""));
    }

    #[test]
    fn csrf_tokens_are_random_and_verified() {
        let a = CsrfToken::generate().unwrap();
        let b = CsrfToken::generate().unwrap();
        assert_ne!(a.as_str(), b.as_str());
        assert_eq!(a.as_str().len(), 32);
        assert!(a.verify(a.as_str()));
        assert!(!a.verify(b.as_str()));
        assert!(!a.verify(""));
    }
}
