// Loads camgrid's example workflows in ComfyUI's real front end (headless Chromium via playwright-core)
// and reports what a user would see, as JSON on stdout. Driven by frontend_check.py, which starts the
// server; run that, not this. Never downloads anything: the browser is the system's Chromium.
//
//   node frontend_check.cjs CONFIG.json
//
// CONFIG: {url, chromium, screens, packName, workflows: [{key, title, file, thumbnailFocus: [node types]}],
//          run: KEY|null, thumbnails: bool}
// Per workflow it reports: the missing node types and missing models the front end found (from the app's
// own dialogs, whose text is read too), the nodes' boxes as drawn (title bars included) and the pairs that
// overlap, the opening view and whether the graph's top-left corner is visible (not under the sidebar or
// menus). With `run`, that workflow is queued from the page: live previews are counted and the boxes are
// measured again once the outputs are shown. The template browser's cards of the pack are read too.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { chromium } = require('playwright-core');

const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const VIEWPORT = { width: 1600, height: 1000 };

async function launch(executablePath, viewport) {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'camgrid-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath, headless: true, args: CHROMIUM_FLAGS, viewport,
  });
  return { context, userDataDir };
}

async function openApp(context, url) {
  const page = context.pages()[0] || await context.newPage();
  const errors = [];
  page.on('pageerror', (err) => errors.push(String(err).slice(0, 300)));
  await page.goto(url, { waitUntil: 'networkidle', timeout: 120000 });
  await page.waitForFunction(() => window.app && window.app.graph && window.app.canvas, null, { timeout: 120000 });
  await page.evaluate(() => {
    // record what the app decides to warn about, with the exact data it passes to its dialogs
    window.__camgrid = { missingNodes: [], missingModels: [], previews: 0, events: [] };
    const app = window.app;
    const nodesError = app.showMissingNodesError.bind(app);
    app.showMissingNodesError = (types, ...rest) => { window.__camgrid.missingNodes.push(...types.map((t) => (typeof t === 'string' ? t : t.type))); return nodesError(types, ...rest); };
    const modelsError = app.showMissingModelsError.bind(app);
    app.showMissingModelsError = (models, ...rest) => { window.__camgrid.missingModels.push(...models.map((m) => ({ name: m.name, directory: m.directory, url: m.url }))); return modelsError(models, ...rest); };
    for (const ev of ['b_preview', 'b_preview_with_metadata']) app.api.addEventListener(ev, () => { window.__camgrid.previews += 1; });
    for (const ev of ['execution_success', 'execution_error', 'execution_interrupted']) app.api.addEventListener(ev, (e) => { window.__camgrid.events.push([ev, JSON.stringify(e.detail || null).slice(0, 2000)]); });
  });
  return { page, errors };
}

async function closeDialogs(page) {
  // each dialog's close button is the visible button nearest its top-right corner (the template
  // browser's has no label, PrimeVue's has .p-dialog-close-button)
  for (let i = 0; i < 5; i++) {
    const closed = await page.evaluate(() => {
      const dialog = document.querySelector('.p-dialog');
      if (!dialog) return null;
      const box = dialog.getBoundingClientRect();
      const visible = (b) => { const r = b.getBoundingClientRect(); return r.width > 0 && getComputedStyle(b).opacity !== '0' && getComputedStyle(b).pointerEvents !== 'none'; };
      const buttons = Array.from(dialog.querySelectorAll('button')).filter(visible);
      const distance = (b) => { const r = b.getBoundingClientRect(); return Math.hypot(box.right - r.right, box.top - r.top); };
      buttons.sort((a, b) => distance(a) - distance(b));
      if (!buttons.length) return false;
      buttons[0].click();
      return true;
    });
    if (closed === null) return;
    await page.waitForTimeout(500);
  }
}

// Boxes of every node as the canvas draws them: [x, y, w, h] in graph units, title bar included.
function measure() {
  const app = window.app;
  const titleHeight = window.LiteGraph.NODE_TITLE_HEIGHT;
  const nodes = app.graph._nodes.map((n) => ({
    id: n.id, type: n.type, title: n.title,
    box: [n.pos[0], n.pos[1] - titleHeight, n.size[0], n.size[1] + titleHeight],
  }));
  const overlaps = [];
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) {
      const [ax, ay, aw, ah] = nodes[i].box; const [bx, by, bw, bh] = nodes[j].box;
      const w = Math.min(ax + aw, bx + bw) - Math.max(ax, bx);
      const h = Math.min(ay + ah, by + bh) - Math.max(ay, by);
      if (w > 0 && h > 0) overlaps.push([`${nodes[i].id} ${nodes[i].title}`, `${nodes[j].id} ${nodes[j].title}`, Math.round(w), Math.round(h)]);
    }
  }
  // the graph's top-left corner on screen, and what the user sees there
  const ds = app.canvas.ds;
  const x0 = Math.min(...nodes.map((n) => n.box[0])); const y0 = Math.min(...nodes.map((n) => n.box[1]));
  const rect = app.canvas.canvas.getBoundingClientRect();
  const sx = rect.left + (x0 + ds.offset[0]) * ds.scale; const sy = rect.top + (y0 + ds.offset[1]) * ds.scale;
  const hit = document.elementFromPoint(sx + 4, sy + 4);
  return {
    nodes, overlaps, view: { scale: ds.scale, offset: [...ds.offset] }, corner: [Math.round(sx), Math.round(sy)],
    cornerVisible: hit === app.canvas.canvas,
    cornerCoveredBy: hit === app.canvas.canvas ? null : (hit ? `${hit.tagName}.${hit.className}`.slice(0, 120) : 'nothing'),
  };
}

