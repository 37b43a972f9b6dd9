// SPDX-License-Identifier: MIT

// One device or module: identity and connection strings, modules, twin,
// direct methods, cloud-to-device messages and twin history.

import { route } from './hub.js';
import { h, replace, message, field, badge, ago, jsonBlock, copyButton, confirmButton, tabs, timeText, syncRows, decodeBody, pretty } from './dom.js';
import { identityHash, setStatus } from './devices.js';
import { methodTable, methodRow } from './methods.js';

// deviceConnectionString is what a device SDK needs: the MQTT host (with
// its port when not 8883), the ids and a key, or x509=true.
export function deviceConnectionString(config, deviceId, moduleId, auth, which) {
  let s = `HostName=${config.deviceHost || config.hostName};DeviceId=${deviceId}`;
  if (moduleId) s += `;ModuleId=${moduleId}`;
  if (auth.type === 'sas') return `${s};SharedAccessKey=${auth.symmetricKey[which]}`;
  return `${s};x509=true`;
}

// parses reports whether text is JSON. When it is not, the forms send the
// text alone, so that the hub answers with its own error and nothing
// changes, rather than a message the page made up.
function parses(text) {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

export function identityPage(ctx, { deviceId, moduleId, tab }) {
  const base = moduleId ? route`/devices/${deviceId}/modules/${moduleId}` : route`/devices/${deviceId}`;
  const twinPath = moduleId ? route`/twins/${deviceId}/modules/${moduleId}` : route`/twins/${deviceId}`;
  const title = moduleId ? `${deviceId} / ${moduleId}` : deviceId;
  const head = h('div', { class: 'idhead' });
  const tabList = [['identity', 'Identity', identityHash(deviceId, moduleId, 'identity')],
    ['twin', 'Twin', identityHash(deviceId, moduleId, 'twin')],
    ['methods', 'Direct methods', identityHash(deviceId, moduleId, 'methods')]];
  if (!moduleId) tabList.push(['messages', 'Cloud-to-device', identityHash(deviceId, '', 'messages')]);
  tabList.push(['history', 'Twin history', identityHash(deviceId, moduleId, 'history')]);

  let body;
  if (deviceId === '.' || deviceId === '..' || moduleId === '.' || moduleId === '..') {
    // Browsers resolve "." and ".." segments away before sending a URL.
    body = h('p', { class: 'msg error' }, 'A browser cannot address the ids "." and ".." in a URL; use an SDK or the CLI for this identity.');
  } else {
    const sections = { identity: identitySection, twin: twinSection, methods: methodsSection, messages: c2dSection, history: historySection };
    body = (sections[tab] || identitySection)(ctx, { deviceId, moduleId }, { base, twinPath });
  }

  // The header follows the identity's live state on every tab.
  ctx.every(2000, async () => {
    const d = await ctx.get(base);
    replace(head,
      h('span', { class: 'kind' }, moduleId ? 'Module' : 'Device'),
      h('h1', {}, title),
      badge(d.connectionState),
      d.status ? badge(d.status) : null,
      h('span', { class: 'muted' }, 'last activity ', ago(d.lastActivityTime)),
      h('a', { href: `#/telemetry?device=${encodeURIComponent(deviceId)}`, class: 'small' }, 'Telemetry →'));
    head.dataset.state = d.connectionState;
  });

  return h('section', { class: 'page identity', dataset: { tab } },
    h('p', { class: 'crumbs' }, h('a', { href: '#/devices' }, 'Devices'), ' / ',
      moduleId ? [h('a', { href: identityHash(deviceId) }, deviceId), ' / ', moduleId] : deviceId),
    head, tabs(tabList, tab), body);
}

function identitySection(ctx, { deviceId, moduleId }, { base }) {
  const msg = message();
  const props = h('dl', { class: 'props' });
  const strings = h('div', { class: 'connstrings' });
  const actions = h('div', { class: 'actions' });
  let current = null;
  const shown = { primaryKey: false, secondaryKey: false };

  function renderStrings(d) {
    const rows = [];
    const kinds = d.authentication.type === 'sas' ? [['primaryKey', 'Primary'], ['secondaryKey', 'Secondary']] : [['x509', 'X.509']];
    for (const [which, label] of kinds) {
      const cs = deviceConnectionString(ctx.config, deviceId, moduleId, d.authentication, which);
      const masked = which !== 'x509' && !shown[which];
      const out = h('input', { class: 'connstring', readonly: true, dataset: { which }, value: masked ? cs.replace(/SharedAccessKey=.*$/, 'SharedAccessKey=••••••••') : cs });
      const show = which === 'x509' ? null : h('button', { type: 'button', class: 'small', dataset: { action: 'show', which }, onclick: () => { shown[which] = !shown[which]; renderStrings(current); } }, masked ? 'Show' : 'Hide');
      rows.push(h('div', { class: 'connrow' }, h('span', { class: 'label' }, label), out, show, copyButton(() => cs)));
    }
    replace(strings, rows);
  }

  async function load() {
    const d = await ctx.get(base);
    current = d;
    const entries = [['Id', moduleId ? `${deviceId}/${moduleId}` : deviceId], ['Generation id', d.generationId], ['Etag', d.etag],
      ['Status', d.status], ['Connection', d.connectionState], ['Connection state changed', timeText(d.connectionStateUpdatedTime)],
      ['Last activity', timeText(d.lastActivityTime)], ['Authentication', d.authentication.type], ['C2D messages queued', d.cloudToDeviceMessageCount]];
    if (d.managedBy) entries.push(['Managed by', d.managedBy]);
    if (d.deviceScope) entries.push(['Device scope', d.deviceScope]);
    if (d.authentication.x509Thumbprint && d.authentication.x509Thumbprint.primaryThumbprint) {
      entries.push(['Primary thumbprint', d.authentication.x509Thumbprint.primaryThumbprint]);
    }
    replace(props, entries.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
    renderStrings(d);
    const del = confirmButton(`Delete ${moduleId ? 'module' : 'device'}`, 'Really delete?', async () => {
      msg.clear();
      try {
        await ctx.request('DELETE', base, { headers: { 'If-Match': `"${current.etag}"` } });
        location.hash = moduleId ? identityHash(deviceId) : '#/devices';
      } catch (e) {
        msg.error(e);
      }
    }, 'danger');
    const toggle = moduleId ? null : h('button', { type: 'button', onclick: async () => {
      msg.clear();
      try {
        await setStatus(ctx, current, current.status === 'enabled' ? 'disabled' : 'enabled');
        await load();
      } catch (e) {
        msg.error(e);
      }
    } }, d.status === 'enabled' ? 'Disable' : 'Enable');
    replace(actions, toggle, ' ', del);
  }

  const section = h('div', {},
    h('div', { class: 'card' }, h('h2', {}, 'Identity'), props, actions, msg.el),
    h('div', { class: 'card' }, h('h2', {}, 'Connection strings'),
      h('p', { class: 'muted' }, 'For device SDKs; the host carries the MQTT port when it is not 8883.'), strings));
  load().catch((e) => msg.error(e));
  if (!moduleId) section.append(modulesCard(ctx, deviceId));
  return section;
}

function modulesCard(ctx, deviceId) {
  const msg = message();
  const input = h('input', { name: 'moduleId', autocomplete: 'off', placeholder: 'module id' });
  const tbody = h('tbody');
  async function refresh() {
    const list = await ctx.get(route`/devices/${deviceId}/modules`);
    list.sort((a, b) => (a.moduleId < b.moduleId ? -1 : 1));
    syncRows(tbody, list, (m) => m.moduleId, (m) => h('tr', { dataset: { moduleId: m.moduleId } },
      h('td', {}, h('a', { href: identityHash(deviceId, m.moduleId) }, m.moduleId)), h('td'), h('td'), h('td'),
      h('td', {}, confirmButton('Delete', 'Really delete?', async () => {
        msg.clear();
        try {
          await ctx.request('DELETE', route`/devices/${deviceId}/modules/${m.moduleId}`, { headers: { 'If-Match': '*' } });
          await refresh();
        } catch (e) {
          msg.error(e);
        }
      }))), (tr, m) => {
      replace(tr.children[1], badge(m.connectionState));
      replace(tr.children[2], ago(m.lastActivityTime));
      tr.children[3].textContent = m.managedBy || '';
    });
  }
  const form = h('form', { class: 'row', id: 'create-module', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.clear();
    try {
      const mid = input.value;
      await ctx.request('PUT', route`/devices/${deviceId}/modules/${mid}`, { body: { deviceId, moduleId: mid, authentication: { type: 'sas' } } });
      input.value = '';
      msg.ok(`Created module ${mid}.`);
      await refresh();
    } catch (e) {
      msg.error(e);
    }
  } }, field('Module id', input), h('button', { type: 'submit' }, 'Add module'));
  ctx.every(3000, refresh);
  return h('div', { class: 'card', id: 'modules-card' }, h('h2', {}, 'Modules'), form, msg.el,
    h('table', { class: 'list', id: 'modules' }, h('thead', {}, h('tr', {}, ['Module', 'Connection', 'Last activity', 'Managed by', ''].map((t) => h('th', {}, t)))), tbody));
}

// The twin: tags, desired and reported as the hub returns them ($metadata,
// $version), and an editor for tags or desired that patches with If-Match.
// The view follows the hub live; the editor keeps the etag it was loaded
// with, so a change made elsewhere meanwhile shows as the hub's 412.
function twinSection(ctx, id, { twinPath }) {
  const msg = message();
  const summary = h('dl', { class: 'props twin-summary' });
  const tagsView = h('div', { class: 'twin-part', dataset: { part: 'tags' } });
  const desiredView = h('div', { class: 'twin-part', dataset: { part: 'desired' } });
  const reportedView = h('div', { class: 'twin-part', dataset: { part: 'reported' } });
  const stale = h('p', { class: 'msg warn', hidden: true });
  const section = h('select', { name: 'section' }, h('option', { value: 'desired' }, 'Desired properties'), h('option', { value: 'tags' }, 'Tags'));
  const editor = h('textarea', { name: 'patch', rows: 8, spellcheck: 'false', class: 'code' });
  const etag = h('input', { name: 'etag', autocomplete: 'off', class: 'code' });
  let twin = null;
  let editorETag = null; // the etag the editor was loaded with

  function strip(v) {
    if (!v || typeof v !== 'object') return v;
    const out = {};
    for (const [k, x] of Object.entries(v)) if (k !== '$metadata' && k !== '$version') out[k] = x;
    return out;
  }

  function fillEditor() {
    if (!twin) return;
    const part = section.value === 'tags' ? (twin.tags || {}) : strip(twin.properties.desired);
    editor.value = pretty(part);
    etag.value = twin.etag;
    editorETag = twin.etag;
    stale.hidden = true;
  }

  function show(t) {
    twin = t;
    const p = t.properties || {};
    replace(summary, [['Twin version', t.version], ['Etag', t.etag], ['Desired $version', p.desired && p.desired.$version],
      ['Reported $version', p.reported && p.reported.$version], ['Status', t.status], ['Connection', t.connectionState],
      ['Model id', t.modelId || '']].filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', { dataset: { key: k } }, String(v))]));
    replace(tagsView, h('h3', {}, 'Tags'), jsonBlock(t.tags || {}));
    replace(desiredView, h('h3', {}, 'Desired'), jsonBlock(p.desired));
    replace(reportedView, h('h3', {}, 'Reported'), jsonBlock(p.reported));
    // The etag moves with tags and desired, not with reported properties
    // (which the device owns), so only a change there makes the editor stale.
    if (editorETag === null) fillEditor();
    else if (t.etag !== editorETag) {
      stale.hidden = false;
      replace(stale, `Tags or desired properties changed since the editor was loaded (now twin version ${t.version}, etag ${t.etag}); an update with the old etag will be refused. `,
        h('button', { type: 'button', class: 'small', onclick: fillEditor }, 'Reload editor'));
    } else stale.hidden = true;
  }

  section.addEventListener('change', fillEditor);

  const form = h('form', { class: 'card', id: 'twin-edit', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.clear();
    const text = editor.value;
    // A body the hub can judge: the patch wrapped in its section when it
    // is JSON; otherwise the text alone, which the hub refuses as not JSON.
    const body = !parses(text) ? text
      : section.value === 'tags' ? `{"tags":${text}}` : `{"properties":{"desired":${text}}}`;
    const headers = {};
    if (etag.value.trim() !== '') headers['If-Match'] = /^".*"$/.test(etag.value.trim()) ? etag.value.trim() : `"${etag.value.trim()}"`;
    try {
      const t = (await ctx.request('PATCH', twinPath, { body, headers })).json;
      editorETag = t.etag;
      show(t);
      etag.value = t.etag;
      msg.ok(`Updated: twin version ${t.version}, etag ${t.etag}.`);
    } catch (e) {
      msg.error(e);
    }
  } },
  h('h2', {}, 'Edit'),
  h('p', { class: 'muted' }, 'A patch: keys merge into the section, null removes a key. Sent with If-Match, so a twin changed since loading is refused (412).'),
  h('div', { class: 'row' }, field('Section', section), field('If-Match etag', etag, 'empty: unconditional')),
  field('Patch (JSON)', editor),
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Update twin'),
    ' ', h('button', { type: 'button', onclick: fillEditor }, 'Reload editor')),
  stale, msg.el);

  ctx.every(2000, async () => show(await ctx.get(twinPath)));
  return h('div', { class: 'twin' },
    h('div', { class: 'card' }, h('h2', {}, 'Twin'), summary, h('div', { class: 'twin-parts' }, tagsView, desiredView, reportedView)),
    form);
}

