// SPDX-License-Identifier: MIT

// Start-up, sign-in and the hash router. A page is a function (ctx, params)
// that returns an element; ctx stops its timers and aborts its requests
// when the user navigates away.

import { Hub, route } from './hub.js';
import { h, replace, message, field } from './dom.js';
import { devicesPage } from './devices.js';
import { identityPage } from './identity.js';
import { telemetryPage } from './telemetry.js';
import { methodsPage } from './methods.js';
import { queryPage } from './query.js';
import { statsPage } from './stats.js';

const storeKey = 'iothub.connectionString';
const signedOutKey = 'iothub.signedOut';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const signout = document.getElementById('signout');
const banner = document.getElementById('banner');

let config = {};
let hub = null;
let current = null;

// PageCtx is what a page gets: the hub, the server's config, and timers
// and requests tied to the page's life.
class PageCtx {
  constructor() {
    this.hub = hub;
    this.config = config;
    this.ctrl = new AbortController();
    this.timers = new Set();
  }

  get signal() { return this.ctrl.signal; }
  get closed() { return this.ctrl.signal.aborted; }

  request(method, target, opts = {}) {
    return this.hub.request(method, target, { signal: this.signal, ...opts });
  }

  async get(target, opts = {}) {
    return (await this.request('GET', target, opts)).json;
  }

  // every runs fn now and then ms after each run ends, until the page
  // closes; a failure shows in the banner and the loop goes on.
  every(ms, fn) {
    const loop = async () => {
      if (this.closed) return;
      try {
        await fn();
        clearBanner('poll');
      } catch (err) {
        if (this.closed || err.name === 'AbortError') return;
        showBanner(`Live update failed: ${err}`, 'poll');
      }
      if (!this.closed) {
        const t = setTimeout(() => { this.timers.delete(t); loop(); }, ms);
        this.timers.add(t);
      }
    };
    loop();
  }

  close() {
    this.ctrl.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

let bannerKind = null;
function showBanner(text, kind) {
  bannerKind = kind;
  banner.hidden = false;
  banner.textContent = text;
}
function clearBanner(kind) {
  if (bannerKind === kind) {
    banner.hidden = true;
    bannerKind = null;
  }
}

// routes: hash pattern -> [page name, nav entry, page]. Ids in the hash are
// URI-encoded.
const routes = [
  [/^#\/?$|^#\/devices\/?$|^$/, 'devices', () => devicesPage],
  [/^#\/devices\/([^/?]+)(?:\/modules\/([^/?]+))?(?:\?tab=(\w+))?$/, 'identity',
    (m) => (ctx) => identityPage(ctx, { deviceId: decodeURIComponent(m[1]), moduleId: m[2] ? decodeURIComponent(m[2]) : '', tab: m[3] || 'identity' })],
  [/^#\/telemetry(?:\?device=([^&]*))?$/, 'telemetry', (m) => (ctx) => telemetryPage(ctx, { deviceId: m[1] ? decodeURIComponent(m[1]) : '' })],
  [/^#\/methods\/?$/, 'methods', () => methodsPage],
  [/^#\/query\/?$/, 'query', () => queryPage],
  [/^#\/stats\/?$/, 'stats', () => statsPage],
];

function render() {
  if (!hub) return;
  if (current) current.close();
  clearBanner('poll');
  const hash = location.hash || '#/devices';
  let page = null;
  let name = '';
  for (const [re, n, make] of routes) {
    const m = re.exec(hash);
    if (m) {
      page = make(m);
      name = n;
      break;
    }
  }
  const section = name === 'identity' ? 'devices' : name;
  for (const a of nav.querySelectorAll('a')) a.classList.toggle('active', a.dataset.page === section);
  current = new PageCtx();
  if (!page) {
    replace(main, h('p', {}, 'No such page. ', h('a', { href: '#/devices' }, 'Devices')));
    return;
  }
  replace(main, page(current));
  // Set after the page is built: tests and scripts wait on these.
  document.body.dataset.page = name;
  document.body.dataset.hash = location.hash;
}

// signIn proves the connection string before keeping it: the control API
// needs every right, i.e. an owner-equivalent policy, as the dashboard does.
async function signIn(cs) {
  const candidate = new Hub(cs);
  await candidate.request('GET', route`/emulator/messages/head`);
  hub = candidate;
  sessionStorage.setItem(storeKey, candidate.connectionString);
  sessionStorage.removeItem(signedOutKey);
  nav.hidden = false;
  signout.hidden = false;
  who.textContent = `${candidate.policy}@${candidate.hostName}`;
  render();
}

function showLogin(err) {
  hub = null;
  nav.hidden = true;
  signout.hidden = true;
  who.textContent = '';
  document.body.dataset.page = 'login';
  const msg = message();
  const input = h('textarea', { name: 'connectionString', rows: 3, spellcheck: 'false', autocomplete: 'off',
    placeholder: 'HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=…' });
  const form = h('form', { class: 'card login', id: 'login', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.clear();
    try {
      await signIn(input.value);
    } catch (e) {
      msg.error(e);
    }
  } },
  h('h2', {}, 'Sign in'),
  h('p', {}, 'Paste the service connection string of an owner-equivalent policy (all four rights, like ',
    h('code', {}, 'iothubowner'), '). The emulator prints it at start. It is kept in this browser tab only (sessionStorage) and used here to sign SAS tokens; it is never sent anywhere.'),
  config.local ? null : h('p', { class: 'muted' }, 'This browser is not on the emulator\'s machine, so the emulator does not offer its connection string.'),
  field('Connection string', input),
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')),
  msg.el);
  replace(main, form);
  if (err) msg.error(err);
}

signout.addEventListener('click', () => {
  sessionStorage.removeItem(storeKey);
  // Do not sign straight back in with the loopback offer.
  sessionStorage.setItem(signedOutKey, '1');
  if (current) current.close();
  current = null;
  showLogin();
});

window.addEventListener('hashchange', render);

async function start() {
  try {
    const res = await fetch('config.json', { cache: 'no-store' });
    config = await res.json();
  } catch (e) {
    config = {};
  }
  let cs = sessionStorage.getItem(storeKey);
  if (!cs && config.connectionString && !sessionStorage.getItem(signedOutKey)) cs = config.connectionString;
  if (!cs) {
    showLogin();
    return;
  }
  try {
    await signIn(cs);
  } catch (e) {
    sessionStorage.removeItem(storeKey);
    showLogin(e);
  }
}

start();
