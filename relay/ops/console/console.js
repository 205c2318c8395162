// The mail console's script: a few views over the relay's JSON API, built with DOM calls only (text is
// never parsed as HTML, so nothing a sender, tenant or upstream wrote can run here). The token lives in
// sessionStorage: this tab only, gone when it closes.
'use strict';

const STATUS = {
  delivered: ['✓', 'delivered'],
  bounced: ['✕', 'bounced'],
  expired: ['⌛', 'expired'],
  deferred: ['↻', 'deferred'],
  held: ['‖', 'held'],
  'on-hold': ['‖', 'on hold'],
  queued: ['•', 'queued'],
  accepted: ['•', 'accepted'],
  waiting: ['…', 'waiting'],
  deleted: ['⊘', 'deleted'],
  unknown: ['?', 'in progress'],
};

const $ = (id) => document.getElementById(id);
const VIEWS = ['search', 'message', 'queue', 'suppressions'];
let token = sessionStorage.getItem('tenant-relay-token') || '';
let lastSearch = '';
let nextCursor;
let queueNext;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'onclick') node.addEventListener('click', v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null) node.append(c instanceof Node ? c : String(c));
  return node;
}

function badge(status) {
  const key = STATUS[status] ? status : 'unknown';
  const [symbol, word] = STATUS[key];
  return el('span', { class: 'status status-' + key }, symbol + ' ' + word);
}

