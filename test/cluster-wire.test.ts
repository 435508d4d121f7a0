// The cluster's datagrams (src/control/cluster/wire.ts): golden header bytes, round trips of every
// type, and every way a datagram is refused — forged (a bit flipped anywhere, the wrong key),
// truncated at every length, replayed, old incarnation, clock skew both ways, unknown sender,
// from self, a heartbeat with any one field wrong — then a seeded fuzz: random bytes and random
// mutations of valid messages never throw and no mutation is ever accepted.

import t from 'tap';
import {
  encode, decode, heartbeatBody, flowsBody, snapshotEndBody, parseHeartbeat, ReplayGuard,
  MSG_HEARTBEAT, MSG_FLOWS, MSG_SNAPSHOT_REQUEST, MSG_SNAPSHOT_END, MAX_FLOWS_PER_DATAGRAM, MAX_DATAGRAM, MAX_BODY,
  MAX_CLOCK_SKEW_MS, REPLAY_WINDOW, HEADER_BYTES, HMAC_BYTES, FLOW_WIRE_BYTES, REPL_NEW, REPL_CLOSED, REJECT_REASONS,
  type Envelope, type Heartbeat, type MsgType, type Decoded,
} from '../src/control/cluster/wire';
import { FS_ESTABLISHED, FS_SYN } from '../src/dataplane/flows';
import { isVipgateError } from '../src/control/errors';
import { mulberry32 } from './helpers/prng';
import { CLUSTER_LIMITS } from '../src/control/config/cluster';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');
const OTHER_KEY = Buffer.from('0123456789abcdef0123456789abcdeF');
const NOW = 1_800_000_000_000;
const env = (o: Partial<Envelope> = {}): Envelope => ({ sender: 1, incarnation: NOW - 60_000, seq: 1, sentAt: NOW, ...o });

const HB: Heartbeat = {
  load: { flows: 1200, capacity: 65536, pps: 35_000.5, cpu: 0.42 },
  owned: ['10.0.0.100', '10.0.1.1'], synced: true,
  history: { startedAt: NOW - 3_600_000, takeovers: 2, peerRestartsSeen: 1 },
  down: ['10.0.1.22'], sent: 4711,
};

/** n flow records, little-endian like the rings. */
function records(n: number): Uint8Array {
  const b = Buffer.alloc(n * FLOW_WIRE_BYTES);
  for (let i = 0; i < n; i++) {
    const o = i * FLOW_WIRE_BYTES;
    b[o] = i % 2 ? REPL_CLOSED : REPL_NEW;
    b[o + 1] = i % 2 ? FS_ESTABLISHED : FS_SYN;
    b.set([2, 0, 0, 0, 0, i & 0xff], o + 2);
    b.writeInt32LE((0xc0a80000 | i) | 0, o + 8);
    b.writeInt32LE(0x0a000064, o + 12);
    b.writeInt32LE(((40000 + i) << 16) | 80, o + 16);
    b.writeInt32LE(0x0a000115, o + 20);
  }
  return b;
}

function samples(): Array<{ name: string; type: MsgType; body: Buffer }> {
  return [
    { name: 'heartbeat', type: MSG_HEARTBEAT, body: heartbeatBody(HB) },
    { name: 'flows', type: MSG_FLOWS, body: flowsBody(records(7), 0, 7, false) },
    { name: 'snapshot request', type: MSG_SNAPSHOT_REQUEST, body: Buffer.alloc(0) },
    { name: 'snapshot end', type: MSG_SNAPSHOT_END, body: snapshotEndBody(123456) },
  ];
}

const reason = (d: Decoded) => (d.ok ? 'accepted' : d.reason);

t.test('golden header bytes', async (t) => {
  const m = encode(MSG_SNAPSHOT_REQUEST, { sender: 2, incarnation: 1, seq: 2, sentAt: 3 }, Buffer.alloc(0), KEY);
  t.equal(m.length, HEADER_BYTES + HMAC_BYTES);
  t.equal(m.subarray(0, 4).toString('latin1'), 'VGCL', 'the magic reads VGCL in a capture');
  t.same([...m.subarray(4, 16)], [1, MSG_SNAPSHOT_REQUEST, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0], 'version, type, body length (BE), sender, reserved zero');
  t.equal(m.subarray(16, 24).toString('hex'), '3ff0000000000000', 'incarnation: f64 big-endian (1.0)');
  t.equal(m.subarray(24, 32).toString('hex'), '4000000000000000', 'seq 2.0');
  t.equal(m.subarray(32, 40).toString('hex'), '4008000000000000', 'sentAt 3.0');
  const { createHmac } = await import('node:crypto');
  t.same(m.subarray(40), createHmac('sha256', KEY).update(m.subarray(0, 40)).digest(), 'HMAC-SHA256 over header and body, last');
});

