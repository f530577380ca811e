//! RFC 3161 timestamps, as Sigstore bundles carry them (`timestampVerificationData`): a
//! timestamp authority's CMS-signed statement that a hash of the signature existed at a time.
//! Only what verification needs is read: the TSTInfo (message imprint, generation time), the
//! signer's signed attributes (content type, message digest) and its ECDSA signature.

/// A DER element: tag, content, and the whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Element<'a> {
    pub tag: u8,
    pub content: &'a [u8],
    pub raw: &'a [u8],
}

/// (header length, content length) of the DER element at the start of `bytes` (definite
/// lengths of up to four bytes).
pub fn header(bytes: &[u8]) -> Option<(usize, usize)> {
    let first = *bytes.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for b in bytes.get(2..2 + n)? {
        len = (len << 8) | usize::from(*b);
    }
    Some((2 + n, len))
}

/// Reads the first DER element of `bytes`; returns it and what follows.
pub fn element(bytes: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let tag = *bytes.first()?;
    if tag & 0x1f == 0x1f {
        return None; // multi-byte tags are not used here
    }
    let (header, len) = header(bytes)?;
    let end = header.checked_add(len)?;
    let raw = bytes.get(..end)?;
    Some((
        Element {
            tag,
            content: raw.get(header..)?,
            raw,
        },
        bytes.get(end..)?,
    ))
}

/// The elements inside a constructed element's content.
pub fn children(content: &[u8]) -> Option<Vec<Element<'_>>> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let (e, next) = element(rest)?;
        out.push(e);
        rest = next;
    }
    Some(out)
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const INTEGER: u8 = 0x02;
const GENERALIZED_TIME: u8 = 0x18;
const CONTEXT_0: u8 = 0xa0;

/// OID contents (without tag and length).
const OID_SIGNED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];
const OID_TST_INFO: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x04,
];
const OID_CONTENT_TYPE: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x03];
const OID_MESSAGE_DIGEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04];
const OID_SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const OID_SHA384: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02];
const OID_SHA512: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_ECDSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04];

/// A hash algorithm of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digest {
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    fn of_oid(oid: &[u8]) -> Option<Digest> {
        match oid {
            OID_SHA256 | OID_ECDSA_SHA256 => Some(Digest::Sha256),
            OID_SHA384 | OID_ECDSA_SHA384 => Some(Digest::Sha384),
            OID_SHA512 | OID_ECDSA_SHA512 => Some(Digest::Sha512),
            _ => None,
        }
    }

    pub fn hash(self, message: &[u8]) -> Vec<u8> {
        use sha2::Digest as _;
        match self {
            Digest::Sha256 => sha2::Sha256::digest(message).to_vec(),
            Digest::Sha384 => sha2::Sha384::digest(message).to_vec(),
            Digest::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }
}

/// What a timestamp token says, and what its signer signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Generation time, Unix seconds.
    pub time: i64,
    /// The timestamp's message imprint: hash algorithm and hash.
    pub imprint: (Digest, Vec<u8>),
    /// The signer's signed attributes, DER-encoded as a SET (the bytes the signature covers).
    pub signed_attributes: Vec<u8>,
    /// The hash the signature was made over.
    pub signature_digest: Digest,
    /// The signer's signature (ECDSA, DER).
    pub signature: Vec<u8>,
    /// The serial number of the signer's certificate, when the signer is named by issuer and
    /// serial number (big-endian, as encoded).
    pub signer_serial: Option<Vec<u8>>,
}

fn expect<'a>(e: Option<&Element<'a>>, tag: u8, what: &str) -> Result<Element<'a>, String> {
    match e {
        Some(e) if e.tag == tag => Ok(*e),
        Some(e) => Err(format!("{what}: unexpected DER tag 0x{:02x}", e.tag)),
        None => Err(format!("{what} is missing")),
    }
}

fn inner<'a>(e: &Element<'a>, what: &str) -> Result<Vec<Element<'a>>, String> {
    children(e.content).ok_or_else(|| format!("{what} is not DER"))
}

