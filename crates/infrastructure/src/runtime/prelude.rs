//! The JavaScript fen itself runs in every sandbox, before any extension code: the
//! host module `fen:sdk` (spec 30 §2.1) and the prelude that installs `console` and
//! returns the helpers the adapter calls later.
//!
//! Both capture the intrinsics they use (`Object.defineProperty`, `JSON.stringify`,
//! ...) while they are still pristine, and build property descriptors with a null
//! prototype, so extension code that later replaces a global or pollutes
//! `Object.prototype` cannot change what the helpers do.

/// The module id of the host module.
pub(crate) const SDK_MODULE_ID: &str = "fen:sdk";

/// Source of `fen:sdk`.
pub(crate) const SDK_SOURCE: &str = r#"
const defineProperty = Object.defineProperty;
const toText = String;

export function defineModel(definition) { return definition; }
export function defineExtension(definition) { return definition; }
export function defineDatastore(definition) { return definition; }
export function defineVault(definition) { return definition; }
export function defineDriver(definition) { return definition; }
export function defineReport(definition) { return definition; }

export class FenError extends Error {
  constructor(message, options) {
    super(message);
    const opts = options === undefined || options === null ? { __proto__: null } : options;
    if (opts.code !== undefined) {
      defineProperty(this, "code", {
        __proto__: null, value: toText(opts.code), writable: true, enumerable: true, configurable: true,
      });
    }
    if (opts.details !== undefined) {
      defineProperty(this, "details", {
        __proto__: null, value: opts.details, writable: true, enumerable: true, configurable: true,
      });
    }
  }
}
defineProperty(FenError.prototype, "name", {
  __proto__: null, value: "FenError", writable: true, enumerable: false, configurable: true,
});

export const SDK_VERSION = "1";
"#;

