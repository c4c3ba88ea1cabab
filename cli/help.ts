/**
 * The help texts of the command line: the program's, and each command's.
 *
 * @module
 */
import {
  DEFAULT_MAX_QUEUED_PER_KEY,
  DEFAULT_MAX_QUEUED_PER_PEER,
  DEFAULT_MEMORY_QUOTA_BYTES,
  DEFAULT_QUOTA_BYTES,
} from "../acceptor.ts";
import { DEFAULT_BASE_PORT } from "../cluster.ts";
import { DEFAULT_SERVE_LIMITS } from "../server.ts";
import { DEFAULT_MAX_KEYS } from "../log_store.ts";
import { MAX_KEYS_IN_MEMORY } from "../store.ts";

/**
 * How to run Deno, as this process was run: `deno`, or, for the binary that
 * `npx deno@VERSION` fetched into npm's cache (where `deno` may not be on
 * PATH), `npx -y deno@VERSION`.
 */
export function denoCommand(execPath: string = Deno.execPath()): string {
  return /[\\/](_npx|node_modules)[\\/]/.test(execPath)
    ? `npx -y deno@${Deno.version.deno}`
    : "deno";
}

const RUN = `${denoCommand()} run --allow-net=127.0.0.1 cli.ts`;

const EXIT_HELP = `Exit status:
  0  success
  1  the command could not do its work: no majority of the acceptors answered,
     or nothing was decided, before the deadline; an acceptor or cluster
     cannot open its data or listen
  2  bad usage
  3  get, delete: KEY has no value (it was never written, or it was deleted)
  4  set --if-ver/--if-absent, delete --if-ver: version conflict; nothing was
     written
  5  the version asked for is compacted: the acceptors run with
     --keep-versions and no longer keep it
  6  refused: the acceptors and this client do not belong together (a wrong
     or missing secret, an untrusted certificate, acceptors of two clusters,
     a list that is not exactly the membership, one acceptor listed twice, a
     member that came back without its state)
An acceptor that refuses to start unsafely (no identity in DIR, --init on a
DIR that has one) exits with 1, before it writes anything.
Every failure is one line on stderr.`;

/** The help of the program, for `--help` and `help`. */
export const TOP_HELP = `paxoskv: a key-value store in which every write and read is decided by
classic two-phase Paxos, one Paxos instance per key and version.

Usage:
  ${RUN} <command> [options]

Commands:
  acceptor   run one acceptor server
  cluster    run three acceptors in one process, to try things out (${denoCommand()} task start)
  set        write a value as the next version of a key, print that version
             (--if-ver N, --if-absent: only if the key is in that state);
             with --ver N: propose a value for version N, print the chosen value
  get        print the latest value of a key;
             with --ver N: print the value chosen for version N (nil if none)
  delete     delete a key (write a tombstone version), print that version
  history    print the versions of a key, oldest first
  list       print the keys that begin with a prefix, and their values
  watch      print each version of some keys (or of a prefix) as it is chosen
  status     show every acceptor: member, reachable, round trip, log size,
             keys, uptime
  member     list the members, or change them online: add, remove, replace
  help       show the help of a command: help <command>

Run "cli.ts <command> --help" for a command's options, "cli.ts --version" for
the version. set, get, delete, history, list and watch take --json to print JSON
instead. The acceptors' URLs can come from the environment
(PAXOSKV_ACCEPTORS), read with --allow-env.

${EXIT_HELP}`;

