-- 0001 lazy_catalog: the catalog of fen's first milestone (lazy per-bundle loading,
-- before the Extension aggregate existed). Broken rows were marked with a boolean.
-- Append-only once merged: sqlx records a checksum of these bytes (spec 10 §4.6).
CREATE TABLE bundle_types (
  source_path       TEXT PRIMARY KEY NOT NULL,
  kind              TEXT NOT NULL,
  type_normalized   TEXT NOT NULL DEFAULT '',
  extends_type      TEXT NOT NULL DEFAULT '',
  bundle_path       TEXT NOT NULL DEFAULT '',
  fingerprint       TEXT NOT NULL DEFAULT '',
  source_mtime      TEXT NOT NULL DEFAULT '',
  type_version      TEXT NOT NULL DEFAULT '',
  description       TEXT NOT NULL DEFAULT '',
  descriptor        TEXT NOT NULL DEFAULT '',
  validation_failed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_bundle_types_kind    ON bundle_types(kind);
CREATE INDEX idx_bundle_types_extends ON bundle_types(extends_type);
CREATE INDEX idx_bundle_types_type    ON bundle_types(type_normalized, kind);
CREATE TABLE bundle_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
