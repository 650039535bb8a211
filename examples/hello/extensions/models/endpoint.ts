import { defineModel } from "fen:sdk";
import { classify } from "./_lib/http.ts";

interface RecordArgs {
  observed: number;
}

export const model = defineModel({
  type: "@hello/net/endpoint",
  version: "2026.03.01.1",
  description: "Tracks the health verdict of one HTTP endpoint",
  globalArguments: {
    type: "object",
    properties: {
      url: { type: "string" },
      expectStatus: { type: "integer", default: 200 },
    },
    required: ["url"],
    additionalProperties: false,
  },
  resources: {
    verdict: {
      description: "Latest verdict",
      schema: { type: "object", properties: { status: { type: "string" } }, required: ["status"] },
    },
  },
  methods: {
    record: {
      description: "Record a verdict from an observed status code",
      arguments: {
        type: "object",
        properties: { observed: { type: "integer" } },
        required: ["observed"],
      },
      run(args: RecordArgs, ctx: any) {
        const status = classify(args.observed, ctx.globalArgs.expectStatus);
        ctx.writeResource("verdict", "current", { status });
        return { status };
      },
    },
  },
});
