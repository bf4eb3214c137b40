// Browser scenarios of the Queue and Usage pages (issue #20), run by
// tests/tests/dashboard_ops_browser.rs through scenarios.mjs (which merges
// these into its table, so they share its browser set-up, error checks and
// screenshots). A factory, because the helpers live in scenarios.mjs:
//
//   node scenarios.mjs retry_a_failed_job        env: JOB_ID
//   node scenarios.mjs usage_numbers_match_the_api
export function opsScenarios({ BASE, check, shot, login }) {
  /// The page's body is no wider than the window (tables scroll in their box).
  async function fitsTheWindow(page, what) {
    const { doc, win } = await page.evaluate(() => ({
      doc: document.documentElement.scrollWidth,
      win: window.innerWidth,
    }));
    check(doc <= win, what + ": the page is " + doc + " px wide in a " + win + " px window");
  }

  /// Every <data data-field> of an element: field → value (the API's exact number).
  async function numbers(locator) {
    return locator.evaluate((el) => {
      const out = {};
      el.querySelectorAll("data[data-field]").forEach((d) => { out[d.dataset.field] = Number(d.value); });
      return out;
    });
  }

  return {
    // A failed job shows its error; retried from the keyboard it is pending
    // again; when it changes behind the page's back (cancelled through the
    // API) the list follows without a reload.
    async retry_a_failed_job(page) {
      const id = process.env.JOB_ID;
      await login(page);
      await page.goto(BASE + "/queue?status=failed");
      const row = page.locator("#queue-live tr", { has: page.locator(`a[href='/queue/${id}']`) });
      check((await row.locator(".job-error").textContent()).includes("provider said no <b>"),
        "the failed job shows its error, as text");
      await shot(page, "queue");
      await page.focus(`#retry-${id}`);
      await Promise.all([page.waitForURL(/retried=/), page.keyboard.press("Enter")]);
      check(page.url().endsWith(`/queue?status=failed&page=1&retried=${id}`), "back to the failed list: " + page.url());
      check((await page.textContent("main")).includes(`Job #${id} is pending again.`), "the notice says so");
      check((await page.locator("#queue-live").textContent()).includes("No failed jobs."), "the list is empty now");

      await page.goto(BASE + "/queue");
      check((await page.locator(`#cancel-${id}`).count()) === 1, "pending now: it can be cancelled");
      const cancelledTab = page.locator("nav.tabs a[href='/queue?status=cancelled&page=1'] .count");
      check((await cancelledTab.textContent()) === "0", "nothing cancelled yet");
      // A marker a reload would wipe: the change below must arrive by htmx alone.
      await page.evaluate(() => { window.__stillHere = true; });
      const status = await page.evaluate(async (id) => (await fetch("/api/queue/" + id, { method: "DELETE" })).status, id);
      check(status === 200, "the API cancels it: " + status);
      await page.locator(`#cancel-${id}`).waitFor({ state: "detached", timeout: 15_000 });
      check((await cancelledTab.textContent()) === "1", "the cancelled count follows");
      check(await page.evaluate(() => window.__stillHere === true), "updated in place, not reloaded");
      await page.setViewportSize({ width: 390, height: 844 });
      await page.goto(BASE + "/queue?status=cancelled");
      await fitsTheWindow(page, "the queue on a phone");
      await shot(page, "queue-phone");
      return { jobId: Number(id) };
    },

    // For each period, the numbers the page shows are the ones GET /api/usage
    // answers (fetched by the page itself, with its session), and the period
    // is picked from the keyboard.
    async usage_numbers_match_the_api(page) {
      await login(page);
      await page.goto(BASE + "/usage");
      const seen = {};
      for (const period of ["day", "week", "month"]) {
        await page.focus(`nav.tabs a[href='/usage?period=${period}']`);
        await Promise.all([page.waitForURL(BASE + "/usage?period=" + period), page.keyboard.press("Enter")]);
        const api = await page.evaluate(async (p) => (await fetch("/api/usage?period=" + p)).json(), period);
        const totals = await numbers(page.locator("#usage-totals"));
        for (const [field, value] of Object.entries(totals)) {
          check(value === api[field], `${period} ${field}: the page shows ${value}, the API ${api[field]}`);
        }
        const rows = {};
        for (const [table, list, key] of [["by-agent", "byAgent", "agentId"], ["by-provider", "byProvider", "provider"],
          ["by-model", "byModel", "model"]]) {
          const shown = page.locator(`#${table} tbody tr`);
          check((await shown.count()) === api[list].length, `${period} ${list}: one row each`);
          for (const item of api[list]) {
            const k = item[key] === null ? "" : String(item[key]);
            const cells = await numbers(page.locator(`#${table} tr[data-key="${k.replace(/"/g, '\\"')}"]`));
            for (const [field, value] of Object.entries(cells)) {
              check(value === item[field], `${period} ${list}[${k}].${field}: page ${value}, API ${item[field]}`);
            }
            rows[`${list}:${k}`] = cells;
          }
        }
        const unpricedCells = await page.locator("data.unpriced").allTextContents();
        check(unpricedCells.every((t) => t === "unpriced"), "an unpriced row says so");
        seen[period] = { totals, rows, unpricedCells: unpricedCells.length };
        if (period === "week") await shot(page, "usage");
      }
      await page.setViewportSize({ width: 390, height: 844 });
      await page.reload();
      await fitsTheWindow(page, "the usage page on a phone");
      await shot(page, "usage-phone");
      return { seen };
    },
  };
}
