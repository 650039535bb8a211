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

use rquickjs::{Array, Ctx, Filter, Function, Object, Type, Value};
use serde_json::{Map, Number, Value as Json};

use fen_domain::ports::runtime::{ExportSnapshot, FUNCTION_MARKER};
use fen_domain::Kind;

use super::thrown::caught_text;

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

/// Snapshots every kind export (`model`, `extension`, ...) that `namespace` has.
pub(crate) fn snapshot_exports<'js>(
    ctx: &Ctx<'js>,
    describe: &Function<'js>,
    namespace: &Object<'js>,
    bundle: usize,
) -> Result<Vec<ExportSnapshot>, String> {
    let mut snapshots = Vec::new();
    for kind in Kind::ALL {
        let key = kind.export_key();
        match own_property(ctx, describe, namespace, key)? {
            OwnProperty::Missing => continue,
            OwnProperty::Accessor => return Err(format!("{key} is an accessor property")),
            OwnProperty::EnumerableData | OwnProperty::HiddenData => {}
        }
        let value: Value = namespace.get(key).map_err(|e| caught_text(ctx, e))?;
        let mut walker = Walker {
            ctx,
            describe,
            ancestors: Vec::new(),
            n_nodes: 0,
        };
        let json = walker.convert(value, key)?.unwrap_or(Json::Null);
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
    describe: &'a Function<'js>,
    ancestors: Vec<Value<'js>>,
    n_nodes: usize,
}

impl<'js> Walker<'_, 'js> {
    /// `None` for values JSON leaves out (`undefined`, symbols).
    fn convert(&mut self, value: Value<'js>, path: &str) -> Result<Option<Json>, String> {
        self.n_nodes += 1;
        if self.n_nodes > MAX_NODES {
            return Err(format!(
                "{path}: the export holds more than {MAX_NODES} values"
            ));
        }
        if value.is_proxy() {
            return Err(format!("{path} is a Proxy"));
        }
        let json = match value.type_of() {
            Type::Uninitialized | Type::Undefined | Type::Symbol => return Ok(None),
            Type::Null => Json::Null,
            Type::Bool => Json::Bool(value.as_bool().unwrap_or(false)),
            Type::Int => Json::from(value.as_int().unwrap_or(0)),
            Type::Float => float(value.as_float().unwrap_or(f64::NAN)),
            Type::String => {
                let text = value
                    .as_string()
                    .map(|s| s.to_string())
                    .transpose()
                    .map_err(|e| format!("{path}: {e}"))?;
                Json::String(text.unwrap_or_default())
            }
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
            Type::Array | Type::Object | Type::Exception => self.container(value, path)?,
            Type::Proxy => return Err(format!("{path} is a Proxy")),
            Type::Module | Type::Unknown => {
                return Err(format!("{path} has a type JSON cannot hold"))
            }
        };
        Ok(Some(json))
    }

    fn container(&mut self, value: Value<'js>, path: &str) -> Result<Json, String> {
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
            Some(array) => self.array(array, path),
            None => match value.into_object() {
                Some(object) => self.object(object, path),
                None => Err(format!("{path} is not an object")),
            },
        };
        self.ancestors.pop();
        json
    }

    fn array(&mut self, array: Array<'js>, path: &str) -> Result<Json, String> {
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
                "{path}: the export holds more than {MAX_NODES} values"
            ));
        }
        let length = length as u32;
        let mut items = Vec::with_capacity(length as usize);
        for index in 0..length {
            let item_path = format!("{path}[{index}]");
            let item = match own_property(self.ctx, self.describe, &object, index)? {
                OwnProperty::Missing => None,
                OwnProperty::Accessor => return Err(accessor(&item_path)),
                OwnProperty::EnumerableData | OwnProperty::HiddenData => {
                    let value: Value = array.get(index as usize).map_err(|e| self.fail(e))?;
                    self.convert(value, &item_path)?
                }
            };
            items.push(item.unwrap_or(Json::Null));
        }
        Ok(Json::Array(items))
    }

    fn object(&mut self, object: Object<'js>, path: &str) -> Result<Json, String> {
        let mut map = Map::new();
        let keys: Vec<String> = object
            .own_keys::<String>(Filter::new().string())
            .collect::<Result<_, _>>()
            .map_err(|e| self.fail(e))?;
        for key in keys {
            let field_path = format!("{path}.{key}");
            if key == FUNCTION_MARKER {
                return Err(format!(
                    "{field_path}: the property name {FUNCTION_MARKER} is reserved by fen"
                ));
            }
            match own_property(self.ctx, self.describe, &object, key.as_str())? {
                OwnProperty::Missing | OwnProperty::HiddenData => {}
                OwnProperty::Accessor => return Err(accessor(&field_path)),
                OwnProperty::EnumerableData => {
                    let value: Value = object.get(key.as_str()).map_err(|e| self.fail(e))?;
                    if let Some(json) = self.convert(value, &field_path)? {
                        map.insert(key, json);
                    }
                }
            }
        }
        Ok(Json::Object(map))
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
