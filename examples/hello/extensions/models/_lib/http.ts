// Shared helper: imported by several model types, never an entry point (its directory
// starts with `_`).
export function classify(observed: number, expected: number): "ok" | "degraded" | "down" {
  if (observed === expected) return "ok";
  if (observed >= 500 || observed === 0) return "down";
  return "degraded";
}

export const SCHEMA_OBJECT = { type: "object" } as const;
