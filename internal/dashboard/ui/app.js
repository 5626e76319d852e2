// Mast dashboard: plain JavaScript, no dependencies. Data comes live from
// the api/events stream (api/state and api/graph serve the same JSON).
'use strict';

const SVGNS = 'http://www.w3.org/2000/svg';
const app = {
  graph: null, state: null, view: 'graph', selected: '', history: null,
  layoutKey: '', layout: null, query: '', rawState: '', rawGraph: '',
  dirty: { config: true, proxies: true, policy: true }, allEdges: false,
  drawn: null, printing: false,
};
// Graphs with at least this many nodes draw only what is near the visible
// part of the graph's scroll area (one screen around it), and draw again
// as it scrolls: a 2,001-node graph would otherwise lay out and paint
// ~16,000 SVG elements, most of them never seen. Printing draws them all.
const DRAW_ALL_BELOW = 400;
// The edges table lists at most this many rows until asked for all.
const EDGE_ROWS = 300;

// h builds an element: h('td', {class: 'num'}, 'text', child...). Text is
// always set as text, never parsed as HTML.
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat(Infinity)) {
    if (k === undefined || k === null || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}
function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  for (const k of kids.flat(Infinity)) {
    if (k !== undefined && k !== null) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}
function fill(tbody, rows) { tbody.replaceChildren(...rows); }
const fmt = {
  rate: (r) => r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2),
  pct: (f) => (f * 100).toFixed(f > 0 && f < 0.1 ? 1 : 0) + ' %',
  ms: (sig) => sig.hasLatency ? sig.p50.toFixed(sig.p50 < 10 ? 1 : 0) : '–',
  ms99: (sig) => sig.hasLatency ? sig.p99.toFixed(sig.p99 < 10 ? 1 : 0) : '–',
};

// --- names and links ---------------------------------------------------------

