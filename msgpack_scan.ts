/**
 * A scan of a MessagePack frame's bytes, before anything is decoded from it:
 * the acceptor's guard against frames that would be costly to decode, or
 * decode into something other than plain data.
 *
 * The scan builds no object. It walks the bytes once, without recursion,
 * and tells where each top-level element of the frame (each envelope of a
 * batch, or the one value) starts and ends, where its `Rid` is, what decoding
 * it would cost, and what in it is not accepted: MessagePack's core types
 * only (nil, bool, int, float, str, bin, array, map), so every extension
 * type (msgpackr's records, RegExp, Set, Error, typed arrays, Date, bigint,
 * structured-clone references...) and the unused byte 0xc1 are refused; so is
 * a map key that is not a string, a number, nil or a boolean. A frame that is
 * cut short, has bytes after its value, or nests deeper than the limit is
 * refused whole.
 *
 * @module
 */

/** Limits of {@link scanFrame}. */
export interface ScanLimits {
  /** Deepest nesting of arrays and maps, counted from the frame's value (0). */
  readonly maxDepth: number;
  /** Most elements of a batch (the items of the frame's array). */
  readonly maxElements: number;
  /**
   * Most a whole frame may cost ({@link DECODE_COST}): the scan stops there,
   * so that its own time is bounded too.
   */
  readonly maxCost: number;
}

/**
 * What decoding a value costs, in units of about the time a decoder takes
 * for one small integer (some 40 ns): a number, nil or boolean 1, a 64-bit
 * integer 2, a string 4, an array or a map 6 (its items are counted apart),
 * a binary 20, and a map key 50 whatever its type (a JavaScript object that
 * gets a property name it has not seen before costs its engine a new shape).
 */
export const DECODE_COST = {
  scalar: 1,
  int64: 2,
  str: 4,
  container: 6,
  bin: 20,
  key: 50,
} as const;

/** One top-level element of a frame: an envelope of a batch, or the frame's one value. */
export interface ScannedElement {
  /** Its first byte. */
  readonly start: number;
  /** The byte after its last. */
  readonly end: number;
  /** What decoding it costs ({@link DECODE_COST}). */
  readonly cost: number;
  /**
   * Why it must not be decoded (an extension type, the byte 0xc1, a map key
   * of another type), naming where in it: e.g. `Req.Val.Data[2]: extension
   * type 0x78 ...`. Undefined when it is plain MessagePack.
   */
  readonly error: string | undefined;
  /**
   * The bytes of its `Rid`, when the element is a map whose key `"Rid"` holds
   * an integer: `[start, end)`. They are plain, even when the element is not.
   */
  readonly rid: readonly [number, number] | undefined;
}

/** What {@link scanFrame} found. */
export type ScanResult =
  | {
    /** Whether the frame's value is an array (a batch), whose items are the elements. */
    readonly batch: boolean;
    /** The elements, in order. */
    readonly elements: readonly ScannedElement[];
  }
  | {
    /** Why the whole frame is refused: cut short, trailing bytes, too deep, too costly. */
    readonly frameError: string;
    /** Whether because it is too large: a batch too long, or a frame too costly. */
    readonly tooLarge: boolean;
  };

/**
 * Scans a frame. Never throws, and takes time linear in the frame's length.
 *
 * @example
 * ```ts
 * import { scanFrame } from "./msgpack_scan.ts";
 * const bytes = new Uint8Array([0x92, 0x01, 0xd5, 0x78, 0x00, 0x00]);
 * const r = scanFrame(bytes, { maxDepth: 8, maxElements: 16, maxCost: 1000 });
 * "elements" in r && r.elements[1]?.error; // "extension type 0x78: only ..." (refused)
 * ```
 */
