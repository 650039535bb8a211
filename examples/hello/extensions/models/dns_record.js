import { defineModel } from "fen:sdk";

export const model = defineModel({
  type: "@hello/dns/record",
  version: "2026.02.14.0",
  description: "A DNS record and the last address it resolved to",
  globalArguments: {
    type: "object",
    properties: { name: { type: "string" }, recordType: { type: "string", default: "A" } },
    required: ["name"],
  },
  methods: {
    resolved: {
      description: "Record the address the name resolved to",
      arguments: { type: "object", properties: { address: { type: "string" } }, required: ["address"] },
      run(args) {
        return { address: args.address };
      },
    },
  },
});
