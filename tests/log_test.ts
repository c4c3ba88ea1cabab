import assert from "node:assert/strict";
import type { Clock } from "../clock.ts";
import { LineWriter, RateLimitedLog } from "../log.ts";

// A clock that moves only when told, running the timers that fall due.
function manualClock(): Clock & { advance(ms: number): void; timers(): number } {
  let now = 0;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  return {
    now: () => now,
    setTimer(fn, ms) {
      timers.set(++seq, { at: now + ms, fn });
      return seq;
    },
    clearTimer: (h) => void timers.delete(h as number),
    sleep: () => Promise.reject(new Error("not used")),
    advance(ms) {
      const until = now + ms;
      for (;;) {
        const due = [...timers].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at);
        if (due.length === 0) break;
        const [h, t] = due[0]!;
        timers.delete(h);
        now = t.at;
        t.fn();
      }
      now = until;
    },
    timers: () => timers.size,
  };
}

Deno.test("RateLimitedLog: a burst per cause and window, then one line with the count", () => {
  const clock = manualClock();
  const lines: string[] = [];
  const log = new RateLimitedLog((l) => lines.push(l), { burst: 3, windowMs: 1000, clock });
  for (let i = 0; i < 100; i++) log.log("bad frame", `bad frame ${i}`);
  log.log("accept", "accept failed");
  assert.deepEqual(lines, ["bad frame 0", "bad frame 1", "bad frame 2", "accept failed"]);
  clock.advance(1000);
  assert.deepEqual(lines.slice(4), ["bad frame: 97 more not shown in the last 1 s"]);
  // A quiet window later, the cause shows lines again.
  clock.advance(5000);
  log.log("bad frame", "bad frame again");
  assert.equal(lines.at(-1), "bad frame again");
  log.close();
  assert.equal(clock.timers(), 0);
});

Deno.test("RateLimitedLog: a flood that never stops makes a bounded number of lines", () => {
  const clock = manualClock();
  const lines: string[] = [];
  const log = new RateLimitedLog((l) => lines.push(l), { burst: 5, windowMs: 1000, clock });
  // 100,000 events over 10 windows.
  for (let i = 0; i < 100_000; i++) {
    log.log("flood", `event ${i}`);
    if (i % 1000 === 999) clock.advance(100);
  }
  log.close();
  assert.ok(lines.length <= 5 + 11, `${lines.length} lines`);
  const counted = lines.filter((l) => l.startsWith("flood: ")).map((l) => Number(l.split(" ")[1]));
  assert.equal(counted.reduce((a, b) => a + b, 0) + lines.length - counted.length, 100_000);
  assert.equal(clock.timers(), 0);
  assert.throws(() => new RateLimitedLog(() => {}, { burst: 0 }), RangeError);
});

Deno.test("LineWriter: writes lines in order, in the background", async () => {
  const out: string[] = [];
  const w = new LineWriter((b) => {
    out.push(new TextDecoder().decode(b));
    return Promise.resolve(b.length);
  });
  w.line("one");
  w.line("two");
  await w.flush();
  assert.equal(out.join(""), "one\ntwo\n");
});

Deno.test("LineWriter: a reader that never reads blocks nothing; what does not fit is dropped and counted", async () => {
  let unblock!: () => void;
  const blocked = new Promise<void>((resolve) => unblock = resolve);
  const out: string[] = [];
  let writes = 0;
  const w = new LineWriter(async (b) => {
    if (writes++ === 0) await blocked; // the first write waits for a reader
    out.push(new TextDecoder().decode(b));
    return b.length;
  }, { maxQueuedBytes: 100 });
  for (let i = 0; i < 1000; i++) w.line(`line ${i}`); // returns at once every time
  assert.ok(w.dropped > 950, `${w.dropped} dropped`);
  unblock();
  await w.flush();
  const text = out.join("");
  assert.ok(text.startsWith("line 0\nline 1\n"), text);
  assert.match(text, new RegExp(`\\(${w.dropped} log lines dropped`));
  assert.ok(text.length < 400, "only what fitted was kept");
});

Deno.test("LineWriter: once the other end is gone, lines are ignored without errors", async () => {
  let calls = 0;
  const w = new LineWriter(() => {
    calls++;
    return Promise.reject(new Deno.errors.BrokenPipe("gone"));
  });
  w.line("a");
  await w.flush();
  w.line("b");
  await w.flush();
  assert.equal(calls, 1);
});
