//! The export snapshot (spec 30 §4.2): the own-property JSON view of the kind exports
//! of a bundle's entry module.
//!
//! Only own, enumerable, string-keyed data properties are read, through the prelude's
//! `describe` helper, so no getter, proxy trap or inherited property takes part: a
//! polluted `Object.prototype` cannot supply a field. Any own accessor property is an
//! error, as are proxies, promises, `BigInt`s and cycles. Functions become the marker
//! `{"$fn": true}`; an object with its own `$fn` key is refused so the marker cannot
//! be forged. `undefined` and symbols are left out of objects and become `null` in
//! arrays, as with `JSON.stringify`; non-finite numbers become `null`.
//!
//! An export becomes a catalog descriptor, so the walk counts the bytes of JSON it
//! produces and stops at [`MAX_DESCRIPTOR_BYTES`]: the length of each string and key
//! is looked at before the string is copied out of QuickJS, so an export holding a
//! 40 MB string is refused without the host ever holding those 40 MB.

use std::fmt::Write as _;
use std::mem::MaybeUninit;

use rquickjs::{qjs, Array, Ctx, Filter, Function, Object, Type, Value};
use serde_json::{Map, Number, Value as Json};

use fen_domain::ports::runtime::{ExportSnapshot, FUNCTION_MARKER};
use fen_domain::Kind;

use super::js_text;
use super::sandbox::format_bytes;
use super::thrown::caught_text;
use super::validate::MAX_DESCRIPTOR_BYTES;

/// Deepest nesting the snapshot follows.
const MAX_DEPTH: usize = 100;
/// Most values (objects, arrays and scalars) one export may hold.
const MAX_NODES: usize = 100_000;

/// What `describe` says about one property.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnProperty {
    Missing,
    Accessor,
    EnumerableData,
    HiddenData,
}

/// Asks the prelude's `describe` about `object[key]`.
pub(crate) fn own_property<'js, K>(
    ctx: &Ctx<'js>,
    describe: &Function<'js>,
    object: &Object<'js>,
    key: K,
) -> Result<OwnProperty, String>
where
    K: rquickjs::IntoJs<'js>,
{
    let code: i32 = describe
        .call((object.clone(), key))
        .map_err(|e| caught_text(ctx, e))?;
    Ok(match code {
        1 => OwnProperty::Accessor,
        2 => OwnProperty::EnumerableData,
        3 => OwnProperty::HiddenData,
        _ => OwnProperty::Missing,
    })
}

/// Reads `object[key]` if it is an own data property (enumerable or not).
pub(crate) fn own_data<'js>(
    ctx: &Ctx<'js>,
    describe: &Function<'js>,
    object: &Object<'js>,
    key: &str,
) -> Result<Option<Value<'js>>, String> {
    match own_property(ctx, describe, object, key)? {
        OwnProperty::EnumerableData | OwnProperty::HiddenData => object
            .get::<_, Value>(key)
            .map(Some)
            .map_err(|e| caught_text(ctx, e)),
        OwnProperty::Missing | OwnProperty::Accessor => Ok(None),
    }
}

/// One own property of an object, as [`own_slot`] reads it.
pub(crate) enum Slot<'js> {
    Missing,
    Accessor,
    Data { enumerable: bool, value: Value<'js> },
}

/// A property key: a string or an array index.
#[derive(Clone, Copy)]
pub(crate) enum Key<'k> {
    Name(&'k str),
    Index(u32),
}

