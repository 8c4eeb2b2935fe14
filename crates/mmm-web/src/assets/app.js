// mmm dashboard: one page, four views (#/ jobs, #/job/ID, #/overview, #/runs), fed by /ws (docs/api.md).
// No framework and no CDN: the page works offline from the binary.
'use strict';

const TOKEN = new URLSearchParams(location.search).get('token');
const withToken = (path) => TOKEN ? path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(TOKEN) : path;
const $ = (id) => document.getElementById(id);
const el = (tag, attrs, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') node.className = v; else if (k.startsWith('data-')) node.setAttribute(k, v); else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return node;
};
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

async function api(path) {
  const res = await fetch(withToken(path));
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error || res.statusText);
  return res.json();
}

// ---- formatting
const fmtInt = (n) => (n == null ? '–' : Number(n).toLocaleString('en'));
// A counter's value as every other view shows it (`Display` of mmm_core::counter::CounterValue):
// whole without a point; else at most 4 decimals, 4 significant digits below 1, no trailing zeros.
const fmtCounter = (n) => {
  if (n == null) return '–';
  if (Number.isInteger(n)) return String(n);
  const a = Math.abs(n);
  const t = n.toFixed(a >= 1 ? 4 : Math.min(15, 3 - Math.floor(Math.log10(a)))).replace(/0+$/, '').replace(/\.$/, '');
  return t === '-0' ? '0' : t;
};
// A forecast's figure as mmm_core::counter::estimate shows it: whole from 100, else 3 digits.
const fmtEstimate = (x) => fmtCounter(Math.abs(x) >= 100 ? Math.round(x) : Number(x.toPrecision(3)));
function fmtMs(ms) {
  if (ms == null || !isFinite(ms)) return '–';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 10000) return (ms / 1000).toFixed(1) + 's';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + 's';
  if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
  return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
}
function fmtEta(eta) {
  if (!eta) return '–';
  switch (eta.state) {
    case 'done': return 'done';
    case 'warming_up': return 'warming up (' + eta.completed + '/' + eta.needed + ')';
    case 'stalled': return 'stalled';
    case 'paused': return 'paused';
    case 'estimate': return fmtMs(eta.p50_ms) + ' (' + fmtMs(eta.p10_ms) + '–' + fmtMs(eta.p90_ms) + ')';
    default: return eta.state || '–';
  }
}
// Items per second over the snapshot's window, or since the start when the job is younger.
function rateOf(snap, startedAt) {
  const r = snap.payload && snap.payload.rates;
  if (r && typeof r.throughput_now === 'number') return r.throughput_now;
  const w = snap.payload && snap.payload.window;
  if (!w || !w.seconds) return null;
  let seconds = w.seconds;
  if (startedAt && snap.at > startedAt) seconds = Math.min(seconds, (snap.at - startedAt) / 1000);
  return seconds > 0 ? w.counts.finished / seconds : null;
}
const fmtTime = (ms) => new Date(ms).toLocaleTimeString();

// ---- live connection
const live = { socket: null, subscription: null, seq: 0, backoff: 250 };
function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(withToken(proto + '//' + location.host + '/ws'));
  live.socket = socket;
  socket.onopen = () => { live.backoff = 250; $('conn').textContent = 'live'; $('conn').classList.add('live'); send(true); };
  socket.onclose = () => {
    $('conn').textContent = 'reconnecting'; $('conn').classList.remove('live');
    setTimeout(connect, live.backoff); live.backoff = Math.min(live.backoff * 2, 5000);
  };
  socket.onmessage = (m) => onMessage(JSON.parse(m.data));
}
function send(resume) {
  const s = live.socket;
  if (!s || s.readyState !== 1 || !live.subscription) return;
  const msg = Object.assign({}, live.subscription);
  if (resume && msg.subscribe === 'job' && job.state && job.state.job.id === job.id) msg.resume_from = live.seq;
  s.send(JSON.stringify(msg));
}
function subscribe(sub) { live.subscription = sub; send(false); }

function onMessage(msg) {
  if (msg.type === 'jobs') { jobs.map = new Map(msg.jobs.map((j) => [j.id, j])); jobs.limit = msg.limit; dirty(); }
  else if (msg.type === 'jobs_delta') {
    for (const j of msg.changed) jobs.map.set(j.id, j);
    for (const id of msg.removed) jobs.map.delete(id);
    dirty();
  } else if (msg.type === 'state') applyState(msg);
  else if (msg.type === 'delta') applyDelta(msg);
  else if (msg.type === 'runs') { runs.watching = msg.watching; runs.roots = msg.roots; runs.map = new Map(msg.runs.map((r) => [r.path, r])); runs.problems = []; dirty(); }
  else if (msg.type === 'runs_delta') {
    for (const r of msg.changed) runs.map.set(r.path, r);
    for (const p of msg.removed) runs.map.delete(p);
    runs.problems = msg.problems || [];
    dirty();
  } else if (msg.type === 'error') console.warn('mmm:', msg.message);
}

