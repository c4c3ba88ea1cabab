/**
 * Metrics in the Prometheus text exposition format (version 0.0.4): a
 * {@link Histogram} that counts observations into fixed buckets without
 * allocating, and a {@link PromText} builder that writes `# HELP`, `# TYPE`
 * and sample lines. Counting is cheap (a few array writes); text is built
 * only when someone asks for it.
 *
 * @module
 */

/**
 * A histogram with fixed upper bounds: `observe` adds one to the first
 * bucket whose bound is at least the value (the last, `+Inf`, takes the
 * rest), and to the count and sum.
 *
 * @example
 * ```ts
 * import { Histogram } from "./metrics.ts";
 * const h = new Histogram([1, 10]);
 * h.observe(0.5);
 * h.observe(5);
 * h.observe(50);
 * h.count; // 3
 * h.cumulative(); // [1, 2, 3]: at most 1, at most 10, all
 * ```
 */
export class Histogram {
  /** The buckets' upper bounds, ascending (`+Inf` is implied after them). */
  readonly bounds: readonly number[];
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  /** Builds a histogram with these upper bounds (ascending, finite). */
  constructor(bounds: readonly number[]) {
    for (let i = 0; i < bounds.length; i++) {
      if (!Number.isFinite(bounds[i]) || (i > 0 && bounds[i]! <= bounds[i - 1]!)) {
        throw new RangeError(`histogram bounds must be finite and ascending, got ${bounds}`);
      }
    }
    this.bounds = Object.freeze([...bounds]);
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Counts one observation of `value`. */
  observe(value: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.#counts[i]!++;
    this.#sum += value;
    this.#count++;
  }

  /** How many observations were made. */
  get count(): number {
    return this.#count;
  }

  /** The sum of the observed values. */
  get sum(): number {
    return this.#sum;
  }

  /** Observations at most each bound, then all of them (`+Inf`). */
  cumulative(): number[] {
    const out: number[] = [];
    let n = 0;
    for (const c of this.#counts) out.push(n += c);
    return out;
  }
}

/** Label names and values of one sample, e.g. `{ op: "Accept" }`. */
export type Labels = Readonly<Record<string, string>>;

/**
 * Builds a metrics page in the Prometheus text format: each metric once,
 * with its help and type, then its samples.
 *
 * @example
 * ```ts
 * import { PromText } from "./metrics.ts";
 * const t = new PromText();
 * t.metric("paxoskv_syncs_total", "counter", "Syncs of the log.", [[{}, 3]]);
 * t.text();
 * // "# HELP paxoskv_syncs_total Syncs of the log.\n# TYPE paxoskv_syncs_total counter\npaxoskv_syncs_total 3\n"
 * ```
 */
export class PromText {
  readonly #lines: string[] = [];

  /** Adds a counter or gauge with its samples. */
  metric(
    name: string,
    type: "counter" | "gauge",
    help: string,
    samples: Iterable<readonly [Labels, number]>,
  ): void {
    this.#head(name, type, help);
    for (const [labels, v] of samples) this.#lines.push(`${name}${labelText(labels)} ${num(v)}`);
  }

  /** Adds a histogram with one series per label set. */
  histogram(name: string, help: string, series: Iterable<readonly [Labels, Histogram]>): void {
    this.#head(name, "histogram", help);
    for (const [labels, h] of series) {
      const cum = h.cumulative();
      h.bounds.forEach((b, i) => {
        this.#lines.push(`${name}_bucket${labelText({ ...labels, le: num(b) })} ${num(cum[i]!)}`);
      });
      this.#lines.push(`${name}_bucket${labelText({ ...labels, le: "+Inf" })} ${num(h.count)}`);
      this.#lines.push(`${name}_sum${labelText(labels)} ${num(h.sum)}`);
      this.#lines.push(`${name}_count${labelText(labels)} ${num(h.count)}`);
    }
  }

  /** The page: one line each, ending in a newline. */
  text(): string {
    return this.#lines.join("\n") + "\n";
  }

  #head(name: string, type: string, help: string): void {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name)) {
      throw new TypeError(`not a metric name: ${JSON.stringify(name)}`);
    }
    this.#lines.push(`# HELP ${name} ${help.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")}`);
    this.#lines.push(`# TYPE ${name} ${type}`);
  }
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) =>
    `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`
  );
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function num(v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? "+Inf" : v < 0 ? "-Inf" : "NaN";
}