export function scanFrame(bytes: Uint8Array, limits: ScanLimits): ScanResult {
  const len = bytes.length;
  if (len === 0) return refuse("an empty frame holds no MessagePack value");
  if (len > 0x7fffffff) return refuse(`a frame of ${len} bytes is too large to scan`);
  const maxDepth = limits.maxDepth;
  // The open arrays and maps, outermost first: the items left to read (a
  // map's keys and values both count), how many it has in all, and for a map
  // where its current key is (-1 for an array).
  if (stacks.left.length < maxDepth + 1) stacks = newStacks(maxDepth + 1);
  const { left, total, keyAt } = stacks;
  let depth = 0;
  const elements: ScannedElement[] = [];
  const b0 = bytes[0]!;
  const batch = (b0 & 0xf0) === 0x90 || b0 === 0xdc || b0 === 0xdd;
  const elementDepth = batch ? 1 : 0;
  // The element being scanned.
  let start = 0;
  let cost = 0;
  let error: string | undefined;
  let ridStart = -1;
  let ridEnd = -1;
  let ridNext = false;
  let spent = 0; // by the elements before
  let pos = 0;

  for (;;) {
    if (depth === elementDepth) {
      spent += cost;
      start = pos;
      cost = 0;
      error = undefined;
      ridStart = ridEnd = -1;
    }
    if (spent + cost > limits.maxCost) {
      return refuse(`decoding it would cost more than ${limits.maxCost} units`, true);
    }
    if (pos >= len) return refuse(`cut short: the frame ends in a value, at byte ${pos}`);
    const b = bytes[pos]!;
    let end = pos + 1;
    let items = 0; // what follows an array or a map header: its items, keys and values
    let container = false;
    let isMap = false;
    let plainKey = true; // whether this may be a map key
    let refused: string | undefined;
    if (b < 0x80 || b >= 0xe0) {
      cost += DECODE_COST.scalar;
    } else if (b < 0xa0) {
      container = true;
      isMap = b < 0x90;
      items = isMap ? (b & 0x0f) * 2 : b & 0x0f;
    } else if (b < 0xc0) {
      cost += DECODE_COST.str;
      end += b & 0x1f;
    } else {
      // 0xc0..0xdf: the header's length depends on the type.
      end = pos + HEAD_BYTES[b - 0xc0]!;
      if (end > len) return refuse(`cut short: the frame ends in a header, at byte ${pos}`);
      switch (b) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
        case 0xca: // float32
        case 0xcb: // float64
        case 0xcc: // uint8..uint32
        case 0xcd:
        case 0xce:
        case 0xd0: // int8..int32
        case 0xd1:
        case 0xd2:
          cost += DECODE_COST.scalar;
          break;
        case 0xcf: // uint64, int64
        case 0xd3:
          cost += DECODE_COST.int64;
          break;
        case 0xc1:
          refused = `the byte 0xc1, which MessagePack never uses${CORE_ONLY}`;
          break;
        case 0xc4: // bin8, bin16, bin32
        case 0xc5:
        case 0xc6:
          cost += DECODE_COST.bin;
          end += b === 0xc4
            ? bytes[pos + 1]!
            : b === 0xc5
            ? u16(bytes, pos + 1)
            : u32(bytes, pos + 1);
          plainKey = false;
          break;
        case 0xc7: // ext8, ext16, ext32: length, then type
        case 0xc8:
        case 0xc9:
          refused = extension((bytes[end - 1]! << 24) >> 24);
          end += b === 0xc7
            ? bytes[pos + 1]!
            : b === 0xc8
            ? u16(bytes, pos + 1)
            : u32(bytes, pos + 1);
          break;
        case 0xd4: // fixext 1, 2, 4, 8, 16: type, then data
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8:
          end += 1 << (b - 0xd4);
          refused = extension((bytes[pos + 1]! << 24) >> 24);
          break;
        case 0xd9: // str8, str16, str32
        case 0xda:
        case 0xdb:
          cost += DECODE_COST.str;
          end += b === 0xd9
            ? bytes[pos + 1]!
            : b === 0xda
            ? u16(bytes, pos + 1)
            : u32(bytes, pos + 1);
          break;
        default: // 0xdc..0xdf: array16, array32, map16, map32
          container = true;
          isMap = b >= 0xde;
          items = (b & 1) === 0 ? u16(bytes, pos + 1) : u32(bytes, pos + 1);
          if (isMap) items *= 2;
      }
    }
    if (container) {
      cost += DECODE_COST.container;
      plainKey = false;
      // Each item takes at least a byte: a count beyond the bytes left is a lie.
      if (items > len - end) {
        return refuse(`cut short: a value at byte ${pos} has more items than bytes left`);
      }
    } else if (end > len) {
      return refuse(`cut short: a value at byte ${pos} runs past the frame`);
    }
    if (refused !== undefined) plainKey = false;

    // A map key: costly to decode, and of a plain type; the element's "Rid".
    if (depth > 0 && keyAt[depth - 1]! >= 0 && (left[depth - 1]! & 1) === 0) {
      keyAt[depth - 1] = pos;
      cost += DECODE_COST.key;
      if (!plainKey && refused === undefined) {
        refused = "a map key must be a string, a number, nil or a boolean";
      }
      if (depth === elementDepth + 1 && isRidKey(bytes, pos)) ridNext = true;
    } else if (ridNext) {
      ridNext = false;
      if (b < 0x80 || b >= 0xe0 || (b >= 0xcc && b <= 0xd3)) {
        ridStart = pos;
        ridEnd = end;
      }
    }
    if (refused !== undefined && error === undefined) {
      error = pathAt(bytes, elementDepth, depth, left, total, keyAt) + refused;
    }

    pos = end;
    if (items > 0) {
      if (depth + 1 > maxDepth) {
        return refuse(`nested deeper than ${maxDepth} levels, at byte ${pos}`);
      }
      if (depth === 0 && batch && items > limits.maxElements) {
        const most = limits.maxElements;
        return refuse(`a batch of ${items} requests, over the ${most} a frame may hold`, true);
      }
      left[depth] = items;
      total[depth] = items;
      keyAt[depth] = isMap ? 0 : -1;
      depth++;
      continue;
    }
    // A value is complete, and with it maybe the arrays and maps it ends.
    for (;;) {
      if (depth === elementDepth) {
        const rid = ridStart < 0 ? undefined : [ridStart, ridEnd] as const;
        elements.push({ start, end: pos, cost, error, rid });
      }
      if (depth === 0 || --left[depth - 1]! > 0) break;
      depth--;
    }
    if (depth === 0) break;
  }
  if (spent + cost > limits.maxCost) {
    return refuse(`decoding it would cost more than ${limits.maxCost} units`, true);
  }
  if (pos !== len) {
    return refuse(`${len - pos} bytes after the frame's value, at byte ${pos}`);
  }
  return { batch, elements };
}