// ---- observed runs (mmm serve --runs): the same columns as `mmm runs`
const runs = { map: new Map(), watching: true, roots: [], problems: [] };
function fmtNumber(v) {
  const t = Number(v).toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
  return t === '-0' ? '0' : t;
}
function fmtAge(ms) {
  if (ms == null) return '–';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.floor(s / 60) + 'm ago';
  if (s < 86400) return Math.floor(s / 3600) + 'h ago';
  return Math.floor(s / 86400) + 'd ago';
}
// Best and latest: the metric's value when one is configured, else the first two scores.
function runScores(r) {
  const p = r.progress;
  const latest = p.latest_score;
  if (!latest || !Object.keys(latest).length) return ['–', '–'];
  const leafOf = (k) => k.split('.').pop();
  if (p.metric) {
    const leaf = leafOf(p.metric);
    let best = '–';
    if (p.best_score && p.best_score[p.metric] != null) {
      best = leaf + '=' + fmtNumber(p.best_score[p.metric]) + (r.kind === 'trainer' && p.best_epoch != null ? ' (epoch ' + p.best_epoch + ')' : '');
    }
    return [best, latest[p.metric] != null ? leaf + '=' + fmtNumber(latest[p.metric]) : '–'];
  }
  const keys = Object.keys(latest).sort();
  return ['–', keys.slice(0, 2).map((k) => leafOf(k) + '=' + fmtNumber(latest[k])).join(' ') + (keys.length > 2 ? ' …' : '')];
}
function renderRuns() {
  const list = [...runs.map.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const empty = $('runs-empty');
  empty.hidden = list.length > 0;
  empty.textContent = runs.watching ? 'No run folders under ' + runs.roots.join(', ') + '.' : 'This server watches no run folders: start it with mmm serve --runs ROOT (see docs/runs.md).';
  const counts = {};
  for (const r of list) counts[r.status] = (counts[r.status] || 0) + 1;
  $('runs-summary').textContent = list.length ? list.length + (list.length === 1 ? ' run: ' : ' runs: ') + Object.entries(counts).map(([k, v]) => v + ' ' + k).join(', ') : '';
  $('runs-body').replaceChildren(...list.map((r) => {
    const p = r.progress;
    const percent = p.progress_percentage;
    const bar = el('span', { class: 'mini' }, el('div'));
    bar.firstChild.style.width = (percent || 0) + '%';
    const epochs = r.kind === 'trainer' ? p.completed_epochs + '/' + (p.total_epochs == null ? '?' : p.total_epochs) + (p.early_stopped ? ' (early stop' + (p.early_stopped_at_epoch != null ? ' at ' + p.early_stopped_at_epoch : '') + ')' : '') : (p.completed_epochs >= 1 ? 'done' : 'not done');
    const [best, latest] = runScores(r);
    const status = el('span', { class: 'badge ' + r.status }, r.status);
    const problem = p.error_message || (p.warnings && p.warnings[0]);
    return el('tr', { 'data-run': r.name, title: r.path + (problem ? '\n' + problem : '') },
      el('td', {}, el('code', {}, r.name)),
      el('td', {}, r.kind),
      el('td', {}, status, r.pids && r.pids.length ? ' pid ' + r.pids.join(',') : ''),
      el('td', { class: 'run-progress' }, bar, percent == null ? '?' : percent.toFixed(0) + '%'),
      el('td', { class: 'opt run-epochs' }, epochs),
      el('td', {}, best),
      el('td', {}, latest),
      el('td', { class: 'opt' }, fmtAge(r.last_activity_ms)));
  }));
  $('runs-problems').replaceChildren(...runs.problems.map((m) => el('li', {}, m)));
}
setInterval(() => { if (route.view === 'runs') dirty(); }, 5000); // keeps the ages current

// ---- overview: per job name over a period (GET /api/stats), and the same for equal parts of
// it, for the trend charts
const overview = { data: null, parts: [], loading: false, error: null, at: 0 };
const OVERVIEW_PARTS = 8;
async function loadOverview() {
  if (overview.loading) return;
  overview.loading = true;
  const span = Number($('overview-period').value);
  const to = Date.now(), from = to - span;
  const name = $('overview-name').value.trim();
  const q = (a, b) => '/api/stats?from=' + a + '&to=' + b + (name ? '&name=' + encodeURIComponent(name) : '');
  try {
    const edges = [...Array(OVERVIEW_PARTS + 1).keys()].map((i) => from + Math.round((i * span) / OVERVIEW_PARTS));
    const [whole, ...parts] = await Promise.all([api(q(from, to)), ...edges.slice(1).map((b, i) => api(q(edges[i], b)))]);
    overview.data = whole; overview.parts = parts; overview.error = null; overview.at = to;
  } catch (e) {
    overview.error = String(e.message || e);
  } finally {
    overview.loading = false;
    dirty();
  }
}
const fmtShare = (v) => (v == null ? '–' : (v * 100).toFixed(1) + '%');
function renderOverview() {
  const err = $('overview-error');
  err.hidden = !overview.error; err.textContent = overview.error ? 'Could not read the stats: ' + overview.error : '';
  const d = overview.data;
  if (!d) return;
  $('overview-period-text').textContent = new Date(d.from).toLocaleString() + ' – ' + new Date(d.to).toLocaleString();
  $('overview-empty').hidden = d.names.length > 0;
  const was = (now, then, fmt) => fmt(now) + (then === undefined ? '' : ' (was ' + fmt(then) + ')');
  $('overview-body').replaceChildren(...d.names.map((n) => {
    const p = n.previous || undefined;
    const chart = el('canvas', { class: 'trend', height: 36 });
    const deadline = n.deadline ? n.deadline.met + '/' + (n.deadline.met + n.deadline.missed) + (n.deadline.open ? ' (' + n.deadline.open + ' open)' : '') : '–';
    const row = el('tr', { 'data-name': n.name },
      el('td', {}, el('code', {}, n.name)),
      el('td', { class: 'ov-runs' }, fmtInt(n.runs)),
      el('td', { class: 'ov-success' }, was(n.success_rate, p && p.success_rate, fmtShare)),
      el('td', { class: 'ov-job-p95' }, was(n.job_duration && n.job_duration.p95_ms, p && p.job_p95_ms, fmtMs)),
      el('td', { class: 'ov-item-p95' }, was(n.item_duration && n.item_duration.p95_ms, p && p.item_p95_ms, fmtMs)),
      el('td', {}, n.items.throughput_per_s == null ? '–' : n.items.throughput_per_s.toFixed(2) + '/s'),
      el('td', { class: 'ov-deadline' }, deadline),
      el('td', {}, n.eta ? fmtShare(n.eta.coverage) : '–'),
      el('td', { class: 'ov-trend' }, chart));
    requestAnimationFrame(() => drawTrend(chart, n.name));
    return row;
  }));
}
function drawTrend(canvas, name) {
  if (!canvas.isConnected) return;
  const { ctx, w, h } = fitCanvas(canvas, 36);
  ctx.clearRect(0, 0, w, h);
  const points = overview.parts.map((part) => part.names.find((x) => x.name === name) || null);
  const x = (i) => (points.length < 2 ? w / 2 : 3 + (i * (w - 6)) / (points.length - 1));
  const line = (values, colour, max) => {
    ctx.strokeStyle = css(colour); ctx.fillStyle = css(colour); ctx.lineWidth = 1.5; ctx.beginPath();
    let open = false;
    values.forEach((v, i) => {
      if (v == null) { open = false; return; }
      const y = h - 3 - (v / max) * (h - 6);
      open ? ctx.lineTo(x(i), y) : ctx.moveTo(x(i), y);
      ctx.fillRect(x(i) - 1.5, y - 1.5, 3, 3);
      open = true;
    });
    ctx.stroke();
  };
  line(points.map((p) => (p ? p.success_rate : null)), '--ok', 1);
  const p95 = points.map((p) => (p && p.item_duration ? p.item_duration.p95_ms : null));
  line(p95, '--accent', Math.max(1e-9, ...p95.filter((v) => v != null)));
}
$('overview-period').onchange = () => loadOverview();
$('overview-name').oninput = () => { clearTimeout(overview.typing); overview.typing = setTimeout(loadOverview, 300); };
$('overview-filter').onsubmit = (ev) => { ev.preventDefault(); loadOverview(); };
setInterval(() => { if (route.view === 'overview' && !document.hidden) loadOverview(); }, 30000);

// ---- jobs list: the newest jobs matching the filters, a page at a time (the server caps a
// page at 1,000; past that, the filters narrow it)
const JOBS_PAGE = 200, JOBS_MAX = 1000;
const jobs = { map: new Map(), limit: JOBS_PAGE, filter: { name: '', status: '', limit: JOBS_PAGE } };
function jobsSubscription() {
  const f = jobs.filter, sub = { subscribe: 'jobs', limit: f.limit };
  // A name without glob characters matches as a part of the name, as a search box does.
  if (f.name) sub.name = /[*?[]/.test(f.name) ? f.name : '*' + f.name + '*';
  if (f.status) sub.status = f.status;
  return sub;
}
function refilterJobs() {
  jobs.filter = { name: $('jobs-name').value.trim(), status: $('jobs-status').value, limit: JOBS_PAGE };
  subscribe(jobsSubscription());
}
let jobsTyping = null;
$('jobs-name').addEventListener('input', () => { clearTimeout(jobsTyping); jobsTyping = setTimeout(refilterJobs, 250); });
$('jobs-status').addEventListener('change', refilterJobs);
$('jobs-filter').addEventListener('submit', (e) => { e.preventDefault(); refilterJobs(); });
$('jobs-more-button').addEventListener('click', () => {
  jobs.filter.limit = Math.min(jobs.filter.limit + JOBS_PAGE, JOBS_MAX);
  subscribe(jobsSubscription());
});
function renderJobs() {
  const body = $('jobs-body');
  const list = [...jobs.map.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
  const filtered = !!(jobs.filter.name || jobs.filter.status);
  $('jobs-empty').hidden = list.length > 0;
  $('jobs-empty').textContent = filtered ? 'No job matches these filters.' : 'No jobs in this store yet: run one with mmm run.';
  const full = list.length >= jobs.limit;
  $('jobs-more').hidden = !full;
  $('jobs-shown').textContent = 'the newest ' + fmtInt(list.length) + ' shown' + (jobs.limit >= JOBS_MAX ? ': narrow the filters to see older ones' : '');
  $('jobs-more-button').hidden = jobs.limit >= JOBS_MAX;
  body.replaceChildren(...list.map((j) => {
    const bar = el('span', { class: 'mini' }, el('div'));
    bar.firstChild.style.width = j.percent + '%';
    const row = el('tr', { 'data-id': j.id },
      el('td', {}, el('code', {}, j.short)),
      el('td', {}, j.name),
      el('td', {}, el('span', { class: 'badge ' + j.status }, j.status), ' ', j.paused ? el('span', { class: 'badge paused' }, 'paused') : '', ' ', j.resumable ? el('span', { class: 'badge resumable' }, 'resumable') : ''),
      el('td', {}, bar, j.percent.toFixed(1) + '%'),
      el('td', { class: 'counts' }, fmtInt(j.counts.completed + j.counts.dead_lettered + j.counts.skipped) + ' / ' + fmtInt(j.total)),
      el('td', {}, j.status === 'running' ? fmtEta(j.eta) : '–'),
      el('td', { class: j.alerts.length ? 'err' : 'muted' }, j.alerts.length ? j.alerts.map((a) => a.kind || a.message || 'alert').join(', ') : '–'));
    row.onclick = () => { location.hash = '#/job/' + j.id; };
    return row;
  }));
}

// ---- one job
const job = { id: null, state: null, events: [], history: [], scrub: null, filter: null, items: { status: '', offset: 0, limit: 25, total: 0 }, itemsAt: 0 };
function applyState(msg) {
  const s = msg.state;
  const bare = (id) => String(id).replace(/-/g, '').toLowerCase();
  if (!job.id || !bare(s.job.id).startsWith(bare(job.id))) return;
  job.id = s.job.id;
  const resumed = msg.resync === false && job.state && live.seq > 0;
  job.state = s;
  if (!resumed) job.events = s.recent_events.slice();
  else mergeEvents(s.recent_events);
  live.seq = Math.max(msg.seq, resumed ? live.seq : 0);
  if (s.snapshot) pushHistory(s.snapshot);
  refreshItems(true);
  dirty();
}
function mergeEvents(events) {
  const last = job.events.length ? job.events[job.events.length - 1].seq : 0;
  for (const e of events) if (e.seq > last) job.events.push(e);
  if (job.events.length > 500) job.events.splice(0, job.events.length - 500);
}
function applyDelta(msg) {
  const s = job.state;
  if (!s || msg.job !== job.id) return;
  if (msg.head) Object.assign(s, msg.head);
  if (msg.snapshot || msg.agents) {
    const payload = msg.snapshot ? msg.snapshot.payload : Object.assign({}, s.snapshot && s.snapshot.payload);
    const agents = (s.snapshot && s.snapshot.payload.agents) ? s.snapshot.payload.agents.slice() : [];
    // An agent on a new item: the item is now running. Its first attempt has no
    // attempt_started event (docs/events.md), so this is what tells the items table.
    if (msg.agents && msg.agents.some((a) => a.item != null && (!agents[a.index] || agents[a.index].item !== a.item))) refreshItems(false);
    if (msg.agents) { for (const a of msg.agents) agents[a.index] = a; agents.length = msg.agent_count; }
    payload.agents = agents;
    s.snapshot = { at: msg.snapshot_at, payload };
    pushHistory(s.snapshot);
  }
  if (msg.events) {
    mergeEvents(msg.events);
    if (msg.events.some((e) => e.kind.startsWith('item') || e.kind.startsWith('attempt'))) refreshItems(false);
  }
  live.seq = Math.max(live.seq, msg.seq);
  dirty();
}
function pushHistory(snapshot) {
  const h = job.history;
  if (!h.length || h[h.length - 1].at < snapshot.at) h.push(snapshot);
  if (h.length > 3600) h.shift();
}
async function openJob(id) {
  job.id = id; job.state = null; job.events = []; job.history = []; job.scrub = null; job.filter = null; job.accuracy = null; job.accuracyFor = null;
  drawn = {}; $('events').replaceChildren();
  job.items = { status: '', offset: 0, limit: 25, total: 0 };
  closeItem();
  live.seq = 0;
  subscribe({ subscribe: 'job', job: id });
  for (const [node, path] of [['export-json', '/export?format=json'], ['export-html', '/export?format=html'], ['export-csv', '/export?format=csv'], ['export-snapshots', '/export?format=csv&what=snapshots'], ['export-dlq', '/items?status=dead_lettered&limit=500']]) {
    $(node).href = withToken('/api/jobs/' + id + path);
  }
  try {
    const h = await api('/api/jobs/' + id + '/snapshots?limit=5000');
    if (job.id === id) { job.history = h.snapshots.concat(job.history.filter((s) => !h.snapshots.length || s.at > h.snapshots[h.snapshots.length - 1].at)); dirty(); }
    const l = await api('/api/jobs/' + id + '/ledger');
    if (job.id === id) renderLedger(l.ledger);
  } catch (e) { console.warn(e); }
}
function renderLedger(ledger) {
  const items = ledger.entries.map((e) => el('li', {}, fmtTime(e.at) + ' ' + e.kind + ' ' + JSON.stringify(e.payload)));
  for (const [reason, n] of ledger.requeued) items.push(el('li', {}, n + ' requeued: ' + reason));
  $('ledger').replaceChildren(...(items.length ? items : [el('li', { class: 'muted' }, 'never resumed')]));
}

// Items: paged by the API; refreshed at most once a second while the job changes.
let itemsTimer = null;
function refreshItems(now) {
  if (now) { loadItems(); return; }
  if (itemsTimer) return;
  itemsTimer = setTimeout(() => { itemsTimer = null; loadItems(); }, Math.max(0, 1000 - (Date.now() - job.itemsAt)));
}
async function loadItems() {
  const id = job.id, q = job.items;
  job.itemsAt = Date.now();
  const page = await api('/api/jobs/' + id + '/items?status=' + q.status + '&offset=' + q.offset + '&limit=' + q.limit).catch(() => null);
  if (!page || job.id !== id) return;
  q.total = page.total;
  $('items-body').replaceChildren(...page.items.map((it) => {
    const a = it.last_attempt;
    const row = el('tr', { class: 'item', 'data-key': it.key },
      el('td', {}, it.index), el('td', {}, el('code', {}, it.key)),
      el('td', {}, el('span', { class: 'badge ' + it.status }, it.status)), el('td', {}, it.attempts),
      el('td', { class: 'err' }, a && a.error ? a.error : ''));
    row.onclick = () => showItem(it.key);
    return row;
  }));
  $('page').textContent = page.total ? (q.offset + 1) + '–' + Math.min(q.offset + q.limit, page.total) + ' of ' + fmtInt(page.total) : 'no items';
  for (const b of $('item-filters').children) b.classList.toggle('on', b.dataset.status === q.status);
}
// ---- the item page (docs/logs.md): the item's value, every attempt, its log live-tailed
// while it runs, a download link. Opened from an items row (the DLQ filter included), an agent
// of the grid, a straggler.
const LOG_SHOWN = 1 << 20;  // the page keeps the last 1 MiB of a log; the download has it all
let itemLog = null;          // the AbortController of the log being read
const itemPath = (key) => '/api/jobs/' + job.id + '/items/' + encodeURIComponent(key);
async function showItem(key) {
  const id = job.id;
  const data = await api(itemPath(key)).catch((e) => { console.warn(e); return null; });
  if (!data || job.id !== id) return;
  const it = data.item, attempts = data.attempts, a = attempts[attempts.length - 1];
  const d = $('item-detail');
  const parts = [
    el('h3', {}, 'Item ' + it.key + ' ', el('span', { class: 'badge ' + it.status }, it.status), ' ', el('button', { type: 'button', id: 'item-close', onclick: closeItem }, 'close')),
    el('p', { class: 'muted' }, '#' + (it.index + 1) + ' in the input · ' + attempts.length + (attempts.length === 1 ? ' attempt' : ' attempts')),
    el('pre', { id: 'item-value' }, it.value),
  ];
  if (a) parts.push(el('p', { class: 'err', id: 'item-error' }, 'attempt ' + a.number + ' on ' + a.agent + ': ' + (a.error || a.outcome || 'running') + (a.exit_code != null ? ' (exit ' + a.exit_code + ')' : '')));
  if (attempts.length) {
    parts.push(el('table', { class: 'list', id: 'item-attempts' },
      el('thead', {}, el('tr', {}, ...['#', 'agent', 'started', 'ended', 'duration', 'outcome', 'exit', 'error', 'steps'].map((h) => el('th', {}, h)))),
      el('tbody', {}, ...attempts.map((t) => el('tr', {},
        el('td', {}, t.number), el('td', {}, t.agent), el('td', {}, fmtTime(t.started_at)), el('td', {}, t.ended_at ? fmtTime(t.ended_at) : 'running'),
        el('td', {}, t.duration_us != null ? fmtMs(t.duration_us / 1000) : '–'), el('td', {}, t.outcome || 'running'),
        el('td', {}, t.exit_code != null ? t.exit_code : ''), el('td', { class: 'err' }, t.error || ''),
        el('td', {}, t.steps.map((st) => st.name + (st.skipped ? ' skipped' : ' ' + fmtMs(st.duration_us / 1000))).join(', ')))))));
  }
  const logUrl = itemPath(it.key) + '/log';
  parts.push(el('h4', {}, 'Log ', el('a', { id: 'item-download', href: withToken(logUrl + '?download=1'), download: '' }, 'download'), ' ', el('span', { class: 'muted', id: 'item-log-state' }, '')));
  const pre = el('pre', { id: 'item-log', class: 'log' });
  parts.push(pre);
  if (!data.logged && a && (a.stdout_tail || a.stderr_tail) && it.status !== 'running') {
    pre.textContent = (a.stdout_tail || '') + (a.stderr_tail ? '\n' + a.stderr_tail : '');
    parts.push(el('p', { class: 'muted' }, 'no log kept (logs: none, or pruned): the last 4 KiB of each stream'));
  }
  d.replaceChildren(...parts);
  d.hidden = false;
  if (data.logged || it.status === 'running' || it.status === 'pending') readLog(logUrl, it.status === 'running' || it.status === 'pending', pre);
}
function closeItem() {
  if (itemLog) { itemLog.abort(); itemLog = null; }
  $('item-detail').hidden = true;
}
// Reads the log (following it while the item runs), keeping the last LOG_SHOWN characters,
// scrolled to the end unless the reader scrolled up.
async function readLog(url, follow, pre) {
  if (itemLog) itemLog.abort();
  const ctl = new AbortController();
  itemLog = ctl;
  const state = $('item-log-state');
  state.textContent = follow ? 'live' : '';
  try {
    const res = await fetch(withToken(url + (follow ? '?follow=1' : '')), { signal: ctl.signal });
    if (!res.ok) { state.textContent = 'could not read the log'; return; }
    const reader = res.body.getReader(), dec = new TextDecoder();
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
      if (text.length > LOG_SHOWN) text = text.slice(text.length - LOG_SHOWN);
      const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent = text;
      if (stick) pre.scrollTop = pre.scrollHeight;
    }
    if (itemLog === ctl) state.textContent = follow ? 'ended' : '';
  } catch (e) {
    if (e.name !== 'AbortError') { console.warn(e); state.textContent = 'could not read the log'; }
  }
}
// An item by its position in the input (agents and stragglers know it by that): its key first.
async function showItemAt(index) {
  const page = await api('/api/jobs/' + job.id + '/items?offset=' + index + '&limit=1').catch(() => null);
  if (page && page.items.length) showItem(page.items[0].key);
}
$('item-filters').onclick = (e) => {
  const s = e.target.dataset && e.target.dataset.status;
  if (s === undefined) return;
  job.items.status = s; job.items.offset = 0; loadItems();
};
$('prev').onclick = () => { job.items.offset = Math.max(0, job.items.offset - job.items.limit); loadItems(); };
$('next').onclick = () => { if (job.items.offset + job.items.limit < job.items.total) { job.items.offset += job.items.limit; loadItems(); } };

// History scrubber: replays the job from its snapshots.
$('scrub').oninput = (e) => {
  const i = Number(e.target.value);
  job.scrub = i >= job.history.length - 1 ? null : i;
  dirty();
};
$('scrub-live').onclick = () => { job.scrub = null; dirty(); };

// ---- steering a running job (docs/control.md): the same store requests as `mmm pause`, ...
function agentsNow() {
  const j = job.state && job.state.job;
  return j ? (j.scaled_agents || j.max_parallel || 1) : 1;
}
async function control(body) {
  const res = await fetch(withToken('/api/jobs/' + job.id + '/control'), {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  }).catch((e) => ({ ok: false, statusText: String(e), json: async () => ({}) }));
  const out = await res.json().catch(() => ({}));
  $('ctl-notice').textContent = res.ok ? body.action + ' sent (request ' + out.seq + ')' : (out.error || res.statusText);
}
$('ctl-pause').onclick = () => control(job.state && job.state.job.paused ? { action: 'unpause' } : { action: 'pause', suspend: false });
$('ctl-scale-up').onclick = () => control({ action: 'scale', agents: agentsNow() + 1 });
$('ctl-scale-down').onclick = () => { if (agentsNow() > 1) control({ action: 'scale', agents: agentsNow() - 1 }); };
$('ctl-drain').onclick = () => control({ action: 'drain' });
$('ctl-cancel').onclick = () => {
  if (confirm('Cancel job ' + job.id.slice(0, 8) + '? Its running commands get their grace period, then are killed.')) control({ action: 'cancel', now: false });
};

function shownSnapshot() {
  if (job.scrub != null && job.history[job.scrub]) return job.history[job.scrub];
  return job.state && job.state.snapshot;
}

function renderJob() {
  const s = job.state;
  if (!s) return;
  const snap = shownSnapshot();
  const p = snap && snap.payload;
  const progress = p && p.progress;
  const replay = job.scrub != null;
  const c = s.job.counts;
  const total = c.pending + c.running + c.completed + c.failed + c.dead_lettered + c.skipped;
  $('job-name').textContent = s.job.name;
  $('job-id').textContent = s.job.id.slice(0, 8);
  const shown = s.job.paused && s.job.status === 'running' ? 'paused' : s.job.status;
  $('job-status').textContent = shown;
  $('job-status').className = 'badge ' + shown;
  $('job-resumable').hidden = !s.resumable;
  $('job-controls').hidden = s.job.status !== 'running' || replay;
  $('ctl-pause').textContent = s.job.paused ? 'unpause' : 'pause';
  $('ctl-agents').textContent = agentsNow() + (agentsNow() === 1 ? ' agent' : ' agents');
  const percent = replay && progress ? progress.percent : s.percent;
  $('job-bar').style.width = percent + '%';
  $('job-percent').textContent = percent.toFixed(1) + '%';
  const m = p && p.metrics;
  const rate = snap ? rateOf(snap, s.job.started_at) : null;
  const counts = replay && progress ? { completed: progress.completed, dead_lettered: progress.dead_lettered, skipped: progress.skipped, pending: progress.pending, running: progress.in_flight } : c;
  const tiles = [
    ['completed', fmtInt(counts.completed)], ['dead-lettered', fmtInt(counts.dead_lettered)], ['skipped', fmtInt(counts.skipped)],
    ['pending', fmtInt(counts.pending)], ['in flight', fmtInt(counts.running)], ['total', fmtInt(replay && progress ? progress.total : total)],
    ['items/s', rate == null ? '–' : rate.toFixed(2)], ['ETA', s.job.status === 'running' || replay ? fmtEta(m && m.eta) : '–'], ['elapsed', fmtMs(s.job.duration_ms)],
    ['p50 item', m && m.items ? fmtMs(m.items.p50_ms) : '–'], ['p95 item', m && m.items ? fmtMs(m.items.p95_ms) : '–'],
    ['failed attempts', fmtInt(m ? m.failed_attempts : null)],
  ];
  // Once the job has finished: how right its ETA was (read once per change of the record).
  const finished = ['completed', 'completed_with_failures', 'failed', 'cancelled'].includes(s.job.status);
  if (finished && !replay && job.accuracyFor !== s.job.id + '@' + s.job.updated_at) {
    job.accuracyFor = s.job.id + '@' + s.job.updated_at;
    const id = s.job.id;
    api('/api/jobs/' + id + '/eta-accuracy').then((r) => { if (job.id && id.startsWith(job.id.replace(/-/g, '').slice(0, 8))) { job.accuracy = r.eta_accuracy; dirty(); } }).catch((e) => console.warn(e));
  }
  if (finished && !replay && job.accuracy) {
    const a = job.accuracy;
    const first = a.at_percent[0];
    tiles.push(['ETA range held', a.covered + '/' + a.estimates]);
    if (first) tiles.push(['ETA error at ' + first.percent + '%', (first.relative * 100).toFixed(1) + '% ' + (first.error_ms > 0 ? 'late' : 'early')]);
  }
  // Each counter steps report, beside the ETA: its total and where it is expected to end.
  const totals = (p && p.counters) || {};
  const forecasts = (m && m.counters) || {};
  for (const name of Object.keys(totals)) {
    const f = forecasts[name];
    const [e, lo, hi] = f ? [fmtEstimate(f.expected), fmtEstimate(f.p10), fmtEstimate(f.p90)] : [];
    const end = f ? ' → ~' + e + (lo === hi ? '' : ' (' + lo + '–' + hi + ')') : '';
    tiles.push([name, fmtCounter(totals[name]) + end]);
  }
  // Each part is redrawn only when what it shows changed: a busy job sends up to 100 messages
  // a second, and rebuilding every list and canvas for each cost frames (benches/page.rs).
  const width = $('agents').clientWidth;
  if (changed('tiles', JSON.stringify(tiles))) {
    $('tiles').replaceChildren(...tiles.map(([k, v]) => el('div', { class: 'tile', 'data-tile': k }, el('b', {}, v), el('span', {}, k))));
  }
  const fails = (m && m.failures) || [];
  if (changed('failures', JSON.stringify(fails))) {
    $('failures').replaceChildren(...(fails.length ? fails.map((f) => el('li', {}, el('b', {}, f.count + '× '), failureKind(f.kind) + ': ' + f.message)) : [el('li', { class: 'muted' }, 'no failures')]));
  }
  const strag = (m && m.stragglers) || [];
  if (changed('stragglers', JSON.stringify(strag))) {
    $('stragglers').replaceChildren(...(strag.length ? strag.map((x) => el('li', { class: 'link', onclick: () => showItemAt(x.item) }, 'item ' + x.item + ' on agent-' + (x.agent + 1) + ', ' + x.step_name + ': ' + fmtMs(x.elapsed_ms) + ' (p95 ' + fmtMs(x.p95_ms) + ')')) : [el('li', { class: 'muted' }, 'none')]));
  }
  const alerts = (p && p.alerts) || [];
  if (changed('alerts', JSON.stringify(alerts))) {
    $('alerts').replaceChildren(...(alerts.length ? alerts.map((a) => el('li', { class: 'err' }, a.message || JSON.stringify(a))) : [el('li', { class: 'muted' }, 'none')]));
  }
  renderEvents();
  const scrub = $('scrub');
  scrub.max = Math.max(0, job.history.length - 1);
  if (job.scrub == null) scrub.value = scrub.max;
  $('scrub-at').textContent = replay ? 'replay ' + fmtTime(snap.at) : 'live';
  const hist = job.history;
  if (changed('chart', [hist.length, hist.length && hist[hist.length - 1].at, job.scrub, width].join())) drawChart();
  const agents = p ? p.agents || [] : [];
  if (changed('agents', agents, job.filter, width)) drawAgents(agents);
}
// What each part of the job page was last drawn from: `changed(part, ...values)` says whether
// any value differs (by identity: the agents array is replaced when an agent changes) and
// remembers them. Cleared when another job is opened.
let drawn = {};
// The canvases take their colours from the theme: a system switch to dark or light redraws them.
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => { drawn = {}; dirty(); });
function changed(part, ...values) {
  const before = drawn[part];
  if (before && before.length === values.length && before.every((v, i) => v === values[i])) return false;
  drawn[part] = values;
  return true;
}
// The events feed, newest first, at most 200: new events are added at the top and the oldest
// dropped, instead of rebuilding the list for every message.
function renderEvents() {
  const ev = $('events');
  const newest = job.events.length ? job.events[job.events.length - 1].seq : 0;
  const top = ev.firstChild && ev.firstChild.dataset ? Number(ev.firstChild.dataset.seq) : 0;
  const line = (e) => el('li', { 'data-seq': e.seq }, '#' + e.seq + ' ' + fmtTime(e.at) + ' ' + e.kind + (e.item_key ? ' ' + e.item_key : '') + (e.payload && e.payload.error ? ' — ' + e.payload.error : ''));
  const fresh = job.events.filter((e) => e.seq > top);
  // A new job, a resync, or more new events than shown: draw the whole list again.
  if (!top || newest < top || fresh.length >= 200) {
    ev.replaceChildren(...job.events.slice(-200).reverse().map(line));
    return;
  }
  if (!fresh.length) return;
  ev.prepend(...fresh.reverse().map(line));
  while (ev.children.length > 200) ev.lastChild.remove();
}

// ---- canvases
function fitCanvas(canvas, height) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(w * ratio); canvas.height = Math.round(height * ratio); canvas.style.height = height + 'px';
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, w, h: height };
}
function drawChart() {
  const { ctx, w, h } = fitCanvas($('chart'), 160);
  ctx.clearRect(0, 0, w, h);
  const hist = job.history;
  if (hist.length < 2) { ctx.fillStyle = css('--muted'); ctx.fillText('the chart fills in as snapshots arrive', 8, 20); return; }
  const t0 = hist[0].at, t1 = hist[hist.length - 1].at || t0 + 1;
  const x = (t) => ((t - t0) / Math.max(1, t1 - t0)) * (w - 10) + 5;
  const started = job.state && job.state.job.started_at;
  const rates = hist.map((s) => rateOf(s, started) || 0);
  const maxRate = Math.max(1e-9, ...rates);
  ctx.lineWidth = 2;
  ctx.strokeStyle = css('--accent'); ctx.beginPath();
  hist.forEach((s, i) => { const y = h - 5 - ((s.payload.progress ? s.payload.progress.percent : 0) / 100) * (h - 10); i ? ctx.lineTo(x(s.at), y) : ctx.moveTo(x(s.at), y); });
  ctx.stroke();
  ctx.strokeStyle = css('--ok'); ctx.beginPath();
  hist.forEach((s, i) => { const y = h - 5 - (rates[i] / maxRate) * (h - 10); i ? ctx.lineTo(x(s.at), y) : ctx.moveTo(x(s.at), y); });
  ctx.stroke();
  if (job.scrub != null && hist[job.scrub]) { ctx.strokeStyle = css('--warn'); ctx.beginPath(); ctx.moveTo(x(hist[job.scrub].at), 0); ctx.lineTo(x(hist[job.scrub].at), h); ctx.stroke(); }
  ctx.fillStyle = css('--muted');
  ctx.fillText('progress %   ' + maxRate.toFixed(2) + ' items/s max (green)', 8, 12);
}
const STATE_COLOUR = { queued: '--idle', initializing: '--run', running: '--run', merging: '--run', completed: '--ok', failed: '--bad', retrying: '--warn', dead_lettered: '--bad', throttled: '--warn' };
let agentLayout = { cell: 10, cols: 1, agents: [] };
function drawAgents(agents) {
  const canvas = $('agents');
  const n = agents.length;
  const w = canvas.clientWidth || 600;
  const cell = n > 2000 ? 6 : n > 500 ? 9 : n > 100 ? 14 : 22;
  const cols = Math.max(1, Math.floor(w / cell));
  const rows = Math.max(1, Math.ceil(n / cols));
  const { ctx } = fitCanvas(canvas, rows * cell);
  ctx.clearRect(0, 0, w, rows * cell);
  const colours = {};
  const counts = {};
  for (let i = 0; i < n; i++) {
    const a = agents[i];
    if (!a) continue;
    counts[a.phase] = (counts[a.phase] || 0) + 1;
    const name = STATE_COLOUR[a.phase] || '--idle';
    ctx.fillStyle = colours[name] || (colours[name] = css(name));
    ctx.globalAlpha = job.filter && job.filter !== a.phase ? 0.15 : a.phase === 'running' && a.progress != null ? 0.5 + a.progress / 2 : 1;
    ctx.fillRect((i % cols) * cell, Math.floor(i / cols) * cell, cell - 1, cell - 1);
  }
  ctx.globalAlpha = 1;
  agentLayout = { cell, cols, agents };
  $('agent-legend').textContent = Object.entries(counts).map(([k, v]) => k + ' ' + v).join(' · ') + (job.filter ? ' (showing ' + job.filter + '; click again to clear)' : '');
}
function agentAt(ev) {
  const r = $('agents').getBoundingClientRect();
  const { cell, cols, agents } = agentLayout;
  const col = Math.floor((ev.clientX - r.left) / cell), row = Math.floor((ev.clientY - r.top) / cell);
  if (col < 0 || col >= cols) return null;
  return agents[row * cols + col] || null;
}
$('agents').onmousemove = (ev) => {
  const a = agentAt(ev);
  const tip = $('agent-tip');
  if (!a) { tip.hidden = true; return; }
  tip.textContent = (a.name || 'agent-' + (a.index + 1)) + ': ' + (a.phase === 'throttled' ? 'waiting (throttled)' : a.phase) + (a.item != null ? '\nitem ' + a.item : '') + (a.progress != null ? '\nprogress ' + Math.round(a.progress * 100) + '%' : '') + '\nitems done ' + a.items_done + (a.message ? '\n' + a.message : '') + (a.last_exit_code != null ? '\nlast exit ' + a.last_exit_code : '');
  tip.style.left = (ev.offsetX + 14) + 'px'; tip.style.top = (ev.offsetY + 40) + 'px'; tip.hidden = false;
};
$('agents').onmouseleave = () => { $('agent-tip').hidden = true; };
// A click on an agent at work opens its item; on an idle one, shows only agents like it.
$('agents').onclick = (ev) => {
  const a = agentAt(ev);
  if (a && a.item != null) { showItemAt(a.item); return; }
  job.filter = a && job.filter !== a.phase ? a.phase : null; dirty();
};

