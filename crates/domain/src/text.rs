//! Cutting text an extension chose (a thrown message, a stack) to a byte budget, the
//! way a row's `lastError` is cut (spec 10 §2), but with a note saying that it was cut
//! and how long the whole was, so a reader never mistakes the head for the whole.

/// Most bytes fen keeps of each text of a thrown value (its name, message, `FenError`
/// code and stack), the cut note included: as much as a row's `lastError`
/// ([`MAX_ERROR_BYTES`](crate::row_state::MAX_ERROR_BYTES)).
pub const MAX_THROWN_BYTES: usize = crate::row_state::MAX_ERROR_BYTES;

/// The head of a text that was cut, shortened at a character boundary so that it and
/// the note ` … [cut: <whole> in all]` fit in `max` bytes together. `whole` says how
/// long the text was (`"31457280 bytes"`); a caller that only read a head of the text
/// gives its length in the unit it knows.
pub fn cut_with_note(head: &str, max: usize, whole: &str) -> String {
    let note = format!(" … [cut: {whole} in all]");
    let mut end = max.saturating_sub(note.len()).min(head.len());
    while !head.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + note.len());
    out.push_str(&head[..end]);
    if out.len() + note.len() <= max {
        out.push_str(&note);
    }
    out
}

/// `text` cut to `max` bytes with a note giving its length in bytes (see
/// [`cut_with_note`]). A text that already fits, including one cut before, is
/// returned unchanged.
pub fn cut_text(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let whole = format!("{} bytes", text.len());
    cut_with_note(&text, max, &whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept() {
        assert_eq!(cut_text("boom".to_owned(), 16), "boom");
        assert_eq!(cut_text("boom".to_owned(), 4), "boom");
    }

    #[test]
    fn long_text_is_cut_with_a_note_within_the_budget() {
        let cut = cut_text("y".repeat(31_457_280), MAX_THROWN_BYTES);
        assert!(cut.len() <= MAX_THROWN_BYTES, "{}", cut.len());
        assert!(cut.ends_with("y … [cut: 31457280 bytes in all]"), "{cut}");
        assert!(cut.len() > MAX_THROWN_BYTES - 64);
        // Cutting again changes nothing: the result fits.
        assert_eq!(cut_text(cut.clone(), MAX_THROWN_BYTES), cut);
    }

    #[test]
    fn cuts_fall_on_character_boundaries() {
        for text in ["é".repeat(3000), format!("a{}", "€".repeat(2000))] {
            let cut = cut_with_note(&text, 4096, "many characters");
            assert!(cut.len() <= 4096);
            assert!(cut.ends_with(" … [cut: many characters in all]"), "{cut}");
        }
    }

    #[test]
    fn a_head_that_fits_still_gets_the_note() {
        assert_eq!(
            cut_with_note("abc", 64, "9 characters"),
            "abc … [cut: 9 characters in all]"
        );
    }

    #[test]
    fn thrown_texts_of_a_call_error_are_cut() {
        use crate::ports::runtime::CallError;
        let huge = "m".repeat(MAX_THROWN_BYTES + 1);
        let error = CallError::Threw {
            name: "Error".to_owned(),
            message: huge.clone(),
            code: Some(huge.clone()),
            stack: Some(huge),
        }
        .with_thrown_texts_cut();
        let CallError::Threw {
            name,
            message,
            code,
            stack,
        } = error
        else {
            panic!("still a throw");
        };
        assert_eq!(name, "Error");
        for text in [message, code.unwrap_or_default(), stack.unwrap_or_default()] {
            assert!(text.ends_with(" … [cut: 4097 bytes in all]"), "{text}");
            assert!(text.len() <= MAX_THROWN_BYTES);
        }
        let other = CallError::DidNotSettle;
        assert_eq!(other.clone().with_thrown_texts_cut(), other);
    }

    #[test]
    fn a_budget_smaller_than_the_note_keeps_no_note() {
        assert_eq!(cut_with_note("abcdef", 3, "6 bytes"), "");
    }
}
