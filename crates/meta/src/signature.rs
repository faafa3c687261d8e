//! Meta's webhook signature: `X-Hub-Signature-256: sha256=<hex>`, the
//! HMAC-SHA256 of the raw body keyed with the app secret (docs/rules.md
//! §8.1). Checked on the bytes as received, before any parsing, in constant
//! time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a signature was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    Missing,
    /// The header is not `sha256=` and 64 hex digits.
    Malformed,
    /// Well formed, but not the HMAC of this body with our secret.
    Mismatch,
}

impl SignatureError {
    /// The metric label and log field.
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing_signature",
            SignatureError::Malformed => "malformed_signature",
            SignatureError::Mismatch => "wrong_signature",
        }
    }
}

/// Checks a header value against a body.
pub fn verify(secret: &[u8], header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let digits = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = hex::decode(digits).map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    // verify_slice compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The header value Meta would send for `body` (used by the sandbox, the
/// benchmarks and the tests).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_vector_from_rfc_4231() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn accepts_its_own_signature_and_refuses_every_change() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(b"secret", body);
        assert_eq!(verify(b"secret", Some(header.as_bytes()), body), Ok(()));
        assert_eq!(
            verify(b"other", Some(header.as_bytes()), body),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"secret", Some(header.as_bytes()), b"{}"),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(b"secret", None, body), Err(SignatureError::Missing));
        assert_eq!(
            verify(b"secret", Some(b"sha1=abcd"), body),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"secret", Some(b"sha256=zz"), body),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(b"secret", Some(&header.as_bytes()[..20]), body),
            Err(SignatureError::Malformed)
        );
    }
}