function nodeByID(id) {
  if (!app.graph) return null;
  if (app.graph.byID === undefined) app.graph.byID = new Map(app.graph.nodes.map((n) => [n.id, n]));
  return app.graph.byID.get(id) || null;
}
function nodeLabel(n) {
  if (!n) return '';
  if (n.kind === 'unknown') return 'unknown (outside the mesh)';
  return n.namespace ? n.name + '.' + n.namespace : n.name;
}
function nodeName(id) { const n = nodeByID(id); return n ? nodeLabel(n) : id.replace(/^[a-z]+:/, ''); }
function link(view, id, text) { return h('a', { href: '#/' + view + '/' + encodeURIComponent(id) }, text); }
function shortProxy(id) { const p = id.split('~'); return p.length === 4 ? p[2] : id; }
function shortType(url) { return url.replace(/^.*\//, '').replace(/^envoy\.config\.[a-z]+\.v3\./, '').replace('envoy.extensions.transport_sockets.tls.v3.', ''); }
const TYPE_COLUMNS = { Cluster: 'CDS', Listener: 'LDS', ClusterLoadAssignment: 'EDS', RouteConfiguration: 'RDS' };

// --- routing -----------------------------------------------------------------

function route() {
  const m = location.hash.match(/^#\/([a-z]+)(?:\/(.*))?$/);
  if (m && m[1] === 'search') { openSearch(decodeURIComponent(m[2] || '')); return; }
  app.view = m && ['graph', 'config', 'proxies', 'policy'].includes(m[1]) ? m[1] : 'graph';
  app.selected = m && m[2] ? decodeURIComponent(m[2]) : '';
  for (const sec of document.querySelectorAll('main > section')) sec.classList.toggle('active', sec.id === 'view-' + app.view);
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === app.view) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.title = 'Mast dashboard · ' + ({ graph: 'Graph', config: 'Configuration', proxies: 'Proxies', policy: 'Policy' })[app.view] +
    (app.selected ? ' · ' + app.selected : '');
  app.history = null;
  if (app.view in app.dirty) app.dirty[app.view] = true; // the selection changed
  render();
  if (app.selected) {
    if (app.view === 'graph') loadHistory();
    requestAnimationFrame(() => {
      if (app.view === 'graph') {
        // Bring the node into the graph's own scroll area, not the page.
        const wrap = document.getElementById('graph-wrap');
        if (app.layout && app.layout.pos.has(app.selected)) {
          const p = app.layout.pos.get(app.selected);
          wrap.scrollTo({ left: Math.max(0, p.x - wrap.clientWidth / 2), top: Math.max(0, p.y - wrap.clientHeight / 2) });
        }
        return;
      }
      const row = document.querySelector('#view-' + app.view + ' tr.selected');
      if (row) row.scrollIntoView({ block: 'center' });
    });
  }
}

// --- graph layout: columns by depth from the sources --------------------------

function layoutGraph(g) {
  const key = g.nodes.map((n) => n.id).join('|') + '#' + g.edges.map((e) => e.source + '>' + e.target).join('|');
  if (key === app.layoutKey) return app.layout;
  const out = new Map(), inc = new Map();
  for (const n of g.nodes) { out.set(n.id, []); inc.set(n.id, []); }
  for (const e of g.edges) { out.get(e.source).push(e.target); inc.get(e.target).push(e.source); }
  // Columns by breadth-first depth from the nodes nobody calls (then from
  // any node left, for cycles): linear in the graph's size.
  const depth = new Map();
  const queue = [];
  let qi = 0;
  const visit = (starts) => {
    for (const id of starts) if (!depth.has(id)) { depth.set(id, 0); queue.push(id); }
    while (qi < queue.length) {
      const id = queue[qi++];
      for (const t of out.get(id)) if (!depth.has(t)) { depth.set(t, depth.get(id) + 1); queue.push(t); }
    }
  };
  visit(g.nodes.filter((n) => inc.get(n.id).length === 0).map((n) => n.id));
  for (const n of g.nodes) visit([n.id]);
  const cols = [];
  for (const n of g.nodes) {
    const d = depth.get(n.id);
    (cols[d] = cols[d] || []).push(n.id);
  }
  const pos = new Map();
  const COLW = 250, ROWH = 72, PAD = 60;
  let height = 0;
  cols.forEach((col, c) => {
    if (!col) return;
    // Order by the mean row of the predecessors, then by name.
    const bary = (id) => {
      const ps = inc.get(id).filter((p) => pos.has(p));
      return ps.length ? ps.reduce((a, p) => a + pos.get(p).row, 0) / ps.length : Infinity;
    };
    col.sort((a, b) => (bary(a) - bary(b)) || (a < b ? -1 : a > b ? 1 : 0));
    col.forEach((id, r) => pos.set(id, { row: r, x: PAD + c * COLW, y: PAD + r * ROWH }));
    height = Math.max(height, PAD * 2 + (col.length - 1) * ROWH);
  });
  app.layoutKey = key;
  app.layout = { pos, width: PAD * 2 + Math.max(0, cols.length - 1) * COLW + 120, height: Math.max(height + 30, 120) };
  return app.layout;
}

function shape(kind) {
  if (kind === 'service') return s('path', { class: 'shape', d: 'M0,-13 L13,0 L0,13 L-13,0 Z' });
  if (kind === 'unknown') return s('rect', { class: 'shape', x: -11, y: -11, width: 22, height: 22 });
  return s('circle', { class: 'shape', r: 12 });
}

function edgeLabel(e, from) {
  const parts = [fmt.rate(e.rate) + ' rps'];
  if (from && from.kind === 'service' && e.rate > 0) parts.push(fmt.pct(e.share));
  if (e.errorRate > 0) parts.push(fmt.pct(e.errorRate) + ' err');
  if (e.security === 'mutual_tls') parts.push('mTLS');
  return parts.join(' · ');
}

// drawWindow is the part of the graph to draw: null for all of it, else
// the visible rectangle of the scroll area grown by one screen each way.
function drawWindow(g) {
  if (app.printing || g.nodes.length < DRAW_ALL_BELOW) return null;
  const w = document.getElementById('graph-wrap');
  const mx = Math.max(w.clientWidth, 300), my = Math.max(w.clientHeight, 300);
  return { x0: w.scrollLeft - mx, x1: w.scrollLeft + 2 * mx, y0: w.scrollTop - my, y1: w.scrollTop + 2 * my };
}
// inWindow: whether a box (with the 80-pixel loops of backward edges and
// the labels' width) meets the window.
function inWindow(win, xa, ya, xb, yb) {
  return !win || (Math.max(xa, xb) + 80 >= win.x0 && Math.min(xa, xb) - 80 <= win.x1 &&
    Math.max(ya, yb) + 40 >= win.y0 && Math.min(ya, yb) - 80 <= win.y1);
}
// onGraphScroll draws again when the visible part leaves what is drawn.
function onGraphScroll() {
  const win = app.drawn;
  if (!win || app.scrollQueued) return;
  app.scrollQueued = true;
  requestAnimationFrame(() => {
    app.scrollQueued = false;
    const w = document.getElementById('graph-wrap');
    if (app.drawn && (w.scrollLeft < app.drawn.x0 + 1 || w.scrollTop < app.drawn.y0 + 1 ||
      w.scrollLeft + w.clientWidth > app.drawn.x1 - 1 || w.scrollTop + w.clientHeight > app.drawn.y1 - 1)) renderGraph();
  });
}

function renderGraph() {
  const g = app.graph;
  const svg = document.getElementById('graph');
  if (!g) return;
  const L = layoutGraph(g);
  svg.setAttribute('width', L.width);
  svg.setAttribute('height', L.height);
  svg.setAttribute('viewBox', `0 0 ${L.width} ${L.height}`);
  const win = drawWindow(g);
  app.drawn = win;
  const defs = s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: 'userSpaceOnUse', orient: 'auto-start-reverse' },
    s('path', { class: 'arrow', d: 'M0,0 L10,5 L0,10 z' })));
  const nodes = new Map(g.nodes.map((n) => [n.id, n]));
  const maxRate = Math.max(1, ...g.edges.map((e) => e.rate));
  const edges = g.edges.map((e) => {
    const a = L.pos.get(e.source), b = L.pos.get(e.target);
    if (!a || !b || !inWindow(win, a.x, a.y, b.x, b.y)) return null;
    const x1 = a.x + 14, y1 = a.y, x2 = b.x - 16, y2 = b.y;
    const mx = (x1 + x2) / 2;
    const d = x2 > x1 ? `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` : `M${x1},${y1} C${x1 + 80},${y1 - 60} ${x2 - 80},${y2 - 60} ${x2},${y2}`;
    const cls = 'edge' + (e.errorRate > 0.05 ? ' errors' : e.rate > 0 ? ' busy' : '');
    const label = edgeLabel(e, nodes.get(e.source));
    return s('g', { class: cls, 'data-source': e.source, 'data-target': e.target },
      s('path', { d, 'marker-end': 'url(#arrow)', 'stroke-width': (1 + 4 * Math.sqrt(e.rate / maxRate)).toFixed(2) }),
      s('text', { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 6, 'text-anchor': 'middle' }, label));
  });
  const q = app.query;
  const sending = new Set(g.edges.filter((e) => e.rate > 0).map((e) => e.source));
  const nodeEls = g.nodes.filter((n) => { const p = L.pos.get(n.id); return inWindow(win, p.x, p.y, p.x, p.y); }).map((n) => {
    const p = L.pos.get(n.id);
    const idle = n.rate === 0 && !sending.has(n.id);
    const cls = `node ${n.kind}` + (idle ? ' idle' : '') + (n.id === app.selected ? ' selected' : '') +
      (q && matches(q, nodeLabel(n), n.id) ? ' match' : '');
    const aria = `${n.kind} ${nodeLabel(n)}` + (n.rate > 0 ? `, ${fmt.rate(n.rate)} requests per second in, ${fmt.pct(n.errorRate)} errors` : '');
    return s('a', { href: '#/graph/' + encodeURIComponent(n.id), class: cls, transform: `translate(${p.x},${p.y})`, 'aria-label': aria, 'data-id': n.id },
      s('title', {}, aria), shape(n.kind),
      s('text', { x: 0, y: 28, 'text-anchor': 'middle' }, nodeLabel(n)));
  });
  svg.replaceChildren(defs, s('g', { class: 'edges' }, edges.filter(Boolean)), s('g', { class: 'nodes' }, nodeEls));
}

