// One raw HTTP request for the API tests: no agent, the body sent as given, the answer read
// whole and parsed when it says it is JSON.

import * as http from 'node:http';

export interface Res {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Parsed when the response is application/json. */
  json: any;
}

export interface ReqOpts {
  body?: string | Buffer;
  headers?: Record<string, string | number>;
  agent?: http.Agent;
}

/** `address` is "host:port" or "[v6]:port"; content-length is added for a body unless given. */
export function request(address: string, method: string, path: string, o: ReqOpts = {}): Promise<Res> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  const headers: Record<string, string | number> = { ...o.headers };
  if (o.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-length')) {
    headers['content-length'] = Buffer.byteLength(o.body);
  }
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request({ host, port, method, path, headers, agent: o.agent ?? false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        if (method !== 'HEAD' && String(res.headers['content-type']).startsWith('application/json')) {
          try { json = JSON.parse(text); } catch { reject(new Error(`response is not JSON: ${text.slice(0, 200)}`)); return; }
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json });
      });
    });
    // A 413 closes the connection while a large body is still being written: EPIPE/ECONNRESET
    // on the request after the response arrived is expected; before it, it is a failure.
    req.on('error', (e) => { if (!answered) reject(e); });
    req.end(o.body);
  });
}
