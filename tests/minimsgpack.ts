// A deliberately small MessagePack codec for the interop tests, written from
// the MessagePack specification alone. It shares nothing with codec.ts or
// msgpackr, and makes its own choices where the format leaves room: every
// integer decodes to a bigint, and the encoder's header and integer widths
// are picked by a Style (int64 everywhere, map16 for a map of two keys...).

/** An integer forced into one MessagePack format. */
export class Int {
  /** Builds an integer that will be written in exactly `format`. */
  constructor(readonly value: bigint, readonly format: IntFormat) {}
}

/** The MessagePack integer formats. */
export type IntFormat =
  | "fixint"
  | "uint8"
  | "uint16"
  | "uint32"
  | "uint64"
  | "int8"
  | "int16"
  | "int32"
  | "int64";

/** What the encoder takes: plain values, with `undefined` map entries left out. */
export type Wire =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Int
  | readonly Wire[]
  | { readonly [key: string]: Wire | undefined };

/** What the decoder gives: integers are always bigint, floats are numbers. */
export type Decoded =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | Decoded[]
  | { [key: string]: Decoded };

/** How the encoder chooses among the formats MessagePack allows for a value. */
export interface Style {
  /** "smallest": fixint first; "int64": 0xd3 for all (0xcf above it); "unsigned": uint8.. for >= 0. */
  readonly ints: "smallest" | "int64" | "unsigned";
  /** Smallest map header to use: 0 = fixmap, 16 = map16, 32 = map32. */
  readonly maps: 0 | 16 | 32;
  /** Smallest array header to use: 0 = fixarray, 16, 32. */
  readonly arrays: 0 | 16 | 32;
  /** Smallest string header to use: 0 = fixstr, 8, 16, 32. */
  readonly strs: 0 | 8 | 16 | 32;
  /** Smallest binary header to use: 8, 16, 32. */
  readonly bins: 8 | 16 | 32;
}

/** The MessagePack format's own preferences: the smallest header every time. */
export const SMALLEST: Style = { ints: "smallest", maps: 0, arrays: 0, strs: 0, bins: 8 };

const INT_RANGES: Record<IntFormat, readonly [number, bigint, bigint, number]> = {
  // [type byte, min, max, payload bytes]
  fixint: [-1, -32n, 127n, 0],
  uint8: [0xcc, 0n, 0xffn, 1],
  uint16: [0xcd, 0n, 0xffffn, 2],
  uint32: [0xce, 0n, 0xffffffffn, 4],
  uint64: [0xcf, 0n, 2n ** 64n - 1n, 8],
  int8: [0xd0, -(2n ** 7n), 2n ** 7n - 1n, 1],
  int16: [0xd1, -(2n ** 15n), 2n ** 15n - 1n, 2],
  int32: [0xd2, -(2n ** 31n), 2n ** 31n - 1n, 4],
  int64: [0xd3, -(2n ** 63n), 2n ** 63n - 1n, 8],
};

function pickIntFormat(v: bigint, style: Style): IntFormat {
  const fits = (f: IntFormat) => v >= INT_RANGES[f][1] && v <= INT_RANGES[f][2];
  const order: IntFormat[] = style.ints === "int64"
    ? ["int64", "uint64"]
    : style.ints === "unsigned"
    ? ["uint8", "uint16", "uint32", "uint64", "int64"]
    : v >= 0n
    ? ["fixint", "uint8", "uint16", "uint32", "uint64"]
    : ["fixint", "int8", "int16", "int32", "int64"];
  const f = order.find(fits);
  if (f === undefined) throw new RangeError(`integer ${v} fits no MessagePack format`);
  return f;
}

