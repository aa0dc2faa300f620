#!/usr/bin/env node
// The web app in a real browser against a running stack: a presenter, a big screen and three
// phones, as in a hall. Headless Debian Chromium driven by playwright-core (no browser
// download).
//
//   POLLSTREAM_WEB_URL=http://127.0.0.1:5173 node tests/browser.spec.mjs
//   node tests/browser.spec.mjs http://127.0.0.1:4173
//
// Environment:
//   POLLSTREAM_WEB_URL       base URL of the app (default http://127.0.0.1:5173); an argument wins
//   POLLSTREAM_SCREENSHOTS   where screenshots go (default target/screenshots in the repository)
//   POLLSTREAM_WEB_FULL=1    also check what needs newer back-end features (viewers count,
//                            polls that refuse guests)
//   FLUSH_INTERVAL_MS        the aggregator's flush interval (default 2000)
//   CHROMIUM                 the browser binary (default /usr/bin/chromium)
//
// Steps run in order and build on each other; after the first failure the rest are skipped.
// Exits non-zero when any step failed. Ends with "N passed, N failed, N skipped".

import assert from 'node:assert/strict';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const base = (process.argv[2] ?? process.env.POLLSTREAM_WEB_URL ?? 'http://127.0.0.1:5173').replace(/\/+$/, '');
const repository = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const screenshots = path.resolve(process.env.POLLSTREAM_SCREENSHOTS ?? path.join(repository, 'target/screenshots'));
const full = process.env.POLLSTREAM_WEB_FULL === '1';
const flushMs = Number(process.env.FLUSH_INTERVAL_MS ?? 2000);
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const stamp = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

const PHONE = { width: 360, height: 740 };
const DESK = { width: 1280, height: 800 };

// ---------------------------------------------------------------------------------------
// A minimal step runner.

const results = { passed: 0, failed: 0, skipped: 0 };
let failedAlready = false;

async function step(name, body, { when = true } = {}) {
  if (!when) {
    console.log(`skip - ${name} (needs POLLSTREAM_WEB_FULL=1)`);
    results.skipped += 1;
    return;
  }
  if (failedAlready) {
    console.log(`skip - ${name}`);
    results.skipped += 1;
    return;
  }
  const started = Date.now();
  try {
    await body();
    console.log(`ok   - ${name} (${Date.now() - started} ms)`);
    results.passed += 1;
  } catch (err) {
    failedAlready = true;
    results.failed += 1;
    console.log(`FAIL - ${name} (${Date.now() - started} ms)`);
    console.log(String(err?.stack ?? err).replace(/^/gm, '       '));
  }
}

// ---------------------------------------------------------------------------------------
// Pages, and what they report that must never happen.

const problems = [];

function watch(page, label) {
  page.on('pageerror', (err) => problems.push(`${label}: uncaught ${err.message}`));
  page.on('console', (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to (apply|execute|load|connect)/i.test(text)) {
      problems.push(`${label}: CSP: ${text}`);
    }
  });
  return page;
}

async function newPage(browser, label, viewport) {
  const context = await browser.newContext({ viewport, locale: 'en-GB', acceptDownloads: true });
  const page = watch(await context.newPage(), label);
  page.setDefaultTimeout(15_000);
  return { context, page };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(screenshots, name), fullPage: true });
}

/** The number the chart shows as its total, or -1 without a chart. */
const chartTotal = (page) =>
  page.evaluate(() => Number(document.querySelector('.chart')?.getAttribute('data-total') ?? -1));

async function waitForTotal(page, total, timeout) {
  await page.waitForFunction((n) => document.querySelector('.chart')?.getAttribute('data-total') === String(n), total, {
    timeout,
  });
}

/** `{text: [votes, percent]}` read from the visible bars. */
const barsOf = (page) =>
  page.$$eval('.bar-row', (rows) =>
    Object.fromEntries(
      rows.map((row) => [
        row.querySelector('.bar-label')?.firstChild?.textContent?.trim(),
        [Number(row.querySelector('.bar-votes')?.textContent), row.querySelector('.bar-percent')?.textContent],
      ]),
    ),
  );

