// VIPs on a tagged VLAN (issue 12 item 7): vipgate is run on the VLAN interface (eth0.77), as
// on any Linux box: the kernel strips the tag, and vipgate sees, answers and forwards plain
// Ethernet on that interface, with its nftables table and its lock on it. Here, in a lab whose
// bridge carries VLAN 77 tagged between a client, vipgate and a backend (each with an eth0.77
// over its eth0): ARP for the VIP is answered on the VLAN with vipgate's MAC, HTTP through the
// VIP reaches the backend (dsr), the untagged segment gets no answer for that VIP, and the
// table sits on eth0.77. Needs root, network namespaces and the libpcap binding.

import t from 'tap';
import { arpProbe, createLab, httpLoad, type Lab } from '../scenarios/lab/lab.js';
import { canRunVipgateLab, startVipgate, type VipgateProc } from '../scenarios/lab/vipgate.js';

const can = canRunVipgateLab();
const VID = 77;
const IF = `eth0.${VID}`;
const NET = '10.78.0';
const VIP = `${NET}.100`;

function vlanUp(lab: Lab, ns: string, host: number): void {
  const cmds = [
    ['ip', 'link', 'add', 'link', 'eth0', 'name', IF, 'type', 'vlan', 'id', String(VID)],
    ['ip', 'addr', 'add', `${NET}.${host}/24`, 'dev', IF],
    ['ip', 'link', 'set', IF, 'up'],
  ];
  for (const c of cmds) {
    const r = lab.exec(ns, c);
    if (r.code !== 0) throw new Error(`${ns}: ${c.join(' ')}: ${r.stderr.trim()}`);
  }
  // As on the lab's eth0: frames on the wire exactly as sent (no offloaded checksums, no merging).
  lab.exec(ns, ['ethtool', '-K', IF, 'tx', 'off', 'rx', 'off', 'tso', 'off', 'gso', 'off', 'gro', 'off']);
}

t.test(`vipgate on ${IF}: VIPs served on a tagged VLAN`, { skip: can.ok ? false : can.why }, async (t) => {
  let lab: Lab | null = null;
  let vg: VipgateProc | null = null;
  try {
    lab = await createLab({ mode: 'dsr', clients: 1, backends: 1 });
    // `ip link add ... type vlan` loads 8021q on demand; a kernel built without it cannot run this.
    const probe = lab.exec('sw', ['ip', 'link', 'add', 'link', 'br0', 'name', 'vgvlanprobe', 'type', 'vlan', 'id', '2']);
    if (probe.code !== 0) {
      t.plan(0, `this kernel cannot make VLAN interfaces (${probe.stderr.trim()}): it needs 802.1Q support (CONFIG_VLAN_8021Q, modprobe 8021q)`);
      return;
    }
    lab.exec('sw', ['ip', 'link', 'del', 'vgvlanprobe']);
    vlanUp(lab, 'vg', 2);
    vlanUp(lab, 'c1', 11);
    vlanUp(lab, 'b1', 21);
    // dsr: the backend holds the VIP on lo (it already keeps quiet about lo addresses: arp_ignore=1).
    lab.exec('b1', ['ip', 'addr', 'add', `${VIP}/32`, 'dev', 'lo']);
    const yaml = [
      `interface: ${IF}`, 'mode: dsr', `vips: [${VIP}]`,
      `backends: [{ name: ${lab.backendNames[0]}, ip: ${NET}.21 }]`,
      `services: [{ vip: ${VIP}, backend: ${lab.backendNames[0]} }]`,
      'announce: { count: 2, interval: 200ms }', '',
    ].join('\n');
    vg = await startVipgate(lab, yaml);
    t.match(vg.log(), new RegExp(`attached to ${IF.replace('.', '\\.')} \\(mac ${lab.mac.vipgate}`), `attached to ${IF}, with the parent NIC's MAC`);

    const a = await arpProbe(lab, 'c1', VIP, 3, { iface: IF });
    t.same(a.perRequest, [1, 1, 1], `ARP for ${VIP} on VLAN ${VID}: one reply per request`);
    t.same(a.macs, [lab.mac.vipgate], 'with vipgate\'s MAC');
    const untagged = await arpProbe(lab, 'c1', VIP, 2);
    t.equal(untagged.replies, 0, 'the untagged segment gets no answer for the VLAN\'s VIP');

    const load = await httpLoad(lab, 'c1', `http://${VIP}/`, 200, { concurrency: 8, timeoutMs: 5000 });
    t.equal(load.failed, 0, `200 fresh connections over VLAN ${VID} through vipgate, none failed ${load.errors.join(', ')}`);
    t.same(Object.keys(load.byBody), [lab.backendNames[0]], 'all answered by the backend');

    const nft = lab.exec('vg', ['nft', 'list', 'table', 'netdev', 'vipgate_eth0_77']);
    t.equal(nft.code, 0, 'the nftables table is on the VLAN interface');
    t.match(nft.stdout, `device "${IF}"`);
    t.match(vg.log(), /instance lock \/run\/vipgate\/eth0\.77\.netns\d+\.lock/, 'and so is the lock');

    const stop = await vg.stop();
    vg = null;
    t.equal(stop.code, 0);
    t.equal(stop.status!.counters.flows_created, 200, 'vipgate counted the 200 flows');
  } finally {
    if (vg) await vg.stop();
    lab?.teardown();
  }
});