async function loadWorkflow(page, file) {
  const workflow = JSON.parse(fs.readFileSync(file, 'utf8'));
  await page.evaluate(() => { window.__camgrid.missingNodes = []; window.__camgrid.missingModels = []; });
  await page.evaluate(async (wf) => { await window.app.loadGraphData(wf); }, workflow);
  await page.waitForTimeout(1500);
  const dialogs = await page.evaluate(() => Array.from(document.querySelectorAll('.p-dialog')).map((d) => d.innerText));
  const found = await page.evaluate(() => ({ missingNodes: window.__camgrid.missingNodes, missingModels: window.__camgrid.missingModels }));
  return { ...found, dialogs };
}

async function runWorkflow(page, screens, key) {
  await page.evaluate(() => { window.__camgrid.previews = 0; window.__camgrid.events = []; });
  await page.evaluate(() => window.app.queuePrompt(0));
  const start = Date.now();
  let duringShot = null;
  while (Date.now() - start < 900000) { // a loaded 2-core machine samples slowly
    const state = await page.evaluate(async () => {
      const history = await (await fetch('/api/history')).json();
      const finished = Object.values(history).filter((h) => h.status && h.status.completed !== undefined);
      return { previews: window.__camgrid.previews, done: finished.length > 0, status: finished.map((h) => h.status) };
    });
    if (state.previews >= 5 && !duringShot) {
      duringShot = path.join(screens, `${key}_sampling.png`);
      await page.screenshot({ path: duringShot });
    }
    if (state.done) break;
    await page.waitForTimeout(250);
  }
  await page.waitForTimeout(3000); // outputs (images, video player) are shown after the last event
  const result = await page.evaluate(async () => {
    const history = await (await fetch('/api/history')).json();
    return { previews: window.__camgrid.previews, events: window.__camgrid.events,
      status: Object.values(history).map((h) => ({ status: h.status && h.status.status_str, messages: (h.status && h.status.messages || []).map((m) => m[0]) })) };
  });
  const afterShot = path.join(screens, `${key}_after_run.png`);
  await page.screenshot({ path: afterShot });
  const layout = await page.evaluate(measure);
  const outputsShot = path.join(screens, `${key}_after_run_outputs.png`);
  await showOutputs(page, outputsShot);
  return { ...result, screenshots: [duringShot, afterShot, outputsShot].filter(Boolean), layout };
}