function methodsSection(ctx, { deviceId, moduleId }, { base }) {
  const msg = message();
  const result = h('div', { class: 'method-result', hidden: true });
  const name = h('input', { name: 'methodName', required: true, autocomplete: 'off', placeholder: 'reboot' });
  const payload = h('textarea', { name: 'payload', rows: 5, spellcheck: 'false', class: 'code', value: '{}' });
  const respTimeout = h('input', { name: 'responseTimeout', inputmode: 'numeric', value: '30', class: 'short' });
  const connTimeout = h('input', { name: 'connectTimeout', inputmode: 'numeric', value: '0', class: 'short' });
  const methodsPath = moduleId ? route`/twins/${deviceId}/modules/${moduleId}/methods` : route`/twins/${deviceId}/methods`;
  const button = h('button', { type: 'submit', class: 'primary' }, 'Invoke');
  const tbody = h('tbody');

  async function refreshHistory() {
    const calls = (await ctx.get(route`/emulator/methods`, { query: { deviceId } })).filter((c) => (c.moduleId || '') === moduleId);
    calls.reverse();
    syncRows(tbody, calls, (c) => c.startTime + c.methodName, (c) => methodRow(c, false), () => {});
  }

  const form = h('form', { class: 'card', id: 'method-invoke', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.clear();
    result.hidden = true;
    const text = payload.value.trim() === '' ? 'null' : payload.value;
    let body;
    if (!parses(text)) body = text;
    else {
      // Timeouts go as typed; the hub checks their range.
      const num = (v) => (/^-?\d+$/.test(v.trim()) ? v.trim() : JSON.stringify(v));
      body = `{"methodName":${JSON.stringify(name.value)},"payload":${text}`;
      if (respTimeout.value.trim() !== '') body += `,"responseTimeoutInSeconds":${num(respTimeout.value)}`;
      if (connTimeout.value.trim() !== '') body += `,"connectTimeoutInSeconds":${num(connTimeout.value)}`;
      body += '}';
    }
    button.disabled = true;
    const started = performance.now();
    try {
      const r = (await ctx.request('POST', methodsPath, { body })).json;
      result.hidden = false;
      replace(result, h('div', {}, 'Status ', h('strong', { class: 'method-status' }, String(r.status)),
        h('span', { class: 'muted' }, ` in ${Math.round(performance.now() - started)} ms`)), jsonBlock(r.payload, 'method-payload'));
    } catch (e) {
      msg.error(e);
    } finally {
      button.disabled = false;
      refreshHistory().catch(() => {});
    }
  } },
  h('h2', {}, 'Invoke a direct method'),
  h('div', { class: 'row' }, field('Method name', name), field('Response timeout (s)', respTimeout, '5 to 300'),
    field('Connect timeout (s)', connTimeout, '0: device must be online')),
  field('Payload (JSON)', payload),
  h('div', { class: 'actions' }, button), msg.el, result);

  ctx.every(3000, refreshHistory);
  return h('div', {}, form,
    h('div', { class: 'card' }, h('h2', {}, 'History'), h('p', { class: 'muted' }, 'Calls the emulator recorded for this identity, newest first.'),
      methodTable(tbody, false)));
}