/** Casts a vote the way a phone does, but from here: a fresh guest token, then the vote. */
async function voteOverHttp(code, optionText) {
  const poll = await (await fetch(`${base}/api/v1/polls/${code}`)).json();
  const option = poll.options.find((o) => o.text === optionText);
  const guest = await (await fetch(`${base}/api/v1/auth/guest`, { method: 'POST' })).json();
  const response = await fetch(`${base}/api/v1/votes/${code}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${guest.accessToken}` },
    body: JSON.stringify({ optionIds: [option.id] }),
  });
  assert.equal(response.status, 202, `vote over HTTP: ${await response.text()}`);
}

/** Creates a poll over HTTP as the presenter logged in on `page`. */
async function createPoll(page, poll) {
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('pollstream.account')).accessToken);
  const response = await fetch(`${base}/api/v1/polls`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify(poll),
  });
  const body = await response.text();
  assert.equal(response.status, 201, `poll created: ${body}`);
  return JSON.parse(body);
}

/** Joins with the code on `/` and votes for `optionText`, by mouse (or keyboard if asked). */
async function joinAndVote(page, code, optionText, { keyboard = false } = {}) {
  await page.goto(`${base}/`);
  if (keyboard) {
    for (let i = 0; i < 12; i += 1) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement?.id === 'join-code')) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'join-code', 'Tab reaches the code field');
    await page.keyboard.type(code.toLowerCase());
    await page.keyboard.press('Enter');
  } else {
    await page.getByLabel('Join code').fill(code);
    await page.getByRole('button', { name: 'Join' }).click();
  }
  await page.waitForURL(`${base}/p/${code}`);
  await page.getByRole('heading', { level: 1 }).waitFor();
  await page.locator('form.ballot').waitFor();
  const accepted = page.waitForResponse(
    (r) => r.url().endsWith(`/api/v1/votes/${code}`) && r.request().method() === 'POST',
  );
  if (keyboard) {
    // Into the options: Tab lands on the first radio; arrows move and choose.
    for (let i = 0; i < 12; i += 1) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement?.getAttribute('name') === 'choice')) break;
    }
    const focus = await page.evaluate(() => {
      const el = document.activeElement;
      return { name: el?.getAttribute('name'), outline: el ? getComputedStyle(el).outlineStyle : 'none' };
    });
    assert.equal(focus.name, 'choice', 'Tab reaches the options');
    assert.notEqual(focus.outline, 'none', 'the focused option is visibly focused');
    const labels = await page.$$eval('.choice-text', (els) => els.map((el) => el.textContent));
    const target = labels.indexOf(optionText);
    assert.ok(target >= 0, `option ${optionText} is offered`);
    await page.keyboard.press('Space');
    for (let i = 0; i < target; i += 1) await page.keyboard.press('ArrowDown');
    assert.equal(await page.getByLabel(optionText).isChecked(), true, 'the keyboard chose the option');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Vote', 'Tab reaches Vote');
    await page.keyboard.press('Enter');
  } else {
    await page.getByLabel(optionText).check();
    await page.getByRole('button', { name: 'Vote' }).click();
  }
  const response = await accepted;
  assert.equal(response.status(), 202, `vote accepted: ${await response.text()}`);
  return response;
}

// ---------------------------------------------------------------------------------------

await mkdir(screenshots, { recursive: true });
console.log(`pollstream web in Chromium: ${base} (screenshots in ${screenshots}${full ? ', full checks' : ''})`);

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});

const email = `presenter-${stamp}@example.com`;
const password = `correct horse ${stamp}`;
let presenter;
let screen;
const phones = [];
let code;
let options;

