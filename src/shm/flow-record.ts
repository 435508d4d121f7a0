// The 24-byte flow record of issue 11 (cluster replication): the same bytes in the journal ring
// (the packet worker writes a flow's changes), in a MSG_FLOWS datagram to the peers
// (src/control/cluster/wire.ts) and in the import ring (a peer's flows, upserted by the worker).
// One format end to end, so the supervisor moves records without parsing them.
//
//   0 u8 op (REPL_*)   1 u8 flow state (FS_* of src/dataplane/flows.ts)   2..7 client MAC
//   8 i32 client IP    12 i32 VIP    16 i32 ports (client port << 16 | VIP port)
//   20 i32 backend IPv4: the flow's backend by address, never the node-local slot
// Little-endian; addresses signed 32-bit like everywhere on the packet path.

export const FLOW_WIRE_BYTES = 24;

export const REPL_NEW = 1;
export const REPL_ESTABLISHED = 2;
export const REPL_CLOSED = 3;
export const REPL_EXPIRED = 4;
/** The flow is still in use here: a peer's copy must not expire (sent by the sweep). */
export const REPL_REFRESH = 5;
export const REPL_OP_NAMES = ['', 'new', 'established', 'closed', 'expired', 'refresh'] as const;

export const R_OP = 0, R_STATE = 1, R_MAC = 2, R_CLI = 8, R_VIP = 12, R_PORTS = 16, R_BACKIP = 20;

/**
 * Write one record at byte `at` of `d` (`w`: an Int32Array over the same bytes, `at` 4-aligned):
 * the one place that lays a record out, for the journal (ring.ts, on the packet path:
 * allocation-free) and the supervisor's snapshots. Host byte order: the format is little-endian,
 * and ring.ts refuses to load on a host that is not.
 */
export function putFlowRecord(d: Uint8Array, w: Int32Array, at: number, op: number, state: number, mac: Uint8Array, macAt: number,
  cli: number, vip: number, ports: number, backIp: number): void {
  d[at + R_OP] = op; d[at + R_STATE] = state;
  d[at + R_MAC] = mac[macAt]!; d[at + R_MAC + 1] = mac[macAt + 1]!; d[at + R_MAC + 2] = mac[macAt + 2]!;
  d[at + R_MAC + 3] = mac[macAt + 3]!; d[at + R_MAC + 4] = mac[macAt + 4]!; d[at + R_MAC + 5] = mac[macAt + 5]!;
  const wi = at >> 2;
  w[wi + (R_CLI >> 2)] = cli; w[wi + (R_VIP >> 2)] = vip; w[wi + (R_PORTS >> 2)] = ports; w[wi + (R_BACKIP >> 2)] = backIp;
}