function renderEdgesTable() {
  const g = app.graph;
  if (!g) return;
  document.getElementById('edges-caption').textContent =
    `Requests between workloads and services over the last ${Math.round(g.windowSeconds)} s (at ${new Date(g.time).toLocaleTimeString()})`;
  const nodes = new Map(g.nodes.map((n) => [n.id, n]));
  let list = g.edges;
  if (app.selected && nodes.has(app.selected)) list = list.filter((e) => e.source === app.selected || e.target === app.selected);
  const capped = !app.allEdges && list.length > EDGE_ROWS;
  if (capped) list = [...list].sort((a, b) => b.rate - a.rate).slice(0, EDGE_ROWS);
  const rows = list.map((e) => {
    const from = nodes.get(e.source);
    const sel = app.selected && (e.source === app.selected || e.target === app.selected);
    return h('tr', { class: sel ? 'selected' : null, 'data-source': e.source, 'data-target': e.target, 'data-rate': e.rate, 'data-share': e.share },
      h('td', {}, link('graph', e.source, nodeName(e.source))),
      h('td', {}, link('graph', e.target, nodeName(e.target))),
      h('td', { class: 'num' }, fmt.rate(e.rate)),
      h('td', { class: 'num' }, from && from.kind === 'service' ? fmt.pct(e.share) : ''),
      h('td', { class: 'num' }, fmt.pct(e.errorRate)),
      h('td', { class: 'num' }, fmt.ms(e)),
      h('td', { class: 'num' }, fmt.ms99(e)),
      h('td', {}, e.security === 'unknown' ? '' : e.security === 'mutual_tls' ? 'mTLS' : e.security));
  });
  if (capped) {
    const more = h('button', { type: 'button' }, `Show all ${g.edges.length} edges`);
    more.addEventListener('click', () => { app.allEdges = true; renderEdgesTable(); });
    rows.push(h('tr', {}, h('td', { colspan: 8 }, `The ${EDGE_ROWS} busiest of ${g.edges.length} edges. `, more)));
  }
  fill(document.querySelector('#edges tbody'), rows);
  const busy = g.edges.filter((e) => e.rate > 0).length;
  document.getElementById('graph-summary').textContent =
    `${g.nodes.filter((n) => n.kind === 'workload').length} workloads, ${g.nodes.filter((n) => n.kind === 'service').length} services, ` +
    `${busy} edges with traffic; rates over the last ${Math.round(g.windowSeconds)} s, from the proxies' standard metrics.`;
}