/// Reads a TimeStampResp (or a bare TimeStampToken) and checks that its signed attributes
/// name the TSTInfo it carries; the signature itself is checked by the caller.
pub fn parse(der: &[u8]) -> Result<Token, String> {
    let (outer, _) = element(der).ok_or("the timestamp is not DER")?;
    let outer_children = inner(
        &expect(Some(&outer), SEQUENCE, "the timestamp")?,
        "the timestamp",
    )?;
    // A TimeStampResp starts with its status; a token (ContentInfo) with an OID.
    let content_info = match outer_children.first() {
        Some(e) if e.tag == OID => outer,
        Some(status) if status.tag == SEQUENCE => {
            let status_fields = inner(status, "the timestamp status")?;
            let code = expect(status_fields.first(), INTEGER, "the timestamp status")?;
            if code.content != [0] && code.content != [1] {
                return Err(format!(
                    "the timestamp authority refused the request (status {:?})",
                    code.content
                ));
            }
            expect(outer_children.get(1), SEQUENCE, "the timestamp token")?
        }
        _ => return Err("the timestamp is neither a TimeStampResp nor a token".into()),
    };
    let ci = inner(&content_info, "the timestamp token")?;
    if expect(ci.first(), OID, "the token's content type")?.content != OID_SIGNED_DATA {
        return Err("the timestamp token is not CMS SignedData".into());
    }
    let explicit = expect(ci.get(1), CONTEXT_0, "the token's content")?;
    let (signed_data, _) = element(explicit.content).ok_or("the SignedData is not DER")?;
    let sd = inner(
        &expect(Some(&signed_data), SEQUENCE, "the SignedData")?,
        "the SignedData",
    )?;
    let encap = inner(
        &expect(sd.get(2), SEQUENCE, "the encapsulated content")?,
        "the encapsulated content",
    )?;
    if expect(encap.first(), OID, "the encapsulated content type")?.content != OID_TST_INFO {
        return Err("the SignedData does not hold a TSTInfo".into());
    }
    let econtent = expect(encap.get(1), CONTEXT_0, "the TSTInfo")?;
    let (octets, _) = element(econtent.content).ok_or("the TSTInfo is not DER")?;
    let tst_info = expect(Some(&octets), OCTET_STRING, "the TSTInfo")?.content;
    let (tst, _) = element(tst_info).ok_or("the TSTInfo is not DER")?;
    let tst = inner(&expect(Some(&tst), SEQUENCE, "the TSTInfo")?, "the TSTInfo")?;
    let imprint = inner(
        &expect(tst.get(2), SEQUENCE, "the message imprint")?,
        "the message imprint",
    )?;
    let algorithm = inner(
        &expect(imprint.first(), SEQUENCE, "the imprint's algorithm")?,
        "the imprint's algorithm",
    )?;
    let imprint_digest =
        Digest::of_oid(expect(algorithm.first(), OID, "the imprint's algorithm")?.content)
            .ok_or("the imprint's hash algorithm is not SHA-2")?;
    let hashed = expect(imprint.get(1), OCTET_STRING, "the imprint's hash")?
        .content
        .to_vec();
    let time =
        generalized_time(expect(tst.get(4), GENERALIZED_TIME, "the generation time")?.content)?;
    // The last SET of the SignedData holds the signer infos; certificates and CRLs before it
    // are tagged [0] and [1].
    let signer_infos = sd
        .iter()
        .skip(3)
        .rfind(|e| e.tag == SET)
        .ok_or("the SignedData has no signer")?;
    let signers = inner(signer_infos, "the signer infos")?;
    let signer = inner(
        &expect(signers.first(), SEQUENCE, "the signer info")?,
        "the signer info",
    )?;
    let signer_serial = signer.get(1).filter(|s| s.tag == SEQUENCE).and_then(|s| {
        children(s.content)?
            .get(1)
            .filter(|n| n.tag == INTEGER)
            .map(|n| n.content.to_vec())
    });
    let attributes = expect(signer.get(3), CONTEXT_0, "the signed attributes")?;
    let signature_algorithm = inner(
        &expect(signer.get(4), SEQUENCE, "the signature algorithm")?,
        "the signature algorithm",
    )?;
    let algorithm_oid =
        expect(signature_algorithm.first(), OID, "the signature algorithm")?.content;
    let signature_digest = match algorithm_oid {
        OID_ECDSA_SHA256 | OID_ECDSA_SHA384 | OID_ECDSA_SHA512 => Digest::of_oid(algorithm_oid),
        _ => None,
    }
    .ok_or("the timestamp's signature is not ECDSA with SHA-2 (the only kind supported)")?;
    let signature = expect(signer.get(5), OCTET_STRING, "the signature")?
        .content
        .to_vec();
    let digest_algorithm = inner(
        &expect(signer.get(2), SEQUENCE, "the digest algorithm")?,
        "the digest algorithm",
    )?;
    let digest =
        Digest::of_oid(expect(digest_algorithm.first(), OID, "the digest algorithm")?.content)
            .ok_or("the signer's digest algorithm is not SHA-2")?;
    let mut content_type_ok = false;
    let mut digest_ok = false;
    for attribute in inner(&attributes, "the signed attributes")? {
        let fields = inner(&attribute, "a signed attribute")?;
        let kind = expect(fields.first(), OID, "a signed attribute's type")?.content;
        let values = inner(
            &expect(fields.get(1), SET, "a signed attribute's values")?,
            "a signed attribute's values",
        )?;
        let value = values.first().map(|v| (v.tag, v.content));
        if kind == OID_CONTENT_TYPE {
            content_type_ok = value == Some((OID, OID_TST_INFO));
        } else if kind == OID_MESSAGE_DIGEST {
            digest_ok = value == Some((OCTET_STRING, digest.hash(tst_info).as_slice()));
        }
    }
    if !content_type_ok {
        return Err("the signed attributes do not name a TSTInfo as content type".into());
    }
    if !digest_ok {
        return Err("the signed attributes' message digest is not the TSTInfo's".into());
    }
    // The signature covers the attributes encoded as a SET, not as the [0] they are stored in.
    let mut signed_attributes = attributes.raw.to_vec();
    if let Some(first) = signed_attributes.first_mut() {
        *first = SET;
    }
    Ok(Token {
        time,
        imprint: (imprint_digest, hashed),
        signed_attributes,
        signature_digest,
        signature,
        signer_serial,
    })
}