t.test('round trip of every type', async (t) => {
  for (const s of samples()) {
    const buf = encode(s.type, env({ seq: 9 }), s.body, KEY);
    t.ok(buf.length <= MAX_DATAGRAM);
    const d = decode(buf, KEY, 3, 0);
    if (!d.ok) { t.fail(`${s.name}: ${d.reason}`); continue; }
    t.same(d.env, env({ seq: 9 }), `${s.name}: envelope`);
    t.equal(d.type, s.type);
  }
  const hb = decode(encode(MSG_HEARTBEAT, env(), heartbeatBody(HB), KEY), KEY, 3, 0);
  t.same(hb.ok && hb.heartbeat, { ...HB, ownedIps: [0x0a000064, 0x0a000101], downIps: [0x0a000116] }, 'heartbeat with its addresses parsed');
  const fl = decode(encode(MSG_FLOWS, env(), flowsBody(records(10), 3 * FLOW_WIRE_BYTES, 5, true), KEY), KEY, 3, 0);
  t.ok(fl.ok && fl.flows);
  if (fl.ok && fl.flows) {
    t.equal(fl.flows.count, 5);
    t.equal(fl.flows.snapshot, true);
    t.same(Buffer.from(fl.flows.records), Buffer.from(records(10).subarray(3 * 24, 8 * 24)), 'the records byte for byte (little-endian, as in the rings)');
  }
  const end = decode(encode(MSG_SNAPSHOT_END, env(), snapshotEndBody(123456), KEY), KEY, 3, 0);
  t.equal(end.ok && end.snapshotCount, 123456);
});

t.test('a full MSG_FLOWS datagram fits; more records are refused at encode', async (t) => {
  const buf = encode(MSG_FLOWS, env(), flowsBody(records(MAX_FLOWS_PER_DATAGRAM), 0, MAX_FLOWS_PER_DATAGRAM, false), KEY);
  t.equal(buf.length, HEADER_BYTES + 4 + 55 * 24 + HMAC_BYTES);
  t.ok(buf.length <= MAX_DATAGRAM);
  t.throws(() => flowsBody(records(56), 0, 56, false), { code: 'ECLUSTER_MESSAGE' });
  t.throws(() => flowsBody(records(1), 0, 0, false), { code: 'ECLUSTER_MESSAGE' });
  t.throws(() => encode(MSG_HEARTBEAT, env(), Buffer.alloc(MAX_BODY + 1), KEY), { code: 'ECLUSTER_MESSAGE' });
  t.throws(() => encode(MSG_HEARTBEAT, env({ seq: 0 }), Buffer.alloc(2), KEY), { code: 'ECLUSTER_MESSAGE' });
  // The config's bound (CLUSTER_LIMITS.vips) fits one heartbeat in the worst case: every address
  // and figure at its longest, with room for backends seen down.
  const worst: Heartbeat = {
    load: { flows: 16_777_216, capacity: 16_777_216, pps: 123456789.123456, cpu: 12.345678901 },
    owned: Array.from({ length: CLUSTER_LIMITS.vips }, (_, i) => `255.255.255.${100 + i}`), synced: false,
    history: { startedAt: NOW, takeovers: 999_999, peerRestartsSeen: 999_999 },
    down: Array.from({ length: 16 }, (_, i) => `255.255.254.${100 + i}`), sent: Number.MAX_SAFE_INTEGER,
  };
  t.ok(heartbeatBody(worst).length <= MAX_BODY, `${CLUSTER_LIMITS.vips} owned VIPs and 16 down backends fit one datagram`);
  const many = { ...HB, owned: Array.from({ length: 100 }, (_, i) => `10.100.100.${i}`) };
  let err: unknown = null;
  try { heartbeatBody(many); } catch (e) { err = e; }
  t.ok(isVipgateError(err) && /100 owned VIPs/.test(err.message), 'a heartbeat too big for a datagram says why');
});

