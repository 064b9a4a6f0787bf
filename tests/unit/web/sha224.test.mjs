// SHA-224 against Python's hashlib: test_modules.py writes the vectors to $WERON_SHA224_VECTORS;
// run alone, the FIPS 180-4 examples.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { sha224 } from "../../../src/weron/web/sha224.js";

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const vectors = process.env.WERON_SHA224_VECTORS
  ? JSON.parse(readFileSync(process.env.WERON_SHA224_VECTORS, "utf8"))
  : [
      { input: "", digest: "d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f" },
      { input: "616263", digest: "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7" },
    ];

test("sha224 matches hashlib on every vector", () => {
  assert.ok(vectors.length >= 2);
  for (const { input, digest } of vectors) {
    assert.equal(hex(sha224(Buffer.from(input, "hex"))), digest, `input of ${input.length / 2} bytes`);
  }
});