const exact = (iso) => new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' }) + ' (' + iso + ')';
function relative(iso) {
  const s = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const units = [['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]];
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  for (const [unit, size] of units) if (Math.abs(s) >= size || unit === 'second') return fmt.format(Math.trunc(s / size), unit);
  return iso;
}
const when = (iso) => (iso ? el('time', { datetime: iso, title: exact(iso) }, relative(iso)) : '—');

async function api(path, options) {
  const res = await fetch(path, { ...options, headers: { authorization: 'Bearer ' + token, ...(options && options.headers) } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    forget('That token was not accepted.');
    throw new Error('not signed in');
  }
  if (!res.ok) throw new Error(body.error || 'the relay answered ' + res.status);
  return body;
}

function show(view) {
  for (const v of VIEWS) $('view-' + v).hidden = v !== view;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === view || (view === 'message' && a.dataset.view === 'search')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function forget(why) {
  token = '';
  sessionStorage.removeItem('tenant-relay-token');
  $('token-error').textContent = why || '';
  route();
}

function fail(err) {
  if (err.message !== 'not signed in') $('error').textContent = err.message;
}

async function route() {
  $('error').textContent = '';
  const signedIn = token !== '';
  $('token-form').hidden = signedIn;
  $('who').hidden = !signedIn;
  if (!signedIn) {
    for (const v of VIEWS) $('view-' + v).hidden = true;
    $('token').focus();
    return;
  }
  $('who-text').textContent = 'Token in use for this tab.';
  const hash = location.hash || '#/search';
  const [path, query] = hash.slice(1).split('?');
  try {
    if (path.startsWith('/message/')) return await openMessage(decodeURIComponent(path.slice('/message/'.length)));
    if (path === '/queue') return await openQueue(false);
    if (path === '/suppressions') return await openSuppressions();
    show('search');
    const params = new URLSearchParams(query || '');
    $('q').value = params.get('q') || '';
    $('status').value = params.get('status') || '';
    if (params.toString() !== lastSearch || !$('results').tBodies[0].rows.length) await runSearch(params, false);
    $('q').focus();
  } catch (err) {
    fail(err);
  }
}

async function runSearch(params, more) {
  const asked = new URLSearchParams(params);
  if (more && nextCursor) asked.set('cursor', nextCursor);
  lastSearch = params.toString();
  if (!more) {
    $('search-summary').textContent = 'Searching…';
    delete $('search-summary').dataset.for;
  }
  const page = await api('/api/messages?' + asked.toString());
  const body = $('results').tBodies[0];
  if (!more) body.replaceChildren();
  for (const m of page.messages) {
    const to = m.recipients.slice(0, 2).join(', ') + (m.recipientCount > 2 ? ' +' + (m.recipientCount - 2) : '');
    const link = el('a', { href: '#/message/' + encodeURIComponent(m.queueId) }, badge(m.status));
    body.append(el('tr', { 'data-queue-id': m.queueId }, el('td', {}, link), el('td', {}, when(m.acceptedAt)), el('td', {}, m.from || '<>'), el('td', {}, to), el('td', {}, m.tenant || '—'), el('td', { class: 'reply' }, m.lastReply || '')));
  }
  nextCursor = page.next;
  $('more').hidden = !page.next;
  $('results').hidden = body.rows.length === 0;
  const count = body.rows.length;
  $('search-summary').textContent = count === 0 ? 'No message found.' : count + (page.next ? '+' : '') + ' message' + (count === 1 ? '' : 's') + ', newest first (' + page.ms + ' ms).';
  $('search-summary').dataset.for = lastSearch;
}

async function openMessage(id) {
  show('message');
  $('m-id').textContent = id;
  const { message, queued } = await api('/api/messages/' + encodeURIComponent(id));
  const facts = $('m-facts');
  facts.replaceChildren();
  const fact = (list, name, value) => list.append(el('dt', {}, name), el('dd', {}, value));
  if (message) {
    fact(facts, 'Status', badge(message.status));
    fact(facts, 'Message-ID', message.messageId || '—');
    fact(facts, 'From', message.from || '<>');
    fact(facts, 'Tenant', message.tenant || '—');
    fact(facts, 'Accepted', when(message.acceptedAt));
    fact(facts, 'Routed', message.decision || '—');
    fact(facts, 'Size', message.size === null ? '—' : message.size + ' bytes');
  } else fact(facts, 'Trace', 'not in the trace (it may be older than its retention)');
  renderQueued(queued);
  $('test-form').hidden = !(message && message.tenant);
  $('test-form').dataset.tenant = (message && message.tenant) || '';
  $('test-to').value = (message && message.events.length && message.events[0].recipient) || '';
  $('test-result').textContent = '';
  const list = $('m-timeline');
  list.replaceChildren();
  for (const e of (message && message.events) || []) {
    const said = e.upstreamReply ? el('div', { class: 'said' }, 'upstream said: ' + e.upstreamReply + (e.upstreamQueueId ? '  (its queue id ' + e.upstreamQueueId + ')' : '')) : null;
    list.append(
      el(
        'li',
        {},
        el('div', {}, badge(e.type), ' ', when(e.time), ' ', e.recipient, e.upstream ? ' via ' + e.upstream : '', e.attempt ? ' · attempt ' + e.attempt : ''),
        el('div', { class: 'said' }, e.reply),
        said,
        e.nextAttemptAt ? el('div', { class: 'muted' }, 'next attempt ', when(e.nextAttemptAt)) : null,
      ),
    );
  }
  $('back').focus();
}

function renderQueued(q) {
  $('m-queued').hidden = !q;
  if (!q) return;
  const facts = $('m-queue-facts');
  facts.replaceChildren();
  const fact = (name, value) => facts.append(el('dt', {}, name), el('dd', {}, value));
  fact('State', q.area === 'failed' ? badge('bounced') : q.onHold ? badge('on-hold') : q.heldBy ? badge('held') : badge('waiting'));
  if (q.onHold) fact('On hold since', when(q.onHold.since));
  if (q.heldBy) fact('Held', q.heldBy.reason + ' — until ', when(q.heldBy.until));
  if (q.nextAttemptAt) fact('Next attempt', when(q.nextAttemptAt));
  fact('Attempts', String(q.attempts));
  fact('Pending', q.pending.join(', ') || '—');
  if (q.lastError) fact('Last error', q.lastError);
  const actions = $('m-actions');
  actions.replaceChildren(...actionButtons(q, () => openMessage(q.queueId)));
}

function actionButtons(q, after) {
  if (q.area !== 'queue') return [];
  const button = (action, label, confirmText) =>
    el('button', {
      type: 'button',
      'data-action': action,
      onclick: async () => {
        if (confirmText && !window.confirm(confirmText)) return;
        try {
          await api('/api/queue/' + encodeURIComponent(q.queueId) + '/' + action, { method: 'POST' });
          await after();
        } catch (err) {
          fail(err);
        }
      },
    }, label);
  return [
    button('retry', 'Retry now'),
    q.onHold ? button('release', 'Release') : button('hold', 'Hold'),
    button('delete', 'Delete', 'Delete message ' + q.queueId + '? It will not be delivered, and a "deleted" event is sent.'),
  ];
}

async function sendTest(e) {
  e.preventDefault();
  const result = $('test-result');
  result.textContent = 'Sending…';
  try {
    const sent = await api('/api/send-test', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tenant: $('test-form').dataset.tenant, to: $('test-to').value.trim() }) });
    result.textContent = 'relay: ' + sent.reply + '\nwaiting for the upstream…';
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, 500));
      const res = await fetch('/api/send-test/' + encodeURIComponent(sent.token), { headers: { authorization: 'Bearer ' + token } });
      if (res.status !== 200) continue;
      const record = await res.json();
      result.textContent = 'relay: ' + sent.reply + '\n' + record.recipients.map((r) => 'upstream ' + record.upstream + ' <' + r.rcpt + '> ' + r.status + ': ' + r.reply).join('\n');
      if (record.final) return;
    }
  } catch (err) {
    result.textContent = err.message;
  }
}