// ---- rendering, at most once a frame
let pending = false;
function dirty() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; route.view === 'job' ? renderJob() : route.view === 'runs' ? renderRuns() : route.view === 'overview' ? renderOverview() : renderJobs(); });
}
window.addEventListener('resize', dirty);

// ---- routes
const route = { view: 'jobs' };
function onRoute() {
  const m = location.hash.match(/^#\/job\/([0-9a-fA-F-]+)/);
  const onRuns = !m && /^#\/runs/.test(location.hash);
  const onOverview = !m && /^#\/overview/.test(location.hash);
  $('jobs-view').hidden = !!m || onRuns || onOverview; $('job-view').hidden = !m; $('runs-view').hidden = !onRuns; $('overview-view').hidden = !onOverview;
  $('tab-jobs').classList.toggle('on', !onRuns && !onOverview); $('tab-runs').classList.toggle('on', onRuns); $('tab-overview').classList.toggle('on', onOverview);
  if (m) { route.view = 'job'; openJob(m[1]); }
  else if (onOverview) { route.view = 'overview'; job.id = null; loadOverview(); }
  else if (onRuns) { route.view = 'runs'; job.id = null; subscribe({ subscribe: 'runs' }); }
  else { route.view = 'jobs'; job.id = null; subscribe(jobsSubscription()); }
  dirty();
}
window.addEventListener('hashchange', onRoute);
onRoute();
connect();

// A failure cluster's kind as the metrics record it ({kind: "exit", code: 2}, ...), in words.
function failureKind(k) {
  if (!k) return 'failure';
  if (k.kind === 'exit') return 'exit ' + k.code;
  if (k.kind === 'signal') return 'signal ' + k.signal;
  return String(k.kind).replace(/_/g, ' ');
}
