//! The SQLite catalog (spec 10 §4–§5): connection, migrations, `SqliteExtensionRepository`.