async function readTemplates(page, screens, packName) {
  await page.evaluate(() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates'));
  await page.waitForSelector('.p-dialog', { timeout: 30000 });
  await page.waitForTimeout(1000);
  await page.locator('.p-dialog').getByText(packName, { exact: true }).first().click();
  await page.waitForTimeout(2500);
  const shot = path.join(screens, 'template_browser.png');
  await page.screenshot({ path: shot });
  const text = await page.evaluate(() => Array.from(document.querySelectorAll('.p-dialog')).map((d) => d.innerText).join('\n'));
  // cards show the pack's .jpg (fetched, then shown from a blob: URL) or a default picture when there is none
  const images = await page.evaluate(() => Array.from(document.querySelectorAll('.p-dialog img')).map((img) => ({
    src: img.src, loaded: img.complete && img.naturalWidth > 0, size: [img.naturalWidth, img.naturalHeight] })));
  await closeDialogs(page);
  return { text, images, screenshot: shot };
}

async function thumbnail(page, out, focus) {
  // a square around the nodes of the types in `focus` (the part of the graph worth a picture), the
  // editor's chrome, minimap and canvas info hidden, text drawn at any zoom
  const setting = (id) => page.evaluate((key) => window.app.extensionManager.setting.get(key), id);
  const set = (id, value) => page.evaluate(([key, v]) => window.app.extensionManager.setting.set(key, v), [id, value]);
  const hidden = { 'LiteGraph.Canvas.MinFontSizeForLOD': 0, 'Comfy.Minimap.Visible': false, 'Comfy.Graph.CanvasInfo': false };
  const saved = {};
  for (const [id, value] of Object.entries(hidden)) { saved[id] = await setting(id); await set(id, value); }
  const view = await page.evaluate(() => ({ offset: [...window.app.canvas.ds.offset], scale: window.app.canvas.ds.scale }));
  await page.setViewportSize({ width: 1000, height: 1000 });
  await page.evaluate(() => window.app.extensionManager.command.execute('Workspace.ToggleFocusMode'));
  await page.waitForTimeout(800);
  await page.evaluate((types) => {
    const app = window.app; const title = window.LiteGraph.NODE_TITLE_HEIGHT;
    const nodes = app.graph._nodes.filter((n) => types.includes(n.type));
    const x0 = Math.min(...nodes.map((n) => n.pos[0])) - 20; const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0])) + 20;
    const y0 = Math.min(...nodes.map((n) => n.pos[1] - title)) - 20; const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1])) + 20;
    const side = Math.max(x1 - x0, y1 - y0);
    const rect = app.canvas.canvas.getBoundingClientRect();
    const scale = Math.min(rect.width, rect.height) / side;
    app.canvas.ds.scale = scale;
    app.canvas.ds.offset = [-(x0 - (side - (x1 - x0)) / 2), -y0];
    app.canvas.setDirty(true, true);
  }, focus);
  await page.waitForTimeout(1500);
  // focus mode keeps the zoom controls and the menu button over the canvas: hide what covers its corners
  await page.evaluate(() => {
    const canvas = window.app.canvas.canvas; const w = window.innerWidth; const h = window.innerHeight;
    window.__camgridHidden = [];
    for (const [x, y] of [[w - 12, h - 12], [w - 30, h - 30], [w - 12, 12], [w - 24, 24], [12, h - 12]]) {
      let el = document.elementFromPoint(x, y);
      if (!el || el === canvas) continue;
      while (el.parentElement && el.parentElement.getBoundingClientRect().width < w / 2) el = el.parentElement;
      el.style.visibility = 'hidden';
      window.__camgridHidden.push(el);
    }
  });
  await page.waitForTimeout(300);
  await page.screenshot({ path: out });
  await page.evaluate(() => { for (const el of window.__camgridHidden) el.style.visibility = ''; });
  await page.evaluate(() => window.app.extensionManager.command.execute('Workspace.ToggleFocusMode'));
  await page.setViewportSize(VIEWPORT);
  await page.evaluate((v) => { window.app.canvas.ds.scale = v.scale; window.app.canvas.ds.offset = v.offset; window.app.canvas.setDirty(true, true); }, view);
  for (const [id, value] of Object.entries(saved)) await set(id, value);
  await page.waitForTimeout(500);
}

async function showOutputs(page, out) {
  // the right-hand end of the graph (where the outputs are), at the opening zoom
  const dx = await page.evaluate(() => {
    const app = window.app; const ds = app.canvas.ds;
    const right = Math.max(...app.graph._nodes.map((n) => n.pos[0] + n.size[0]));
    const width = app.canvas.canvas.getBoundingClientRect().width;
    return (width / ds.scale - right - 40 - ds.offset[0]) * ds.scale;
  });
  // dragged with the mouse over empty canvas below the nodes, as a user pans. Setting ds.offset directly
  // instead left the animated WEBP preview stretched over the whole canvas in every screenshot; panned with
  // the mouse, every output shows in its node (why the direct offset does that was not traced)
  await page.mouse.move(1200, 880);
  await page.mouse.down();
  for (let i = 1; i <= 20; i++) { await page.mouse.move(1200 + dx * i / 20, 880); await page.waitForTimeout(20); }
  await page.mouse.up();
  await page.waitForTimeout(800);
  await page.screenshot({ path: out });
}

async function main() {
  const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
  fs.mkdirSync(config.screens, { recursive: true });
  const { context, userDataDir } = await launch(config.chromium, VIEWPORT);
  const report = { workflows: {}, pageErrors: [] };
  try {
    const { page, errors } = await openApp(context, config.url);
    await page.waitForTimeout(1500);
    await closeDialogs(page);
    report.templates = await readTemplates(page, config.screens, config.packName);
    for (const wf of config.workflows) {
      const loaded = await loadWorkflow(page, wf.file);
      const shotWithDialogs = path.join(config.screens, `${wf.key}_opened.png`);
      await page.screenshot({ path: shotWithDialogs });
      await closeDialogs(page);
      const shot = path.join(config.screens, `${wf.key}.png`);
      await page.screenshot({ path: shot });
      report.workflows[wf.key] = { ...loaded, layout: await page.evaluate(measure), screenshots: [shotWithDialogs, shot] };
      if (config.thumbnails) await thumbnail(page, path.join(config.screens, `${wf.key}_thumbnail.png`), wf.thumbnailFocus);
    }
    // last, so that no other workflow shows its outputs (the front end keeps them by node id)
    const toRun = config.workflows.find((wf) => wf.key === config.run);
    if (toRun) {
      await loadWorkflow(page, toRun.file);
      await closeDialogs(page);
      report.workflows[toRun.key].run = await runWorkflow(page, config.screens, toRun.key);
      if (config.thumbnails) await thumbnail(page, path.join(config.screens, `${toRun.key}_thumbnail.png`), toRun.thumbnailFocus); // with its outputs
    }
    report.pageErrors = errors;
  } finally {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  process.stdout.write('REPORT' + JSON.stringify(report) + '\n');
}

main().catch((err) => { console.error(err); process.exit(1); });