const ACCEPTOR_HELP = `Usage:
  ${RUN} acceptor --data DIR --init --cluster NAME --members IDS --id N
      [--cluster-id ID] [--keep-versions K] [--engine E] [SERVING OPTIONS]
  ${RUN} acceptor --data DIR --init --join --cluster NAME --cluster-id ID
      --id N [--keep-versions K] [--engine E] [SERVING OPTIONS]
  ${RUN} acceptor --data DIR [SERVING OPTIONS]
  ${RUN} acceptor --memory --id N [--members IDS --cluster-id ID]
      [--keep-versions K] [SERVING OPTIONS]

Runs one acceptor, serving ws://HOST:PORT/paxos (wss:// with --tls-cert). It
first recovers its state from DIR; once it listens, it prints that URL as one
line on stdout. SIGINT or SIGTERM stops it (exit status 0).

A member's identity is created once, on purpose: --init writes it to DIR (the
cluster's name, a cluster id shared by its members, this member's id, the
membership and the cluster-wide settings). The first member's --init makes a
new cluster id and says so on stderr; give it to the others' --init with
--cluster-id. Later starts need only --data. An acceptor refuses to start on
a DIR with no identity (an empty acceptor that joins a running cluster can
lose acknowledged writes), and --init refuses a DIR that has one; a log of an
earlier release is adopted by --init. Clients check every member's identity
at connect: a list of acceptors that is not exactly the membership, or
members of two clusters, is refused.

Every promise and vote is written to DIR and synced to disk before the reply
that acknowledges it is sent. A second acceptor on the same DIR refuses to
start. A damaged log (other than a torn last write, which is dropped) makes
the acceptor refuse to start, naming the file and offset.

Options:
  --data DIR          where the state and identity live (required, or --memory)
  --init              create this member's identity in DIR, which must have none
  --join              with --init: a new member of a running cluster (give its
                      --cluster and --cluster-id, from member list, and its
                      --keep-versions). It answers nothing but the handshake
                      until member add or member replace lists it, so it never
                      votes empty (docs/membership.md)
  --cluster NAME      the cluster's name: letters, digits, ".", "_", "-"
  --members IDS       every member's id, comma-separated, e.g. 0,1,2
  --id N              this member's id, one of IDS
  --cluster-id ID     the cluster's id (32 hex digits), from the first member
  --keep-versions K   keep only the last K versions of each key, a positive
                      integer, set for the whole cluster at --init (counted
                      from the highest version this acceptor voted in); older
                      versions are forgotten, and requests for them are
                      refused as compacted (get --ver exits with 5; history
                      leaves them out). Default: keep every version
  --memory            keep the state in memory only, for tests and demos: it is
                      lost when the process stops, and clients refuse it if it
                      comes back (it has a new instance id at every start)
  --engine E          the storage engine of a new DIR: log (the default; an
                      append-only log, an index of every key in memory) or
                      sqlite (a B-tree on disk: memory bounded, for datasets
                      larger than memory; docs/storage.md). DIR remembers its
                      engine: later starts need no --engine, and another
                      engine than DIR's is refused
  -h, --help          show this help

Serving options:
  --host H            interface to listen on (default 127.0.0.1); another than
                      loopback needs --secret-file
  --port P            port to listen on, 0 for a free one (default ${DEFAULT_BASE_PORT}+N)
  --secret-file FILE  the cluster's shared secret (at least 16 bytes; mode 600),
                      or env PAXOSKV_SECRET_FILE: a client must prove it knows
                      it before anything is served, and is shown that this
                      acceptor does
  --tls-cert FILE     serve wss:// with this certificate chain (PEM)...
  --tls-key FILE      ...and this private key (PEM)
  --allow-origin O    web pages of origin O (https://host:port; several
                      comma-separated) may connect; any other request that
                      carries an Origin header (every browser's) is refused
  --ui                also serve the web page (docs/protocol.md, "The web
                      page's endpoints") at http://HOST:PORT/, on a port of
                      its own, printed on a second line after the URL: this
                      acceptor's state per key and version, live, and set and
                      get with the browser as the proposer and this acceptor
                      as its one acceptor (so a write needs a one-member
                      cluster; the slides need three acceptors: cluster
                      --ui). The page's origin is let in, no other (besides
                      --allow-origin). Not with --secret-file: the page could
                      not prove it
  --ui-port P         the page's port (default 0: a free one)
  --log-format F      text (default): lines "paxoskv: acceptor N: ..." on
                      stderr; json: one JSON object per line, {"time",
                      "level", "event", "member", "message", ...}, for the
                      events listening, shutdown, stopped, identity,
                      connection_refused, upgrade_refused, bad_frame,
                      protocol_error, unauthorized, torn_record_dropped,
                      compaction_started, compaction_done, compaction_failed,
                      membership_changed, open_failed, listen_failed (README)

On the same port: GET /healthz (200 and a JSON report when it can serve, 503
otherwise) and GET /metrics (Prometheus text); neither needs the secret, and
they show counts only (docs/protocol.md). cli.ts status reads /healthz.

Limits: what one peer can make the acceptor hold (docs/security.md). Each is a
positive integer; past it the peer gets a clear refusal and the acceptor goes
on serving everyone else:
  --max-connections N       open connections, upgrades under way included;
                            more are answered 503 (default ${DEFAULT_SERVE_LIMITS.maxConnections}). Keep it below
                            the process's open-file limit (ulimit -n)
  --handshake-timeout MS    time to finish the WebSocket upgrade, in ms; then
                            408 and the connection is closed (default ${DEFAULT_SERVE_LIMITS.handshakeTimeoutMs})
  --max-reply-bytes B       bytes of replies waiting to be sent on one
                            connection; past them requests are answered
                            Overloaded and reading from that peer stops until
                            it catches up (default ${DEFAULT_SERVE_LIMITS.maxPendingReplyBytes})
  --max-queued-per-key N    requests waiting on one key behind its write; more
                            are answered Overloaded (default ${DEFAULT_MAX_QUEUED_PER_KEY})
  --max-queued-per-peer N   of those, from one connection; the connections
                            waiting on a key are served in turn (default ${DEFAULT_MAX_QUEUED_PER_PEER})
  --quota-bytes B           bytes of data (keys, values, promises) the
                            acceptor holds; a write that would grow them past
                            it is answered QuotaExceeded, while reads, deletes
                            and compaction go on (default ${DEFAULT_QUOTA_BYTES}, 4 GiB;
                            ${DEFAULT_MEMORY_QUOTA_BYTES}, 512 MiB, with --memory)
  --max-keys N              keys the acceptor may hold with the log engine or
                            --memory, which keep every key in memory (the
                            log's index about 220 bytes of RSS each); a write
                            of a new key past it is answered QuotaExceeded,
                            while the keys held keep working (default ${DEFAULT_MAX_KEYS};
                            ${MAX_KEYS_IN_MEMORY}, the most, with --memory). Not with the
                            sqlite engine: its keys are on disk`;

