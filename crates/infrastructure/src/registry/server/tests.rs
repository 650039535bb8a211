//! Server tests that need no client: routing details over raw HTTP.