async function openSuppressions() {
  show('suppressions');
  const params = new URLSearchParams();
  if ($('supp-tenant').value.trim()) params.set('tenant', $('supp-tenant').value.trim());
  if ($('supp-q').value.trim()) params.set('q', $('supp-q').value.trim());
  const page = await api('/api/suppressions?' + params.toString());
  const body = $('suppressions').tBodies[0];
  body.replaceChildren();
  for (const s of page.suppressions) {
    const remove = el('button', {
      type: 'button',
      'data-action': 'unsuppress',
      onclick: async () => {
        if (!window.confirm('Send to ' + s.address + ' again for ' + (s.tenant || 'mail of no tenant') + '?')) return;
        try {
          await api('/api/suppressions/remove', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tenant: s.tenant, address: s.address }) });
          await openSuppressions();
        } catch (err) {
          fail(err);
        }
      },
    }, 'Remove');
    body.append(el('tr', { 'data-address': s.address }, el('td', {}, s.address), el('td', {}, s.tenant || '—'), el('td', {}, s.source), el('td', {}, when(new Date(s.at).toISOString())), el('td', {}, when(new Date(s.expiresAt).toISOString())), el('td', { class: 'reply' }, s.reason), el('td', {}, remove)));
  }
  $('suppressions').hidden = body.rows.length === 0;
  $('supp-summary').textContent = body.rows.length === 0 ? 'No suppressed address.' : body.rows.length + (page.next ? '+' : '') + ' suppressed address' + (body.rows.length === 1 ? '' : 'es') + '.';
}

async function addSuppression(e) {
  e.preventDefault();
  try {
    await api('/api/suppressions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tenant: $('supp-add-tenant').value.trim(), address: $('supp-add-address').value.trim(), reason: $('supp-add-reason').value.trim() }) });
    $('supp-add-address').value = '';
    $('supp-add-reason').value = '';
    await openSuppressions();
  } catch (err) {
    fail(err);
  }
}

async function openQueue(more) {
  show('queue');
  const page = await api('/api/queue' + (more && queueNext ? '?after=' + encodeURIComponent(queueNext) : ''));
  const body = $('queue').tBodies[0];
  if (!more) body.replaceChildren();
  for (const q of page.messages) {
    const state = q.onHold ? badge('on-hold') : q.heldBy ? badge('held') : badge('waiting');
    const why = q.onHold ? 'held by hand, until released' : q.heldBy ? [q.heldBy.reason + ' — until ', when(q.heldBy.until)] : q.nextAttemptAt ? ['next attempt ', when(q.nextAttemptAt), q.lastError ? ' · last: ' + q.lastError : ''] : '';
    body.append(
      el(
        'tr',
        { 'data-queue-id': q.queueId },
        el('td', {}, el('a', { href: '#/message/' + encodeURIComponent(q.queueId) }, state)),
        el('td', {}, when(q.createdAt)),
        el('td', {}, q.tenant || '—'),
        el('td', {}, q.from || '<>'),
        el('td', {}, q.pending.join(', ')),
        el('td', {}, String(q.attempts)),
        el('td', { class: 'reply' }, why),
        el('td', {}, el('div', { class: 'actions' }, actionButtons(q, () => openQueue(false)))),
      ),
    );
  }
  queueNext = page.next;
  $('queue-more').hidden = !page.next;
  $('queue-summary').textContent = page.total === 0 ? 'Nothing is waiting.' : page.total + ' message' + (page.total === 1 ? '' : 's') + ' waiting, oldest first.';
}

document.addEventListener('DOMContentLoaded', () => {
  $('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem('tenant-relay-token', token);
    $('token-error').textContent = '';
    route();
  });
  $('sign-out').addEventListener('click', () => forget('Token forgotten.'));
  $('test-form').addEventListener('submit', sendTest);
  $('supp-search').addEventListener('submit', (e) => {
    e.preventDefault();
    openSuppressions().catch(fail);
  });
  $('supp-add').addEventListener('submit', addSuppression);
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const params = new URLSearchParams();
    if ($('q').value.trim()) params.set('q', $('q').value.trim());
    if ($('status').value) params.set('status', $('status').value);
    lastSearch = '';
    const hash = '#/search?' + params.toString();
    if (location.hash === hash) route();
    else location.hash = hash;
  });
  $('more').addEventListener('click', () => runSearch(new URLSearchParams(lastSearch), true).catch(fail));
  $('queue-more').addEventListener('click', () => openQueue(true).catch(fail));
  $('back').addEventListener('click', (e) => {
    e.preventDefault();
    history.back();
  });
  document.addEventListener('keydown', (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
    if (e.key === '/' && !typing) {
      e.preventDefault();
      if (!location.hash.startsWith('#/search')) location.hash = '#/search';
      $('q').focus();
    }
    if (e.key === 'Escape' && location.hash.startsWith('#/message/')) history.back();
  });
  window.addEventListener('hashchange', route);
  route();
});
