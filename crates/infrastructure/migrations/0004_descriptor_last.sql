-- 0004 descriptor_last: the same 16 columns, the ~5 KB descriptor stored last (spec 10
-- §4.2 lists columns by name; their physical order is free). SQLite keeps a record's
-- first bytes in its table page and the rest in a chain of overflow pages, and reading a
-- column walks the chain up to it. With the descriptor in the middle, the columns after
-- it (state, owner, supersession, stat records) cost the whole chain on every row, so
-- the warm path's read of everything but the descriptor (`load_outline`) touched every
-- page of the catalog; with the descriptor last it reads the table pages only.
-- Nothing else changes: rows, values, CHECKs, indexes and bundle_meta are kept, so no
-- cold start follows. Runs inside the one transaction sqlx opens for the migration; a
-- failed self-check (a row with ok <> 1 in the TEMP table) rolls it all back.
CREATE TEMP TABLE fen_migration_0004_checks (
  name TEXT NOT NULL,
  ok   INTEGER NOT NULL CHECK (ok = 1)
);
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
  state             TEXT NOT NULL DEFAULT 'Indexed' CHECK (state IN
                      ('Indexed','Bundled','BundleBuildFailed','ValidationFailed',
                       'EntryPointUnreadable','OrphanedBundleOnly','Tombstoned')),
  state_detail      TEXT NOT NULL DEFAULT '',
  extension_name    TEXT NOT NULL DEFAULT '',
  extension_version TEXT NOT NULL DEFAULT '',
  superseded_by     TEXT NOT NULL DEFAULT '',
  file_stats        TEXT NOT NULL DEFAULT '',
  descriptor        TEXT NOT NULL DEFAULT ''
);
INSERT INTO bundle_types_next
  (source_path, kind, type_normalized, extends_type, bundle_path, fingerprint,
   source_mtime, type_version, description, state, state_detail, extension_name,
   extension_version, superseded_by, file_stats, descriptor)
SELECT source_path, kind, type_normalized, extends_type, bundle_path, fingerprint,
       source_mtime, type_version, description, state, state_detail, extension_name,
       extension_version, superseded_by, file_stats, descriptor
  FROM bundle_types
 ORDER BY rowid;
-- (a) every row was copied, values unchanged.
INSERT INTO fen_migration_0004_checks (name, ok)
SELECT 'rows copied',
       (SELECT count(*) FROM bundle_types_next) = (SELECT count(*) FROM bundle_types)
   AND NOT EXISTS (
         SELECT source_path, kind, type_normalized, extends_type, bundle_path,
                fingerprint, source_mtime, type_version, description, descriptor, state,
                state_detail, extension_name, extension_version, superseded_by,
                file_stats
           FROM bundle_types
         EXCEPT
         SELECT source_path, kind, type_normalized, extends_type, bundle_path,
                fingerprint, source_mtime, type_version, description, descriptor, state,
                state_detail, extension_name, extension_version, superseded_by,
                file_stats
           FROM bundle_types_next);
DROP TABLE bundle_types;                       -- also drops its four indexes
ALTER TABLE bundle_types_next RENAME TO bundle_types;
CREATE INDEX idx_bundle_types_kind     ON bundle_types(kind);
CREATE INDEX idx_bundle_types_extends  ON bundle_types(extends_type);
CREATE INDEX idx_bundle_types_type     ON bundle_types(type_normalized, kind);
CREATE INDEX idx_bundle_types_identity ON bundle_types(extension_name, extension_version);
-- (b) the 16 columns of spec 10 §4.2, the descriptor last.
INSERT INTO fen_migration_0004_checks (name, ok)
SELECT 'columns',
       (SELECT count(*) FROM pragma_table_info('bundle_types')) = 16
   AND (SELECT name FROM pragma_table_info('bundle_types') WHERE cid = 15) = 'descriptor';
-- (c) the four indexes of spec 10 §4.4.
INSERT INTO fen_migration_0004_checks (name, ok)
SELECT 'indexes',
       (SELECT count(*) FROM sqlite_master
         WHERE type = 'index' AND tbl_name = 'bundle_types'
           AND name IN ('idx_bundle_types_kind', 'idx_bundle_types_extends',
                        'idx_bundle_types_type', 'idx_bundle_types_identity')) = 4;
DROP TABLE fen_migration_0004_checks;