// parseProperties reads "name=value" lines.
function parseProperties(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l) continue;
    const i = l.indexOf('=');
    if (i <= 0) throw new Error(`property line "${l}" is not name=value`);
    out[l.slice(0, i).trim()] = l.slice(i + 1).trim();
  }
  return out;
}

function c2dSection(ctx, { deviceId }) {
  const msg = message();
  const bodyIn = h('textarea', { name: 'body', rows: 4, spellcheck: 'false', class: 'code', placeholder: 'payload' });
  const propsIn = h('textarea', { name: 'properties', rows: 3, spellcheck: 'false', class: 'code', placeholder: 'name=value, one a line' });
  const ack = h('select', { name: 'ack' }, ['none', 'positive', 'negative', 'full'].map((a) => h('option', { value: a }, a)));
  const mid = h('input', { name: 'messageId', autocomplete: 'off' });
  const cid = h('input', { name: 'correlationId', autocomplete: 'off' });
  const ct = h('input', { name: 'contentType', autocomplete: 'off', placeholder: 'application/json' });
  const ttl = h('input', { name: 'ttl', inputmode: 'numeric', class: 'short', placeholder: 'hub default' });
  const queue = h('tbody');
  const feedback = h('tbody');

  async function refresh() {
    const [pending, fb] = await Promise.all([ctx.get(route`/emulator/devices/${deviceId}/messages/devicebound`), ctx.get(route`/emulator/feedback`)]);
    syncRows(queue, pending, (m) => String(m.seq), (m) => h('tr', {},
      h('td', { class: 'num' }, m.seq), h('td', {}, m.messageId || ''), h('td', {}, timeText(m.enqueuedTime)), h('td', {}, timeText(m.expiryTime)),
      h('td', {}, m.ack || 'none'), h('td', { class: 'props-cell' }, propsText(m.properties)), h('td', { class: 'body-cell' }, decodeBody(m.body).text),
      h('td', { class: 'num' }), h('td')), (tr, m) => {
      tr.children[7].textContent = m.deliveryCount;
      tr.children[8].textContent = m.lockToken ? `locked until ${timeText(m.lockedUntil)}` : 'queued';
    });
    const mine = fb.filter((f) => f.deviceId === deviceId).reverse();
    syncRows(feedback, mine, (f) => f.originalMessageId + f.enqueuedTimeUtc + f.statusCode, (f) => h('tr', { dataset: { status: f.statusCode } },
      h('td', {}, timeText(f.enqueuedTimeUtc)), h('td', {}, f.originalMessageId), h('td', {}, badge(f.statusCode)), h('td', {}, f.description)), () => {});
  }

  const form = h('form', { class: 'card', id: 'c2d-send', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.clear();
    const headers = {};
    try {
      for (const [k, v] of Object.entries(parseProperties(propsIn.value))) headers[`iothub-app-${k}`] = v;
      if (mid.value) headers['iothub-messageid'] = mid.value;
      if (cid.value) headers['iothub-correlationid'] = cid.value;
      if (ack.value !== 'none') headers['iothub-ack'] = ack.value;
      if (ttl.value) headers['iothub-ttl'] = ttl.value;
      headers['Content-Type'] = 'application/octet-stream';
      if (ct.value) headers['iothub-contenttype'] = ct.value;
      const m = (await ctx.request('POST', route`/emulator/devices/${deviceId}/messages/devicebound`, { body: bodyIn.value, headers })).json;
      msg.ok(`Queued message ${m.messageId || m.seq}.`);
      await refresh();
    } catch (e) {
      msg.error(e);
    }
  } },
  h('h2', {}, 'Send a cloud-to-device message'),
  h('p', { class: 'muted' }, 'Emulator-only route (the hub sends C2D over AMQP); delivered at once to a subscribed device.'),
  field('Body', bodyIn),
  h('div', { class: 'row' }, field('Properties', propsIn), field('Ack', ack), field('Message id', mid), field('Correlation id', cid),
    field('Content type', ct), field('TTL (s)', ttl)),
  h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Send')), msg.el);

  const queueMsg = message();
  const purge = confirmButton('Purge queue', 'Really purge?', async () => {
    queueMsg.clear();
    try {
      const r = (await ctx.request('DELETE', route`/devices/${deviceId}/commands`)).json;
      queueMsg.ok(`Purged ${r.totalMessagesPurged} message${r.totalMessagesPurged === 1 ? '' : 's'}.`);
      await refresh();
    } catch (e) {
      queueMsg.error(e);
    }
  });
  purge.id = 'c2d-purge';

  ctx.every(2000, refresh);
  return h('div', {}, form,
    h('div', { class: 'card' }, h('div', { class: 'cardhead' }, h('h2', {}, 'Queue'), purge), queueMsg.el, h('table', { class: 'list', id: 'c2d-queue' },
      h('thead', {}, h('tr', {}, ['Seq', 'Message id', 'Enqueued', 'Expires', 'Ack', 'Properties', 'Body', 'Deliveries', 'State'].map((t) => h('th', {}, t)))), queue)),
    h('div', { class: 'card' }, h('h2', {}, 'Feedback'), h('table', { class: 'list', id: 'c2d-feedback' },
      h('thead', {}, h('tr', {}, ['Time', 'Message id', 'Status', 'Description'].map((t) => h('th', {}, t)))), feedback)));
}

export function propsText(p) {
  return Object.entries(p || {}).map(([k, v]) => `${k}=${v}`).join(', ');
}

function historySection(ctx, { deviceId, moduleId }) {
  const tbody = h('tbody');
  const hist = moduleId ? route`/emulator/twins/${deviceId}/modules/${moduleId}/history` : route`/emulator/twins/${deviceId}/history`;
  ctx.every(3000, async () => {
    const changes = (await ctx.get(hist)).slice().reverse();
    syncRows(tbody, changes, (c) => `${c.version}/${c.section}/${c.time}`, (c) => h('tr', { dataset: { section: c.section } },
      h('td', {}, timeText(c.time)), h('td', { class: 'num' }, c.version), h('td', {}, c.section + (c.replace ? ' (replace)' : '')),
      h('td', {}, jsonBlock(c.patch))), () => {});
  });
  return h('div', { class: 'card' }, h('h2', {}, 'Twin history'), h('p', { class: 'muted' }, 'Every change the emulator recorded, newest first.'),
    h('table', { class: 'list', id: 'twin-history' }, h('thead', {}, h('tr', {}, ['Time', 'Version', 'Section', 'Patch'].map((t) => h('th', {}, t)))), tbody));
}