/// The prelude: a function expression called once with the console sink (a host
/// function `(level, text)`) and the `FenError` class. It installs `console`, removes
/// the one non-ECMAScript global QuickJS adds (`queueMicrotask`) and returns
/// `{ describe, makeCtx }`:
///
/// - `describe(object, key)`: 0 no own property, 1 accessor, 2 enumerable data,
///   3 non-enumerable data. Never calls a getter.
/// - `makeCtx(data, hostLog, remaining, host, files, bytes)`: the frozen `ctx` of one
///   call. `remaining` is `null` for a datastore's `capabilities` (only `config` and
///   `log`); `files` and `bytes` are `null` except for a datastore's pull and push, where
///   they back `ctx.local`, `ctx.remote` and `ctx.copy` (spec 30 §2.8). Members
///   of `data` are deep-frozen; `log.*` call `hostLog(level, text)`, `remainingMs()`
///   calls `remaining()`; a host function that reports the call settled (`false`,
///   or a negative number) makes the member throw `FenError` `context_expired`.
///   `host` is `null` (no resource members, e.g. for datastore calls) or a host
///   function `(op, a, b, c)` (all strings) answering JSON text: `{"value": ...}`,
///   `{"error": {"code", "message"}}` (thrown as `FenError`) or `{"expired": true}`.
///   `writeResource` serializes `data` with the `JSON.stringify` captured here, so an
///   extension that replaced `JSON.stringify` changes nothing.
pub(crate) const PRELUDE_SOURCE: &str = r#"
(function (sink, FenError) {
  "use strict";
  const defineProperty = Object.defineProperty;
  const getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  const hasOwn = Object.hasOwn;
  const freeze = Object.freeze;
  const ownKeys = Reflect.ownKeys;
  const stringify = JSON.stringify;
  const parse = JSON.parse;
  const isInteger = Number.isInteger;
  const toText = String;
  const ErrorClass = Error;
  const apply = Reflect.apply;
  const charCodeAt = String.prototype.charCodeAt;
  const slice = String.prototype.slice;
  const exec = RegExp.prototype.exec;
  const anySurrogate = /[\ud800-\udfff]/;
  const Uint8ArrayClass = Uint8Array;

  // Text crosses to the host as UTF-8, which has no lone surrogates: they become
  // U+FFFD here instead of failing the conversion with a TypeError.
  function wellFormed(s) {
    if (apply(exec, anySurrogate, [s]) === null) return s;
    let out = "";
    let start = 0;
    for (let i = 0; i < s.length; i++) {
      const c = apply(charCodeAt, s, [i]);
      if (c < 0xd800 || c > 0xdfff) continue;
      if (c <= 0xdbff && i + 1 < s.length) {
        const d = apply(charCodeAt, s, [i + 1]);
        if (d >= 0xdc00 && d <= 0xdfff) { i++; continue; }
      }
      out = out + apply(slice, s, [start, i]) + "\ufffd";
      start = i + 1;
    }
    return out + apply(slice, s, [start]);
  }

  // A log line as the host gets it: at most 8192 UTF-16 units (the host cuts it to
  // 8 KiB of UTF-8), well-formed. Cutting here keeps a huge message in the JS heap.
  function line(s) {
    return wellFormed(s.length > 8192 ? apply(slice, s, [0, 8192]) : s);
  }

  function text(value) {
    if (typeof value === "string") return value;
    if (typeof value === "object" && value !== null && value instanceof ErrorClass) {
      try { return toText(value); } catch (_) { return "[unprintable error]"; }
    }
    try {
      const json = stringify(value);
      if (json !== undefined) return json;
    } catch (_) {}
    try { return toText(value); } catch (_) { return "[unprintable value]"; }
  }

  function joined(args) {
    let out = "";
    for (let i = 0; i < args.length; i++) out = i === 0 ? text(args[i]) : out + " " + text(args[i]);
    return out;
  }

  function define(target, key, value, enumerable) {
    defineProperty(target, key, {
      __proto__: null, value, writable: !enumerable, enumerable, configurable: !enumerable,
    });
  }

  const consoleObject = {};
  const consoleLevels = ["debug", "log", "info", "warn", "error"];
  for (let i = 0; i < consoleLevels.length; i++) {
    const level = consoleLevels[i];
    define(consoleObject, level, function (...args) { sink(level, line(joined(args))); }, false);
  }
  define(globalThis, "console", consoleObject, false);
  delete globalThis.queueMicrotask;

  function describe(object, key) {
    const descriptor = getOwnPropertyDescriptor(object, key);
    if (descriptor === undefined) return 0;
    if (hasOwn(descriptor, "get")) return 1;
    return descriptor.enumerable ? 2 : 3;
  }

  function deepFreeze(value) {
    if (typeof value === "object" && value !== null) {
      const keys = ownKeys(value);
      for (let i = 0; i < keys.length; i++) deepFreeze(value[keys[i]]);
      freeze(value);
    }
    return value;
  }

  const logLevels = ["debug", "info", "warn", "error"];

  function makeCtx(data, hostLog, remaining, host, files, bytes) {
    const expired = () => new FenError("ctx was used after its call settled", {
      __proto__: null, code: "context_expired",
    });
    const ctx = {};
    const dataKeys = ownKeys(data);
    for (let i = 0; i < dataKeys.length; i++) {
      define(ctx, dataKeys[i], deepFreeze(data[dataKeys[i]]), true);
    }
    const log = {};
    for (let i = 0; i < logLevels.length; i++) {
      const level = logLevels[i];
      define(log, level, function (message, fields) {
        const full = fields === undefined ? text(message) : text(message) + " " + text(fields);
        if (!hostLog(level, line(full))) throw expired();
      }, true);
    }
    define(ctx, "log", freeze(log), true);
    if (remaining !== null) {
      define(ctx, "remainingMs", function () {
        const ms = remaining();
        if (ms < 0) throw expired();
        return ms;
      }, true);
    }
    if (files !== null) {
      const askAnswer = (text) => {
        const answer = parse(text);
        if (hasOwn(answer, "expired")) throw expired();
        if (hasOwn(answer, "error")) {
          const error = answer.error;
          throw new FenError(error.message, { __proto__: null, code: error.code });
        }
        return answer.value;
      };
      const askFile = (op, root, path, data) => {
        const answer = parse(files(op, root, path, data));
        if (hasOwn(answer, "expired")) throw expired();
        if (hasOwn(answer, "error")) {
          const error = answer.error;
          throw new FenError(error.message, { __proto__: null, code: error.code });
        }
        return answer.value;
      };
      const pathOf = (what, path) => {
        if (typeof path !== "string") {
          throw new FenError(what + ": path must be a string, not " + typeof path, { __proto__: null, code: "path_denied" });
        }
        return wellFormed(path);
      };
      const fileRoot = (root) => {
        const r = {};
        define(r, "list", function (prefix) {
          const p = prefix === undefined ? "" : pathOf("list", prefix);
          return deepFreeze(askFile("list", root, p, ""));
        }, true);
        define(r, "stat", function (path) {
          return deepFreeze(askFile("stat", root, pathOf("stat", path), ""));
        }, true);
        define(r, "readText", function (path) {
          return askFile("readText", root, pathOf("readText", path), "");
        }, true);
        define(r, "writeText", function (path, s) {
          if (typeof s !== "string") {
            throw new FenError("writeText: text must be a string", { __proto__: null, code: "invalid_argument" });
          }
          askFile("writeText", root, pathOf("writeText", path), wellFormed(s));
          return undefined;
        }, true);
        define(r, "readBytes", function (path) {
          const answer = bytes("readBytes", root, pathOf("readBytes", path));
          if (typeof answer === "string") askAnswer(answer);
          return answer;
        }, true);
        define(r, "writeBytes", function (path, u8) {
          const p = pathOf("writeBytes", path);
          if (!(u8 instanceof Uint8ArrayClass)) {
            throw new FenError("writeBytes: data must be a Uint8Array", { __proto__: null, code: "invalid_argument" });
          }
          const answer = bytes("writeBytes", root, p, u8);
          if (typeof answer === "string") askAnswer(answer);
          return undefined;
        }, true);
        define(r, "remove", function (path) {
          return askFile("remove", root, pathOf("remove", path), "");
        }, true);
        return freeze(r);
      };
      define(ctx, "local", fileRoot("local"), true);
      define(ctx, "remote", fileRoot("remote"), true);
      define(ctx, "copy", function (path, options) {
        const from = options === undefined || options === null ? undefined : options.from;
        if (from !== "local" && from !== "remote") {
          throw new FenError("copy: options.from must be \"local\" or \"remote\"", { __proto__: null, code: "invalid_argument" });
        }
        askFile("copy", from, pathOf("copy", path), "");
        return undefined;
      }, true);
    }
    if (host !== null) {
      const ask = (op, a, b, c) => {
        // Own properties only: a polluted `Object.prototype` changes no answer.
        const answer = parse(host(op, a, b, c));
        if (hasOwn(answer, "expired")) throw expired();
        if (hasOwn(answer, "error")) {
          const error = answer.error;
          throw new FenError(error.message, { __proto__: null, code: error.code });
        }
        return answer.value;
      };
      const invalid = (message) => new FenError(message, { __proto__: null, code: "invalid_argument" });
      const name = (what, value) => {
        if (typeof value !== "string") throw invalid(what + " must be a string, not " + typeof value);
        // Longer than any valid name, or not UTF-8 representable: refused here with a
        // FenError (the host checks the naming rules of the rest).
        if (value.length > 256 || wellFormed(value) !== value) {
          throw invalid(what + " is not a valid name");
        }
      };
      define(ctx, "writeResource", function (spec, instance, data) {
        name("writeResource: spec", spec);
        name("writeResource: instance", instance);
        let json;
        try {
          json = stringify(data);
        } catch (error) {
          throw invalid("writeResource: data cannot be serialized to JSON: " + text(error));
        }
        if (typeof json !== "string") throw invalid("writeResource: data must be a JSON value");
        return deepFreeze(ask("write", spec, instance, json));
      }, true);
      define(ctx, "readResource", function (spec, instance, version) {
        name("readResource: spec", spec);
        name("readResource: instance", instance);
        if (version !== undefined && !(typeof version === "number" && isInteger(version) && version >= 1)) {
          throw invalid("readResource: version must be a positive integer");
        }
        return ask("read", spec, instance, version === undefined ? "" : toText(version));
      }, true);
      define(ctx, "listResources", function (spec) {
        if (spec !== undefined) name("listResources: spec", spec);
        return deepFreeze(ask("list", spec === undefined ? "" : spec, "", ""));
      }, true);
    }
    return freeze(ctx);
  }

  return freeze({ __proto__: null, describe, makeCtx });
})
"#;
