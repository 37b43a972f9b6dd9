// SPDX-License-Identifier: MIT

// Live telemetry: a long poll on /emulator/messages (since, wait), the
// stream with properties, and a chart of one numeric body field.

import { route } from './hub.js';
import { h, replace, timeText, decodeBody } from './dom.js';
import { render as renderChart, newChart, palette } from './chart.js';
import { identityHash } from './devices.js';

// The page keeps the newest keep messages; it starts with the last backlog
// recorded ones, then follows new ones.
const keep = 1000;
const backlog = 100;
const rowsShown = 200;
const waitSeconds = 20;

// numericPaths lists "a.b.c" paths to the numbers in a JSON value.
export function numericPaths(v, prefix = '', out = []) {
  if (typeof v === 'number' && Number.isFinite(v)) out.push(prefix);
  else if (v && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v)) numericPaths(x, prefix ? `${prefix}.${k}` : k, out);
  }
  return out;
}

function valueAt(v, p) {
  for (const k of p.split('.')) {
    if (!v || typeof v !== 'object') return undefined;
    v = v[k];
  }
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function identityOf(m) {
  return m.moduleId ? `${m.deviceId}/${m.moduleId}` : m.deviceId;
}

function systemProps(m) {
  const out = {};
  for (const k of ['messageId', 'correlationId', 'userId', 'contentType', 'contentEncoding', 'creationTimeUtc', 'outputName', 'transport', 'connectionAuthMethod']) {
    if (m[k]) out[k] = m[k];
  }
  return out;
}

function kv(obj, cls) {
  return h('div', { class: `kv ${cls}` }, Object.entries(obj).map(([k, v]) => h('span', { class: 'kvpair' }, h('b', {}, k), '=', String(v))));
}

export function telemetryPage(ctx, { deviceId }) {
  let messages = [];
  let since = 0;
  let paused = false;
  let run = null; // AbortController of the running poll
  const fields = new Set();

  const status = h('span', { class: 'live', dataset: { live: 'starting' } }, 'starting');
  const device = h('select', { name: 'device' }, h('option', { value: '' }, 'All devices'));
  if (deviceId) device.append(h('option', { value: deviceId, selected: true }, deviceId));
  device.value = deviceId;
  const field = h('select', { name: 'field' }, h('option', { value: '' }, '(pick a numeric field)'));
  const pause = h('button', { type: 'button', id: 'pause', onclick: () => (paused ? resume() : stop()) }, 'Pause');
  const clear = h('button', { type: 'button', onclick: () => { messages = []; redraw(); } }, 'Clear');
  const tbody = h('tbody');
  const chart = newChart();
  const legend = h('div', { class: 'legend' });
  const count = h('span', { class: 'muted' });

  function setStatus(kind, text) {
    status.dataset.live = kind;
    status.textContent = text;
  }

  function addFields(list) {
    let added = false;
    for (const m of list) {
      if (m.json === undefined) continue;
      for (const p of numericPaths(m.json)) {
        if (!fields.has(p)) {
          fields.add(p);
          field.append(h('option', { value: p }, p));
          added = true;
        }
      }
    }
    // Chart something at once; the user can pick another field.
    if (added && !field.value && fields.size) field.value = [...fields][0];
  }

  function row(m) {
    const body = m.json !== undefined ? JSON.stringify(m.json) : m.text;
    return h('tr', { dataset: { seq: m.sequenceNumber, device: m.deviceId } },
      h('td', { class: 'num' }, m.sequenceNumber),
      h('td', {}, timeText(m.enqueuedTime)),
      h('td', {}, h('a', { href: identityHash(m.deviceId, m.moduleId || '') }, identityOf(m))),
      h('td', { class: 'props-cell' }, kv(m.properties || {}, 'app'), kv(systemProps(m), 'sys')),
      h('td', { class: 'body-cell code' }, body));
  }

  function redraw() {
    const shown = messages.slice(-rowsShown).reverse();
    replace(tbody, shown.map(row));
    count.textContent = `${messages.length} message${messages.length === 1 ? '' : 's'}`;
    const f = field.value;
    const series = new Map();
    if (f) {
      for (const m of messages) {
        const v = valueAt(m.json, f);
        if (v === undefined) continue;
        const name = identityOf(m);
        if (!series.has(name)) series.set(name, []);
        series.get(name).push({ t: new Date(m.enqueuedTime).getTime(), v, seq: m.sequenceNumber });
      }
    }
    renderChart(chart, series, f ? `No numeric "${f}" values yet` : 'Pick a numeric field to chart');
    replace(legend, [...series.keys()].map((name, i) => h('span', { class: 'swatch' }, h('i', { class: `c${i % palette.length}` }), name)));
  }

  function add(list) {
    const decoded = list.map((m) => ({ ...m, ...decodeBody(m.body) }));
    addFields(decoded);
    messages = messages.concat(decoded).slice(-keep);
    redraw();
  }

  async function poll(ctrl) {
    const signal = AbortSignal.any([ctx.signal, ctrl.signal]);
    while (!signal.aborted) {
      try {
        setStatus('live', 'live');
        const list = await ctx.hub.get(route`/emulator/messages`, { query: { since, wait: waitSeconds, limit: 500, deviceId: device.value }, signal });
        if (signal.aborted) return;
        if (list.length) {
          since = list[list.length - 1].sequenceNumber;
          add(list);
        }
      } catch (e) {
        if (signal.aborted || e.name === 'AbortError') return;
        setStatus('error', `error: ${e}`);
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  }

  function stop() {
    paused = true;
    if (run) run.abort();
    run = null;
    pause.textContent = 'Resume';
    setStatus('paused', 'paused: new messages load on resume');
  }

  function resume() {
    paused = false;
    pause.textContent = 'Pause';
    run = new AbortController();
    poll(run);
  }

  // restart follows the chosen device from the recent backlog on.
  let generation = 0;
  async function restart() {
    const gen = ++generation;
    if (run) run.abort();
    run = null;
    messages = [];
    redraw();
    try {
      const head = (await ctx.get(route`/emulator/messages/head`)).sequenceNumber;
      if (gen !== generation) return; // a newer restart took over
      since = Math.max(0, head - backlog);
    } catch (e) {
      setStatus('error', `error: ${e}`);
      return;
    }
    if (!paused) resume();
  }

  device.addEventListener('change', restart);
  field.addEventListener('change', redraw);

  // The device list for the filter follows the registry.
  ctx.every(5000, async () => {
    const list = await ctx.get(route`/devices`);
    const have = new Set([...device.options].map((o) => o.value));
    for (const d of list.map((x) => x.deviceId).sort()) {
      if (!have.has(d)) device.append(h('option', { value: d }, d));
    }
  });
  restart();

  return h('section', { class: 'page' },
    h('h1', {}, 'Telemetry'),
    h('div', { class: 'card toolbar' }, h('label', { class: 'field inline' }, h('span', { class: 'label' }, 'Device'), device),
      h('label', { class: 'field inline' }, h('span', { class: 'label' }, 'Chart field'), field), pause, clear, status, count),
    h('div', { class: 'card' }, chart, legend),
    h('div', { class: 'card' }, h('h2', {}, 'Stream'), h('p', { class: 'muted' }, `Newest first; the last ${backlog} recorded messages, then live.`),
      h('table', { class: 'list', id: 'stream' }, h('thead', {}, h('tr', {}, ['Seq', 'Enqueued', 'Identity', 'Properties', 'Body'].map((t) => h('th', {}, t)))), tbody)));
}
