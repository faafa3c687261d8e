//! A reader for the one shape nearly every line of a large log has: a flat
//! object of known fields whose values are strings without escapes or
//! integers, `template` an object of two such strings (every line
//! `wameter gen` and `wameter events` write).
//!
//! Why: serde's derived reader spent seven times what scanning the line
//! costs (docs/PERFORMANCE.md: 1.26 s to read a 2 M-line log on one core,
//! against 0.18 s for serde_json to scan it into `IgnoredAny`), in matching
//! field names through its visitors and moving the half-kilobyte
//! [`RawEvent`] it builds. This reader fills the same [`RawEvent`] in
//! place, borrowing every string from the line.
//!
//! It never decides anything serde would decide otherwise: it gives up
//! (`None`) on anything else — an escape, a control character, a float,
//! `null`, `true`, an array, any other object, an unknown or repeated key,
//! bytes after the object — and the line is then read by serde_json, which
//! stays the authority on what the line means and on every error message.
//! A property test and the `log` fuzz target hold the two readers to the
//! same result for any line.

use std::borrow::Cow;

use super::{Raw, RawEvent, RawTemplate};

/// Reads the line's fields into `raw` (as [`RawEvent::default`] left it),
/// or gives up (`None`, `raw` then partly written) when serde_json must
/// read the line. Filled in place: a `RawEvent` is about 400 bytes, and
/// returning it cost two copies a line.
pub(super) fn read<'a>(line: &'a str, raw: &mut RawEvent<'a>) -> Option<()> {
    let mut reader = Reader { line, at: 0 };
    let mut seen = 0u32;
    reader.skip_space();
    reader.expect(b'{')?;
    reader.skip_space();
    if reader.peek()? == b'}' {
        return None;
    }
    loop {
        reader.skip_space();
        // `object`, `pricing`, `conversation` hold objects; any other key
        // is one serde ignores, after checking its value is JSON.
        let bit = reader.key()?;
        reader.skip_space();
        reader.expect(b':')?;
        reader.skip_space();
        let value = match bit {
            0 => Value::Text(&mut raw.event_type),
            1 => Value::Raw(&mut raw.at),
            2 => Value::Text(&mut raw.business),
            3 => Value::Text(&mut raw.user),
            4 => Value::Text(&mut raw.user_country),
            5 => Value::Text(&mut raw.id),
            6 => Value::Text(&mut raw.entry_point),
            7 => Value::Text(&mut raw.kind),
            8 => Value::Template(&mut raw.template),
            9 => Value::Text(&mut raw.status),
            10 => Value::Raw(&mut raw.error),
            11 => Value::Text(&mut raw.direction),
            12 => Value::Raw(&mut raw.duration),
            13 => Value::Raw(&mut raw.tokens),
            14 => Value::Text(&mut raw.messaging_account_id),
            _ => Value::Text(&mut raw.paid_messaging_account_id),
        };
        // serde rejects a repeated field.
        if seen & (1 << bit) != 0 {
            return None;
        }
        seen |= 1 << bit;
        match value {
            Value::Text(slot) => *slot = Some(Cow::Borrowed(reader.string()?)),
            Value::Raw(slot) => *slot = Some(Raw(reader.scalar()?)),
            Value::Template(slot) => *slot = Some(reader.template()?),
        }
        reader.skip_space();
        match reader.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    reader.skip_space();
    (reader.at == line.len()).then_some(())
}

/// Where a field's value goes.
enum Value<'r, 'a> {
    Text(&'r mut Option<Cow<'a, str>>),
    Raw(&'r mut Option<Raw<'a>>),
    Template(&'r mut Option<RawTemplate<'a>>),
}