/** Encodes one value as MessagePack bytes in the given style. */
export function encode(value: Wire, style: Style = SMALLEST): Uint8Array {
  const out: number[] = [];
  const be = (v: bigint, n: number) => {
    const u = BigInt.asUintN(n * 8, v);
    for (let i = n - 1; i >= 0; i--) out.push(Number((u >> BigInt(i * 8)) & 0xffn));
  };
  // A header: the fix form when allowed and it fits, else the first wide form
  // (of at least `min` bits) whose length field holds n.
  const header = (
    n: number,
    min: number,
    fix: [number, number] | null,
    wide: [number, number][],
  ) => {
    if (fix !== null && min === 0 && n < fix[1]) return void out.push(fix[0] | n);
    for (const [bits, type] of wide) {
      if (bits >= min && n < 2 ** bits) {
        out.push(type);
        return be(BigInt(n), bits / 8);
      }
    }
    throw new RangeError(`length ${n} too large`);
  };
  const int = (v: bigint, format: IntFormat) => {
    const [type, lo, hi, bytes] = INT_RANGES[format];
    if (v < lo || v > hi) throw new RangeError(`${v} does not fit ${format}`);
    if (format === "fixint") return void out.push(Number(BigInt.asUintN(8, v)));
    out.push(type);
    be(v, bytes);
  };
  const write = (x: Wire): void => {
    if (x === null) out.push(0xc0);
    else if (x === false) out.push(0xc2);
    else if (x === true) out.push(0xc3);
    else if (x instanceof Int) int(x.value, x.format);
    else if (typeof x === "bigint") int(x, pickIntFormat(x, style));
    else if (typeof x === "number") {
      if (Number.isSafeInteger(x)) return int(BigInt(x), pickIntFormat(BigInt(x), style));
      out.push(0xcb);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, x);
      for (const c of b) out.push(c);
    } else if (typeof x === "string") {
      const b = new TextEncoder().encode(x);
      header(b.length, style.strs, [0xa0, 32], [[8, 0xd9], [16, 0xda], [32, 0xdb]]);
      for (const c of b) out.push(c);
    } else if (x instanceof Uint8Array) {
      header(x.length, style.bins, null, [[8, 0xc4], [16, 0xc5], [32, 0xc6]]);
      for (const c of x) out.push(c);
    } else if (Array.isArray(x)) {
      header(x.length, style.arrays, [0x90, 16], [[16, 0xdc], [32, 0xdd]]);
      for (const e of x as readonly Wire[]) write(e);
    } else {
      const entries = Object.entries(x).filter(([, v]) => v !== undefined);
      header(entries.length, style.maps, [0x80, 16], [[16, 0xde], [32, 0xdf]]);
      for (const [k, v] of entries) {
        write(k);
        write(v as Wire);
      }
    }
  };
  write(value);
  return Uint8Array.from(out);
}

/** Decodes exactly one MessagePack value; throws a TypeError on anything else. */
export function decode(bytes: Uint8Array): Decoded {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let pos = 0;
  const take = (n: number) => {
    if (pos + n > bytes.length) throw new TypeError(`truncated at byte ${pos}: need ${n} more`);
    pos += n;
    return pos - n;
  };
  const uint = (n: number): number => {
    const at = take(n);
    return n === 1 ? view.getUint8(at) : n === 2 ? view.getUint16(at) : view.getUint32(at);
  };
  const read = (depth: number): Decoded => {
    if (depth > 100) throw new TypeError("nested too deep");
    const t = view.getUint8(take(1));
    if (t <= 0x7f) return BigInt(t);
    if (t >= 0xe0) return BigInt(t - 0x100);
    if (t >= 0x80 && t <= 0x8f) return map(t & 0x0f, depth);
    if (t >= 0x90 && t <= 0x9f) return array(t & 0x0f, depth);
    if (t >= 0xa0 && t <= 0xbf) return str(t & 0x1f);
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const n = uint(1 << (t - 0xc4));
        return bytes.slice(take(n), pos);
      }
      case 0xca:
        return view.getFloat32(take(4));
      case 0xcb:
        return view.getFloat64(take(8));
      case 0xcc:
        return BigInt(uint(1));
      case 0xcd:
        return BigInt(uint(2));
      case 0xce:
        return BigInt(uint(4));
      case 0xcf:
        return view.getBigUint64(take(8));
      case 0xd0:
        return BigInt(view.getInt8(take(1)));
      case 0xd1:
        return BigInt(view.getInt16(take(2)));
      case 0xd2:
        return BigInt(view.getInt32(take(4)));
      case 0xd3:
        return view.getBigInt64(take(8));
      case 0xd9:
      case 0xda:
      case 0xdb:
        return str(uint(1 << (t - 0xd9)));
      case 0xdc:
      case 0xdd:
        return array(uint(t === 0xdc ? 2 : 4), depth);
      case 0xde:
      case 0xdf:
        return map(uint(t === 0xde ? 2 : 4), depth);
    }
    throw new TypeError(`unsupported MessagePack type byte 0x${t.toString(16)} at ${pos - 1}`);
  };
  const str = (n: number) => utf8.decode(bytes.subarray(take(n), pos));
  const array = (n: number, depth: number) => {
    const a: Decoded[] = [];
    for (let i = 0; i < n; i++) a.push(read(depth + 1));
    return a;
  };
  const map = (n: number, depth: number) => {
    const m: { [key: string]: Decoded } = {};
    for (let i = 0; i < n; i++) {
      const k = read(depth + 1);
      if (typeof k !== "string") throw new TypeError(`map key is not a string: ${String(k)}`);
      Object.defineProperty(m, k, { value: read(depth + 1), enumerable: true, writable: true });
    }
    return m;
  };
  const v = read(0);
  if (pos !== bytes.length) throw new TypeError(`${bytes.length - pos} bytes after the value`);
  return v;
}
