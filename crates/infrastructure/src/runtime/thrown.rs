//! Reading a thrown JS value into Rust: name, message, the `FenError` code and the
//! stack (spec 30 §2.9). Each text is read with [`js_text::read_capped`], so at most
//! [`MAX_THROWN_BYTES`] of it (a head and a note saying it was cut) ever leaves the
//! sandbox, whatever the extension threw.

use rquickjs::convert::Coerced;
use rquickjs::{Ctx, FromJs, Object, Value};

use fen_domain::text::MAX_THROWN_BYTES;

use super::js_text;

/// How far up the prototype chain a `FenError` is looked for.
const MAX_PROTOTYPE_HOPS: usize = 64;

/// A thrown value, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Thrown {
    /// `name` of an `Error` (`FenError` for fen's class); empty for other values.
    pub(crate) name: String,
    /// `message` of an `Error`; `String(value)` otherwise.
    pub(crate) message: String,
    /// The code of a `FenError`.
    pub(crate) code: Option<String>,
    /// The JS stack of an `Error` that is not a `FenError`.
    pub(crate) stack: Option<String>,
}

impl Thrown {
    /// `String(value)`, the way the domain's `CallError::Threw` displays it.
    pub(crate) fn text(&self) -> String {
        match (self.name.is_empty(), self.message.is_empty()) {
            (true, _) => self.message.clone(),
            (false, true) => self.name.clone(),
            (false, false) => format!("{}: {}", self.name, self.message),
        }
    }
}

/// The one-line text of a failed rquickjs operation, taking the pending exception.
pub(crate) fn caught_text(ctx: &Ctx<'_>, error: rquickjs::Error) -> String {
    caught(ctx, error, None).text()
}

/// Reads a failed rquickjs operation: the pending exception if it threw.
pub(crate) fn caught<'js>(
    ctx: &Ctx<'js>,
    error: rquickjs::Error,
    fen_error_prototype: Option<&Object<'js>>,
) -> Thrown {
    if error.is_exception() {
        thrown(ctx, ctx.catch(), fen_error_prototype)
    } else {
        Thrown {
            name: String::new(),
            message: error.to_string(),
            code: None,
            stack: None,
        }
    }
}

/// Reads a thrown value. Getters of the value may run (it is the extension's own
/// object, and the call's deadline still applies); failures read as absent fields.
pub(crate) fn thrown<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
    fen_error_prototype: Option<&Object<'js>>,
) -> Thrown {
    let object = value.as_object().filter(|_| !value.is_proxy()).cloned();
    let Some(object) = object else {
        return Thrown {
            name: String::new(),
            message: coerced_text(ctx, value),
            code: None,
            stack: None,
        };
    };
    let is_fen_error = fen_error_prototype.is_some_and(|p| inherits_from(&object, p));
    if !value.is_error() && !is_fen_error {
        return Thrown {
            name: String::new(),
            message: coerced_text(ctx, value),
            code: None,
            stack: None,
        };
    }
    let name = string_property(ctx, &object, "name").unwrap_or_else(|| "Error".to_owned());
    let message = string_property(ctx, &object, "message").unwrap_or_default();
    if is_fen_error {
        return Thrown {
            name: "FenError".to_owned(),
            message,
            code: string_property(ctx, &object, "code"),
            stack: None,
        };
    }
    Thrown {
        name,
        message,
        code: None,
        stack: string_property(ctx, &object, "stack"),
    }
}

fn inherits_from<'js>(object: &Object<'js>, prototype: &Object<'js>) -> bool {
    let mut current = object.clone();
    for _ in 0..MAX_PROTOTYPE_HOPS {
        if current.as_value().is_proxy() {
            return false;
        }
        match current.get_prototype() {
            Some(parent) if parent == *prototype => return true,
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

fn string_property<'js>(ctx: &Ctx<'js>, object: &Object<'js>, key: &str) -> Option<String> {
    match object.get::<_, Value>(key) {
        Ok(value) => js_text::read_capped(ctx, &value, MAX_THROWN_BYTES),
        Err(error) => {
            if error.is_exception() {
                ctx.catch();
            }
            None
        }
    }
}

/// `String(value)`, capped like the other texts.
fn coerced_text<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
    let text = Coerced::<rquickjs::String>::from_js(ctx, value)
        .ok()
        .and_then(|Coerced(text)| js_text::read_capped(ctx, text.as_value(), MAX_THROWN_BYTES));
    match text {
        Some(text) => text,
        None => {
            // A pending exception (from `toString`, or out of memory) is dropped.
            drop(ctx.catch());
            "[a value that cannot be converted to a string]".to_owned()
        }
    }
}
