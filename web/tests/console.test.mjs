// Browser test of the admin console: Debian's chromium driven by playwright-core against a
// real admind + PostgreSQL + Redis + Traefik stack that e2e/console_test.go starts (it passes
// the URLs and the key it bound through the plugin in the environment). Screenshots of every
// page go to SCREENSHOT_DIR.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium } from 'playwright-core'

const env = (name) => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set: run this through e2e/console_test.go (make e2e)`)
  return v
}
const consoleURL = env('CONSOLE_URL') // .../admin/ui/
const password = env('ADMIN_PASSWORD')
const keyHint = env('KEY_HINT') // the binding a real request created
const preBoundKey = env('PREBOUND_KEY') // a key never used, pre-bound here; the Go side checks its hash
const shots = env('SCREENSHOT_DIR')
mkdirSync(shots, { recursive: true })

test('admin console', async (t) => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  })
  t.after(() => browser.close())
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true, locale: 'en-US' })
  context.setDefaultTimeout(10_000)
  const page = await context.newPage()
  const errors = []
  page.on('pageerror', (e) => errors.push(String(e)))
  // Let transitions (tags, dialogs, messages) finish so the pictures show the settled page.
  const shot = async (name) => {
    await page.waitForTimeout(400)
    await page.screenshot({ path: join(shots, name + '.png'), fullPage: true })
  }
  const row = () => page.locator('[data-test="bindings-table"] .el-table__body tr', { hasText: keyHint })
  const pick = async (trigger, option) => {
    await page.click(trigger)
    await page.locator('.el-select-dropdown__item:visible', { hasText: option }).first().click()
  }

  await t.test('a page behind the login sends you to it, and back after', async () => {
    await page.goto(consoleURL + 'bindings')
    await page.waitForURL(/\/admin\/ui\/login\?redirect=/)
  })

  await t.test('a wrong password shows an error', async () => {
    await page.fill('[data-test="username"]', 'admin')
    await page.fill('[data-test="password"]', 'not-the-password')
    await page.click('[data-test="login-submit"]')
    await page.locator('[data-test="login-error"]').waitFor()
    assert.match(await page.locator('[data-test="login-error"]').innerText(), /Invalid username or password/)
    await shot('01-login-error')
  })

  await t.test('logging in returns to the page asked for', async () => {
    await page.fill('[data-test="password"]', password)
    await page.click('[data-test="login-submit"]')
    await page.waitForURL(/\/admin\/ui\/bindings$/)
  })

  await t.test('the binding a real request created is listed', async () => {
    await row().waitFor()
    assert.match(await row().innerText(), /127\.0\.0\.2\/32/)
    assert.match(await row().innerText(), /Active/)
    await shot('02-bindings')
  })

  await t.test('edit the rule: inline validation, then save', async () => {
    await row().locator('[data-test="edit"]').click()
    const dialog = page.locator('.el-dialog:visible')
    await dialog.waitFor()
    await dialog.locator('label.el-radio-button', { hasText: 'Multiple' }).click()
    await dialog.locator('textarea[data-test="rule-input"]').fill('127.0.0.2\n0.0.0.0/0')
    await dialog.locator('.el-form-item__error', { hasText: 'allows every address' }).waitFor()
    assert.ok(await dialog.locator('[data-test="rule-save"]').isDisabled())
    await shot('03-rule-dialog-invalid')
    await dialog.locator('textarea[data-test="rule-input"]').fill('127.0.0.2\n10.0.0.0/8')
    await dialog.locator('[data-test="rule-save"]').click()
    await page.locator('.el-message--success').first().waitFor()
    await row().locator('[data-test="cidr"]', { hasText: '10.0.0.0/8' }).waitFor()
  })

  await t.test('a learning rule: its bounds in the dialog, its state in the list', async () => {
    await row().locator('[data-test="edit"]').click()
    const dialog = page.locator('.el-dialog:visible')
    await dialog.waitFor()
    await dialog.locator('label.el-radio-button', { hasText: 'Learning' }).click()
    await dialog.locator('[data-test="learn-slots"] input').fill('1')
    await dialog.locator('.el-form-item__error', { hasText: 'more addresses than it has slots' }).waitFor()
    assert.ok(await dialog.locator('[data-test="rule-save"]').isDisabled())
    await dialog.locator('[data-test="learn-slots"] input').fill('3')
    await dialog.locator('textarea[data-test="rule-input"]').fill('127.0.0.2')
    await shot('03b-rule-dialog-learning')
    await dialog.locator('[data-test="rule-save"]').click()
    await page.locator('.el-message--success').first().waitFor()
    await row().locator('[data-test="learning-state"]', { hasText: '2 of 3 slots left' }).waitFor()
    await shot('03c-bindings-learning')
    // Back to the rule the later steps expect.
    await row().locator('[data-test="edit"]').click()
    await dialog.waitFor()
    await dialog.locator('label.el-radio-button', { hasText: 'Multiple' }).click()
    await dialog.locator('textarea[data-test="rule-input"]').fill('127.0.0.2\n10.0.0.0/8')
    await dialog.locator('[data-test="rule-save"]').click()
    await row().locator('[data-test="cidr"]', { hasText: '10.0.0.0/8' }).waitFor()
    assert.equal(await row().locator('[data-test="learning-state"]').count(), 0)
  })

  await t.test('ban and unban, each confirmed', async () => {
    await row().locator('[data-test="ban"]').click()
    await page.locator('.el-message-box__btns .el-button--primary').click()
    await row().locator('[data-test="status"]', { hasText: 'Banned' }).waitFor()
    await shot('04-bindings-banned')
    await row().locator('[data-test="unban"]').click()
    await page.locator('.el-message-box__btns .el-button--primary').click()
    await row().locator('[data-test="status"]', { hasText: 'Active' }).waitFor()
  })

  await t.test("edit the note, then read the binding's history in the audit trail", async () => {
    await row().locator('[data-test="edit-note"]').click()
    await page.locator('.el-message-box__input input').fill('VIP customer, ticket 7')
    await page.locator('.el-message-box__btns .el-button--primary').click()
    await row().locator('[data-test="note"]', { hasText: 'VIP customer, ticket 7' }).waitFor()
    await shot('04b-bindings-note')
    await row().locator('[data-test="history"]').click()
    const rows = page.locator('[data-test="audit-table"] .el-table__body tr')
    await rows.first().waitFor()
    // Newest first: the note, the unban, the ban, the rule set back, the learning rule, the rule set above.
    assert.equal(await rows.count(), 6)
    assert.match(await rows.nth(0).innerText(), /binding\.set_note[\s\S]*VIP customer, ticket 7/)
    assert.match(await rows.nth(1).innerText(), /binding\.unban/)
    assert.match(await rows.nth(4).innerText(), /binding\.set_rule[\s\S]*learning/)
    assert.match(await rows.nth(5).innerText(), /binding\.set_rule[\s\S]*10\.0\.0\.0\/8/)
    assert.match(await page.inputValue('[data-test="audit-target"]'), /^binding:\d+$/)
    await shot('04c-audit-binding')
  })

  await t.test('filter the audit trail and download it as CSV', async () => {
    await page.fill('[data-test="audit-target"]', '')
    await pick('[data-test="audit-action"]', 'Banned')
    await page.click('[data-test="audit-search"]')
    const rows = page.locator('[data-test="audit-table"] .el-table__body tr')
    await page.waitForFunction(() => document.querySelectorAll('[data-test="audit-table"] .el-table__body tr').length === 1)
    assert.match(await rows.first().innerText(), /binding\.ban/)
    await page.fill('[data-test="audit-actor"]', 'nobody')
    await page.click('[data-test="audit-search"]')
    await page.locator('[data-test="audit-table"] .el-table__empty-text').waitFor()
    await page.fill('[data-test="audit-actor"]', 'admin')
    await page.click('[data-test="audit-search"]')
    await rows.first().waitFor()
    await shot('04d-audit-filtered')
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-test="audit-export"]')])
    const file = join(shots, 'audit.csv')
    await download.saveAs(file)
    const csv = readFileSync(file, 'utf8')
    assert.match(csv, /^id,time,actor,ip,action,target,before,after\n/)
    assert.equal(csv.trim().split('\n').length, 2) // the header and the one ban: the filter applies to the export
    assert.match(csv, /,admin,[^,]*,binding\.ban,binding:\d+,/)
  })

  await t.test('the dashboard shows the totals and the week', async () => {
    await page.click('[data-test="nav-dashboard"]')
    await page.locator('[data-test="card-active"]').waitFor()
    assert.match(await page.locator('[data-test="card-active"]').innerText(), /\b1\b/)
    assert.match(await page.locator('[data-test="card-intercepted"]').innerText(), /\b2\b/)
    assert.equal(await page.locator('[data-test="card-intercepted-note"]').innerText(), '1 forwarded (monitor mode)')
    await page.locator('[data-test="week-chart"] canvas').waitFor()
    // Today's intercepts are one refused and one forwarded: the chart stacks them apart.
    assert.equal(await page.locator('[data-test="week-chart"]').getAttribute('data-series'), 'Allowed|Refused|Forwarded (monitor mode)')
    // The top lists say how many of each row's intercepts monitor mode forwarded: the key's two
    // are one of each, 127.0.0.3's was refused and 127.0.0.7's forwarded.
    const cells = (table) => page.locator(`[data-test="${table}"] .el-table__body tr`).evaluateAll((rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.innerText.trim())))
    assert.match(await page.locator('[data-test="top-keys"] thead').innerText(), /Count\s+Forwarded/)
    const keys = await cells('top-keys')
    assert.equal(keys.length, 1)
    assert.match(keys[0][0], /^sk-e2eC.*cdef$/)
    assert.deepEqual(keys[0].slice(1), ['2', '1'])
    assert.deepEqual((await cells('top-ips')).sort(), [['127.0.0.3', '1', '0'], ['127.0.0.7', '1', '1']])
    await shot('05-dashboard')
  })

  await t.test("toasts never cover the dashboard's cards", async () => {
    // Two changes in a row raise two toasts; the dashboard is opened while they show.
    await page.click('[data-test="nav-bindings"]')
    await row().locator('[data-test="ban"]').click()
    await page.locator('.el-message-box__btns .el-button--primary').click()
    await row().locator('[data-test="unban"]').click()
    await page.locator('.el-message-box__btns .el-button--primary').click()
    await row().locator('[data-test="status"]', { hasText: 'Active' }).waitFor()
    await page.click('[data-test="nav-dashboard"]')
    await page.locator('[data-test="card-active"]').waitFor()
    const boxes = (selector) => page.locator(selector).evaluateAll((els) => els.map((e) => e.getBoundingClientRect().toJSON()))
    const [cards, toasts] = [await boxes('[data-test^="card-"]'), await boxes('.el-message')]
    assert.ok(cards.length >= 4 && toasts.length >= 1, `cards ${cards.length}, toasts ${toasts.length}`)
    const overlaps = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom
    for (const toast of toasts) for (const card of cards) assert.ok(!overlaps(toast, card), `a toast ${JSON.stringify(toast)} covers a card ${JSON.stringify(card)}`)
    await shot('05b-dashboard-toast')
  })

  await t.test('filter the intercept log and download it as CSV', async () => {
    await page.click('[data-test="nav-logs"]')
    await page.fill('[data-test="log-ip"]', '127.0.0.3')
    await pick('[data-test="log-reason"]', 'Address not allowed')
    await pick('[data-test="log-outcome"]', 'Refused')
    await page.click('[data-test="log-search"]')
    const rows = page.locator('[data-test="logs-table"] .el-table__body tr')
    await rows.first().waitFor()
    assert.match(await rows.first().innerText(), /127\.0\.0\.3/)
    assert.equal((await rows.first().locator('[data-test="log-outcome-tag"]').innerText()).trim(), 'Refused') // the stack enforces
    await page.fill('[data-test="log-ip"]', '127.0.0.99')
    await page.click('[data-test="log-search"]')
    await page.locator('[data-test="logs-table"] .el-table__empty-text').waitFor()
    await page.fill('[data-test="log-ip"]', '127.0.0.3')
    await page.click('[data-test="log-search"]')
    await rows.first().waitFor()
    await shot('06-logs')
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-test="log-export"]')])
    const file = join(shots, 'export.csv')
    await download.saveAs(file)
    const csv = readFileSync(file, 'utf8')
    assert.match(csv, /^id,time,key_hint,key_hash,ip,reason,outcome,method,path,user_agent\n/)
    assert.match(csv, /127\.0\.0\.3,ip_not_allowed,refused,/)
    assert.doesNotMatch(csv, /127\.0\.0\.2,/) // the filter applies to the export too
  })

  await t.test('a test alert without a channel fails loudly', async () => {
    await page.click('[data-test="nav-settings"]')
    await page.click('[data-test="test-alert"]')
    await page.locator('[data-test="test-alert-result"].el-alert--error', { hasText: 'no alert channel is configured' }).waitFor()
    await shot('07a-settings-test-alert')
  })

  await t.test('a setting saved survives a reload', async () => {
    await page.click('[data-test="nav-settings"]')
    const count = page.locator('[data-test="threshold-count"] input')
    await count.waitFor()
    await count.fill('9')
    await page.click('[data-test="auto-ban"]')
    await page.click('[data-test="settings-save"]')
    await page.locator('[data-test="settings-result"]', { hasText: 'Settings saved' }).waitFor()
    await shot('07-settings')
    await page.reload()
    await count.waitFor()
    assert.equal(await count.inputValue(), '9')
    assert.ok(await page.locator('[data-test="auto-ban"]').evaluate((e) => e.classList.contains('is-checked')), 'auto ban is off after the reload')
  })

  await t.test('an API token: shown once, used by a script, listed with its last use, revoked', async () => {
    await page.click('[data-test="nav-tokens"]')
    await page.click('[data-test="token-create-open"]')
    const dialog = page.locator('.el-dialog:visible')
    await dialog.locator('input[data-test="token-name"]').fill('ci-read')
    await shot('17-token-dialog')
    await dialog.locator('[data-test="token-create"]').click()
    const value = page.locator('input[data-test="token-value"]')
    await value.waitFor()
    const token = await value.inputValue()
    assert.match(token, /^sat_[A-Za-z0-9_-]{43}$/)
    await shot('18-token-shown')
    await page.click('[data-test="token-shown-close"]')
    await page.locator('[data-test="token-value"]').waitFor({ state: 'detached' })
    assert.ok(!(await page.content()).includes(token), 'the token is still in the page after its dialog closed')

    // A script with the token: it reads, and may not write.
    const api = new URL('../api/', consoleURL).href
    const call = (method, path, body) =>
      fetch(api + path, { method, headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' }, body })
    assert.equal((await call('GET', 'bindings')).status, 200)
    const put = await call('POST', 'bindings/ban', JSON.stringify({ id: 1 }))
    assert.equal(put.status, 403)
    assert.equal((await put.json()).error.code, 'read_only_token')

    await page.reload()
    const tokenRow = page.locator('[data-test="tokens-table"] .el-table__body tr', { hasText: 'ci-read' })
    await tokenRow.locator('[data-test="token-last-ip"]', { hasText: '127.0.0.1' }).waitFor()
    await shot('19-tokens')
    await tokenRow.locator('[data-test="token-revoke"]').click()
    await page.locator('.el-message-box__btns .el-button--primary').click()
    await tokenRow.locator('[data-test="token-status"]', { hasText: 'Revoked' }).waitFor()
    assert.equal((await call('GET', 'bindings')).status, 401)
  })

  await t.test('pre-bind a key by the key itself', async () => {
    await page.click('[data-test="nav-bindings"]')
    await page.click('[data-test="create-open"]')
    const dialog = page.locator('.el-dialog:visible')
    await dialog.waitFor()
    await dialog.locator('input[data-test="create-key"]').fill(preBoundKey)
    await dialog.locator('input[data-test="rule-input"]').fill('127.0.0.40/33')
    await dialog.locator('.el-form-item__error', { hasText: 'not an IP address or CIDR' }).waitFor()
    assert.ok(await dialog.locator('[data-test="create-save"]').isDisabled())
    await dialog.locator('input[data-test="rule-input"]').fill('127.0.0.40')
    await dialog.locator('input[data-test="create-note"]').fill('customer 42')
    await shot('08-create-dialog')
    await dialog.locator('[data-test="create-save"]').click()
    await page.locator('.el-message--success', { hasText: 'Bound' }).first().waitFor()
    const hint = 'sk-' + preBoundKey.slice(3, 7) + '…' + preBoundKey.slice(-4)
    const prebound = page.locator('[data-test="bindings-table"] .el-table__body tr', { hasText: hint })
    await prebound.locator('[data-test="prebound"]').waitFor()
    assert.match(await prebound.innerText(), /Not used yet/)
    assert.doesNotMatch(await page.content(), new RegExp(preBoundKey.slice(3))) // the key is gone from the page
  })

  await t.test('an import with bad rows lists each and imports nothing; a good one imports all', async () => {
    const hex = (c) => c.repeat(64)
    const badFile = join(shots, 'import-bad.csv')
    writeFileSync(badFile, `key_hash,mode,cidrs\n${hex('a')},single,127.0.0.50\nnot-a-hash,single,127.0.0.51\n${hex('b')},single,10.0.0.5/24\n`)
    await page.click('[data-test="import-open"]')
    const dialog = page.locator('.el-dialog:visible')
    await dialog.waitFor()
    await dialog.locator('[data-test="import-file"]').setInputFiles(badFile)
    await dialog.locator('[data-test="import-send"]').click()
    const bad = dialog.locator('[data-test="import-rows"] .el-table__body tr')
    await bad.nth(1).waitFor()
    assert.equal(await bad.count(), 2)
    assert.match(await bad.nth(0).innerText(), /^2\s/)
    assert.match(await bad.nth(1).innerText(), /^3\s.*host bits/s)
    await shot('09-import-errors')
    const goodFile = join(shots, 'import-good.json')
    writeFileSync(goodFile, JSON.stringify([
      { key_hash: hex('a'), mode: 'single', cidrs: ['127.0.0.50'] },
      { key_hash: hex('b'), mode: 'multiple', cidrs: ['10.0.0.0/24', '2001:db8::/64'], note: 'office' },
    ]))
    await dialog.locator('[data-test="import-file"]').setInputFiles(goodFile)
    await dialog.locator('[data-test="import-send"]').click()
    await page.locator('.el-message--success', { hasText: '2 bindings imported' }).first().waitFor()
  })

  await t.test('export the bindings as CSV: hashes, never keys', async () => {
    await page.click('[data-test="export-open"]')
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('[data-test="export-csv"]')])
    const file = join(shots, 'bindings.csv')
    await download.saveAs(file)
    const csv = readFileSync(file, 'utf8')
    assert.match(csv, /^key_hash,key_hint,mode,cidrs,status,note,learn_slots,learn_until,origin,first_ip,created_at,last_used_at\n/)
    assert.equal(csv.trim().split('\n').length, 5) // the header, the first use, the pre-bound key, 2 imported
    assert.match(csv, /,multiple,10\.0\.0\.0\/24 2001:db8::\/64,active,office,,,import,/)
    assert.doesNotMatch(csv.toLowerCase(), new RegExp(preBoundKey.slice(3).toLowerCase()))
  })

  await t.test('Chinese is one click away and remembered', async () => {
    await pick('[data-test="locale"]', '简体中文')
    await page.locator('[data-test="nav-bindings"]', { hasText: '绑定管理' }).waitFor()
    await page.reload()
    await page.locator('[data-test="nav-bindings"]', { hasText: '绑定管理' }).waitFor()
    await page.click('[data-test="nav-bindings"]')
    await row().waitFor()
    await shot('10-bindings-zh-CN')
    await page.click('[data-test="create-open"]')
    await page.locator('.el-dialog:visible', { hasText: '在密钥使用前绑定' }).waitFor()
    await shot('11-create-dialog-zh-CN')
    await page.click('.el-dialog:visible .el-dialog__headerbtn')
    await page.click('[data-test="import-open"]')
    await page.locator('.el-dialog:visible', { hasText: '导入绑定' }).waitFor()
    await shot('12-import-dialog-zh-CN')
    await page.click('.el-dialog:visible .el-dialog__headerbtn')
    await page.click('[data-test="nav-audit"]')
    await page.locator('[data-test="audit-table"] .el-table__body tr').first().waitFor()
    await page.locator('[data-test="audit-table"] th', { hasText: '操作者' }).waitFor()
    await shot('12b-audit-zh-CN')
    await page.click('[data-test="nav-bindings"]')
    await row().locator('[data-test="edit-note"]').click()
    await page.locator('.el-message-box', { hasText: '备注' }).waitFor()
    await shot('12c-note-zh-CN')
    await page.locator('.el-message-box__btns .el-button:not(.el-button--primary)').click()
    await row().locator('[data-test="edit"]').click()
    await page.locator('.el-dialog:visible label.el-radio-button', { hasText: '学习' }).click()
    await page.locator('.el-dialog:visible', { hasText: '可容纳的地址数' }).waitFor()
    await shot('12d-rule-learning-zh-CN')
    await page.click('.el-dialog:visible .el-dialog__headerbtn')
    await page.click('[data-test="nav-tokens"]')
    await page.locator('[data-test="tokens-table"] th', { hasText: '最近使用' }).waitFor()
    await page.click('[data-test="token-create-open"]')
    await page.locator('.el-dialog:visible', { hasText: '有效期（天）' }).waitFor()
    await shot('12e-tokens-zh-CN')
    await page.click('.el-dialog:visible .el-dialog__headerbtn')
  })

  await t.test('usable on a phone-width screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 })
    for (const [name, nav] of [['13-phone-bindings', 'nav-bindings'], ['14-phone-dashboard', 'nav-dashboard']]) {
      await page.click(`[data-test="${nav}"]`)
      await page.waitForTimeout(300) // layout settles after the route change
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
      assert.ok(overflow <= 1, `${name}: the page is ${overflow}px wider than the screen`)
      await shot(name)
    }
    await page.click('[data-test="nav-bindings"]')
    await page.click('[data-test="create-open"]')
    await page.locator('.el-dialog:visible').waitFor()
    await shot('15-phone-create-dialog')
    const box = await page.locator('.el-dialog:visible').boundingBox()
    assert.ok(box && box.x >= 0 && box.x + box.width <= 391, `the dialog does not fit the screen: ${JSON.stringify(box)}`)
    await page.click('.el-dialog:visible .el-dialog__headerbtn')
    await row().locator('[data-test="edit"]').click()
    await page.locator('.el-dialog:visible label.el-radio-button', { hasText: '学习' }).click()
    await page.locator('.el-dialog:visible [data-test="learn-slots"]').waitFor()
    await shot('15b-phone-rule-learning')
    const rule = await page.locator('.el-dialog:visible').boundingBox()
    const modes = await page.locator('.el-dialog:visible [data-test="rule-mode"]').boundingBox()
    assert.ok(rule && modes && rule.x >= 0 && rule.x + rule.width <= 391 && modes.x + modes.width <= rule.x + rule.width,
      `the rule dialog does not fit the screen: ${JSON.stringify({ rule, modes })}`)
    await page.click('.el-dialog:visible .el-dialog__headerbtn')
    // The audit trail: the menu folds at this width, so it is reached by its address.
    await page.goto(consoleURL + 'audit')
    await page.locator('[data-test="audit-table"] .el-table__body tr').first().waitFor()
    await page.waitForTimeout(300)
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(overflow <= 1, `16-phone-audit: the page is ${overflow}px wider than the screen`)
    await shot('16-phone-audit')
    await page.goto(consoleURL + 'tokens')
    await page.locator('[data-test="tokens-table"] .el-table__body tr').first().waitFor()
    await page.waitForTimeout(300)
    const tokensOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
    assert.ok(tokensOverflow <= 1, `16b-phone-tokens: the page is ${tokensOverflow}px wider than the screen`)
    await shot('16b-phone-tokens')
  })

  await t.test('no script errors', () => {
    assert.deepEqual(errors, [])
  })
})
