// Dashboard scenarios in a real browser: Debian's Chromium driven by
// playwright-core (pinned in package.json, installed by scripts/test.sh with
// `npm ci`). Each run is one scenario, started by tests/tests/dashboard_browser.rs
// against a gateway it runs in-process (loopback LLM provider, fresh database):
//
//   node scenarios.mjs <scenario>
//   env: BASE_URL, PASSWORD, AGENT_ID (chat scenarios), SCREENSHOTS (a directory),
//        CHROMIUM (default /usr/bin/chromium)
//
// It exits non-zero with the reason on stderr when an expectation fails, and
// prints one JSON line of facts for the Rust side to check through the API.
import { chromium } from "playwright-core";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { opsScenarios } from "./ops_scenarios.mjs";

const BASE = process.env.BASE_URL;
const PASSWORD = process.env.PASSWORD;
const SHOTS = process.env.SCREENSHOTS;
const EXECUTABLE = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 30_000;

function check(cond, message) {
  if (!cond) throw new Error("expectation failed: " + message);
}

async function shot(page, name) {
  if (!SHOTS) return;
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name + ".png"), fullPage: false });
}

async function login(page) {
  await page.goto(BASE + "/");
  check(page.url().startsWith(BASE + "/login"), "an anonymous visit goes to /login, got " + page.url());
  // Enter in the field submits (typing into the focused field right after
  // load could lose keys to autofocus arriving late: fill it by selector).
  await page.fill("#password", PASSWORD);
  await page.press("#password", "Enter");
  await page.waitForURL(BASE + "/");
  await page.waitForSelector("#overview-live");
}

/// Sends a chat message and waits until the reply is complete; returns the bubble.
async function chat(page, agentId, text) {
  await page.goto(BASE + "/chat/" + agentId);
  await page.fill("#message", text);
  await page.keyboard.press("Enter");
  const bubble = page.locator(".msg.assistant[data-done=true]").last();
  await bubble.waitFor({ timeout: TIMEOUT });
  return bubble;
}