t.test('forged: every single bit flipped anywhere, or the wrong key, is refused', async (t) => {
  for (const s of samples()) {
    const good = encode(s.type, env(), s.body, KEY);
    t.equal(reason(decode(good, OTHER_KEY, 3, 0)), 'bad_hmac', `${s.name}: wrong key`);
    const reasons = new Set<string>();
    let accepted = 0;
    for (let bit = 0; bit < good.length * 8; bit++) {
      const b = Buffer.from(good);
      b[bit >> 3]! ^= 1 << (bit & 7);
      const d = decode(b, KEY, 256, 0);
      if (d.ok) accepted++;
      else reasons.add(d.reason);
    }
    t.equal(accepted, 0, `${s.name}: none of ${good.length * 8} one-bit flips accepted`);
    t.ok(reasons.has('bad_hmac'), `${s.name}: flips in header and body fail the HMAC (${[...reasons].join(', ')})`);
  }
});

t.test('truncated at every length, or with bytes after the HMAC', async (t) => {
  for (const s of samples()) {
    const good = encode(s.type, env(), s.body, KEY);
    const bad: string[] = [];
    for (let n = 0; n < good.length; n++) {
      const r = reason(decode(good.subarray(0, n), KEY, 3, 0));
      if (r !== 'truncated') bad.push(`${n}: ${r}`);
    }
    t.same(bad, [], `${s.name}: every prefix of 0..${good.length - 1} bytes is truncated`);
    t.equal(reason(decode(Buffer.concat([good, Buffer.alloc(1)]), KEY, 3, 0)), 'bad_length', 'a byte after the HMAC');
  }
});

t.test('header checks before the HMAC: magic, version, type, sender', async (t) => {
  const good = encode(MSG_HEARTBEAT, env({ sender: 2 }), heartbeatBody(HB), KEY);
  const mut = (i: number, v: number) => { const b = Buffer.from(good); b[i] = v; return b; };
  t.equal(reason(decode(mut(0, 0x57), KEY, 3, 0)), 'bad_magic');
  t.equal(reason(decode(mut(4, 2), KEY, 3, 0)), 'bad_version');
  t.equal(reason(decode(mut(5, 0), KEY, 3, 0)), 'bad_type');
  t.equal(reason(decode(mut(5, 5), KEY, 3, 0)), 'bad_type');
  t.equal(reason(decode(good, KEY, 2, 0)), 'unknown_sender', 'sender rank 2 of a 2-node cluster');
  t.equal(reason(decode(good, KEY, 3, 2)), 'from_self', 'our own rank (a loop, or a copy of our key elsewhere)');
  t.equal(reason(decode(good, KEY, 3, 1)), 'accepted');
  t.equal(reason(decode(mut(12, 1), KEY, 3, 0)), 'bad_hmac', 'reserved bytes are covered by the HMAC');
});

t.test('authenticated but malformed bodies', async (t) => {
  const sign = (type: MsgType, body: Buffer, e: Envelope = env()) => reason(decode(encode(type, e, body, KEY), KEY, 3, 0));
  t.equal(sign(MSG_SNAPSHOT_REQUEST, Buffer.alloc(1)), 'malformed', 'snapshot request with a body');
  t.equal(sign(MSG_SNAPSHOT_END, Buffer.alloc(4)), 'malformed', 'snapshot end of 4 bytes');
  t.equal(sign(MSG_SNAPSHOT_END, snapshotEndBody(-1)), 'malformed');
  t.equal(sign(MSG_SNAPSHOT_END, snapshotEndBody(1.5)), 'malformed');
  const fb = flowsBody(records(3), 0, 3, false);
  const withCount = (n: number) => { const b = Buffer.from(fb); b.writeUInt16BE(n, 0); return b; };
  t.equal(sign(MSG_FLOWS, withCount(2)), 'malformed', 'count says 2, body holds 3');
  t.equal(sign(MSG_FLOWS, withCount(0)), 'malformed');
  t.equal(sign(MSG_FLOWS, Buffer.alloc(2)), 'malformed', 'shorter than its count and flags');
  const flag = Buffer.from(fb); flag.writeUInt16BE(2, 2);
  t.equal(sign(MSG_FLOWS, flag), 'malformed', 'an unknown flag bit');
  const op = Buffer.from(fb); op[4 + 24] = 9;
  t.equal(sign(MSG_FLOWS, op), 'malformed', 'an unknown op in the second record');
  const st = Buffer.from(fb); st[4 + 1] = 0;
  t.equal(sign(MSG_FLOWS, st), 'malformed', 'flow state empty');
  for (const [name, e] of [['seq 0', env({ seq: 0 })], ['seq 1.5', env({ seq: 1.5 })], ['incarnation 0', env({ incarnation: 0 })], ['sentAt NaN', env({ sentAt: NaN })]] as const) {
    // encode refuses these: write the header by hand, then sign.
    const b = encode(MSG_SNAPSHOT_REQUEST, env(), Buffer.alloc(0), KEY);
    b.writeDoubleBE(e.incarnation, 16); b.writeDoubleBE(e.seq, 24); b.writeDoubleBE(e.sentAt, 32);
    const { createHmac } = await import('node:crypto');
    createHmac('sha256', KEY).update(b.subarray(0, 40)).digest().copy(b, 40);
    t.equal(reason(decode(b, KEY, 3, 0)), 'malformed', name);
  }
});

