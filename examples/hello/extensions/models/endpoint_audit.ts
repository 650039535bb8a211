import { defineExtension } from "fen:sdk";

// Adds an `audit` method to the endpoint model type.
export const extension = defineExtension({
  type: "@hello/net/endpoint",
  description: "Audit helpers for endpoints",
  resources: { audit: { schema: { type: "object" } } },
  methods: {
    audit: {
      description: "Write an audit note",
      arguments: { type: "object" },
      run(_args: unknown, ctx: any) {
        ctx.writeResource("audit", "latest", { at: ctx.runId });
      },
    },
  },
});
