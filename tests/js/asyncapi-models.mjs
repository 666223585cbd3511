// Generate TypeScript from an AsyncAPI document with Modelina (@asyncapi/modelina, pinned in
// package.json), as a client generator would: `node asyncapi-models.mjs FILE` prints a JSON
// object mapping each model's name to its TypeScript. tests/test_asyncapi_tools.py runs it.
import { readFile } from "node:fs/promises";
import { TypeScriptGenerator } from "@asyncapi/modelina";

const [file] = process.argv.slice(2);
if (!file) {
  console.error("usage: node asyncapi-models.mjs FILE");
  process.exit(2);
}
const document = JSON.parse(await readFile(file, "utf8"));
const generator = new TypeScriptGenerator({ modelType: "interface" });
const models = await generator.generate(document);
const byName = Object.fromEntries(models.map((model) => [model.modelName, model.result]));
process.stdout.write(JSON.stringify(byName, null, 2) + "\n");
