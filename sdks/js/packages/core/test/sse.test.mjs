// The SSE parser against the WHATWG format: line endings split across chunks, multi-line data, ids, comments, retry.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SseParser, Backoff } from "../dist/index.js";

function parse(chunks) {
  const events = [];
  const retries = [];
  const parser = new SseParser((event) => events.push(event), (retry) => retries.push(retry));
  for (const chunk of chunks) parser.push(chunk);
  return { events, retries, parser };
}

test("events dispatch on a blank line, whatever the line endings and wherever the chunks split", () => {
  const stream = 'retry: 3000\n\nid: 7\nevent: change\ndata: {"a":\ndata: 1}\n\n: heartbeat comment\r\nid: 8\r\ndata: x\r\n\r\ndata: y\r\rdata: z\n\n';
  const whole = parse([stream]);
  for (const size of [1, 2, 3, 5, 7, 13]) {
    const chunks = [];
    for (let index = 0; index < stream.length; index += size) chunks.push(stream.slice(index, index + size));
    const split = parse(chunks);
    assert.deepEqual(split.events, whole.events, `chunks of ${size}`);
  }
  assert.deepEqual(whole.retries, [3000]);
  assert.deepEqual(whole.events, [
    { event: "change", data: '{"a":\n1}', id: "7" },
    { event: "message", data: "x", id: "8" },
    { event: "message", data: "y", id: "8" },
    { event: "message", data: "z", id: "8" },
  ]);
  assert.equal(whole.parser.lastId, "8");
});

test("an event without data is not dispatched, an unfinished one is dropped on reset, and a NUL id is ignored", () => {
  const { events, parser } = parse(["event: nothing\n\nid: 1\0\ndata: a\n\ndata: half"]);
  assert.deepEqual(events, [{ event: "message", data: "a", id: undefined }]);
  parser.reset();
  parser.push("\n\n");
  assert.equal(events.length, 1, "the half event died with its connection");
});

test("a field without a colon, an unknown field and a bad retry are ignored", () => {
  const { events, retries } = parse(["data\nfoo: bar\nretry: soon\ndata: b\n\n"]);
  assert.deepEqual(events, [{ event: "message", data: "\nb", id: undefined }]);
  assert.deepEqual(retries, []);
});

test("backoff grows with full jitter up to its cap, takes the server's advice and resets after a long connection", () => {
  let random = 0.999;
  const backoff = new Backoff({ initial: 1000, maximum: 8000, resetAfter: 60_000, random: () => random });
  const delays = [0, 1, 2, 3, 4, 5].map(() => backoff.next(0));
  assert.deepEqual(delays, [999, 1998, 3996, 7992, 7992, 7992]);
  random = 0;
  assert.equal(backoff.next(0), 100, "never below a tenth of the base");
  backoff.connected(0);
  random = 0.5;
  assert.equal(backoff.next(60_000), 500, "a connection that lasted a minute starts the sequence again");
  backoff.advise(3000);
  assert.equal(backoff.next(60_000), 3000, "the server's retry advice is the base");
});