/// Reads the own property `key` of `object` as `Object.getOwnPropertyDescriptor`
/// would (the same QuickJS routine), without a JS call or a descriptor object: the
/// snapshot asks this for every property of every export. A getter is never called;
/// on a Proxy the `getOwnPropertyDescriptor` trap would run, so the walker refuses
/// proxies before it looks inside.
#[allow(unsafe_code)]
pub(crate) fn own_slot<'js>(
    ctx: &Ctx<'js>,
    object: &Object<'js>,
    key: Key<'_>,
) -> Result<Slot<'js>, String> {
    let raw = ctx.as_raw().as_ptr();
    let thrown = || caught_text(ctx, rquickjs::Error::Exception);
    // SAFETY: `raw` is the live context of `ctx` and `object` a value of it. The atom
    // made here is freed once used. `JS_GetOwnProperty` fills `descriptor` only when
    // it returns 1; then the caller owns its three values, which `Value::from_raw`
    // takes over (and frees on drop).
    unsafe {
        let atom = match key {
            Key::Name(name) => qjs::JS_NewAtomLen(raw, name.as_ptr().cast(), name.len() as _),
            Key::Index(index) => qjs::JS_NewAtomUInt32(raw, index),
        };
        if atom == 0 {
            return Err(thrown());
        }
        let mut descriptor = MaybeUninit::<qjs::JSPropertyDescriptor>::uninit();
        let found = qjs::JS_GetOwnProperty(raw, descriptor.as_mut_ptr(), object.as_raw(), atom);
        qjs::JS_FreeAtom(raw, atom);
        match found {
            ..0 => Err(thrown()),
            0 => Ok(Slot::Missing),
            _ => {
                let descriptor = descriptor.assume_init();
                let value = Value::from_raw(ctx.clone(), descriptor.value);
                drop(Value::from_raw(ctx.clone(), descriptor.getter));
                drop(Value::from_raw(ctx.clone(), descriptor.setter));
                let flags = descriptor.flags as u32;
                if flags & qjs::JS_PROP_GETSET != 0 {
                    Ok(Slot::Accessor)
                } else {
                    Ok(Slot::Data {
                        enumerable: flags & qjs::JS_PROP_ENUMERABLE != 0,
                        value,
                    })
                }
            }
        }
    }
}

/// Snapshots every kind export (`model`, `extension`, ...) that `namespace` has.
pub(crate) fn snapshot_exports<'js>(
    ctx: &Ctx<'js>,
    namespace: &Object<'js>,
    bundle: usize,
) -> Result<Vec<ExportSnapshot>, String> {
    let mut snapshots = Vec::new();
    for kind in Kind::ALL {
        let key = kind.export_key();
        let value = match own_slot(ctx, namespace, Key::Name(key))? {
            Slot::Missing => continue,
            Slot::Accessor => return Err(format!("{key} is an accessor property")),
            Slot::Data { value, .. } => value,
        };
        let mut walker = Walker {
            ctx,
            ancestors: Vec::new(),
            n_nodes: 0,
            n_bytes: 0,
            path: key.to_owned(),
        };
        let json = walker.convert(value)?.unwrap_or(Json::Null);
        snapshots.push(ExportSnapshot {
            bundle,
            key: key.to_owned(),
            value: json,
        });
    }
    Ok(snapshots)
}

struct Walker<'a, 'js> {
    ctx: &'a Ctx<'js>,
    ancestors: Vec<Value<'js>>,
    n_nodes: usize,
    /// Bytes of JSON text converted so far (at least: escapes and number digits
    /// beyond the first are not counted; `validate_export` measures the result).
    n_bytes: usize,
    /// The path of the value being converted (`model.resources.state`), for errors:
    /// extended and cut back in place, so converting allocates no path per value.
    path: String,
}

