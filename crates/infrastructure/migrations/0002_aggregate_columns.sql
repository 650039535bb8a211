-- 0002 aggregate_columns: adds RowState and the owning identity (spec 10 §4.6).
-- Identity cannot be computed in SQL (it needs the repo root, the mounts and the
-- lockfile), so legacy rows keep '' and load as Unowned; emptying bundle_meta forces
-- one cold start, whose save prunes them.
ALTER TABLE bundle_types ADD COLUMN state             TEXT NOT NULL DEFAULT 'Indexed';
ALTER TABLE bundle_types ADD COLUMN state_detail      TEXT NOT NULL DEFAULT '';
ALTER TABLE bundle_types ADD COLUMN extension_name    TEXT NOT NULL DEFAULT '';
ALTER TABLE bundle_types ADD COLUMN extension_version TEXT NOT NULL DEFAULT '';
ALTER TABLE bundle_types ADD COLUMN superseded_by     TEXT NOT NULL DEFAULT '';
UPDATE bundle_types
   SET state = 'ValidationFailed', type_normalized = '', extends_type = ''
 WHERE validation_failed <> 0;
CREATE INDEX idx_bundle_types_identity ON bundle_types(extension_name, extension_version);
DELETE FROM bundle_meta;   -- force one cold start; also drops 0001's per-kind keys