t.test('heartbeat JSON: each field wrong in turn is malformed', async (t) => {
  const base = JSON.parse(JSON.stringify(HB));
  const cases: Array<[string, (h: any) => void]> = [
    ['load missing', (h) => delete h.load], ['load a list', (h) => (h.load = [])],
    ['load.flows negative', (h) => (h.load.flows = -1)], ['load.flows fractional', (h) => (h.load.flows = 1.5)],
    ['load.flows a string', (h) => (h.load.flows = '5')], ['load.capacity missing', (h) => delete h.load.capacity],
    ['load.pps negative', (h) => (h.load.pps = -3)], ['load.pps null', (h) => (h.load.pps = null)],
    ['load.cpu huge', (h) => (h.load.cpu = 1e9)], ['load.cpu missing', (h) => delete h.load.cpu],
    ['owned not a list', (h) => (h.owned = '10.0.0.1')], ['owned with a bad address', (h) => (h.owned = ['10.0.0.256'])],
    ['owned with a number', (h) => (h.owned = [167772260])], ['synced a string', (h) => (h.synced = 'yes')],
    ['synced missing', (h) => delete h.synced], ['history missing', (h) => delete h.history],
    ['history.startedAt negative', (h) => (h.history.startedAt = -1)], ['history.takeovers fractional', (h) => (h.history.takeovers = 0.5)],
    ['history.peerRestartsSeen missing', (h) => delete h.history.peerRestartsSeen],
    ['down missing', (h) => delete h.down], ['down with a name', (h) => (h.down = ['web1'])],
    ['sent negative', (h) => (h.sent = -1)], ['sent missing', (h) => delete h.sent],
  ];
  for (const [name, f] of cases) {
    const h = JSON.parse(JSON.stringify(base));
    f(h);
    const d = decode(encode(MSG_HEARTBEAT, env(), Buffer.from(JSON.stringify(h)), KEY), KEY, 3, 0);
    t.equal(reason(d), 'malformed', name);
  }
  for (const [name, body] of [['not JSON', '{load:'], ['a list', '[]'], ['null', 'null'], ['empty', '']] as const) {
    t.equal(reason(decode(encode(MSG_HEARTBEAT, env(), Buffer.from(body), KEY), KEY, 3, 0)), 'malformed', name);
  }
  t.equal(reason(decode(encode(MSG_HEARTBEAT, env(), Buffer.from([0x7b, 0xff, 0x7d]), KEY), KEY, 3, 0)), 'malformed', 'not UTF-8');
  const newer = { ...base, future: { x: 1 } };
  t.ok(parseHeartbeat(Buffer.from(JSON.stringify(newer))), 'an unknown key (a newer peer) is ignored');
});

