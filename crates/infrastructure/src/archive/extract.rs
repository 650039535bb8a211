//! Archive extract (spec 20 §4–§5).
