//! Percent-encoding of metadata values (S3 user metadata is ASCII only).

/// Escapes every byte but ASCII letters, digits and `-_.~` as `%XX`.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes `%XX` escapes (any byte escaped, the rest as is); `None` if not valid UTF-8 after.
pub fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips() {
        let s = "{\"a b\":\"é/%\"}";
        assert_eq!(super::decode(&super::encode(s)).as_deref(), Some(s));
        assert_eq!(super::decode("%zz"), None);
    }
}