const scenarios = {
  // Log in, create an agent through the form, chat with it: the reply streams in.
  async login_create_agent_and_chat(page) {
    await page.goto(BASE + "/login");
    await shot(page, "login");
    await login(page);
    // The skip link is the first stop of the keyboard.
    await page.keyboard.press("Tab");
    check((await page.evaluate(() => document.activeElement.textContent)) === "Skip to content", "skip link first");
    // htmx loaded under the CSP and read its settings from the meta tag; the
    // overview's refresh swaps its fragment in place.
    const config = await page.evaluate(() => window.htmx && [htmx.config.allowEval, htmx.config.includeIndicatorStyles]);
    check(JSON.stringify(config) === "[false,false]", "htmx configured without eval: " + JSON.stringify(config));
    await page.evaluate(() => htmx.ajax("GET", "/ui/overview", { target: "#overview-live", swap: "outerHTML" }));
    await page.waitForSelector("#overview-live dl.stats");

    await page.goto(BASE + "/agents");
    await page.click("a[href='/agents/new']");
    await page.waitForURL(BASE + "/agents/new");
    await page.fill("#name", "Browser Bot");
    await page.fill("#slug", "browser-bot");
    await page.fill("#model", "openai/gpt-4o-mini");
    await page.fill("#systemPrompt", "You answer briefly.");
    await page.click("main button[type=submit]");
    await page.waitForURL(/\/agents\/\d+$/);
    const agentId = Number(page.url().split("/").pop());
    check((await page.textContent("h1")) === "Browser Bot", "the agent page shows the new agent");
    await shot(page, "agent");

    // The script counts the delta events it drew into the bubble
    // (data-deltas) before the final reply replaced them: more than one means
    // the reply reached the page in pieces, not only as the stored whole.
    await page.goto(BASE + "/chat/" + agentId);
    await page.fill("#message", "hello there");
    await page.keyboard.press("Enter");
    const bubble = page.locator(".msg.assistant[data-done=true]").last();
    await bubble.waitFor({ timeout: TIMEOUT });
    const deltas = Number(await bubble.getAttribute("data-deltas"));
    const text = (await bubble.locator(".body").textContent()).trim();
    check(deltas > 1, "the reply came as several deltas, got " + deltas);
    check((await page.locator("#empty-thread").count()) === 0, "the empty-history note is gone");
    await shot(page, "chat");
    await page.goto(BASE + "/");
    check((await page.locator("td.message").count()) >= 2, "the overview lists the new messages");
    await shot(page, "overview");
    // Phone width: the same page stays usable.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await shot(page, "overview-phone");
    return { agentId, reply: text, deltas };
  },

  // A reply with HTML in it shows as text, live and from the history.
  async script_reply_renders_as_text(page) {
    await login(page);
    await page.evaluate(() => { window.__pwned = 0; });
    const bubble = await chat(page, process.env.AGENT_ID, "show me html");
    const text = await bubble.locator(".body").textContent();
    check(text.includes("<script>"), "the tag is visible as text: " + text);
    const count = async () => page.evaluate(() => ({
      scripts: document.querySelectorAll("#thread script, #thread img").length,
      pwned: window.__pwned || 0,
    }));
    let c = await count();
    check(c.scripts === 0 && c.pwned === 0, "no element made from the reply: " + JSON.stringify(c));
    await page.reload();
    await page.waitForSelector(".msg.assistant");
    await page.waitForTimeout(300); // let an injected onerror fire, if there were one
    c = await count();
    const history = await page.locator(".msg.assistant .body").last().textContent();
    check(history.includes("<script>") && c.scripts === 0 && c.pwned === 0, "the history too: " + JSON.stringify(c));
    return { text };
  },

  // The stream breaks after the message was taken in: the page resumes the
  // run by its job id and shows the whole reply. The break is made by
  // playwright's request routing (the real response, cut after its first
  // event), so it happens at the same point on every run.
  async a_dropped_stream_resumes_the_reply(page) {
    await login(page);
    await page.route("**/chat/*/stream", async (route) => {
      const response = await route.fetch();
      const body = await response.text();
      const first = body.split("\n\n")[0] + "\n\n";
      check(first.includes("event: accepted"), "the stream starts with accepted: " + first);
      await route.fulfill({ response, body: first });
    });
    const bubble = await chat(page, process.env.AGENT_ID, "are you still there");
    check((await bubble.getAttribute("data-resumed")) === "true", "the reply came through the resume URL");
    check(!(await bubble.getAttribute("data-deltas")), "no delta reached the page before the cut");
    const text = (await bubble.locator(".body").textContent()).trim();
    return { text };
  },

  // A page on another origin posts a form and a fetch with the user's cookie: refused.
  async cross_origin_post_is_refused(page) {
    await login(page);
    const attacker = http.createServer((req, res) => {
      res.setHeader("content-type", "text/html");
      res.end(`<!doctype html><form id=f method=post action="${BASE}/agents/new">
        <input name=name value=Forged><input name=slug value=forged><input name=temperature value=0.5>
        <input name=maxTokens value=100><input name=role value=specialist><button id=go>go</button></form>
        <script>
          fetch("${BASE}/api/agents", { method: "POST", mode: "no-cors", credentials: "include",
            headers: { "content-type": "text/plain" }, body: JSON.stringify({ slug: "forged-api", name: "F" }) })
            .then(() => { document.title = "fetched"; }, () => { document.title = "fetch failed"; });
        </script>`);
    });
    await new Promise((r) => attacker.listen(0, "127.0.0.1", r));
    const evil = "http://127.0.0.1:" + attacker.address().port + "/";
    try {
      await page.goto(evil);
      await page.waitForFunction(() => document.title.startsWith("fetch"));
      const [response] = await Promise.all([page.waitForNavigation(), page.click("#go")]);
      check(response.status() === 403, "the forged form is refused, got " + response.status());
      check((await page.textContent("body")).includes("cross-origin request refused"), "and says why");
    } finally {
      attacker.close();
    }
    return {};
  },

  // Log out: the cookie the browser had is refused afterwards, even set back by hand.
  async logout_refuses_the_old_cookie(page, context) {
    await login(page);
    const [cookie] = (await context.cookies()).filter((c) => c.name === "arvis-token");
    check(cookie && cookie.httpOnly && cookie.sameSite === "Lax", "an HttpOnly, SameSite=Lax session cookie");
    check(!(await page.evaluate(() => document.cookie)).includes("arvis-token"), "scripts cannot read it");
    await page.click("header .logout button");
    await page.waitForURL(/\/login/);
    check((await context.cookies()).every((c) => c.name !== "arvis-token"), "the cookie is cleared");
    await context.addCookies([cookie]);
    await page.goto(BASE + "/agents");
    check(page.url().startsWith(BASE + "/login"), "the old cookie opens nothing: " + page.url());
    return { cookie: cookie.name + "=" + cookie.value };
  },
};

// The Queue and Usage pages' scenarios (ops_scenarios.mjs).
Object.assign(scenarios, opsScenarios({ BASE, check, shot, login }));

async function main() {
  const name = process.argv[2];
  const scenario = scenarios[name];
  if (!scenario) throw new Error("unknown scenario " + name + "; known: " + Object.keys(scenarios).join(", "));
  if (!fs.existsSync(EXECUTABLE)) throw new Error("no browser at " + EXECUTABLE + " (scripts/test.sh installs chromium)");
  const browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    // Root in CI: Chromium's sandbox needs user namespaces it cannot have there.
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  try {
    const facts = await scenario(page, context);
    // A CSP violation or a script error on our pages is a failure too
    // (the attacker page's refused requests are expected noise).
    const ours = errors.filter((e) => !e.includes("403") && !e.includes("Forbidden"));
    check(ours.length === 0, "errors in the page: " + JSON.stringify(ours));
    console.log(JSON.stringify({ ok: true, ...facts }));
  } catch (e) {
    await shot(page, "failed-" + name).catch(() => {});
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
