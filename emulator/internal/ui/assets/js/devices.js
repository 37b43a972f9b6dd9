// SPDX-License-Identifier: MIT

// The device list: live connection state and activity, create, enable or
// disable, delete.

import { route } from './hub.js';
import { h, replace, message, field, badge, ago, syncRows, confirmButton } from './dom.js';

// identityHash is the dashboard address of a device or module.
export function identityHash(deviceId, moduleId, tab) {
  let s = `#/devices/${encodeURIComponent(deviceId)}`;
  if (moduleId) s += `/modules/${encodeURIComponent(moduleId)}`;
  if (tab) s += `?tab=${tab}`;
  return s;
}

// authBody builds the registry's authentication member from the form.
function authBody(type, thumbprint) {
  switch (type) {
    case 'selfSigned':
      return { type, x509Thumbprint: { primaryThumbprint: thumbprint, secondaryThumbprint: null } };
    case 'certificateAuthority':
      return { type };
    default:
      return { type: 'sas', symmetricKey: { primaryKey: '', secondaryKey: '' } };
  }
}

// setStatus flips enabled/disabled with a PUT conditional on the etag the
// list showed: a device changed meanwhile answers 412 and stays as it is.
export async function setStatus(ctx, device, status) {
  const body = { ...device, status };
  delete body.connectionState;
  return (await ctx.request('PUT', route`/devices/${device.deviceId}`, { body, headers: { 'If-Match': `"${device.etag}"` } })).json;
}

export function devicesPage(ctx) {
  const msg = message();
  const listMsg = message();
  const idInput = h('input', { name: 'deviceId', required: true, autocomplete: 'off', placeholder: 'thermostat-1' });
  const authSelect = h('select', { name: 'auth' },
    h('option', { value: 'sas' }, 'Symmetric key (generated)'),
    h('option', { value: 'selfSigned' }, 'X.509 self-signed'),
    h('option', { value: 'certificateAuthority' }, 'X.509 CA-signed'));
  const thumb = h('input', { name: 'thumbprint', autocomplete: 'off', placeholder: 'SHA-1 or SHA-256 hex' });
  const thumbField = field('Primary thumbprint', thumb);
  thumbField.hidden = true;
  authSelect.addEventListener('change', () => { thumbField.hidden = authSelect.value !== 'selfSigned'; });
  const edge = h('input', { type: 'checkbox', name: 'iotEdge' });

  const form = h('form', { class: 'card inline', id: 'create-device', onsubmit: async (ev) => {
    ev.preventDefault();
    msg.clear();
    const id = idInput.value;
    const body = { deviceId: id, status: 'enabled', authentication: authBody(authSelect.value, thumb.value), capabilities: { iotEdge: edge.checked } };
    try {
      // The id goes in the path as typed: the hub, not the page, judges it.
      const d = (await ctx.request('PUT', route`/devices/${id}`, { body })).json;
      msg.ok('Created ', h('a', { href: identityHash(d.deviceId) }, d.deviceId), '.');
      idInput.value = '';
      await refresh();
    } catch (e) {
      msg.error(e);
    }
  } },
  h('h2', {}, 'New device'),
  h('div', { class: 'row' }, field('Device id', idInput), field('Authentication', authSelect), thumbField,
    h('label', { class: 'check' }, edge, ' IoT Edge'),
    h('button', { type: 'submit', class: 'primary' }, 'Create')),
  msg.el);

  const tbody = h('tbody');
  const count = h('span', { class: 'muted' });
  const table = h('table', { class: 'list', id: 'devices' },
    h('thead', {}, h('tr', {}, ['Device', 'Status', 'Connection', 'Last activity', 'State changed', 'C2D queued', 'Auth', ''].map((t) => h('th', {}, t)))),
    tbody);

  const devices = new Map();

  function createRow(d) {
    const id = d.deviceId;
    const toggle = h('button', { type: 'button', class: 'small', onclick: async () => {
      listMsg.clear();
      const cur = devices.get(id);
      try {
        await setStatus(ctx, cur, cur.status === 'enabled' ? 'disabled' : 'enabled');
        await refresh();
      } catch (e) {
        listMsg.error(e);
      }
    } });
    const del = confirmButton('Delete', 'Really delete?', async () => {
      listMsg.clear();
      try {
        await ctx.request('DELETE', route`/devices/${id}`, { headers: { 'If-Match': `"${devices.get(id).etag}"` } });
        await refresh();
      } catch (e) {
        listMsg.error(e);
      }
    });
    const tr = h('tr', { dataset: { deviceId: id } },
      h('td', { class: 'id' }, h('a', { href: identityHash(id) }, id), d.capabilities && d.capabilities.iotEdge ? h('span', { class: 'tag' }, 'edge') : null),
      h('td', { class: 'status' }), h('td', { class: 'state' }), h('td', { class: 'activity' }), h('td', { class: 'changed' }),
      h('td', { class: 'c2d num' }), h('td', { class: 'auth' }), h('td', { class: 'actions' }, toggle, ' ', del));
    tr._toggle = toggle;
    return tr;
  }

  function updateRow(tr, d) {
    const c = tr.children;
    replace(c[1], badge(d.status));
    replace(c[2], badge(d.connectionState));
    replace(c[3], ago(d.lastActivityTime));
    replace(c[4], ago(d.connectionStateUpdatedTime));
    c[5].textContent = d.cloudToDeviceMessageCount;
    c[6].textContent = d.authentication ? d.authentication.type : '';
    tr._toggle.textContent = d.status === 'enabled' ? 'Disable' : 'Enable';
    tr.dataset.state = d.connectionState;
    tr.dataset.status = d.status;
  }

  async function refresh() {
    const list = await ctx.get(route`/devices`);
    list.sort((a, b) => (a.deviceId < b.deviceId ? -1 : a.deviceId > b.deviceId ? 1 : 0));
    devices.clear();
    for (const d of list) devices.set(d.deviceId, d);
    syncRows(tbody, list, (d) => d.deviceId, createRow, updateRow);
    const connected = list.filter((d) => d.connectionState === 'Connected').length;
    count.textContent = `${list.length} device${list.length === 1 ? '' : 's'}, ${connected} connected · updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
    empty.hidden = list.length > 0;
  }

  const empty = h('p', { class: 'muted' }, 'No devices yet: create one above, or with the SDKs or the CLI.');
  ctx.every(2000, refresh);

  return h('section', { class: 'page' },
    h('h1', {}, 'Devices'),
    form,
    h('div', { class: 'card' }, h('div', { class: 'cardhead' }, h('h2', {}, 'Registry'), count), listMsg.el, table, empty));
}