// --- golden-signal charts -------------------------------------------------------

async function loadHistory() {
  const id = app.selected;
  try {
    const r = await fetch('api/history?node=' + encodeURIComponent(id));
    if (!r.ok) return;
    const h0 = await r.json();
    if (app.selected !== id) return;
    app.history = { times: h0.times.map((t) => Date.parse(t)), signals: h0.signals[id] || [] };
    renderDetail();
  } catch (e) { /* the next event retries */ }
}

function appendHistory() {
  if (!app.history || !app.graph) return;
  const t = Date.parse(app.graph.time);
  if (app.history.times.length && app.history.times[app.history.times.length - 1] >= t) return;
  const n = nodeByID(app.selected);
  app.history.times.push(t);
  app.history.signals.push(n ? { rate: n.rate, errorRate: n.errorRate, p50: n.p50, p99: n.p99, hasLatency: n.hasLatency } : { rate: 0, errorRate: 0, p50: 0, p99: 0, hasLatency: false });
  const cutoff = t - 5 * 60 * 1000;
  while (app.history.times.length && app.history.times[0] < cutoff) { app.history.times.shift(); app.history.signals.shift(); }
}

function chart(title, unit, times, values) {
  const W = 300, H = 90, L = 36, B = 14;
  const pts = values.map((v, i) => [times[i], v]).filter((p) => p[1] !== null);
  const max = Math.max(1e-9, ...pts.map((p) => p[1]));
  const t0 = times[0] || 0, t1 = times[times.length - 1] || 1;
  const x = (t) => L + (W - L - 4) * (t1 > t0 ? (t - t0) / (t1 - t0) : 1);
  const y = (v) => H - B - (H - B - 6) * (v / max);
  const d = pts.map((p, i) => (i ? 'L' : 'M') + x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' ');
  const last = pts.length ? pts[pts.length - 1][1] : null;
  const desc = `${title}: ${last === null ? 'no data' : last.toFixed(2) + ' ' + unit} now, at most ${max.toFixed(2)} ${unit} over ${Math.round((t1 - t0) / 1000)} s`;
  return h('figure', { class: 'chart' },
    h('h4', {}, `${title} (${unit})`),
    s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': desc, preserveAspectRatio: 'none' },
      s('title', {}, desc),
      s('line', { class: 'axis', x1: L, y1: H - B, x2: W, y2: H - B }),
      s('line', { class: 'axis', x1: L, y1: 4, x2: L, y2: H - B }),
      s('text', { x: L - 3, y: 10, 'text-anchor': 'end' }, max >= 10 ? max.toFixed(0) : max.toFixed(2)),
      s('text', { x: L - 3, y: H - B, 'text-anchor': 'end' }, '0'),
      s('text', { x: L, y: H - 2 }, t1 > t0 ? `−${Math.round((t1 - t0) / 1000)} s` : ''),
      s('text', { x: W, y: H - 2, 'text-anchor': 'end' }, 'now'),
      d ? s('path', { class: 'line', d }) : null));
}

