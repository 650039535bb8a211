import { defineModel } from "fen:sdk";
import { greet } from "./_lib/words.ts";

export const model = defineModel({
  type: "@examples/greeter/greeting",
  version: "2026.12.01.1",
  description: "Greets someone and keeps the last greeting",
  globalArguments: {
    type: "object",
    properties: { name: { type: "string" } },
    required: ["name"],
  },
  resources: {
    last: {
      description: "The last greeting",
      schema: { type: "object", properties: { text: { type: "string" } }, required: ["text"] },
    },
  },
  methods: {
    greet: {
      description: "Greet and store the greeting",
      arguments: { type: "object" },
      run(_args: unknown, ctx: any) {
        const text = greet(ctx.globalArgs.name);
        ctx.writeResource("last", "current", { text });
        return { text };
      },
    },
  },
});
