//! Tests of the registry client against the real server and against hostile ones.