const CLUSTER_HELP = `Usage:
  ${RUN} cluster [--base-port P] [--host H] [--ui [--ui-port P]] [--log-format text|json]

Runs acceptors 0, 1 and 2 in this process, on ports P, P+1 and P+2, each with
its state in memory only. Prints their URLs and example commands, then runs
until SIGINT or SIGTERM (exit status 0).

Options:
  --base-port P   port of acceptor 0; 0 gives each acceptor a free port
                  (default ${DEFAULT_BASE_PORT})
  --host H        interface to listen on (default 127.0.0.1)
  --ui            also serve the web page, and print its URL: the acceptors'
                  states per key and version, live; set, get, the two slides
                  and two dueling proposers, with the browser as the
                  proposer; stop and restart an acceptor. The acceptors let
                  in the page's origin, and no other web page
  --ui-port P     the page's port (default 0: a free one)
  --log-format F  text (default) or json: one JSON object per line on stderr
                  (see acceptor --help)
  -h, --help      show this help`;

function netOptions(withVer: boolean): string {
  const deadline = withVer
    ? `  --deadline MS      give up when there is no answer within MS ms (default
                     10000); without --ver, reaching a majority of the
                     acceptors and then the command itself each have MS ms`
    : `  --deadline MS      give up when there is no answer within MS ms (default
                     10000); reaching a majority of the acceptors and then
                     the command itself each have MS ms`;
  return `  --acceptors URLS   the acceptors, comma-separated ws://HOST:PORT/paxos (or
                     wss://) URLs, exactly the cluster's members (required,
                     or env PAXOSKV_ACCEPTORS); every decision is made by a
                     majority of them. The environment is read only with
                     --allow-env (e.g. --allow-env=PAXOSKV_ACCEPTORS); an
                     option given wins over its variable
  --secret-file FILE the cluster's shared secret (or env PAXOSKV_SECRET_FILE)
  --ca-file FILE     trust the certificates in FILE (PEM) for wss://, besides
                     the system's roots (or env PAXOSKV_CA_FILE)
  --timeout MS       how long to wait for each reply, in ms (default 1000)
${deadline}
  --json             print one line of JSON instead (see JSON below)
  --trace[=json]     after the result, print the messages: one line per
                     request, reply, quorum, raised ballot and backoff, in
                     time order, with the ms since the first request and the
                     acceptors named a0, a1, ... in the order of --acceptors;
                     --trace=json prints one JSON object per event instead`;
}

