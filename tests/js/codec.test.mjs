// The JS codec against the golden fixtures shared with tests/test_multiplex_codec.py
// (the fixture format is described in that file's docstring).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import {
  MAX_OFFSET,
  POSITIONS,
  PRESENCE,
  ProtocolError,
  Reason,
  SEP,
  SINCE,
  closeCodeForError,
  encodeBinary,
  encodeErr,
  encodeInvalid,
  encodeItems,
  encodeMetaBinary,
  encodeMetaText,
  encodeOk,
  encodeServerUnsubscribe,
  encodeSince,
  encodeSubscribe,
  encodeText,
  encodeUnsubscribe,
  invalidTopicReason,
  parseClientFrame,
  parseServerFrame,
  parseSince,
  splitMeta,
  utf8Length,
} from "../../wsroute/static/multiplex.js";

const cases = JSON.parse(
  readFileSync(new URL("../fixtures/multiplex_frames.json", import.meta.url), "utf8"),
);

const hex = (bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
const fromHex = (text) => new Uint8Array(Buffer.from(text, "hex"));

/** A parsed frame in the fixture's `expect` shape. */
function toExpect(frame) {
  const { type } = frame;
  switch (type) {
    case "data":
      return frame.text === null
        ? { type, topic: frame.topic, data_hex: hex(frame.data) }
        : { type, topic: frame.topic, text: frame.text };
    case "subscribe":
      return Object.keys(frame.options).length > 0
        ? { type, topic: frame.topic, options: frame.options }
        : { type, topic: frame.topic };
    case "unsubscribe":
    case "server_unsubscribe":
      return { type, topic: frame.topic, code: frame.code, reason: frame.reason };
    case "ok":
      return { type, action: frame.action, params: frame.params };
    case "err":
      return { type, reason: frame.reason, action: frame.action, params: frame.params };
    case "invalid":
      return { type, reason: frame.reason };
    default:
      throw new Error(`unknown frame type ${type}`);
  }
}

function encode(expect) {
  switch (expect.type) {
    case "data":
      return "data_hex" in expect
        ? encodeBinary(expect.topic, fromHex(expect.data_hex))
        : encodeText(expect.topic, expect.text);
    case "subscribe":
      return encodeSubscribe(expect.topic, expect.options ?? null);
    case "unsubscribe":
      return encodeUnsubscribe(expect.topic, expect.code, expect.reason);
    case "ok":
      return encodeOk(expect.action, ...expect.params);
    case "err":
      return encodeErr(expect.reason, expect.action, ...expect.params);
    case "invalid":
      return encodeInvalid(expect.reason);
    case "server_unsubscribe":
      return encodeServerUnsubscribe(expect.topic, expect.code, expect.reason);
    default:
      throw new Error(`cannot encode ${expect.type}`);
  }
}

const frameCases = cases.filter((c) => c.direction === "client" || c.direction === "server");
const topicCases = cases.filter((c) => c.direction === "topic");
const metaCases = cases.filter((c) => c.direction === "meta");
const sinceCases = cases.filter((c) => c.direction === "since");

describe("golden frames", () => {
  test("the fixture file has cases", () => {
    assert.ok(frameCases.length > 100);
    assert.ok(topicCases.length > 20);
  });

  for (const c of frameCases) {
    test(c.name, () => {
      const parse = c.direction === "client" ? parseClientFrame : parseServerFrame;
      const frame = c.kind === "binary" ? fromHex(c.frame_hex) : c.frame;
      if (c.expect.type === "error") {
        assert.throws(
          () => parse(frame),
          (error) => error instanceof ProtocolError && error.reason === c.expect.reason,
        );
        return;
      }
      const parsed = toExpect(parse(frame));
      assert.deepEqual(parsed, c.expect);
      const encoded = encode(c.expect);
      if (!c.noncanonical) {
        if (c.kind === "binary") assert.equal(hex(encoded), c.frame_hex);
        else assert.equal(encoded, c.frame);
      }
      assert.deepEqual(toExpect(parse(encoded)), c.expect);
    });
  }
});

describe("golden metadata", () => {
  test("the fixture file has metadata cases", () => assert.ok(metaCases.length > 10));
  test("they cover every item the extensions use, and both kinds of presence frame", () => {
    const items = metaCases.filter((c) => c.expect.type === "meta").map((c) => c.expect.items);
    const names = new Set(items.flatMap((found) => Object.keys(found)));
    for (const name of ["id", "reply", "error", "offset", "epoch", PRESENCE]) assert.ok(names.has(name), name);
    const kinds = new Set(items.map((found) => found[PRESENCE]).filter((kind) => kind !== undefined));
    assert.deepEqual([...kinds].sort(), ["diff", "state"]);
    // Their payloads are the JSON the client reads.
    for (const c of metaCases.filter((found) => found.expect.items?.[PRESENCE] !== undefined)) {
      assert.equal(typeof JSON.parse(c.expect.text), "object", c.name);
    }
  });
  for (const c of metaCases) {
    test(c.name, () => {
      const binary = c.kind === "binary";
      const frame = binary
        ? { type: "data", topic: "/t", text: null, data: fromHex(c.payload_hex) }
        : { type: "data", topic: "/t", text: c.payload, data: null };
      if (c.expect.type === "error") {
        assert.throws(
          () => splitMeta(/** @type {any} */ (frame)),
          (error) => error instanceof ProtocolError && error.reason === c.expect.reason,
        );
        return;
      }
      const split = splitMeta(/** @type {any} */ (frame));
      assert.deepEqual({ ...split.items }, c.expect.items);
      if (binary) {
        assert.equal(hex(split.data), c.expect.data_hex);
        assert.equal(hex(encodeMetaBinary("/t", split.items, split.data)), hex(fromHex("2f74c2b7" + c.payload_hex)));
      } else {
        assert.equal(split.text, c.expect.text);
        assert.equal(encodeMetaText("/t", split.items, split.text), `/t${SEP}${c.payload}`);
        assert.equal(encodeItems(split.items) + SEP + split.text, c.payload);
      }
    });
  }
});

describe("golden since positions", () => {
  test("the fixture file has since cases, valid and not", () => {
    assert.ok(sinceCases.some((c) => c.expect.type === "position"));
    assert.ok(sinceCases.some((c) => c.expect.type === "error"));
  });
  for (const c of sinceCases) {
    test(c.name, () => {
      if (c.expect.type === "error") {
        assert.throws(
          () => parseSince(c.value),
          (error) => error instanceof ProtocolError && error.reason === c.expect.reason,
        );
        // As test_golden_since: the value split at its last colon (Python's rpartition), the
        // offset as text, does not encode either.
        const i = c.value.lastIndexOf(":");
        const [epoch, offset] = i < 0 ? ["", c.value] : [c.value.slice(0, i), c.value.slice(i + 1)];
        assert.throws(() => encodeSince(epoch, /** @type {any} */ (offset)), TypeError);
        return;
      }
      assert.deepEqual(parseSince(c.value), { epoch: c.expect.epoch, offset: c.expect.offset });
      assert.equal(encodeSince(c.expect.epoch, c.expect.offset), c.value);
    });
  }
});

describe("golden topics", () => {
  for (const c of topicCases) {
    test(c.name, () => {
      const why = invalidTopicReason(c.topic);
      if (c.expect.type === "valid") assert.equal(why, null);
      else assert.equal(typeof why, "string");
    });
  }
});

describe("codec details", () => {
  test("binary parse accepts ArrayBuffer, typed arrays and DataView; the payload is a view", () => {
    const frame = encodeBinary("/r", new Uint16Array([0x0201]));
    for (const input of [frame, frame.buffer, new DataView(frame.buffer)]) {
      const parsed = parseServerFrame(input);
      assert.equal(parsed.topic, "/r");
      assert.deepEqual([...parsed.data], [1, 2]);
    }
  });

  test("encoders refuse what would not parse back", () => {
    assert.throws(() => encodeText("", "x"), TypeError);
    assert.throws(() => encodeText(`/a${SEP}b`, "x"), TypeError);
    assert.throws(() => encodeSubscribe(`/a${SEP}b`), TypeError);
    assert.throws(() => encodeUnsubscribe("/a", null, "why"), TypeError);
    assert.throws(() => encodeOk("UNSUBSCRIBE", "/a", "4000", "r", "extra"), TypeError);
    assert.throws(() => encodeServerUnsubscribe("/a", 5000, "x"), TypeError);
  });

  test("the remainder is kept whole, never split away", () => {
    const reason = `a${SEP}b${SEP}c${SEP}`;
    const frame = encodeUnsubscribe("/room", 4000, reason);
    assert.equal(frame, `${SEP}UNSUBSCRIBE${SEP}/room${SEP}4000${SEP}${reason}${SEP}`);
    assert.equal(parseClientFrame(frame).reason, reason);
  });

  test("positions constants match codec.py; encodeSince refuses offsets that are not safe integers", () => {
    assert.deepEqual([POSITIONS, SINCE, MAX_OFFSET], ["positions", "since", 2 ** 53 - 1]);
    assert.equal(PRESENCE, "presence");
    assert.equal(MAX_OFFSET, Number.MAX_SAFE_INTEGER);
    for (const offset of [-1, 1.5, NaN, Infinity, 2 ** 53, 1e21]) {
      assert.throws(() => encodeSince("e", offset), TypeError, String(offset));
    }
    assert.throws(() => encodeSince("", 1), TypeError);
    assert.throws(() => encodeSince("a:b", 1), TypeError);
    assert.throws(() => encodeSince("é", 1), TypeError);
    assert.equal(encodeSince("e", 0), "e:0");
  });

  test("utf8Length matches TextEncoder, lone surrogates as U+FFFD", () => {
    for (const text of ["", "abc", "é", "€", "🚀", "a\ud800b", "\udc00", "\ud800"]) {
      assert.equal(utf8Length(text), new TextEncoder().encode(text).length, JSON.stringify(text));
    }
  });

  test("closeCodeForError maps HTTP statuses to 4xxx and the rest to 1008", () => {
    assert.equal(closeCodeForError("401 Unauthorized"), 4401);
    assert.equal(closeCodeForError("403 Forbidden"), 4403);
    assert.equal(closeCodeForError("404 Not Found"), 4404);
    assert.equal(closeCodeForError("503 Service Unavailable"), 4503);
    assert.equal(closeCodeForError(Reason.TOO_MANY_TOPICS), 1008);
    assert.equal(closeCodeForError(Reason.INVALID_TOPIC), 1008);
    assert.equal(closeCodeForError("4040 x"), 1008);
  });

  test("random frames raise only ProtocolError", () => {
    // A small deterministic fuzz; the exhaustive property tests live on the Python side.
    let seed = 42;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const alphabet = [SEP, "SUBSCRIBE", "UNSUBSCRIBE", "OK", "ERR", "INVALID", "/r", "4000"];
    alphabet.push("é", "🚀", "\ud800", "x".repeat(120));
    for (let n = 0; n < 3000; n++) {
      let text = "";
      const length = next() % 10;
      for (let i = 0; i < length; i++) text += alphabet[next() % alphabet.length];
      const bytes = new Uint8Array(next() % 12).map(() => [0xc2, 0xb7, 0x2f, 0xff, 0x61][next() % 5]);
      for (const parse of [parseClientFrame, parseServerFrame]) {
        for (const input of [text, bytes]) {
          try {
            parse(input);
          } catch (error) {
            assert.ok(error instanceof ProtocolError, `${JSON.stringify(text)}: ${error}`);
          }
        }
      }
    }
  });
});
