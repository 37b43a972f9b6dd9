// SPDX-License-Identifier: MIT

// The dashboard's only way into the hub: the emulator's own REST and
// /emulator routes, each request carrying a SAS token signed here, in the
// browser, with the service connection string's key (WebCrypto HMAC-SHA256).

// The REST api-version the official service SDKs send.
export const API_VERSION = '2021-04-12';

// How long a token lives; a new one is signed when less than tokenMargin is
// left, so a request never races its expiry.
const tokenLifetime = 3600;
const tokenMargin = 300;

// parseConnectionString splits "Name=value;..." at the first '=' of each
// item (keys end in '=' padding) and checks what a service string needs.
export function parseConnectionString(s) {
  const out = {};
  for (const item of String(s).trim().split(';')) {
    if (item === '') continue;
    const i = item.indexOf('=');
    if (i <= 0) throw new Error(`"${item}" is not a Name=value item`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  for (const name of ['HostName', 'SharedAccessKeyName', 'SharedAccessKey']) {
    if (!out[name]) {
      throw new Error(`the connection string has no ${name}: paste a service (policy) connection string`);
    }
  }
  return out;
}

// encodeStrict escapes like the SDKs' encodeUriComponentStrict: JavaScript's
// encodeURIComponent plus !'()*, with lower-case hex for those five, which
// is what internal/sas mints too.
export function encodeStrict(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16));
}

// stripPort drops ":port" from a host; SAS resources never carry one.
export function stripPort(host) {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end >= 0 ? host.slice(0, end + 1) : host;
  }
  const i = host.lastIndexOf(':');
  if (i < 0 || host.indexOf(':') !== i || !/^\d+$/.test(host.slice(i + 1))) return host;
  return host.slice(0, i);
}

function decodeKey(key) {
  try {
    return Uint8Array.from(atob(key), (c) => c.charCodeAt(0));
  } catch {
    throw new Error('the SharedAccessKey is not valid base64');
  }
}

// sasToken signs resource (unencoded) until expiry (Unix seconds): the
// string to sign is the encoded resource, a newline and the expiry.
export async function sasToken(resource, keyName, key, expiry) {
  if (!globalThis.crypto || !crypto.subtle) {
    throw new Error('this page cannot sign tokens: the browser offers WebCrypto only to secure pages (HTTPS with a certificate it accepts; trust the emulator\'s ca.pem)');
  }
  const k = await crypto.subtle.importKey('raw', decodeKey(key), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const sr = encodeStrict(resource);
  const se = String(expiry);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', k, new TextEncoder().encode(sr + '\n' + se)));
  let sig = '';
  for (const b of mac) sig += String.fromCharCode(b);
  let t = `SharedAccessSignature sr=${sr}&sig=${encodeStrict(btoa(sig))}`;
  if (keyName) t += `&skn=${encodeStrict(keyName)}`;
  return `${t}&se=${se}`;
}

// HubError is a non-2xx answer, with the hub's error code and message.
export class HubError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  toString() {
    return `${this.status}${this.code ? ' ' + this.code : ''}: ${this.message}`;
  }

  // from reads the two bodies the hub writes: {"Message":"ErrorCode:Name;text",
  // ...} and, for methods and some twin errors, {"Message":"{\"errorCode\":
  // 404103,\"message\":...}"}; the name also comes in iothub-errorcode.
  static from(res, body, text) {
    let code = res.headers.get('iothub-errorcode') || '';
    let message = text || res.statusText || 'no message';
    const m = body && typeof body.Message === 'string' ? body.Message : null;
    if (m !== null) {
      message = m;
      if (m.startsWith('{')) {
        try {
          const inner = JSON.parse(m);
          if (inner.message) message = inner.message;
          if (!code && inner.errorCode) code = String(inner.errorCode);
        } catch { /* keep the raw text */ }
      } else {
        const parts = /^ErrorCode:([^;]*);([\s\S]*)$/.exec(m);
        if (parts) {
          code = code || parts[1];
          message = parts[2];
        }
      }
    }
    return new HubError(res.status, code, message);
  }
}

// route is a template tag that escapes each interpolated id (ids may hold
// '#', '?', '%' and '/'): route`/devices/${id}/modules/${mid}`.
export function route(strings, ...ids) {
  return strings.reduce((out, s, i) => out + encodeURIComponent(ids[i - 1]) + s);
}

// Hub calls the emulator on this page's origin with one connection string.
export class Hub {
  constructor(connectionString) {
    this.connectionString = String(connectionString).trim();
    this.cs = parseConnectionString(this.connectionString);
    decodeKey(this.cs.SharedAccessKey);
    this.policy = this.cs.SharedAccessKeyName;
    this.hostName = stripPort(this.cs.HostName);
    this.token = null;
    this.tokenExpiry = 0;
  }

  async authorization() {
    const now = Math.floor(Date.now() / 1000);
    if (!this.token || this.tokenExpiry - now < tokenMargin) {
      this.tokenExpiry = now + tokenLifetime;
      this.token = await sasToken(this.hostName, this.policy, this.cs.SharedAccessKey, this.tokenExpiry);
    }
    return this.token;
  }

  // request sends one call. body: a string is sent as is (so the hub judges
  // what the user typed), anything else as JSON. Resolves to {status,
  // headers, json, text}; rejects with a HubError for a non-2xx answer.
  async request(method, target, { body, headers = {}, query = {}, signal } = {}) {
    const url = new URL(target, location.origin);
    url.searchParams.set('api-version', API_VERSION);
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    }
    const h = { Authorization: await this.authorization(), ...headers };
    let payload;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) {
        h['Content-Type'] = 'application/json; charset=utf-8';
      }
    }
    const res = await fetch(url, { method, headers: h, body: payload, signal, cache: 'no-store' });
    const text = await res.text();
    let json = null;
    if (text) {
      try { json = JSON.parse(text); } catch { /* not JSON */ }
    }
    if (!res.ok) throw HubError.from(res, json, text);
    return { status: res.status, headers: res.headers, json, text };
  }

  async get(target, opts) { return (await this.request('GET', target, opts)).json; }
}