t.test('replay guard: repeats, the window, reordering, incarnations, clock skew', async (t) => {
  const g = new ReplayGuard();
  t.equal(g.view(1), null);
  t.equal(g.check(env({ seq: 1 }), NOW), null, 'first message');
  t.equal(g.check(env({ seq: 1 }), NOW), 'replayed', 'the same seq again');
  t.equal(g.check(env({ seq: 5 }), NOW), null, 'a gap (2..4 lost or late)');
  t.equal(g.check(env({ seq: 3 }), NOW), null, 'reordered inside the window: accepted');
  t.equal(g.check(env({ seq: 3 }), NOW), 'replayed', '... once');
  t.equal(g.check(env({ seq: 100 }), NOW), null);
  t.equal(g.check(env({ seq: 100 - REPLAY_WINDOW }), NOW), 'replayed', 'just outside the 64-message window');
  t.equal(g.check(env({ seq: 100 - REPLAY_WINDOW + 1 }), NOW), null, 'the oldest seq inside it');
  t.equal(g.check(env({ seq: 37 }), NOW), 'replayed', 'seq 37 shares a slot with 101 - 64: out of the window anyway');
  t.same(g.view(1), { incarnation: NOW - 60_000, highestSeq: 100, skewMs: 0, refusedSkewMs: null });

  t.equal(g.check(env({ incarnation: NOW - 120_000, seq: 500 }), NOW), 'old_incarnation', 'an older incarnation, even with a new seq');
  t.equal(g.check(env({ incarnation: NOW - 1000, seq: 1 }), NOW), null, 'a new incarnation (the peer restarted) starts at seq 1');
  t.equal(g.check(env({ seq: 101 }), NOW), 'old_incarnation', 'the previous incarnation is now old');
  t.equal(g.check(env({ incarnation: NOW - 1000, seq: 1 }), NOW), 'replayed');

  const before = g.view(1);
  t.equal(g.check(env({ incarnation: NOW - 1000, seq: 2, sentAt: NOW - MAX_CLOCK_SKEW_MS - 1 }), NOW), 'clock_skew', 'sender 10 s behind');
  t.equal(g.check(env({ incarnation: NOW - 1000, seq: 2, sentAt: NOW + MAX_CLOCK_SKEW_MS + 1 }), NOW), 'clock_skew', 'sender 10 s ahead');
  t.same(g.view(1), { ...before!, refusedSkewMs: -MAX_CLOCK_SKEW_MS - 1 }, 'refused: no state changed, the skew reported');
  t.equal(g.check(env({ incarnation: NOW - 1000, seq: 2, sentAt: NOW + MAX_CLOCK_SKEW_MS }), NOW), null, 'exactly 10 s: accepted, seq 2 was never consumed');
  t.same(g.view(1), { incarnation: NOW - 1000, highestSeq: 2, skewMs: -MAX_CLOCK_SKEW_MS, refusedSkewMs: null });
  t.equal(g.check(env({ incarnation: NOW + 1e6, seq: 1, sentAt: NOW - 20_000 }), NOW), 'clock_skew', 'a skewed new incarnation does not replace the current one');
  t.equal(g.view(1)!.incarnation, NOW - 1000);
  t.equal(g.check(env({ sender: 2, seq: 7 }), NOW), null, 'senders have separate windows');
  t.equal(g.view(2)!.highestSeq, 7);
});

t.test('fuzz: random bytes and mutations never throw and are never accepted', async (t) => {
  const rnd = mulberry32(0x11c1);
  const int = (n: number) => Math.floor(rnd() * n);
  let thrown = 0, acceptedRandom = 0, acceptedMutation = 0, mutations = 0;
  const tryDecode = (b: Uint8Array): Decoded | null => {
    try { return decode(b, KEY, 1 + int(20), int(4)); } catch { thrown++; return null; }
  };
  for (let i = 0; i < 20_000; i++) {
    const b = Buffer.alloc(int(1600));
    for (let j = 0; j < b.length; j++) b[j] = int(256);
    if (rnd() < 0.5 && b.length >= 8) { b.writeUInt32BE(0x5647434c, 0); b[4] = 1; b[5] = 1 + int(4); b.writeUInt16BE(Math.max(0, b.length - 72), 6); }
    if (tryDecode(b)?.ok) acceptedRandom++;
  }
  const goods = samples().map((s) => encode(s.type, env(), s.body, KEY));
  for (let i = 0; i < 20_000; i++) {
    const good = goods[int(goods.length)]!;
    let b = Buffer.from(good);
    const kind = int(4);
    if (kind === 0) { for (let k = 1 + int(4); k > 0; k--) b[int(b.length)]! ^= 1 + int(255); }
    else if (kind === 1) b = b.subarray(0, int(b.length));
    else if (kind === 2) b = Buffer.concat([b, Buffer.from([int(256)])]);
    else { const at = int(b.length); b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]); }
    if (b.equals(good)) continue;
    mutations++;
    const d = tryDecode(b);
    if (d?.ok) acceptedMutation++;
  }
  t.equal(thrown, 0, 'decode never throws');
  t.equal(acceptedRandom, 0, 'no random datagram accepted');
  t.equal(acceptedMutation, 0, `none of ${mutations} mutations of valid messages accepted`);
  t.equal(REJECT_REASONS.length, 12);
});