const VER_OPTIONS = `  --ver N            the seed's call: version N of KEY, a non-negative int64
  --proposer-id N    with --ver only: this proposer's id, a positive int64;
                     concurrent proposers need different ids (default: a
                     random 48-bit number). Without --ver it is refused:
                     every Paxos run then picks a random id of its own`;

function ifVerOption(verb: string): string {
  return `  --if-ver N         ${verb} only if N is the latest version of KEY; -1 means
                     "KEY has no version yet"`;
}

const VALUE_HELP = `Values: the text printed for a value is
  an int64                its decimal digits
  a string                the string as it is
  a delete (tombstone)    (deleted)
  other values (written by other clients): compact JSON, in which integers of
                          any size are exact decimals, binary (bytes) is a
                          base64 string, and NaN/Infinity/-Infinity are strings`;

const JSON_HELP = `JSON: with --json the output is one line of JSON. In it, integers of any size
are exact bare decimals (beyond 2^53 too: read them with a parser that keeps
big integers), an int64 value is a number and a string value a string, binary
is a base64 string, and NaN/Infinity/-Infinity are strings. Errors still go to
stderr as one line, and the exit status is the same as without --json.`;

const SET_HELP = `Usage:
  ${RUN} set KEY VALUE --acceptors URL,URL,...
      [--if-ver N | --if-absent] [options]
  ${RUN} set KEY - ...          (VALUE from standard input)
  ${RUN} set KEY --file F ...   (VALUE from the file F)
  ${RUN} set KEY VALUE --ver N --acceptors URL,URL,...
      [options]

Without --ver, writes VALUE as the next version of KEY (0 for the first write)
and prints that version. When another client writes the same key at the same
time, each write gets a version of its own. With --if-ver N, it writes only if
N is the latest version of KEY; with --if-absent, only if KEY has no value (it
was never written, or it was deleted). When the key is not in that state, it
writes nothing and exits with status 4, saying which version it found.

With --ver N, it proposes VALUE for version N of KEY: this process runs Paxos
against the acceptors and prints the value chosen for KEY@N. Each version is
chosen once: when another value was chosen before, set prints that value, not
VALUE. Writes with --ver can leave gaps between versions, which the writes
without --ver do not expect: write a key either with --ver or without it
(reading any version with get --ver is fine).

VALUE is stored as an int64 (Vi64) when it is a canonical decimal integer
(digits with an optional "-", no leading zeros, not -0) within
-9223372036854775808..9223372036854775807, and as a string (Data) otherwise.
Put "--" before a VALUE that begins with "--", after all the options. A VALUE
of "-" reads the value from standard input, --file F from the file F, as they
are (a final newline is kept), by the same rule; either can hold a value of
up to 1 MiB, which a command line cannot. --type says what to store instead:
  --type string      the text as it is, also when it looks like an integer
  --type int         a decimal int64 (blanks around it are ignored); else exit 2
  --type json        the JSON value (integers exact up to 64 bits), not null
  --type bytes       the bytes of standard input or the file as they are, or
                     VALUE read as base64
Text must be UTF-8 (else exit 2: use --type bytes).

Options:
${netOptions(true)}
${ifVerOption("write")}
  --if-absent        write only if KEY has no value (never written, or deleted)
  --file F           read the value from the file F (no VALUE argument)
  --type T           store the value as T: string, int, json or bytes (above)
${VER_OPTIONS}
  -h, --help         show this help

Output:
  without --ver   the version written, e.g. 3
                  --json: {"key":"foo","version":3}
  with --ver      the value chosen for KEY@N (see Values below)
                  --json: {"key":"foo","ver":0,"value":5}

${VALUE_HELP}

${JSON_HELP}

${EXIT_HELP}`;