impl<'js> Walker<'_, 'js> {
    /// `None` for values JSON leaves out (`undefined`, symbols).
    fn convert(&mut self, value: Value<'js>) -> Result<Option<Json>, String> {
        self.n_nodes += 1;
        if self.n_nodes > MAX_NODES {
            return Err(format!(
                "{}: the export holds more than {MAX_NODES} values",
                self.path
            ));
        }
        // A separator or a one-byte scalar, at least.
        self.spend(1)?;
        let path = &self.path;
        if value.is_proxy() {
            return Err(format!("{path} is a Proxy"));
        }
        let json = match value.type_of() {
            Type::Uninitialized | Type::Undefined | Type::Symbol => return Ok(None),
            Type::Null => Json::Null,
            Type::Bool => Json::Bool(value.as_bool().unwrap_or(false)),
            Type::Int => Json::from(value.as_int().unwrap_or(0)),
            Type::Float => float(value.as_float().unwrap_or(f64::NAN)),
            Type::String => Json::String(self.string(&value)?),
            Type::BigInt => return Err(format!("{path} is a BigInt, which JSON cannot hold")),
            Type::Function | Type::Constructor => {
                let mut marker = Map::new();
                marker.insert(FUNCTION_MARKER.to_owned(), Json::Bool(true));
                Json::Object(marker)
            }
            Type::Promise => {
                return Err(format!(
                    "{path} is a Promise (await it at top level before exporting)"
                ))
            }
            Type::Array | Type::Object | Type::Exception => self.container(value)?,
            Type::Proxy => return Err(format!("{path} is a Proxy")),
            Type::Module | Type::Unknown => {
                return Err(format!("{path} has a type JSON cannot hold"))
            }
        };
        Ok(Some(json))
    }

    fn container(&mut self, value: Value<'js>) -> Result<Json, String> {
        let path = &self.path;
        if self.ancestors.contains(&value) {
            return Err(format!(
                "{path} refers back to an enclosing object (a cycle)"
            ));
        }
        if self.ancestors.len() >= MAX_DEPTH {
            return Err(format!(
                "{path} is nested more than {MAX_DEPTH} levels deep"
            ));
        }
        self.ancestors.push(value.clone());
        let json = match value.clone().into_array() {
            Some(array) => self.array(array),
            None => match value.into_object() {
                Some(object) => self.object(object),
                None => Err(format!("{path} is not an object")),
            },
        };
        self.ancestors.pop();
        json
    }

    fn array(&mut self, array: Array<'js>) -> Result<Json, String> {
        let object = array.as_object().clone();
        // Not Array::len: it asserts that `length` is a small integer, which an
        // extension can break with `a.length = 2 ** 32 - 1`.
        let length = object
            .get::<_, Value>("length")
            .ok()
            .and_then(|l| l.as_number())
            .unwrap_or(0.0);
        if length > (MAX_NODES - self.n_nodes) as f64 {
            return Err(format!(
                "{}: the export holds more than {MAX_NODES} values",
                self.path
            ));
        }
        let length = length as u32;
        let mut items = Vec::with_capacity(length as usize);
        let parent = self.path.len();
        for index in 0..length {
            self.path.truncate(parent);
            let _ = write!(self.path, "[{index}]");
            let item = match own_slot(self.ctx, &object, Key::Index(index))? {
                Slot::Missing => None,
                Slot::Accessor => return Err(accessor(&self.path)),
                Slot::Data { value, .. } => self.convert(value)?,
            };
            items.push(item.unwrap_or(Json::Null));
        }
        self.path.truncate(parent);
        Ok(Json::Array(items))
    }

    fn object(&mut self, object: Object<'js>) -> Result<Json, String> {
        let mut map = Map::new();
        let parent = self.path.len();
        for key in object.own_keys::<rquickjs::String>(Filter::new().string()) {
            let key = key.map_err(|e| self.fail(e))?;
            self.path.truncate(parent);
            // The quotes and the colon around the key.
            self.spend(3)?;
            let key = self.string(key.as_value())?;
            self.path.push('.');
            self.path.push_str(&key);
            if key == FUNCTION_MARKER {
                return Err(format!(
                    "{}: the property name {FUNCTION_MARKER} is reserved by fen",
                    self.path
                ));
            }
            match own_slot(self.ctx, &object, Key::Name(&key))? {
                Slot::Missing
                | Slot::Data {
                    enumerable: false, ..
                } => {}
                Slot::Accessor => return Err(accessor(&self.path)),
                Slot::Data {
                    enumerable: true,
                    value,
                } => {
                    if let Some(json) = self.convert(value)? {
                        map.insert(key, json);
                    }
                }
            }
        }
        self.path.truncate(parent);
        Ok(Json::Object(map))
    }

    /// A string value or key: its length counted (before it is copied), then read.
    fn string(&mut self, value: &Value<'js>) -> Result<String, String> {
        let n_units = js_text::units(self.ctx, value).unwrap_or(0);
        // Each UTF-16 unit is at least one byte of UTF-8: over budget without a copy.
        self.spend(n_units.saturating_add(2))?;
        let text = value
            .as_string()
            .map(|s| s.to_string())
            .transpose()
            .map_err(|e| format!("{}: {e}", self.path))?
            .unwrap_or_default();
        self.spend(text.len().saturating_sub(n_units))?;
        Ok(text)
    }

    /// Counts `n_bytes` more bytes of JSON; fails once the export is over
    /// [`MAX_DESCRIPTOR_BYTES`].
    fn spend(&mut self, n_bytes: usize) -> Result<(), String> {
        self.n_bytes = self.n_bytes.saturating_add(n_bytes);
        if self.n_bytes > MAX_DESCRIPTOR_BYTES {
            return Err(format!(
                "{}: the descriptor would be at least {} bytes, over the {} limit",
                self.path,
                self.n_bytes,
                format_bytes(MAX_DESCRIPTOR_BYTES)
            ));
        }
        Ok(())
    }

    fn fail(&self, error: rquickjs::Error) -> String {
        caught_text(self.ctx, error)
    }
}

fn accessor(path: &str) -> String {
    format!("{path} is an accessor property (fen never calls getters; use a plain value)")
}

/// A JS number as JSON: integral values as integers, non-finite ones as `null`.
fn float(number: f64) -> Json {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if number.fract() == 0.0 && number.abs() < EXACT {
        return Json::from(number as i64);
    }
    Number::from_f64(number).map_or(Json::Null, Json::Number)
}
