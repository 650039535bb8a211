-- 0003 drop_validation_failed: the boolean is redundant with state; the table gains
-- CHECK constraints and the file_stats column of the stat fast path (spec 10 §4.6).
-- SQLite cannot add a CHECK with ALTER TABLE, so this recreates the table. Everything
-- runs inside the one transaction sqlx opens for the migration: a failed statement or
-- a failed self-check (a row with ok <> 1 in the TEMP table below) rolls it all back.
CREATE TEMP TABLE fen_migration_0003_checks (
  name TEXT NOT NULL,
  ok   INTEGER NOT NULL CHECK (ok = 1)
);
DELETE FROM bundle_types
 WHERE kind  NOT IN ('model','extension','vault','driver','datastore','report')
    OR state NOT IN ('Indexed','Bundled','BundleBuildFailed','ValidationFailed',
                     'EntryPointUnreadable','OrphanedBundleOnly','Tombstoned');
CREATE TABLE bundle_types_next (
  source_path       TEXT PRIMARY KEY NOT NULL,
  kind              TEXT NOT NULL CHECK (kind IN
                      ('model','extension','vault','driver','datastore','report')),
  type_normalized   TEXT NOT NULL DEFAULT '',
  extends_type      TEXT NOT NULL DEFAULT '',
  bundle_path       TEXT NOT NULL DEFAULT '',
  fingerprint       TEXT NOT NULL DEFAULT '',
  source_mtime      TEXT NOT NULL DEFAULT '',
  type_version      TEXT NOT NULL DEFAULT '',
  description       TEXT NOT NULL DEFAULT '',
  descriptor        TEXT NOT NULL DEFAULT '',
  state             TEXT NOT NULL DEFAULT 'Indexed' CHECK (state IN
                      ('Indexed','Bundled','BundleBuildFailed','ValidationFailed',
                       'EntryPointUnreadable','OrphanedBundleOnly','Tombstoned')),
  state_detail      TEXT NOT NULL DEFAULT '',
  extension_name    TEXT NOT NULL DEFAULT '',
  extension_version TEXT NOT NULL DEFAULT '',
  superseded_by     TEXT NOT NULL DEFAULT '',
  file_stats        TEXT NOT NULL DEFAULT ''
);
INSERT INTO bundle_types_next
  (source_path, kind, type_normalized, extends_type, bundle_path, fingerprint,
   source_mtime, type_version, description, descriptor, state, state_detail,
   extension_name, extension_version, superseded_by)
SELECT source_path, kind, type_normalized, extends_type, bundle_path, fingerprint,
       source_mtime, type_version, description, descriptor, state, state_detail,
       extension_name, extension_version, superseded_by
  FROM bundle_types;
-- (c) every row that survived the DELETE was copied.
INSERT INTO fen_migration_0003_checks (name, ok)
SELECT 'rows copied',
       (SELECT count(*) FROM bundle_types_next) = (SELECT count(*) FROM bundle_types);
DROP TABLE bundle_types;                       -- also drops its four indexes
ALTER TABLE bundle_types_next RENAME TO bundle_types;
CREATE INDEX idx_bundle_types_kind     ON bundle_types(kind);
CREATE INDEX idx_bundle_types_extends  ON bundle_types(extends_type);
CREATE INDEX idx_bundle_types_type     ON bundle_types(type_normalized, kind);
CREATE INDEX idx_bundle_types_identity ON bundle_types(extension_name, extension_version);
-- (a) exactly the 16 columns of spec 10 §4.2, and no validation_failed.
INSERT INTO fen_migration_0003_checks (name, ok)
SELECT 'columns',
       (SELECT count(*) FROM pragma_table_info('bundle_types')) = 16
   AND (SELECT count(*) FROM pragma_table_info('bundle_types')
         WHERE name IN ('source_path', 'kind', 'type_normalized', 'extends_type',
                        'bundle_path', 'fingerprint', 'source_mtime', 'type_version',
                        'description', 'descriptor', 'state', 'state_detail',
                        'extension_name', 'extension_version', 'superseded_by',
                        'file_stats')) = 16
   AND NOT EXISTS (SELECT 1 FROM pragma_table_info('bundle_types')
                    WHERE name = 'validation_failed');
-- (b) the four indexes of spec 10 §4.4.
INSERT INTO fen_migration_0003_checks (name, ok)
SELECT 'indexes',
       (SELECT count(*) FROM sqlite_master
         WHERE type = 'index' AND tbl_name = 'bundle_types'
           AND name IN ('idx_bundle_types_kind', 'idx_bundle_types_extends',
                        'idx_bundle_types_type', 'idx_bundle_types_identity')) = 4;
DROP TABLE fen_migration_0003_checks;