const GET_HELP = `Usage:
  ${RUN} get KEY --acceptors URL,URL,...
      [options]
  ${RUN} get KEY --ver N --acceptors URL,URL,...
      [options]

Without --ver, prints the value of the latest version of KEY. The read is
linearizable: it sees every write that finished before it started. When KEY
has no value (it was never written, or it was deleted), it prints nothing on
stdout, says so on stderr (with the version of the delete, if any) and exits
with status 3.

With --ver N, reads version N of KEY: this process runs Paxos against the
acceptors without a value of its own and prints the value chosen for KEY@N, or
nil when no value was voted for (exit status 0). A value voted for but not yet
chosen is completed first, so what get prints is chosen and stays chosen. A
version deleted by "delete" prints (deleted).

Options:
${netOptions(true)}
${VER_OPTIONS}
  -h, --help         show this help

Output:
  without --ver   the value (see Values below)
                  --json: {"key":"foo","found":true,"version":3,"value":5}
                  or, exit status 3: {"key":"foo","found":false,"version":-1}
                  ("version" is then the delete's version, -1 if never written;
                  nothing is printed on stderr)
  with --ver      the value chosen for KEY@N, or nil
                  --json: {"key":"foo","ver":0,"value":5}; "value" is null for
                  nil; a deleted version gives "value":null,"deleted":true

${VALUE_HELP}

${JSON_HELP}

${EXIT_HELP}`;

const DELETE_HELP = `Usage:
  ${RUN} delete KEY --acceptors URL,URL,...
      [--if-ver N] [options]

Deletes KEY: writes a tombstone as its next version and prints that version.
After it, get KEY finds no value (exit status 3) until KEY is set again;
history KEY shows the tombstone as (deleted). A KEY that has no value (never
written, or deleted already) is left as it is: delete writes nothing, says
"not found" on stderr and exits with status 3. With --if-ver N it deletes only
if N is the latest version of KEY, and otherwise writes nothing and exits with
status 4.

Options:
${netOptions(false)}
${ifVerOption("delete")}
  -h, --help         show this help

Output: the tombstone's version, e.g. 4
  --json: {"key":"foo","version":4,"deleted":true}

${JSON_HELP}

${EXIT_HELP}`;

const HISTORY_HELP = `Usage:
  ${RUN} history KEY --acceptors URL,URL,...
      [--limit N] [options]

Prints the latest versions of KEY, at most N of them, oldest first, one line
each: the version, a tab, and the value (see Values below), or "(deleted)" for
a delete. Versions the acceptors no longer keep (acceptor --keep-versions) are
left out. A key that was never written prints nothing (exit status 0). Use
--json for values that hold newlines or tabs. When --limit cut the list short,
a line on stderr says so and gives the --before that shows the older ones
(--json: "before" holds that version).

Options:
${netOptions(false)}
  --limit N          at most N versions, a positive integer (default 100)
  --before V         only versions below V (to page back)
  -h, --help         show this help

Output:
  0<TAB>a
  2<TAB>(deleted)
  --json: {"key":"foo","versions":[{"version":0,"value":"a"},{"version":2,"deleted":true}]}

${VALUE_HELP}

${JSON_HELP}

${EXIT_HELP}`;

