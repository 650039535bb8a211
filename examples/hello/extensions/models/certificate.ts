import { defineModel } from "fen:sdk";
import { SCHEMA_OBJECT } from "./_lib/http.ts";

export const model = defineModel({
  type: "@hello/tls/certificate",
  version: "2026.03.01.1",
  description: "Remembers when a TLS certificate expires",
  globalArguments: {
    type: "object",
    properties: { host: { type: "string" } },
    required: ["host"],
  },
  resources: {
    expiry: { description: "Expiry date", schema: SCHEMA_OBJECT },
  },
  methods: {
    note: {
      description: "Store the expiry date reported by a scan",
      arguments: {
        type: "object",
        properties: { notAfter: { type: "string" } },
        required: ["notAfter"],
      },
      run(args: { notAfter: string }, ctx: any) {
        ctx.writeResource("expiry", "current", { notAfter: args.notAfter });
      },
    },
  },
});