struct Reader<'a> {
    line: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    /// The key at the reader, quotes included, as the bit that marks it
    /// seen (the order of [`RawEvent`]'s fields), the reader moved past
    /// it; `None` for any other key (or one written with an escape).
    ///
    /// Each known key is compared with the line's bytes, its quotes
    /// included, as a literal: finding where each key string ends first,
    /// then matching the string, took a ninth more instructions to read a
    /// log (docs/PERFORMANCE.md, session 55). A literal, not a table of
    /// keys: comparing with a key of a length not known when compiling
    /// calls `memcmp`, and cost more than it saved.
    fn key(&mut self) -> Option<u32> {
        let rest = self.line.as_bytes().get(self.at..)?;
        macro_rules! one_of {
            ($($key:literal => $bit:literal),+) => {{
                $(
                    if rest.starts_with($key) {
                        self.at += $key.len();
                        return Some($bit);
                    }
                )+
                None
            }};
        }
        // By the key's first letter, so that each key is compared with
        // one to three literals.
        match rest.get(1)? {
            b't' => one_of!(b"\"type\"" => 0, b"\"template\"" => 8, b"\"tokens\"" => 13),
            b'a' => one_of!(b"\"at\"" => 1),
            b'b' => one_of!(b"\"business\"" => 2),
            b'u' => one_of!(b"\"user\"" => 3, b"\"user_country\"" => 4),
            b'i' => one_of!(b"\"id\"" => 5),
            b'e' => one_of!(b"\"entry_point\"" => 6, b"\"error\"" => 10),
            b'k' => one_of!(b"\"kind\"" => 7),
            b's' => one_of!(b"\"status\"" => 9),
            b'd' => one_of!(b"\"direction\"" => 11, b"\"duration\"" => 12),
            b'm' => one_of!(b"\"messaging_account_id\"" => 14),
            b'p' => one_of!(b"\"paid_messaging_account_id\"" => 15),
            _ => None,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.line.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    /// JSON's whitespace: space, tab, line feed, carriage return.
    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// A string without escapes or control characters, without its quotes.
    fn string(&mut self) -> Option<&'a str> {
        let (start, end) = self.string_span()?;
        self.line.get(start..end)
    }

    /// A string without escapes or control characters, with its quotes.
    fn quoted(&mut self) -> Option<&'a str> {
        let (start, end) = self.string_span()?;
        self.line.get(start - 1..end + 1)
    }

    /// Where the string at the reader starts and ends, inside its quotes;
    /// the reader is moved past it.
    fn string_span(&mut self) -> Option<(usize, usize)> {
        let bytes = self.line.as_bytes();
        if bytes.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let end = start + string_end(bytes.get(start..)?)?;
        if bytes.get(end) != Some(&b'"') {
            return None;
        }
        self.at = end + 1;
        Some((start, end))
    }

    /// A field kept as its raw text: a string without escapes, or an
    /// integer as JSON writes one (`0`, `-12`, no leading zero, no
    /// fraction or exponent).
    fn scalar(&mut self) -> Option<&'a str> {
        if self.peek()? == b'"' {
            return self.quoted();
        }
        let start = self.at;
        if self.peek()? == b'-' {
            self.at += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => {
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.at += 1;
                }
            }
            _ => return None,
        }
        // A fraction or an exponent: serde_json reads a float, and a digit
        // after a leading zero is not JSON; either way the separator the
        // caller expects is not next, and it gives up.
        self.line.get(start..self.at)
    }

    /// `{"name": "…", "category": "…"}`, either or both, in any order.
    fn template(&mut self) -> Option<RawTemplate<'a>> {
        let mut template = RawTemplate::default();
        self.expect(b'{')?;
        self.skip_space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(template);
        }
        loop {
            self.skip_space();
            let slot = match self.string()? {
                "name" => &mut template.name,
                "category" => &mut template.category,
                _ => return None,
            };
            if slot.is_some() {
                return None;
            }
            self.skip_space();
            self.expect(b':')?;
            self.skip_space();
            *slot = Some(Cow::Borrowed(self.string()?));
            self.skip_space();
            match self.next()? {
                b',' => {}
                b'}' => return Some(template),
                _ => return None,
            }
        }
    }
}

/// The position of the first byte in `bytes` that ends a JSON string or
/// cannot be in one unescaped: `"`, `\\` or a control character.
///
/// Eight bytes at a time (a line's strings are short, and `memchr2` cost
/// more to set up than to scan them): in each word, a byte equal to `"` or
/// `\\` XORs to zero, and `(x - 0x01…) & !x & 0x80…` marks a byte of `x`
/// below 0x01, `(x - 0x20…) & !x & 0x80…` one below 0x20. A borrow can mark
/// a byte wrongly only above a byte rightly marked, so the lowest mark (the
/// first byte, the word read little-endian) is always right.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x;
    // A string is followed by the rest of its line, so the words read
    // past its end until the line's last few bytes.
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        let marks = (below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            | below(x, 0x20))
            & HIGH;
        if marks != 0 {
            return Some(at + marks.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter()
        .position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f))
        .map(|i| at + i)
}

#[cfg(test)]
mod tests {
    use super::string_end;

    proptest::proptest! {
        /// Eight bytes at a time finds what one byte at a time finds.
        #[test]
        fn a_string_ends_where_a_byte_by_byte_scan_says(
            bytes in proptest::collection::vec(proptest::sample::select(vec![
                b'"', b'\\', 0, 0x1f, 0x20, 0x21, b'a', 0x7f, 0x80, 0xc3, 0xa9, 0xff,
            ]), 0..40),
        ) {
            let expected = bytes.iter().position(|b| matches!(b, b'"' | b'\\' | 0..=0x1f));
            proptest::prop_assert_eq!(string_end(&bytes), expected);
        }
    }
}
