//! Archive pack (spec 20 §4–§5).