const LIST_HELP = `Usage:
  ${RUN} list [PREFIX] --acceptors URL,URL,...
      [--limit N] [--cursor C] [--reverse] [--keys-only] [options]

Prints the keys that begin with PREFIX (every key without it), in key order
(JavaScript's string order, UTF-16 code units), one line each: the key, a tab,
and its latest value (see Values below). Deleted keys are left out. Use --json
for keys or values that hold newlines or tabs.

Each value is linearizable, as get would print it during the listing, and
every key that has a value for the whole listing is listed (the keys come from
a majority of the acceptors). It is not a snapshot: keys are read one after
another, so a key written or deleted during the listing may or may not show.

Options:
${netOptions(false)}
  --limit N          at most N keys; when N are printed, a line on stderr (or,
                     with --json, a last line {"cursor":"C"}) gives the
                     --cursor that goes on after them
  --cursor C         go on after the key where an earlier list stopped
  --reverse          from the last key down
  --keys-only        print the keys alone
  -h, --help         show this help

Output:
  user/1<TAB>alice
  --json: one line per key, {"key":"user/1","version":0,"value":"alice"}
  (--keys-only: {"key":"user/1"})

${VALUE_HELP}

${JSON_HELP}

${EXIT_HELP}`;

const STATUS_HELP = `Usage:
  ${RUN} status --acceptors URL,URL,... [--json] [options]

Asks every acceptor listed for its health report (GET /healthz on its port, a
new connection each, all at once) and prints one row per acceptor: its member
id, URL, whether it answered, the round trip of that request, the size of its
log ("memory" for an acceptor without one), how many keys it holds, and how
long it has run. An acceptor that does not answer, or answers that it cannot
serve (its store failed, or it is shutting down), is a row that says why in
ERROR; the others are still shown.

The health report needs no secret (it shows counts only); --secret-file is
accepted like in the other commands, and --ca-file is used for wss:// URLs.

Options:
  --acceptors URLS   the acceptors, comma-separated ws://HOST:PORT/paxos (or
                     wss://) URLs (required, or env PAXOSKV_ACCEPTORS, read
                     with --allow-env)
  --secret-file FILE the cluster's shared secret (or env PAXOSKV_SECRET_FILE)
  --ca-file FILE     trust the certificates in FILE (PEM) for wss://, besides
                     the system's roots (or env PAXOSKV_CA_FILE)
  --timeout MS       how long each acceptor may take to answer, in ms
                     (default 1000)
  --deadline MS      at most this long in all, in ms (default 10000)
  --json             one line of JSON per acceptor instead of the table
  -h, --help         show this help

Output:
  MEMBER  URL                        REACHABLE  RTT     LOG      KEYS  UPTIME  ERROR
  0       ws://127.0.0.1:3333/paxos  yes        1.1 ms  2.3 KiB  3     2m05s
  -       ws://127.0.0.1:3335/paxos  no         -       -        -     -       Connection refused (os error 111)
  --json: {"url":"ws://127.0.0.1:3333/paxos","member":0,"reachable":true,
  "healthy":true,"error":null,"rttMs":1.1,"logBytes":2355,"dataBytes":700,
  "keys":3,"uptimeSeconds":125,"connections":1}
  (logBytes is null for an acceptor in memory)

Exit status:
  0  at least one acceptor answered (even one that cannot serve)
  1  none of them answered
  2  bad usage`;
const WATCH_HELP = `Usage:
  ${RUN} watch KEY [KEY...] --acceptors URL,URL,...
      [--from-version V] [options]
  ${RUN} watch --prefix P --acceptors URL,URL,...
      [--from-version V] [options]

Prints each version of the keys as it is chosen, one line each: the key, a tab,
the version, a tab, and its value (see Values below), or (deleted) for a
delete. It runs until SIGINT or SIGTERM (Ctrl-C), then exits with 0.

Each key's versions come in version order, without gaps or duplicates (the
lines of two keys interleave in no promised order), and only once chosen: a
version printed stays chosen, and get --ver prints the same value for it. It
goes on while a minority of the acceptors is down, and waits while no majority
answers. It polls: a quiet key is asked of the acceptors at random intervals
of up to 100 ms (50 ms on average), so a version is printed about 100 ms after
it is chosen at worst. With --prefix, the
keys under P are listed again every second, to find new ones.

A version the acceptors no longer keep (they run with --keep-versions) is not
skipped: the watch stops with exit status 5; watch again from a later
--from-version.

Options:
${netOptions(false)}
  --prefix P         watch every key that begins with P, also keys written later
  --from-version V   print each key's versions from V on (default: the versions
                     chosen after the watch starts; for a key --prefix finds
                     later, from 0)
  -h, --help         show this help

Output:
  user/1<TAB>3<TAB>alice
  user/1<TAB>4<TAB>(deleted)
  --json: {"key":"user/1","version":3,"value":"alice"},
          {"key":"user/1","version":4,"deleted":true}

${VALUE_HELP}

${JSON_HELP}

${EXIT_HELP}`;

