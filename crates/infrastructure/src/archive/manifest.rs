//! Archive manifest (spec 20 §4–§5).
