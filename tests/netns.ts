/**
 * Test hosts in Linux network namespaces: each host a namespace with its own
 * address on one bridge (itself in a namespace of its own), so that a test
 * can run acceptors and clients as on separate machines, and partition a
 * host by taking its link down. Nothing outside the namespaces the test
 * makes is touched. Needs root and `ip` (iproute2); {@link netnsUnavailable}
 * says why not when they are missing.
 *
 * @module
 */

/** One host: its namespace and its address. */
export interface Host {
  /** The namespace's name. */
  readonly ns: string;
  /** Its IPv4 address on the test network. */
  readonly addr: string;
}

/** A test network of hosts on one bridge. */
export interface TestNetwork {
  /** The hosts, in the order asked for. */
  readonly hosts: readonly Host[];
  /** Takes host `i`'s link down (`up` false: it is cut off from every other host) or up. */
  setLink(i: number, up: boolean): Promise<void>;
  /** The command line that runs `cmd` on host `i`. */
  on(i: number, cmd: readonly string[]): string[];
  /** Deletes every namespace (and with them the links). */
  close(): Promise<void>;
}

async function ip(...args: string[]): Promise<void> {
  const out = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/**
 * Why this machine cannot make test hosts (not root, no `ip`, namespaces
 * refused), or null when it can.
 */
export async function netnsUnavailable(): Promise<string | null> {
  const probe = `pxprobe${Deno.pid}`;
  try {
    await ip("netns", "add", probe);
  } catch (e) {
    return e instanceof Deno.errors.NotFound
      ? "no ip command (Debian: apt-get install iproute2)"
      : `cannot make a network namespace (they need root): ${(e as Error).message}`;
  }
  await ip("netns", "del", probe).catch(() => {});
  return null;
}

/**
 * Makes `n` hosts, `10.77.0.1` to `10.77.0.n`, each in its own namespace,
 * joined by a bridge. Delete them with {@link TestNetwork.close}.
 */
export async function makeNetwork(n: number): Promise<TestNetwork> {
  const tag = `px${Deno.pid % 100000}`;
  const bridge = `${tag}-br`;
  const hosts: Host[] = Array.from({ length: n }, (_, i) => ({
    ns: `${tag}-h${i}`,
    addr: `10.77.0.${i + 1}`,
  }));
  const made: string[] = [];
  const close = async () => {
    for (const ns of made.reverse()) await ip("netns", "del", ns).catch(() => {});
  };
  try {
    await ip("netns", "add", bridge);
    made.push(bridge);
    await ip("-n", bridge, "link", "add", "br0", "type", "bridge");
    await ip("-n", bridge, "link", "set", "br0", "up");
    for (const [i, h] of hosts.entries()) {
      await ip("netns", "add", h.ns);
      made.push(h.ns);
      await ip("-n", h.ns, "link", "set", "lo", "up");
      // One veth pair: eth0 in the host, p<i> on the bridge.
      await ip(
        "-n",
        h.ns,
        "link",
        "add",
        "eth0",
        "type",
        "veth",
        "peer",
        "name",
        `p${i}`,
        "netns",
        bridge,
      );
      await ip("-n", h.ns, "addr", "add", `${h.addr}/24`, "dev", "eth0");
      await ip("-n", h.ns, "link", "set", "eth0", "up");
      await ip("-n", bridge, "link", "set", `p${i}`, "master", "br0");
      await ip("-n", bridge, "link", "set", `p${i}`, "up");
    }
  } catch (e) {
    await close();
    throw e;
  }
  return {
    hosts,
    setLink: (i, up) => ip("-n", bridge, "link", "set", `p${i}`, up ? "up" : "down"),
    on: (i, cmd) => ["ip", "netns", "exec", hosts[i]!.ns, ...cmd],
    close,
  };
}
