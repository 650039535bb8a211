import { defineDatastore } from "fen:sdk";

export const datastore = defineDatastore({
  type: "@hello/packed",
  description: "Stores each model's data as one packed file per version",
  configSchema: { type: "object", properties: { compress: { type: "boolean" } } },
  capabilities() {
    return { scopedSync: true };
  },
  pullChanged(_opts: unknown, _ctx: unknown) {
    return 0;
  },
  pushChanged(_opts: unknown, _ctx: unknown) {
    return 0;
  },
});
