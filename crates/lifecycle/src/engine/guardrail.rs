//! The guardrail of spec 10 §6.5 step 5.

use super::*;

/// The guardrail of spec 10 §6.5 step 5.
pub(super) fn guardrail_trip(
    plan: &Plan<'_>,
    transitions: &[Transition],
    guardrail: Guardrail,
) -> Option<GuardrailTrip> {
    if guardrail == Guardrail::Override {
        return None;
    }
    let total: usize = plan
        .originals
        .values()
        .flat_map(|e| e.sources())
        .filter(|s| !s.state().is_tombstoned())
        .count();
    let changed = transitions
        .iter()
        .filter(|t| t.from.is_some_and(|f| f != RowStateTag::Tombstoned))
        .filter(|t| !plan.migrations.contains(&t.source))
        .count();
    (total >= 10 && 2 * changed > total).then_some(GuardrailTrip { changed, total })
}