/// `YYYYMMDDHHMMSS[.f*]Z` to Unix seconds.
fn generalized_time(text: &[u8]) -> Result<i64, String> {
    let text = std::str::from_utf8(text).map_err(|_| "the generation time is not text")?;
    let bad = || format!("the generation time `{text}` is not a UTC GeneralizedTime");
    if !text.ends_with('Z') || text.len() < 15 || !text.is_char_boundary(14) {
        return Err(bad());
    }
    let digits = &text[..14];
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = |range: std::ops::Range<usize>| digits[range].parse::<i16>().map_err(|_| bad());
    let (year, month, day) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hour, minute, second) = (n(8..10)?, n(10..12)?, n(12..14)?);
    let narrow = |v: i16| i8::try_from(v).map_err(|_| bad());
    let civil = jiff::civil::DateTime::new(
        year,
        narrow(month)?,
        narrow(day)?,
        narrow(hour)?,
        narrow(minute)?,
        narrow(second)?,
        0,
    )
    .map_err(|_| bad())?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_second())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generalized_times_are_read() {
        assert_eq!(generalized_time(b"20260513192333Z"), Ok(1_778_700_213));
        assert_eq!(generalized_time(b"20260513192333.123Z"), Ok(1_778_700_213));
        assert!(generalized_time(b"20261313192333Z").is_err());
        assert!(generalized_time(b"2026051319233Z").is_err());
        assert!(generalized_time(b"20260513192333+0100").is_err());
    }

    #[test]
    fn der_elements_are_read() {
        let (e, rest) = element(&[0x30, 0x03, 0x02, 0x01, 0x05, 0xff]).unwrap();
        assert_eq!(
            (e.tag, e.content, rest),
            (0x30, &[0x02, 0x01, 0x05][..], &[0xff][..])
        );
        assert_eq!(children(e.content).unwrap().len(), 1);
        assert!(element(&[0x30, 0x05, 0x00]).is_none());
        assert!(element(&[0x30, 0x80]).is_none());
        assert!(element(&[0x1f, 0x01, 0x00]).is_none());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse(&bytes);
        }
    }
}