const MEMBER_HELP = `Usage:
  ${RUN} member list --acceptors URL,URL,... [options]
  ${RUN} member add ID URL --acceptors URL,URL,... [options]
  ${RUN} member remove ID --acceptors URL,URL,... [options]
  ${RUN} member replace OLD NEW URL --acceptors URL,URL,... [options]

list prints the cluster's name, id and membership (its epoch), then one line
per member: its id, URL, role and whether it answered. --acceptors may be any
members, also a list from before a change: the newest membership any of them
states wins, and the members it names are asked too.

add, remove and replace change the membership online, while clients go on
(docs/membership.md). A new member (add ID URL; replace OLD NEW URL, for a
member whose disk is gone, which comes back empty under a new id) must be
running first, started empty with acceptor --init --join; it is checked to be
of this cluster, to have that id and to keep as many versions as the cluster
before anything changes. A change takes three
steps, each printed on stderr as it finishes:
  1/3 joint: old and new members both count; a quorum is a majority of each
  2/3 catch-up: every key is read again under the joint quorums, so that a
      majority of the new members holds it (progress about once a second)
  3/3 final: the new members alone
Then one line on stdout says what was done. It needs a majority of the old
and of the new members up. Interrupted at any point (killed, an acceptor
down), the same command run again finds how far it got and finishes it; run
once done, it says there is nothing to do. Another change is refused until
that one is finished.

Clients of the old membership are refused with one line naming the new one;
give them the new list (member list prints it).

Options:
  --acceptors URLS   the members (or some of them), comma-separated (required,
                     or env PAXOSKV_ACCEPTORS, read with --allow-env)
  --secret-file FILE the cluster's shared secret (or env PAXOSKV_SECRET_FILE)
  --ca-file FILE     trust the certificates in FILE (PEM) for wss:// (or env
                     PAXOSKV_CA_FILE)
  --timeout MS       how long to wait for each reply, in ms (default 1000)
  --deadline MS      how long each step may wait for its quorum (default 10000)
  --catch-up-concurrency N
                     keys caught up at once (default 8): more is a faster
                     catch-up, fewer leaves more of the members' time to the
                     clients' writes meanwhile (figures: docs/membership.md)
  --json             print one line of JSON on stdout
  -h, --help         show this help

Output:
  member replace 2 3 ws://127.0.0.1:3336/paxos:
    replace member 2 by member 3 at ws://127.0.0.1:3336/paxos: done, 1200 keys
    caught up; epoch 2: members 0=ws://...,1=ws://...,3=ws://...
  --json: {"change":"replace","from":{...},"to":{"epoch":2,"members":[0,1,3],
    "urls":{"0":"ws://..."}},"keys":1200,"nothingToDo":false}
  member list --json: {"cluster":"prod","clusterId":"...","epoch":2,
    "members":[0,1,3],"urls":{...},"state":[{"member":0,"url":"ws://...",
    "role":"member","up":true,"epoch":2}],"joining":[],"unanswered":[]}

${EXIT_HELP}`;

/** The help of each command, by name. */
export const HELP: Readonly<Record<string, string>> = {
  acceptor: ACCEPTOR_HELP,
  cluster: CLUSTER_HELP,
  set: SET_HELP,
  get: GET_HELP,
  delete: DELETE_HELP,
  history: HISTORY_HELP,
  list: LIST_HELP,
  status: STATUS_HELP,
  watch: WATCH_HELP,
  member: MEMBER_HELP,
};