function renderDetail() {
  const box = document.getElementById('detail');
  const n = app.selected ? nodeByID(app.selected) : null;
  if (app.view !== 'graph' || !n) { box.replaceChildren(); return; }
  const st = app.state;
  const items = [['Kind', n.kind], ['Namespace', n.namespace || '–']];
  if (n.app) items.push(['App / version', `${n.app} ${n.version || ''}`]);
  items.push(['Requests in', `${fmt.rate(n.rate)} /s`], ['Errors (5xx)', fmt.pct(n.errorRate)],
    ['Latency p50 / p99', n.hasLatency ? `${n.p50.toFixed(1)} / ${n.p99.toFixed(1)} ms` : '–']);
  const dl = h('dl', {}, items.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  if (n.proxies && n.proxies.length) dl.append(h('dt', {}, 'Proxies'), h('dd', {}, n.proxies.map((p) => [link('proxies', p, shortProxy(p)), ' '])));
  if (st && n.kind === 'workload') {
    const pol = st.policies.find((p) => p.workload === n.id);
    if (pol) dl.append(h('dt', {}, 'Policy'), h('dd', {}, link('policy', n.id, `mTLS ${pol.mtlsMode}, ${pol.authorizationPolicies.length} AuthorizationPolicies`)));
  }
  const charts = h('div', { class: 'charts' });
  if (app.history && app.history.times.length) {
    const t = app.history.times, sg = app.history.signals;
    charts.append(
      chart('Request rate', 'req/s', t, sg.map((v) => v.rate)),
      chart('Errors', '%', t, sg.map((v) => v.errorRate * 100)),
      chart('Latency p50', 'ms', t, sg.map((v) => v.hasLatency ? v.p50 : null)),
      chart('Latency p99', 'ms', t, sg.map((v) => v.hasLatency ? v.p99 : null)));
  }
  box.replaceChildren(h('section', { class: 'detail-box', 'aria-labelledby': 'h-detail' },
    h('h3', { id: 'h-detail' }, nodeLabel(n)), dl, h('h4', {}, 'Golden signals, last minutes (requests in)'), charts));
}

// --- configuration, proxies, policy --------------------------------------------

function messageList(msgs, source) {
  if (!msgs.length) return '';
  return msgs.map((m) => h('p', { class: 'msg' },
    h('span', { class: 'lvl-' + m.level }, `${m.level} [${m.code}]`), ' ', m.message,
    m.reference && !m.reference.endsWith(source) ? h('span', { class: 'lvl-Info' }, ` (${m.reference})`) : null));
}

// proxyList is a resource's proxies, listed when opened (or selected).
// proxyList is a resource's proxy count, which opens to list them (asked
// of api/affected when opened: the state carries only the count).
function proxyList(r) {
  const list = async () => {
    const ul = h('ul', { class: 'plain' }, h('li', {}, 'loading…'));
    d.append(ul);
    try {
      const resp = await fetch('api/affected?key=' + encodeURIComponent(r.key));
      if (!resp.ok) throw new Error(resp.statusText);
      const ids = await resp.json();
      ul.replaceChildren(...(ids || []).map((p) => h('li', {}, link('proxies', p, shortProxy(p)))));
    } catch (e) { ul.replaceChildren(h('li', {}, 'could not list the proxies: ' + e.message)); }
  };
  const open = r.key === app.selected;
  const d = h('details', { open }, h('summary', {}, `${r.proxyCount} ${r.proxyCount === 1 ? 'proxy' : 'proxies'}`));
  if (open) list(); else d.addEventListener('toggle', () => { if (d.open && d.children.length === 1) list(); }, { once: true });
  return d;
}

function renderBadges() {
  const st = app.state;
  if (!st) return;
  const c = st.config;
  let errors = c.rejected.length, warnings = 0;
  for (const m of c.resources.flatMap((r) => r.messages).concat(c.others)) {
    if (m.level === 'Error') errors++;
    if (m.level === 'Warning') warnings++;
  }
  const badge = document.getElementById('config-badge');
  badge.textContent = errors ? String(errors) : warnings ? String(warnings) : '';
  badge.classList.toggle('warn', !errors);
  badge.setAttribute('aria-label', `${errors} errors, ${warnings} warnings`);
  const nacked = st.proxies.filter((p) => p.nacks > 0).length;
  document.getElementById('proxies-badge').textContent = nacked ? String(nacked) : '';
  return { errors, warnings, nacked };
}

function renderConfig() {
  const st = app.state;
  if (!st) return;
  const c = st.config;
  const { errors, warnings } = renderBadges();
  document.getElementById('config-summary').textContent =
    `${c.resources.length} resources in force, ${errors} errors and ${warnings} warnings from analysis, ${c.rejected.length} files rejected` +
    (st.version ? ` (push ${st.version})` : '') + '.';
  document.getElementById('rejected').replaceChildren(...(c.rejected.length ? [
    h('h3', {}, 'Rejected files (their previous version stays in force)'),
    h('ul', { class: 'plain' }, c.rejected.map((r) => h('li', {}, h('code', {}, r.path), ': ', h('span', { class: 'lvl-Error' }, r.error))))] : []));
  const rows = c.resources.map((r) => h('tr', { id: 'res-' + r.key, class: r.key === app.selected ? 'selected' : null, 'data-key': r.key },
    h('td', {}, r.kind),
    h('td', {}, link('config', r.key, (r.namespace ? r.namespace + '/' : '') + r.name)),
    h('td', {}, h('code', {}, r.source)),
    h('td', {}, messageList(r.messages, r.source)),
    h('td', {}, r.proxyCount ? proxyList(r) : 'none')));
  fill(document.querySelector('#resources tbody'), rows);
  document.getElementById('others').replaceChildren(...(c.others.length ? [
    h('h3', {}, 'Other findings'),
    h('ul', { class: 'plain' }, c.others.map((m) => h('li', {}, h('span', { class: 'lvl-' + m.level }, `${m.level} [${m.code}]`), ` ${m.origin}: ${m.message}`)))] : []));
}

function typeCell(types) {
  if (!types.length) return h('td', {}, '–');
  return h('td', {}, types.map((t) => h('div', {},
    h('span', { class: 'state-' + t.state.split(' ')[0] }, t.state), ' ',
    h('span', { class: 'lvl-Info' }, `${t.resources} · ${(t.versionAcked || t.versionSent || '').replace(/^.*\//, '')}`),
    t.lastNack ? h('div', { class: 'nack' }, 'NACK: ' + t.lastNack) : null)));
}

function renderProxies() {
  const st = app.state;
  if (!st) return;
  const now = Date.now();
  const nacked = st.proxies.filter((p) => p.nacks > 0).length;
  document.getElementById('proxies-badge').textContent = nacked ? String(nacked) : '';
  document.getElementById('proxies-summary').textContent = `${st.proxies.length} proxies connected, ${nacked} with NACKed configuration.`;
  const rows = st.proxies.map((p) => {
    const types = p.streams.flatMap((s) => s.types);
    const col = (name) => types.filter((t) => TYPE_COLUMNS[shortType(t.typeUrl)] === name);
    const other = types.filter((t) => !TYPE_COLUMNS[shortType(t.typeUrl)]);
    let cert = '–';
    if (p.certificate) {
      const left = (Date.parse(p.certificate.notAfter) - now) / 3600000;
      cert = h('div', {}, h('code', {}, p.identity), h('br'), `expires ${new Date(p.certificate.notAfter).toLocaleString()} (${left >= 1 ? left.toFixed(1) + ' h' : Math.max(0, left * 60).toFixed(0) + ' min'})`);
    } else if (p.identity) cert = h('div', {}, h('code', {}, p.identity), h('br'), 'not issued by this mastd');
    const scrape = p.scrape ? (p.scrape.error ? h('span', { class: 'lvl-Error' }, p.scrape.error) : h('span', { class: 'state-SYNCED' }, 'scraped')) : 'no stats address';
    return h('tr', { id: 'proxy-' + p.id, class: p.id === app.selected ? 'selected' : null, 'data-id': p.id },
      h('th', { scope: 'row' }, link('proxies', p.id, shortProxy(p.id)), h('br'), h('span', { class: 'lvl-Info' }, `${p.type} · ${p.ip}`), ' ', link('graph', p.workload, 'graph')),
      typeCell(col('CDS')), typeCell(col('LDS')), typeCell(col('EDS')), typeCell(col('RDS')),
      h('td', {}, other.map((t) => h('div', {}, shortType(t.typeUrl) + ': ', h('span', { class: 'state-' + t.state.split(' ')[0] }, t.state),
        t.lastNack ? h('div', { class: 'nack' }, 'NACK: ' + t.lastNack) : null))),
      h('td', {}, cert), h('td', {}, scrape));
  });
  fill(document.querySelector('#proxies tbody'), rows);
}

function renderPolicy() {
  const st = app.state;
  if (!st) return;
  const keys = (list) => list.length ? h('ul', { class: 'plain' }, list.map((k) => h('li', {}, link('config', k, k.replace(/^[A-Za-z]+\//, ''))))) : 'none';
  const rows = st.policies.map((p) => h('tr', { class: p.workload === app.selected ? 'selected' : null, 'data-id': p.workload },
    h('th', { scope: 'row' }, link('graph', p.workload, p.name + '.' + p.namespace)),
    h('td', {}, h('span', { class: p.mtlsMode === 'STRICT' ? 'state-SYNCED' : p.mtlsMode === 'DISABLE' ? 'lvl-Error' : '' }, p.mtlsMode)),
    h('td', {}, keys(p.peerAuthentications)),
    h('td', {}, p.authorizationPolicies.length ? h('ul', { class: 'plain' }, p.authorizationPolicies.map((a) =>
      h('li', {}, link('config', a.key, a.key.replace(/^[A-Za-z]+\//, '')), ` ${a.action}${a.dryRun ? ' (dry run)' : ''}, ${a.rules} rules`))) : 'none (allow all)'),
    h('td', {}, keys(p.requestAuthentications)),
    h('td', {}, p.sidecar ? link('config', p.sidecar, p.sidecar.replace(/^Sidecar\//, '')) : 'none')));
  fill(document.querySelector('#policies tbody'), rows);
}

// --- search --------------------------------------------------------------------

function matches(q, ...texts) { return texts.some((t) => t && t.toLowerCase().includes(q)); }

function searchIndex() {
  const out = [];
  if (app.graph) for (const n of app.graph.nodes) out.push({ kind: n.kind, text: nodeLabel(n), href: '#/graph/' + encodeURIComponent(n.id), id: n.id });
  if (app.state) {
    for (const r of app.state.config.resources) out.push({ kind: r.kind, text: (r.namespace ? r.namespace + '/' : '') + r.name, href: '#/config/' + encodeURIComponent(r.key), id: r.key });
    for (const p of app.state.proxies) out.push({ kind: 'proxy', text: shortProxy(p.id), href: '#/proxies/' + encodeURIComponent(p.id), id: p.id });
  }
  return out;
}

// openSearch is the #/search/TERM deep link: the first match, else the list.
function openSearch(term) {
  const input = document.getElementById('search');
  input.value = term;
  app.query = term.trim().toLowerCase();
  const first = searchIndex().find((e) => matches(app.query, e.text, e.id));
  if (first) { app.query = ''; input.value = ''; renderResults(); location.replace(first.href); return; }
  location.replace('#/graph');
  input.value = term;
  app.query = term.trim().toLowerCase();
  renderResults();
}

function renderResults() {
  const list = document.getElementById('results');
  const q = app.query;
  if (!q) { list.replaceChildren(); return; }
  const hits = searchIndex().filter((e) => matches(q, e.text, e.id)).slice(0, 30);
  list.replaceChildren(...(hits.length ? hits.map((e) => h('li', {}, h('a', { href: e.href }, e.text, h('span', { class: 'kind' }, e.kind))))
    : [h('li', {}, h('a', { href: '#/' + app.view }, 'No match'))]));
}

// --- wiring --------------------------------------------------------------------

// render draws the active view; the others are drawn when shown (or printed).
function render() {
  if (app.view === 'graph') { renderGraph(); renderEdgesTable(); renderDetail(); }
  renderView(app.view);
  renderBadges();
}
function renderView(v) {
  if (!app.state || !app.dirty[v]) return;
  ({ config: renderConfig, proxies: renderProxies, policy: renderPolicy })[v]();
  app.dirty[v] = false;
}
function renderAll() {
  if (app.graph) { renderGraph(); renderEdgesTable(); }
  for (const v of Object.keys(app.dirty)) renderView(v);
}

function setLive(text, down) {
  const el = document.getElementById('live');
  el.textContent = text;
  el.classList.toggle('down', !!down);
}

function onGraph(g) {
  const first = !app.graph;
  app.graph = g;
  if (app.selected && app.view === 'graph') appendHistory();
  setLive(`Live · updated ${new Date(g.time).toLocaleTimeString()}`);
  if (app.view === 'graph') { renderGraph(); renderEdgesTable(); renderDetail(); }
  if (app.query) renderResults();
  if (first) performance.mark('mast-graph-drawn');
}
function onState(st) {
  if (!app.state) performance.mark('mast-state');
  app.state = st;
  app.dirty = { config: true, proxies: true, policy: true };
  renderView(app.view);
  renderBadges();
  if (app.view === 'graph') renderDetail();
}

async function start() {
  window.addEventListener('hashchange', route);
  const input = document.getElementById('search');
  input.addEventListener('input', () => { app.query = input.value.trim().toLowerCase(); renderResults(); if (app.view === 'graph') renderGraph(); });
  document.getElementById('search-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const first = document.querySelector('#results a');
    if (first) { location.hash = first.getAttribute('href'); app.query = ''; input.value = ''; renderResults(); }
  });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'ArrowDown') { const a = document.querySelector('#results a'); if (a) { ev.preventDefault(); a.focus(); } }
    if (ev.key === 'Escape') { input.value = ''; app.query = ''; renderResults(); }
  });
  document.getElementById('results').addEventListener('keydown', (ev) => {
    const items = [...document.querySelectorAll('#results a')];
    const i = items.indexOf(document.activeElement);
    if (ev.key === 'ArrowDown' && i + 1 < items.length) { ev.preventDefault(); items[i + 1].focus(); }
    if (ev.key === 'ArrowUp') { ev.preventDefault(); (i > 0 ? items[i - 1] : input).focus(); }
    if (ev.key === 'Escape') { input.focus(); }
  });
  document.getElementById('results').addEventListener('click', () => { app.query = ''; input.value = ''; setTimeout(renderResults, 0); });
  document.addEventListener('keydown', (ev) => {
    if (ev.key === '/' && document.activeElement !== input) { ev.preventDefault(); input.focus(); }
  });
  window.addEventListener('beforeprint', () => { app.printing = true; renderAll(); });
  window.addEventListener('afterprint', () => { app.printing = false; if (app.view === 'graph') renderGraph(); });
  document.getElementById('graph-wrap').addEventListener('scroll', onGraphScroll, { passive: true });
  route();
  // The stream sends the graph, then the state, at once, then each as it
  // changes (a reconnection sends both again: what is drawn already is
  // skipped). Nothing is fetched twice.
  const es = new EventSource('api/events');
  es.addEventListener('graph', (ev) => { if (ev.data !== app.rawGraph) { app.rawGraph = ev.data; onGraph(JSON.parse(ev.data)); } });
  es.addEventListener('state', (ev) => { if (ev.data !== app.rawState) { app.rawState = ev.data; onState(JSON.parse(ev.data)); } });
  es.onerror = () => setLive('Disconnected from mastd, retrying…', true);
}

start();
