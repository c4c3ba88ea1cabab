// The web page in a real browser (`deno task test:ui`, not part of
// `deno task test`): Chromium from Debian, driven by puppeteer-core, loads
// the page of `cli.ts cluster --ui`, runs slide 33 with the browser as the
// proposer, checks the chart and the acceptors' states, stops and restarts
// an acceptor, and saves screenshots into the test's output folder
// (PAXOSKV_TEST_OUT, default test-output/ui), printing its path. Then the
// page of `acceptor --ui` sets and gets through its one acceptor.
//
// Without a Chromium (PAXOSKV_CHROMIUM, or chromium on the PATH), the test
// is skipped, and says why.
import assert from "node:assert/strict";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "npm:puppeteer-core@25.16.0";
import { Server } from "../cli_process.ts";
import { arrow, layout } from "../../demo/chart.ts";

const ROOT = join(import.meta.dirname!, "..", "..");
const OUT = Deno.env.get("PAXOSKV_TEST_OUT") ?? join(ROOT, "test-output", "ui");

function findChromium(): string | null {
  const given = Deno.env.get("PAXOSKV_CHROMIUM");
  const candidates = given ? [given] : ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
  for (const c of candidates) {
    try {
      if (Deno.statSync(c).isFile) return c;
    } catch {
      // not there
    }
  }
  return null;
}

const chromium = findChromium();
if (chromium === null) {
  // deno-lint-ignore no-console
  console.log("test:ui skipped: no Chromium (apt-get install chromium, or set PAXOSKV_CHROMIUM)");
}

async function cellText(page: Page, acceptor: number, instance: string): Promise<string> {
  return await page.$eval(
    `td[data-acceptor="${acceptor}"][data-instance="${instance}"]`,
    (e) => e.textContent ?? "",
  );
}

// Clicks what `selector` finds in one step in the page: the acceptors' table
// is redrawn every 400 ms, so a button found first and clicked after may be
// gone ("Node is detached from document").
async function clickNow(page: Page, selector: string): Promise<void> {
  await page.$eval(selector, (e) => (e as unknown as { click(): void }).click());
}

// Runs a button's scenario and waits until the page says it is done.
async function press(page: Page, id: string, done: string): Promise<string> {
  await page.click(`#${id}`);
  await page.waitForSelector(`body[data-done="${done}"][data-busy="false"]`, { timeout: 20_000 });
  return await page.$eval("#result", (e) => e.textContent ?? "");
}

Deno.test({
  name: "ui: the page runs slide 33 as a proposer in Chromium; chart, states, stop and restart",
  ignore: chromium === null,
  // puppeteer keeps timers and sockets of its own.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await Deno.mkdir(OUT, { recursive: true });
    const cluster = new Server(["cluster", "--base-port", "0", "--ui"]);
    let browser: Browser | null = null;
    try {
      const lines = await cluster.waitFor((ls) => ls.some((l) => /^The web page/.test(l)), 20_000);
      const url = lines.find((l) => /^The web page/.test(l))!.match(/http:\/\/\S+/)![0];
      browser = await puppeteer.launch({
        executablePath: chromium!,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu"],
      });
      const page = await browser.newPage();
      await page.setViewport({ width: 1100, height: 1400 });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(url);
      await page.waitForSelector("body[data-ready=true]", { timeout: 20_000 });

      const result = await press(page, "slide-33", "slide-33");
      assert.equal(result, "slide-33: chosen: i@0 = 200");
      const chart = (await page.$eval("#chart", (e) => e.textContent ?? "")).split("\n");
      const l = layout(["X", "Y"]);
      const [x, a0, a1] = [l.x, l.acceptors[0]!, l.acceptors[1]!];
      for (
        const want of [
          arrow(l, x, a1, "Accept (1,10) 100"),
          arrow(l, a1, x, "refused (2,11)"),
          arrow(l, a0, x, "ok, voted"),
          arrow(l, a1, x, "voted 200@(2,11)"),
        ]
      ) {
        assert.ok(chart.includes(want), `${want}\nnot in the chart:\n${chart.join("\n")}`);
      }
      // The acceptors' states, as the server reads them from their stores.
      assert.equal(await cellText(page, 0, "i@0"), "last (3,10) vote 200@(3,10)");
      assert.equal(await cellText(page, 1, "i@0"), "last (3,10) vote 200@(3,10)");
      assert.equal(await cellText(page, 2, "i@0"), "last (2,11) vote 200@(2,11)");
      // Let the animation finish before the picture.
      await new Promise((r) => setTimeout(r, 6000));
      const shot = join(OUT, "slide-33.png");
      await page.screenshot({ path: shot, fullPage: true });
      // deno-lint-ignore no-console
      console.log(`screenshot: ${shot}`);

      // A0 stopped: a set still gets a majority; restarted: it serves again.
      await clickNow(page, 'button[data-acceptor="0"][data-op="stop"]');
      await page.waitForSelector('button[data-acceptor="0"][data-op="start"]', { timeout: 10_000 });
      await page.$eval("#key", (e) => {
        (e as unknown as { value: string }).value = "after-stop";
      });
      const set = await press(page, "set", "set after-stop");
      assert.equal(set, "set after-stop = hello: version 0");
      assert.equal(await cellText(page, 0, "after-stop@0"), "-");
      await clickNow(page, 'button[data-acceptor="0"][data-op="start"]');
      await page.waitForSelector('button[data-acceptor="0"][data-op="stop"]', { timeout: 10_000 });

      // Two dueling proposers agree on one value.
      const duel = await press(page, "duel", "duel");
      assert.match(duel, /^X got (A|B), Y got \1: chosen duel@0 = \1 /);
      assert.deepEqual(errors, [], "no error in the page");
    } finally {
      await browser?.close();
      await cluster.stop("SIGINT");
    }
  },
});

Deno.test({
  name: "ui: the page of acceptor --ui sets and gets through that one acceptor in Chromium",
  ignore: chromium === null,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const acceptor = new Server(["acceptor", "--memory", "--id", "0", "--port", "0", "--ui"]);
    let browser: Browser | null = null;
    try {
      const [, pageLine] = await acceptor.waitFor((ls) => ls.length >= 2, 20_000);
      const url = pageLine!.match(/http:\/\/\S+/)![0];
      browser = await puppeteer.launch({
        executablePath: chromium!,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu"],
      });
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(url);
      await page.waitForSelector("body[data-ready=true]", { timeout: 20_000 });
      assert.equal(
        await page.$eval("#slide-33", (e) => (e as unknown as { disabled: boolean }).disabled),
        true,
      );
      assert.equal(await page.$$eval('button[data-op="stop"]', (bs) => bs.length), 0);
      assert.equal(await press(page, "set", "set greeting"), "set greeting = hello: version 0");
      assert.equal(await press(page, "get", "get greeting"), "get greeting: version 0 = hello");
      assert.match(
        await cellText(page, 0, "greeting@0"),
        // A first write: voted at the round-0 ballot of the one it promised.
        /^last \(1,([0-9]+)\) vote hello@\(0,\1\)$/,
      );
      assert.deepEqual(errors, [], "no error in the page");
    } finally {
      await browser?.close();
      await acceptor.stop("SIGINT");
    }
  },
});