try {
  await step('the presenter registers in the console', async () => {
    presenter = await newPage(browser, 'console', DESK);
    const { page } = presenter;
    await page.goto(`${base}/console`);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    await page.getByRole('button', { name: 'Create an account' }).click();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(password);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('heading', { name: 'Your polls' }).waitFor();
    await page.getByText(email).waitFor();
  });

  await step('the presenter creates a poll', async () => {
    const { page } = presenter;
    await page.getByLabel('Question').fill(`Which release name? ${stamp}`);
    await page.getByLabel('Option 1', { exact: true }).fill('Aurora');
    await page.getByLabel('Option 2', { exact: true }).fill('Borealis');
    await page.getByRole('button', { name: 'Add an option' }).click();
    await page.getByLabel('Option 3', { exact: true }).fill('Cosmos');
    await page.getByRole('button', { name: 'Create poll' }).click();
    const created = page.locator('.my-poll.fresh');
    await created.waitFor();
    code = await created.getAttribute('data-code');
    assert.match(code, /^[A-Z0-9]{4,16}$/);
    options = (await (await fetch(`${base}/api/v1/polls/${code}`)).json()).options;
    assert.deepEqual(
      options.map((o) => o.text),
      ['Aurora', 'Borealis', 'Cosmos'],
    );
    await shot(page, 'console.png');
  });

  await step('the presenter opens the big screen: question, code, join URL, QR code', async () => {
    const { page, context } = presenter;
    const [opened] = await Promise.all([
      context.waitForEvent('page'),
      page.locator(`.my-poll[data-code="${code}"]`).getByRole('link', { name: 'Open big screen' }).click(),
    ]);
    screen = watch(opened, 'big screen');
    screen.setDefaultTimeout(15_000);
    await screen.waitForURL(`${base}/screen/${code}`);
    await screen.getByRole('heading', { name: `Which release name? ${stamp}` }).waitFor();
    assert.equal(await screen.getByTestId('join-code').textContent(), code);
    assert.equal(await screen.getByTestId('join-url').textContent(), `${new URL(base).host}/p/${code}`);
    await waitForTotal(screen, 0, 10_000);
    // The QR code is drawn: dark and light modules on the canvas.
    await screen.waitForFunction(() => {
      const canvas = document.querySelector('canvas.qr');
      const data = canvas?.getContext('2d')?.getImageData(0, 0, canvas.width, canvas.height).data;
      if (!data) return false;
      let dark = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] < 50) dark += 1;
      return dark > 1000;
    });
    // "—" until the server first says how many are watching.
    assert.match(await screen.getByTestId('viewers').textContent(), /^(—|\d+)$/);
  });

  let lastAccepted = 0;
  await step('three phones join by code and vote (one by keyboard alone)', async () => {
    const choices = ['Aurora', 'Borealis', 'Aurora'];
    for (let i = 0; i < 3; i += 1) phones.push(await newPage(browser, `phone ${i + 1}`, PHONE));
    await joinAndVote(phones[0].page, code, choices[0], { keyboard: true });
    await joinAndVote(phones[1].page, code, choices[1]);
    await joinAndVote(phones[2].page, code, choices[2]);
    lastAccepted = Date.now();
    for (const { page } of phones) {
      await page.getByTestId('vote-status').waitFor();
      const wide = await page.evaluate(() =>
        [...document.querySelectorAll('body *')]
          .filter((el) => !el.closest('.visually-hidden'))
          .filter((el) => el.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
          .map((el) => `${el.tagName.toLowerCase()}.${el.className}`)
          .concat(document.documentElement.scrollWidth > window.innerWidth ? ['(the page scrolls sideways)'] : []),
      );
      assert.deepEqual(wide, [], 'the audience page fits 360 px without scrolling sideways');
    }
  });

  await step(`the big screen shows 3 votes within the flush interval plus a second`, async () => {
    const budget = flushMs + 1000 - (Date.now() - lastAccepted);
    await waitForTotal(screen, 3, Math.max(budget, 1));
    assert.deepEqual(await barsOf(screen), { Aurora: [2, '67%'], Borealis: [1, '33%'], Cosmos: [0, '0%'] });
    const caption = await screen.locator('.visually-hidden table caption').textContent();
    assert.match(caption, /Results so far/);
    const rows = await screen.$$eval('.visually-hidden table tbody tr', (trs) => trs.map((tr) => tr.textContent));
    assert.deepEqual(rows, ['Aurora267%', 'Borealis133%', 'Cosmos00%']);
    await shot(screen, 'screen-live.png');
  });

  await step('the big screen shows the viewers', async () => {
    // Three phones are joined; the presenter's own screen is not part of the audience.
    await screen.waitForFunction(() => /^3$/.test(document.querySelector('[data-testid="viewers"]')?.textContent ?? ''));
  }, { when: full });

  await step('each phone sees its vote received, then counted, and the live results', async () => {
    for (const { page } of phones) {
      await page.waitForSelector('[data-testid="vote-status"][data-vote-status="counted"]', { timeout: flushMs + 10_000 });
      await page.getByText('Your vote is counted.').waitFor();
      await waitForTotal(page, 3, 10_000);
    }
    await shot(phones[0].page, 'audience.png');
  });

  await step('a reloaded phone is still the same voter', async () => {
    const { page } = phones[1];
    await page.reload();
    await page.getByText('You already voted in this poll.').waitFor();
    assert.equal(await page.locator('.vote-choice strong').textContent(), 'Borealis');
    assert.equal(await page.locator('form.ballot').count(), 0, 'no second ballot is offered');
    // And the API agrees: a second vote from this browser is refused.
    const refused = await page.evaluate(async ([pollCode, optionId]) => {
      const token = JSON.parse(localStorage.getItem('pollstream.guest')).accessToken;
      const r = await fetch(`/api/v1/votes/${pollCode}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ optionIds: [optionId] }),
      });
      return [r.status, (await r.json()).error];
    }, [code, options[0].id]);
    assert.deepEqual(refused, [409, 'already_voted']);
  });

  await step('a phone whose connection drops shows reconnecting, then catches up', async () => {
    const { page, context } = phones[2];
    await context.setOffline(true);
    await page.waitForSelector('[data-link="reconnecting"]', { timeout: 10_000 });
    await page.getByText('Connection lost, reconnecting…').waitFor();
    await voteOverHttp(code, 'Cosmos');
    await waitForTotal(screen, 4, flushMs + 3000);
    assert.equal(await chartTotal(page), 3, 'the offline phone has not seen the fourth vote');
    await context.setOffline(false);
    await page.waitForSelector('[data-link="online"]', { state: 'attached', timeout: 15_000 });
    await waitForTotal(page, 4, 5000);
  });

  await step('a multiple-choice ballot keeps to its minimum and maximum', async () => {
    const other = await createPoll(presenter.page, {
      question: `Pick two ${stamp}`,
      options: ['Red', 'Green', 'Blue', 'Gold'],
      kind: 'multiple',
      minChoices: 2,
      maxChoices: 2,
    });
    const { page } = phones[0];
    await page.goto(`${base}/p/${other.code}`);
    await page.getByText('Choose exactly 2 options.').waitFor();
    await page.getByLabel('Red').check();
    await page.getByRole('button', { name: 'Vote' }).click();
    await page.getByText('Choose at least 2 options (1 chosen).').waitFor();
    await page.getByLabel('Green').check();
    await page.getByLabel('Blue').click();
    await page.getByText('You can choose at most 2 options: untick one first.').waitFor();
    assert.equal(await page.getByLabel('Blue').isChecked(), false);
    const accepted = page.waitForResponse((r) => r.url().endsWith(`/api/v1/votes/${other.code}`));
    await page.getByRole('button', { name: 'Vote' }).click();
    assert.equal((await accepted).status(), 202);
    await page.getByTestId('vote-status').waitFor();
  });

  await step('the poll form counts a flag as one character and keeps emoji as written', async () => {
    const { page } = presenter;
    // The big screen's tab is in front since it opened; a tab behind it paints slowly.
    await page.bringToFront();
    const england = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}';
    const scotland = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}';
    const wales = '\u{1F3F4}\u{E0067}\u{E0062}\u{E0077}\u{E006C}\u{E0073}\u{E007F}';
    const question = `Which flag \u2764\uFE0F ${stamp}`;
    await page.getByLabel('Question').fill(question);
    assert.equal(await page.locator('#poll-question-count').innerText(), `${[...question].length - 1} / 500`);
    // 200 flags are 1,400 code points and 2,800 UTF-16 units: the field takes them all.
    await page.getByLabel('Option 2', { exact: true }).fill(scotland);
    const option1 = page.getByLabel('Option 1', { exact: true });
    await option1.fill(england.repeat(201));
    assert.equal(await option1.inputValue(), england.repeat(201), 'no maxLength cuts the flags');
    const count1 = page.locator('#poll-option-0-count');
    assert.equal(await count1.innerText(), '201 / 200');
    assert.match(await count1.getAttribute('class'), /\bover\b/);
    await page.getByRole('button', { name: 'Create poll' }).click();
    await page.getByRole('alert').getByText('Option 1 is longer than 200 characters.').waitFor();
    await option1.fill(england.repeat(200));
    assert.equal(await count1.innerText(), '200 / 200');
    await option1.fill(england);
    assert.equal(await count1.count(), 0, 'a short option shows no counter');
    await page.getByRole('button', { name: 'Add an option' }).click();
    await page.getByLabel('Option 3', { exact: true }).fill(wales);
    await page.getByRole('button', { name: 'Add an option' }).click();
    await page.getByLabel('Option 4', { exact: true }).fill('\u2764\uFE0F');
    await page.getByRole('button', { name: 'Add an option' }).click();
    await page.getByLabel('Option 5', { exact: true }).fill('\u2764');
    await page.getByRole('button', { name: 'Create poll' }).click();
    await page.getByRole('alert').getByText('appears twice', { exact: false }).waitFor();
    await page.getByLabel('Option 5', { exact: true }).fill('\u845B\u{E0100}\u98FE');
    const created = page.waitForResponse((r) => r.url().endsWith('/api/v1/polls') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Create poll' }).click();
    const response = await created;
    assert.equal(response.status(), 201, 'the server takes what the form let through');
    const poll = await response.json();
    assert.equal(poll.question, question);
    assert.deepEqual(
      poll.options.map((o) => o.text),
      [england, scotland, wales, '\u2764\uFE0F', '\u845B\u{E0100}\u98FE'],
      'stored as written',
    );
    const phone = phones[0].page;
    await phone.goto(`${base}/p/${poll.code}`);
    for (const text of [england, scotland, wales]) await phone.getByLabel(text, { exact: true }).waitFor();
    await shot(phone, 'audience-flags.png');
  });

  await step('results shown "after the vote" appear once the ballot is counted', async () => {
    const poll = await createPoll(presenter.page, {
      question: `After you vote ${stamp}`,
      options: ['Left', 'Right'],
      kind: 'single',
      resultsVisibility: 'after_vote',
    });
    const phone = await newPage(browser, 'phone 4', PHONE);
    const { page } = phone;
    await page.goto(`${base}/p/${poll.code}`);
    await page.getByText('Results appear here once you have voted.').waitFor();
    assert.equal(await page.locator('.chart').count(), 0);
    await page.getByLabel('Left').check();
    await page.getByRole('button', { name: 'Vote' }).click();
    await page.getByText('Vote received. Counting…').waitFor();
    // Released by realtime-service once counted, without a reload.
    await waitForTotal(page, 1, flushMs + 5000);
    await page.waitForSelector('[data-vote-status="counted"]', { timeout: 10_000 });
    await phone.context.close();
  });

  await step("an owner-only poll shows on the owner's big screen and nowhere else", async () => {
    const poll = await createPoll(presenter.page, {
      question: `Owner only ${stamp}`,
      options: ['Up', 'Down'],
      kind: 'single',
      resultsVisibility: 'owner_only',
    });
    await voteOverHttp(poll.code, 'Down');
    const ownerScreen = watch(await presenter.context.newPage(), 'owner screen');
    await ownerScreen.goto(`${base}/screen/${poll.code}`);
    await waitForTotal(ownerScreen, 1, flushMs + 5000);
    const phone = await newPage(browser, 'phone 5', PHONE);
    await phone.page.goto(`${base}/p/${poll.code}`);
    await phone.page.getByText('Only the presenter sees the results of this poll.').waitFor();
    assert.equal(await phone.page.locator('.chart').count(), 0);
    await phone.context.close();
    await ownerScreen.close();
  });

  await step('an expired access token is refreshed without the presenter noticing', async () => {
    const { page } = presenter;
    const before = await page.evaluate(() => {
      const stored = JSON.parse(localStorage.getItem('pollstream.account'));
      const refreshToken = stored.refreshToken;
      // The API now refuses the access token, as it would once expired.
      localStorage.setItem('pollstream.account', JSON.stringify({ ...stored, accessToken: 'expired.token.value' }));
      return refreshToken;
    });
    const listed = page.waitForResponse((r) => r.url().includes('/api/v1/polls/mine') && r.status() === 200);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await listed;
    const after = await page.evaluate(() => JSON.parse(localStorage.getItem('pollstream.account')));
    assert.notEqual(after.refreshToken, before, 'the refresh token was rotated');
    assert.notEqual(after.accessToken, 'expired.token.value');
    assert.equal(await page.locator('.console .problem').count(), 0, 'no error shown');
    await page.getByText(email).waitFor();
  });

  await step('an access token about to expire is refreshed ahead of time', async () => {
    const { page } = presenter;
    const before = await page.evaluate(() => {
      const stored = JSON.parse(localStorage.getItem('pollstream.account'));
      // Issued 14.5 minutes ago, 30 s left: past the moment to refresh.
      const now = Date.now();
      localStorage.setItem('pollstream.account', JSON.stringify({ ...stored, issuedAt: now - 870_000, expiresAt: now + 30_000 }));
      return stored.refreshToken;
    });
    await page.reload();
    await page.waitForFunction(
      (old) => JSON.parse(localStorage.getItem('pollstream.account') ?? 'null')?.refreshToken !== old,
      before,
      { timeout: 10_000 },
    );
    const after = await page.evaluate(() => JSON.parse(localStorage.getItem('pollstream.account')));
    assert.ok(after.expiresAt - Date.now() > 60_000, 'a fresh access token is stored');
    await page.getByText(email).waitFor();
  });

  await step('the presenter exports the ballots as CSV', async () => {
    const { page } = presenter;
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.locator(`.my-poll[data-code="${code}"]`).getByRole('button', { name: 'Export CSV' }).click(),
    ]);
    assert.equal(download.suggestedFilename(), `pollstream-${code}-ballots.csv`);
    const csv = await readFile(await download.path(), 'utf8');
    const lines = csv.trim().split(/\r?\n/);
    assert.match(lines[0], /^vote_id,voter_id,option_ids,options,cast_at,counted_at/);
    assert.equal(lines.length, 1 + 4, 'a header and four ballots');
  });

  await step('closing reads "counting the last votes" until the final count, then the final result on every page', async () => {
    const { page } = presenter;
    const row = page.locator(`.my-poll[data-code="${code}"]`);
    const closed = page.waitForResponse((r) => r.url().endsWith(`/polls/${code}/close`) && r.request().method() === 'POST');
    await row.getByRole('button', { name: 'Close poll' }).click();
    const answer = await (await closed).json();
    assert.equal(answer.status, 'closing', 'the close answers closing: the last votes may still be counted');
    // The close lasts the send deadline + 1 s + one flush (about 8 s): every page shows it meanwhile.
    await row.locator('.status-closing').waitFor({ timeout: 5_000 });
    assert.equal(await row.getByRole('button', { name: 'Close poll' }).count(), 0, 'no second close');
    await screen.waitForSelector('.screen-state[data-status="closing"]', { timeout: 5_000 });
    assert.match(await screen.locator('.screen-state').innerText(), /counting the last votes/i);
    assert.equal(await screen.getByText('final result', { exact: false }).count(), 0, 'nothing reads final while closing');
    await shot(screen, 'screen-closing.png');
    const watcher = phones[1].page;
    await watcher.waitForSelector('[data-testid="closed-notice"][data-status="closing"]', { timeout: 5_000 });
    await watcher.getByRole('heading', { name: 'Counting the last votes…' }).waitFor();
    assert.equal(await watcher.getByText('final result', { exact: false }).count(), 0, 'nothing reads final while closing');
    assert.equal(await watcher.locator('form.ballot').count(), 0, 'no vote is taken while closing');
    await shot(watcher, 'audience-closing.png');

    // The final state: up to ~10 s after the close, longer than the closing bound.
    await screen.waitForSelector('.screen-state[data-status="closed"]', { timeout: 20_000 });
    await screen.getByText('final result', { exact: false }).first().waitFor();
    assert.equal(await screen.locator('.chart').getAttribute('data-status'), 'closed', 'the chart shows the closed snapshot');
    assert.equal(await chartTotal(screen), 4);
    await shot(screen, 'screen.png');
    for (const [i, { page: phone }] of phones.entries()) {
      if (i === 0) await phone.goto(`${base}/p/${code}`); // it went on to another poll
      await phone.waitForSelector('[data-testid="closed-notice"][data-status="closed"]', { timeout: 20_000 });
      await phone.getByRole('heading', { name: 'Final result' }).waitFor();
      await waitForTotal(phone, 4, 10_000);
      assert.equal(await phone.locator('form.ballot').count(), 0);
    }
    assert.deepEqual(await barsOf(phones[1].page), { Aurora: [2, '50%'], Borealis: [1, '25%'], Cosmos: [1, '25%'] });
    await shot(phones[1].page, 'audience-closed.png');
    // The console, with no socket, reads the poll again until it is closed.
    await row.locator('.status-closed').waitFor({ timeout: 20_000 });
  });

  await step('a poll that needs accounts refuses a guest', async () => {
    const { page } = presenter;
    await page.getByLabel('Question').fill(`Members only ${stamp}`);
    await page.getByLabel('Option 1', { exact: true }).fill('Yes');
    await page.getByLabel('Option 2', { exact: true }).fill('No');
    await page.getByLabel('Guests may vote without an account').uncheck();
    await page.getByRole('button', { name: 'Create poll' }).click();
    const created = page.locator('.my-poll.fresh');
    await created.getByText(`Members only ${stamp}`).waitFor();
    const membersCode = await created.getAttribute('data-code');
    const guest = await newPage(browser, 'guest', PHONE);
    await guest.page.goto(`${base}/p/${membersCode}`);
    await guest.page.getByTestId('needs-account').waitFor();
    assert.equal(await guest.page.locator('form.ballot').count(), 0, 'no ballot for a guest');
    await guest.page.getByRole('link', { name: 'Log in or create an account' }).waitFor();
    // The API itself refuses a guest's ballot, whatever the page does.
    const status = await guest.page.evaluate(async (pollCode) => {
      const g = await (await fetch('/api/v1/auth/guest', { method: 'POST' })).json();
      const poll = await (await fetch(`/api/v1/polls/${pollCode}`)).json();
      const r = await fetch(`/api/v1/votes/${pollCode}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${g.accessToken}` },
        body: JSON.stringify({ optionIds: [poll.options[0].id] }),
      });
      return [r.status, (await r.json()).error];
    }, membersCode);
    assert.deepEqual(status, [403, 'guests_not_allowed']);
    await guest.context.close();
  }, { when: full });

  await step('no page had an uncaught error or a CSP violation', async () => {
    assert.deepEqual(problems, []);
  });
} finally {
  await browser.close();
}

console.log(`\nweb: ${results.passed} passed, ${results.failed} failed, ${results.skipped} skipped`);
process.exit(results.failed > 0 ? 1 : 0);
