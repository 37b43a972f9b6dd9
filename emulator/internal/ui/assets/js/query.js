// SPDX-License-Identifier: MIT

// The query console: POST /devices/query with the hub's paging headers.

import { route } from './hub.js';
import { h, replace, message, field, jsonBlock } from './dom.js';

export function queryPage(ctx) {
  const msg = message();
  const text = h('textarea', { name: 'query', rows: 4, spellcheck: 'false', class: 'code', value: 'SELECT * FROM devices' });
  const size = h('input', { name: 'pageSize', inputmode: 'numeric', value: '100', class: 'short' });
  const results = h('div', { class: 'results', id: 'query-results' });
  const info = h('span', { class: 'muted', id: 'query-info' });
  const next = h('button', { type: 'button', id: 'query-next', disabled: true }, 'Next page');
  let continuation = '';
  let page = 0;
  let total = 0;
  let asked = '';

  async function run(first) {
    msg.clear();
    const headers = {};
    if (size.value.trim() !== '') headers['x-ms-max-item-count'] = size.value.trim();
    if (!first) headers['x-ms-continuation'] = continuation;
    else asked = text.value;
    try {
      const res = await ctx.request('POST', route`/devices/query`, { body: { query: asked }, headers });
      const items = res.json || [];
      continuation = res.headers.get('x-ms-continuation') || '';
      page = first ? 1 : page + 1;
      total = first ? items.length : total + items.length;
      const type = res.headers.get('x-ms-item-type') || '';
      replace(info, `Page ${page}: ${items.length} item${items.length === 1 ? '' : 's'} (${total} so far)${type ? `, ${type}` : ''}${continuation ? '; more pages' : '; last page'}`);
      info.dataset.page = page;
      info.dataset.items = items.length;
      replace(results, items.map((it, i) => h('div', { class: 'item' }, h('span', { class: 'muted' }, `#${total - items.length + i + 1}`), jsonBlock(it))));
      next.disabled = !continuation;
    } catch (e) {
      msg.error(e);
    }
  }

  next.addEventListener('click', () => run(false));
  const form = h('form', { class: 'card', id: 'query-form', onsubmit: (ev) => { ev.preventDefault(); run(true); } },
    h('p', { class: 'muted' }, 'IoT Hub query language over ', h('code', {}, 'devices'), ' and ', h('code', {}, 'devices.modules'),
      ', e.g. ', h('code', {}, "SELECT deviceId FROM devices WHERE connectionState = 'Connected'"), '.'),
    field('Query', text),
    h('div', { class: 'row' }, field('Page size', size), h('button', { type: 'submit', class: 'primary' }, 'Run'), next, info),
    msg.el);
  return h('section', { class: 'page' }, h('h1', {}, 'Query'), form, h('div', { class: 'card' }, results));
}
