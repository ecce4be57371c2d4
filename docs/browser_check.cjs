// Open every shared UI workflow in a real ComfyUI frontend (headless Chromium, 1600x900) and check
// what an artist sees: no missing nodes, every node on screen at a readable zoom, clear of the sidebar,
// bars and minimap; the template browser lists the UI workflows with thumbnails; the fast path runs
// after picking a clip from Load Video's list. Screenshots go to OUT_DIR.
//
//   npm install playwright-core            (once; Chromium from the system: apt-get install chromium)
//   node docs/browser_check.cjs http://127.0.0.1:8188 OUT_DIR [PACK_FOLDER_NAME] [--run]
//
// PACK_FOLDER_NAME is this pack's folder name under ComfyUI's custom_nodes (default: the checkout's).
const fs = require('fs')
const path = require('path')
const { chromium } = require('playwright-core')

const [url, outDir, packArg] = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const run = process.argv.includes('--run')
const root = path.dirname(__dirname)
const pack = packArg || path.basename(root)
const LOW_QUALITY_BELOW = 0.6 // the frontend draws nodes as empty boxes below this zoom

async function nodesOnScreen(page) {
  return page.evaluate((lowQuality) => {
    const c = window.app.canvas
    const [ox, oy] = c.ds.offset
    const s = c.ds.scale
    const title = window.LiteGraph.NODE_TITLE_HEIGHT
    const blockers = [...document.querySelectorAll('.side-tool-bar-container, .workflow-tabs-container, .actionbar, .minimap-main-container, .p-panel, .p-dialog')]
      .map((e) => e.getBoundingClientRect())
      .filter((r) => r.width > 0 && r.height > 0)
    const overlaps = (a, b) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    const nodes = window.app.graph._nodes.map((n) => {
      const r = { x: (n.pos[0] + ox) * s, y: (n.pos[1] - title + oy) * s, width: n.size[0] * s, height: (n.size[1] + title) * s }
      const inside = r.x >= 0 && r.y >= 0 && r.x + r.width <= innerWidth && r.y + r.height <= innerHeight
      return { id: n.id, type: n.type, title: n.title, known: !!window.LiteGraph.registered_node_types[n.type],
               visible: inside && !blockers.some((b) => overlaps(r, b)) }
    })
    const rects = window.app.graph._nodes.map((n) => ({ x: n.pos[0], y: n.pos[1] - title, width: n.size[0], height: n.size[1] + title }))
    const overlapping = []
    rects.forEach((a, i) => rects.slice(i + 1).forEach((b, j) => {
      if (overlaps(a, b)) overlapping.push([nodes[i].title || nodes[i].type, nodes[i + 1 + j].title || nodes[i + 1 + j].type])
    }))
    return { scale: s, readable: s >= lowQuality, nodes, overlapping }
  }, LOW_QUALITY_BELOW)
}

async function loadWorkflow(page, file) {
  const data = JSON.parse(fs.readFileSync(file, 'utf8'))
  await page.evaluate((wf) => window.app.loadGraphData(wf), data)
  await page.keyboard.press('Escape')
  await page.waitForTimeout(1500)
}

async function runFastPath(page) {
  await loadWorkflow(page, path.join(root, 'workflows', 'fast_path.json'))
  const picked = await page.evaluate(() => {
    const node = window.app.graph._nodes.find((n) => n.type === 'VSR_LoadVideo')
    const widget = node.widgets.find((w) => w.name === 'video')
    widget.value = widget.options.values[0] // the first clip of the input folder's list
    return widget.value
  })
  const before = await (await fetch(`${url}/history`)).json()
  await page.evaluate(() => window.app.queuePrompt(0, 1))
  for (let i = 0; i < 600; i++) {
    await page.waitForTimeout(1000)
    const history = await (await fetch(`${url}/history`)).json()
    const done = Object.keys(history).filter((k) => !(k in before))
    if (done.length) return { picked, status: history[done[0]].status }
  }
  return { picked, status: 'timed out' }
}

;(async () => {
  fs.mkdirSync(outDir, { recursive: true })
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' })
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } })
  await page.goto(url)
  await page.waitForFunction(() => window.app && window.app.graph && window.LiteGraph, null, { timeout: 120000 })
  await page.waitForTimeout(3000)
  for (let i = 0; i < 3 && (await page.locator('.p-dialog').count()); i++) { // the first-run template browser
    await page.keyboard.press('Escape')
    await page.waitForTimeout(1000)
  }
  const report = { workflows: {}, templates: {} }
  const files = fs.readdirSync(path.join(root, 'workflows')).filter((f) => f.endsWith('.json')).sort()
  for (const f of files) {
    await loadWorkflow(page, path.join(root, 'workflows', f))
    const seen = await nodesOnScreen(page)
    await page.screenshot({ path: path.join(outDir, f.replace('.json', '.png')) })
    report.workflows[f] = { scale: Number(seen.scale.toFixed(3)), readable: seen.readable,
                            missing: seen.nodes.filter((n) => !n.known).map((n) => n.type),
                            off_screen: seen.nodes.filter((n) => !n.visible).map((n) => n.title || n.type),
                            overlapping: seen.overlapping }
  }
  const listed = (await (await fetch(`${url}/api/workflow_templates`)).json())[pack] || []
  for (const name of listed) {
    const thumb = await fetch(`${url}/api/workflow_templates/${pack}/${encodeURIComponent(name)}.jpg`)
    report.templates[name] = { thumbnail: thumb.status }
  }
  if (run) report.fast_path_run = await runFastPath(page)
  console.log(JSON.stringify(report, null, 1))
  await browser.close()
})()
