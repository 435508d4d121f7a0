// Catching up (issue 11 item 3): a node that starts, or comes back, owns nothing until it holds
// its peers' flows — otherwise a fail-back would move clients to a node that does not know their
// connections. It asks every live peer for a snapshot and is `synced` once each has answered with
// MSG_SNAPSHOT_END and every record it announced has arrived and left the import ring (the worker
// has them in its flow table). A pure machine of (state, event, now) like the health machines:
// the runtime (node.ts) feeds it and carries out the requests it returns.
//
//   - Discovery: peers are heard within a heartbeat or two; nothing is synced before
//     `discoverMs` (dead_after: by then every live peer has been heard, not just the first), and
//     a node that has heard nobody by then is alone and synced.
//   - A peer that dies while we wait for it is not waited for.
//   - A snapshot that does not finish within `snapshotTimeoutMs`, or arrives short (a lost
//     datagram: UDP), is asked for again, up to `attempts` times; after that the node is synced
//     anyway and says what it missed (a flow whose record never came is still steered by the
//     deterministic pick: see the adopt path in dataplane.ts).
//   - Once synced, a node stays synced: later changes come through the journal.

export interface JoinOptions {
  discoverMs: number;
  snapshotTimeoutMs: number;
  attempts: number;
}

export interface JoinPeer {
  /** none: not asked; asked: request sent at askedAt; done: END received and records counted. */
  phase: 'none' | 'asked' | 'done' | 'gave_up';
  askedAt: number;
  attempts: number;
  /** Records announced by its END, and received since the last request. */
  expected: number;
  received: number;
}

export interface JoinState {
  startedAt: number;
  synced: boolean;
  syncedAt: number | null;
  /** Why it became synced: alone, all peers answered, or gave up on some (named). */
  how: string | null;
  peers: JoinPeer[];
}

export type JoinEvent =
  | { t: 'alive'; peer: number }
  | { t: 'dead'; peer: number }
  | { t: 'records'; peer: number; count: number }
  | { t: 'end'; peer: number; count: number }
  /** `alive`: the peers alive now; `importPending`: records still in the import ring. */
  | { t: 'tick'; alive: readonly number[]; importPending: number };

export interface JoinResult { state: JoinState; request: number[]; became: 'synced' | null }

export function initialJoin(nPeers: number, now: number): JoinState {
  return {
    startedAt: now, synced: false, syncedAt: null, how: null,
    peers: Array.from({ length: nPeers }, () => ({ phase: 'none' as const, askedAt: 0, attempts: 0, expected: 0, received: 0 })),
  };
}

export function stepJoin(s0: JoinState, e: JoinEvent, now: number, o: JoinOptions): JoinResult {
  if (s0.synced) return { state: s0, request: [], became: null };
  const s: JoinState = { ...s0, peers: s0.peers.map((p) => ({ ...p })) };
  const request: number[] = [];
  const ask = (i: number) => {
    const p = s.peers[i]!;
    p.phase = 'asked'; p.askedAt = now; p.attempts++; p.received = 0; p.expected = 0;
    request.push(i);
  };
  switch (e.t) {
    case 'alive':
      if (s.peers[e.peer]!.phase === 'none') ask(e.peer);
      break;
    case 'dead': {
      const p = s.peers[e.peer]!;
      if (p.phase === 'asked') { p.phase = 'none'; p.attempts = 0; }
      break;
    }
    case 'records':
      if (s.peers[e.peer]!.phase === 'asked') s.peers[e.peer]!.received += e.count;
      break;
    case 'end': {
      const p = s.peers[e.peer]!;
      if (p.phase !== 'asked') break;
      p.expected = e.count;
      if (p.received >= e.count) p.phase = 'done';
      else if (p.attempts < o.attempts) ask(e.peer);
      else p.phase = 'gave_up';
      break;
    }
    case 'tick': {
      for (const i of e.alive) {
        const p = s.peers[i]!;
        if (p.phase === 'none') ask(i);
        else if (p.phase === 'asked' && now - p.askedAt >= o.snapshotTimeoutMs) {
          if (p.attempts < o.attempts) ask(i); else p.phase = 'gave_up';
        }
      }
      const waiting = e.alive.filter((i) => s.peers[i]!.phase === 'asked' || s.peers[i]!.phase === 'none');
      if (waiting.length || request.length) break;
      // Every live peer is heard within discoverMs: until then one more may still show up.
      if (now - s.startedAt < o.discoverMs) break;
      if (e.importPending > 0) break;
      s.synced = true;
      s.syncedAt = now;
      const gaveUp = s.peers.map((p, i) => (p.phase === 'gave_up' ? i : -1)).filter((i) => i >= 0);
      s.how = e.alive.length === 0 ? 'alone' : gaveUp.length ? `gave_up:${gaveUp.join(',')}` : 'snapshots';
      return { state: s, request, became: 'synced' };
    }
  }
  return { state: s, request, became: null };
}
