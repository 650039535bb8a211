//! Reading JS strings into Rust within a budget. The length of a string (`s.length`,
//! in UTF-16 units) is read first, which copies nothing, so a caller can refuse a
//! string, or read only its head, before a 30 MB message or a 40 MB descriptor string
//! is ever copied out of the sandbox.
//!
//! Every UTF-16 unit becomes at least one byte of UTF-8, so a string of more units
//! than a byte budget is over that budget without being read.

use rquickjs::{qjs, Ctx, Value};

use fen_domain::text::cut_with_note;

/// The length of a JS string in UTF-16 units, or `None` for other values.
#[allow(unsafe_code)]
pub(crate) fn units(ctx: &Ctx<'_>, value: &Value<'_>) -> Option<usize> {
    if !value.is_string() {
        return None;
    }
    let mut length: i64 = 0;
    // SAFETY: `value` is a live string (or rope) of this context. For strings
    // `JS_GetLength` reads the length field (QuickJS answers `length` of a string
    // primitive itself, never through `String.prototype`), so no JS runs and
    // nothing is thrown.
    let status = unsafe { qjs::JS_GetLength(ctx.as_raw().as_ptr(), value.as_raw(), &mut length) };
    (status >= 0).then(|| usize::try_from(length).unwrap_or(usize::MAX))
}

/// A JS string as Rust text of at most `max_bytes`: whole if it fits, otherwise a
/// head read from at most `max_bytes` units and cut with a note giving the length
/// of the whole in characters (UTF-16 units, as `s.length` counts them). Lone
/// surrogates become U+FFFD. `None` for values that are not strings, or if the
/// engine could not give the text (out of memory).
pub(crate) fn read_capped(ctx: &Ctx<'_>, value: &Value<'_>, max_bytes: usize) -> Option<String> {
    let n_units = units(ctx, value)?;
    let text = if n_units <= max_bytes {
        whole_utf16(ctx, value)?
    } else {
        head_utf16(ctx, value, max_bytes)?
    };
    if n_units <= max_bytes && text.len() <= max_bytes {
        return Some(text);
    }
    Some(cut_with_note(
        &text,
        max_bytes,
        &format!("{n_units} characters"),
    ))
}

/// The whole string, converted from UTF-16. The caller has bounded its length.
#[allow(unsafe_code)]
fn whole_utf16(ctx: &Ctx<'_>, value: &Value<'_>) -> Option<String> {
    let raw = ctx.as_raw().as_ptr();
    let mut length: usize = 0;
    // SAFETY: `value` is a live string of this context. The returned buffer holds
    // `length` units and stays valid until `JS_FreeCStringUTF16`, called once here.
    unsafe {
        let buffer = qjs::JS_ToCStringLenUTF16(raw, &mut length as *mut usize as _, value.as_raw());
        if buffer.is_null() {
            drop(ctx.catch());
            return None;
        }
        let text = String::from_utf16_lossy(std::slice::from_raw_parts(buffer, length));
        qjs::JS_FreeCStringUTF16(raw, buffer);
        Some(text)
    }
}

/// The first `n_units` units of a longer string, read one unit at a time through
/// `s[i]` (answered by QuickJS for string primitives without `String.prototype`),
/// so only those units are ever copied.
#[allow(unsafe_code)]
fn head_utf16(ctx: &Ctx<'_>, value: &Value<'_>, n_units: usize) -> Option<String> {
    let raw = ctx.as_raw().as_ptr();
    let mut head = Vec::with_capacity(n_units);
    for index in 0..n_units {
        let index = u32::try_from(index).ok()?;
        // SAFETY: `value` is a live string of this context longer than `index`, so
        // the result is a one-unit string (or an exception when out of memory); it is
        // freed here, and its buffer before it.
        unsafe {
            let unit = qjs::JS_GetPropertyUint32(raw, value.as_raw(), index);
            let unit = Value::from_raw(ctx.clone(), unit);
            if unit.is_exception() || !unit.is_string() {
                drop(ctx.catch());
                return None;
            }
            let mut length: usize = 0;
            let buffer =
                qjs::JS_ToCStringLenUTF16(raw, &mut length as *mut usize as _, unit.as_raw());
            if buffer.is_null() {
                drop(ctx.catch());
                return None;
            }
            head.extend_from_slice(std::slice::from_raw_parts(buffer, length));
            qjs::JS_FreeCStringUTF16(raw, buffer);
        }
    }
    // A surrogate pair cut in half leaves a lone high surrogate: drop it rather than
    // show U+FFFD for a character that was whole.
    if head
        .last()
        .is_some_and(|unit| (0xd800..0xdc00).contains(unit))
    {
        head.pop();
    }
    Some(String::from_utf16_lossy(&head))
}
