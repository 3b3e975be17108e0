// Cronium runtime helpers for Node scripts: `const cronium = require("cronium")`.
//
// Built-in modules only. Everything goes through files in the run's directory
// ($CRONIUM_DIR, /cronium in containers), so it works without network access.
// Every helper returns a Promise; camelCase and snake_case names are both provided.
"use strict";

const fs = require("fs");
const path = require("path");

const DIR = process.env.CRONIUM_DIR || "/cronium";
const OUTPUT_LIMIT = parseInt(process.env.CRONIUM_OUTPUT_LIMIT || String(1024 * 1024), 10);
const VALUE_LIMIT = 10000;
const KEY = /^[A-Z_][A-Z0-9_]*$/;
const RESERVED = ["CRONIUM_", "PREFECT_"];

class CroniumError extends Error {
  constructor(message) {
    super(message);
    this.name = "CroniumError";
  }
}

async function readJson(...parts) {
  try {
    return JSON.parse(await fs.promises.readFile(path.join(DIR, ...parts), "utf8"));
  } catch (err) {
    if (err.code === "ENOENT") return null;
    throw err;
  }
}

async function write(text, ...parts) {
  const target = path.join(DIR, ...parts);
  const temporary = `${target}.${process.pid}.tmp`;
  await fs.promises.writeFile(temporary, text, "utf8");
  await fs.promises.rename(temporary, target);
}

function dumps(value, where) {
  let text;
  try {
    text = JSON.stringify(value, (key, v) => {
      if (typeof v === "number" && !Number.isFinite(v)) {
        throw new TypeError(`${v} is not a JSON number`);
      }
      return v;
    });
  } catch (err) {
    throw new CroniumError(`${where}: value is not JSON-serialisable (${err.message})`);
  }
  if (text === undefined) {
    throw new CroniumError(`${where}: value of type ${typeof value} is not JSON-serialisable`);
  }
  return text;
}

function checkKey(key, where) {
  if (typeof key !== "string" || !KEY.test(key)) {
    throw new CroniumError(
      `${where}: variable key ${JSON.stringify(key)} must match [A-Z_][A-Z0-9_]* (upper case, digits, _)`
    );
  }
  if (RESERVED.some((prefix) => key.startsWith(prefix))) {
    throw new CroniumError(`${where}: variable key "${key}" uses a reserved prefix (CRONIUM_, PREFECT_)`);
  }
}

async function input() {
  return readJson("in", "input.json");
}

async function output(data) {
  const text = dumps(data, "cronium.output()");
  const size = Buffer.byteLength(text, "utf8");
  if (size > OUTPUT_LIMIT) {
    throw new CroniumError(`cronium.output(): output is ${size} bytes, over the limit of ${OUTPUT_LIMIT} bytes`);
  }
  await write(text, "out", "output.json");
}

async function getVariable(key) {
  checkKey(key, "cronium.getVariable()");
  const written = await readJson("out", "vars", `${key}.json`);
  if (written !== null || fs.existsSync(path.join(DIR, "out", "vars", `${key}.json`))) return written;
  const snapshot = (await readJson("in", "variables.json")) || {};
  return Object.prototype.hasOwnProperty.call(snapshot, key) ? snapshot[key] : null;
}

async function setVariable(key, value) {
  const where = `cronium.setVariable(${JSON.stringify(key)})`;
  checkKey(key, where);
  const text = dumps(value, where);
  if (text.length > VALUE_LIMIT) {
    throw new CroniumError(`${where}: value is ${text.length} characters of JSON, over the limit of ${VALUE_LIMIT}`);
  }
  await write(text, "out", "vars", `${key}.json`);
}

async function setCondition(value) {
  if (typeof value !== "boolean") {
    throw new CroniumError(`cronium.setCondition(): expected true or false, got ${JSON.stringify(value)}`);
  }
  await write(value ? "true" : "false", "out", "condition");
}

async function event() {
  return readJson("in", "event.json");
}

module.exports = {
  CroniumError,
  input,
  output,
  getVariable,
  setVariable,
  setCondition,
  event,
  get_variable: getVariable,
  set_variable: setVariable,
  set_condition: setCondition,
};
