//! Text that must fit an AWS length limit.

/// Shortens `text` to at most `max_bytes` bytes, on a character boundary.
pub(crate) fn truncate(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_a_character_boundary() {
        let mut text = "ab\u{e9}cd".to_owned();
        truncate(&mut text, 3);
        assert_eq!(text, "ab");
        let mut short = "abc".to_owned();
        truncate(&mut short, 10);
        assert_eq!(short, "abc");
    }
}