/**
 * Whether a frame is plain MessagePack within the limits: the whole frame one
 * value, core types only, map keys strings, numbers, nil or booleans, not
 * deeper, longer nor costlier than `limits` allow. The fast path every frame
 * takes (about 0.05 us for a small request, 0.15 us per request of a batch,
 * a tenth of decoding it); {@link scanFrame} tells what is wrong when it is
 * not.
 *
 * @example
 * ```ts
 * import { isPlainFrame } from "./msgpack_scan.ts";
 * const limits = { maxDepth: 8, maxElements: 16, maxCost: 1000 };
 * isPlainFrame(new Uint8Array([0x92, 0x01, 0xa1, 0x61]), limits); // true: [1, "a"]
 * isPlainFrame(new Uint8Array([0x91, 0xd4, 0x78, 0x00]), limits); // false: an extension
 * ```
 */
export function isPlainFrame(b: Uint8Array, limits: ScanLimits): boolean {
  const len = b.length;
  if (len === 0 || len > 0x7fffffff) return false;
  const { maxDepth, maxCost, maxElements } = limits;
  if (stacks.left.length < maxDepth + 1) stacks = newStacks(maxDepth + 1);
  // Items left in each open array or map, and which are maps.
  const { left, keyAt: isMap } = stacks;
  const C = DECODE_COST;
  let pos = 0;
  let depth = 0;
  let cost = 0;
  for (;;) {
    if (pos >= len) return false;
    const t = b[pos]!;
    const key = depth > 0 && isMap[depth - 1] === 1 && (left[depth - 1]! & 1) === 0;
    let items = 0;
    let map = 0;
    if (t < 0x80 || t >= 0xe0) {
      pos++;
      cost += C.scalar;
    } else if (t >= 0xa0 && t < 0xc0) {
      pos += 1 + (t & 0x1f);
      cost += C.str;
    } else if (t < 0xa0) {
      if (key) return false;
      map = t < 0x90 ? 1 : 0;
      items = map ? (t & 0x0f) * 2 : t & 0x0f;
      pos++;
      cost += C.container;
    } else {
      const head = HEAD_BYTES[t - 0xc0]!;
      if (pos + head > len) return false;
      switch (t) {
        case 0xc4: // bin: never a key
        case 0xc5:
        case 0xc6:
          if (key) return false;
          pos += head + (t === 0xc4 ? b[pos + 1]! : t === 0xc5 ? u16(b, pos + 1) : u32(b, pos + 1));
          cost += C.bin;
          break;
        case 0xd9: // str
        case 0xda:
        case 0xdb:
          pos += head + (t === 0xd9 ? b[pos + 1]! : t === 0xda ? u16(b, pos + 1) : u32(b, pos + 1));
          cost += C.str;
          break;
        case 0xdc: // array, map: never a key
        case 0xdd:
        case 0xde:
        case 0xdf:
          if (key) return false;
          map = t >= 0xde ? 1 : 0;
          items = (t & 1) === 0 ? u16(b, pos + 1) : u32(b, pos + 1);
          if (map) items *= 2;
          pos += head;
          cost += C.container;
          break;
        case 0xcf: // 64-bit integers
        case 0xd3:
          pos += head;
          cost += C.int64;
          break;
        case 0xc0: // nil, booleans, floats, smaller integers
        case 0xc2:
        case 0xc3:
        case 0xca:
        case 0xcb:
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xd0:
        case 0xd1:
        case 0xd2:
          pos += head;
          cost += C.scalar;
          break;
        default: // 0xc1, and every extension type
          return false;
      }
    }
    if (key) cost += C.key;
    if (items > 0) {
      // Each item takes at least a byte.
      if (items > len - pos || depth >= maxDepth || cost > maxCost) return false;
      if (depth === 0 && !map && items > maxElements) return false;
      left[depth] = items;
      isMap[depth] = map;
      depth++;
      continue;
    }
    while (depth > 0 && --left[depth - 1]! === 0) depth--;
    if (depth === 0) return pos === len && cost <= maxCost;
  }
}

// The open arrays and maps of a scan, reused from one scan to the next (a
// scan runs to its end before another starts).
interface Stacks {
  readonly left: Int32Array;
  readonly total: Int32Array;
  readonly keyAt: Int32Array;
}
function newStacks(n: number): Stacks {
  return { left: new Int32Array(n), total: new Int32Array(n), keyAt: new Int32Array(n) };
}
let stacks = newStacks(128);

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

// Bytes of the header of each type 0xc0..0xdf (type byte included), and for
// the fixed-size ones their payload too.
const HEAD_BYTES = [
  1, // c0 nil
  1, // c1 (never used)
  1, // c2 false
  1, // c3 true
  2, // c4 bin8: length
  3, // c5 bin16
  5, // c6 bin32
  3, // c7 ext8: length, type
  4, // c8 ext16
  6, // c9 ext32
  5, // ca float32
  9, // cb float64
  2, // cc uint8
  3, // cd uint16
  5, // ce uint32
  9, // cf uint64
  2, // d0 int8
  3, // d1 int16
  5, // d2 int32
  9, // d3 int64
  2, // d4 fixext1: type (the data follows)
  2, // d5 fixext2
  2, // d6 fixext4
  2, // d7 fixext8
  2, // d8 fixext16
  2, // d9 str8: length
  3, // da str16
  5, // db str32
  3, // dc array16: count
  5, // dd array32
  3, // de map16
  5, // df map32
];

function refuse(frameError: string, tooLarge = false): ScanResult {
  return { frameError, tooLarge };
}

const CORE_ONLY =
  ": only MessagePack's core types (nil, bool, int, float, str, bin, array, map) are accepted";

function extension(type: number): string {
  const hex = type.toString(16).padStart(2, "0");
  return `extension type ${type < 0 ? type : `0x${hex}`}${CORE_ONLY}`;
}

// "Rid" as a fixstr: a3 52 69 64.
function isRidKey(bytes: Uint8Array, pos: number): boolean {
  return bytes[pos] === 0xa3 && bytes[pos + 1] === 0x52 && bytes[pos + 2] === 0x69 &&
    bytes[pos + 3] === 0x64;
}

// Where the value about to be read sits inside its element: `Req.Val.Data[2]: `
// (empty at the element itself). Only built for an error.
function pathAt(
  bytes: Uint8Array,
  elementDepth: number,
  depth: number,
  left: Int32Array,
  total: Int32Array,
  keyAt: Int32Array,
): string {
  let path = "";
  for (let d = elementDepth; d < depth; d++) {
    if (keyAt[d]! < 0) {
      path += `[${total[d]! - left[d]!}]`;
    } else {
      const key = (left[d]! & 1) === 0 ? "(a key)" : keyText(bytes, keyAt[d]!);
      path += path === "" ? key : `.${key}`;
    }
  }
  return path === "" ? "" : `${path}: `;
}

// A map key for a path: a short string as it is, anything else by its type.
function keyText(bytes: Uint8Array, pos: number): string {
  const b = bytes[pos]!;
  let n = -1;
  let at = pos + 1;
  if (b >= 0xa0 && b <= 0xbf) n = b & 0x1f;
  else if (b === 0xd9) (n = bytes[pos + 1]!), at++;
  if (n < 0 || n > 40) return n > 40 ? "(a long key)" : "(a key)";
  return new TextDecoder().decode(bytes.subarray(at, at + n));
}
