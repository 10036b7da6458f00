// Browser tests of the widget, the handoff inbox and the dashboard, in real Chromium (Debian's
// /usr/bin/chromium driven by playwright-core). Run by tests/e2e/browser.rs against a running
// `supportlake serve`; every step throws on failure, so a broken verification step or a
// lost agent reply fails the run. Screenshots go to $SCREENSHOTS.
//
// Env: BASE (server URL), AGENT_TOKEN, ANALYST_TOKEN, ORDER (e.g. #1001), EMAIL (the order's),
// TRACKING (its tracking number), SCREENSHOTS (a directory), CHROMIUM (default /usr/bin/chromium).
import { env, expect, launch, step } from "./harness.mjs";
import { mkdirSync } from "node:fs";

const BASE = env("BASE");
const SHOTS = env("SCREENSHOTS");
const ORDER = env("ORDER");
const EMAIL = env("EMAIL");
const TRACKING = env("TRACKING");
mkdirSync(SHOTS, { recursive: true });

const browser = await launch();
const timeout = 20000;
try {
  const shopperContext = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const shopper = await shopperContext.newPage();
  shopper.setDefaultTimeout(timeout);
  const log = shopper.getByRole("log", { name: "Conversation" });

  await step("the storefront loads the widget, which opens as a labelled dialog", async () => {
    await shopper.goto(BASE + "/");
    const launcher = shopper.getByRole("button", { name: "Chat with us" });
    await launcher.focus();
    await shopper.keyboard.press("Enter");
    await shopper.getByRole("dialog", { name: "Store help" }).waitFor();
    expect(await launcher.getAttribute("aria-expanded") === "true", "the launcher says it is expanded");
    const focused = await shopper.evaluate(() => document.activeElement && document.activeElement.id);
    expect(focused === "sl-input", `focus moves to the message box, not ${focused}`);
  });

  await step("an order question asks for verification and shows no order data", async () => {
    await shopper.getByLabel("Your message").fill(`where is my order ${ORDER}?`);
    await shopper.getByRole("button", { name: "Send" }).click();
    await shopper.getByRole("form", { name: "Verify your order" }).waitFor();
    const text = await log.innerText();
    expect(text.includes("Automated answer"), "the reply is labelled as automated");
    expect(!text.includes(TRACKING), "no tracking number before verification");
  });

  await step("verifying with the order's email answers with the tracking number", async () => {
    await shopper.getByLabel("Order number").fill(ORDER);
    await shopper.getByLabel("Email").fill(EMAIL);
    await shopper.getByRole("button", { name: "Verify" }).click();
    await log.getByText(TRACKING).first().waitFor();
    await shopper.screenshot({ path: `${SHOTS}/widget-desktop.png` });
  });

  await step("asking for a person hands off and says so", async () => {
    await shopper.getByRole("button", { name: "Talk to a person" }).click();
    await shopper.getByText("A person from the store has your conversation").waitFor();
  });

  const agentContext = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const agent = await agentContext.newPage();
  agent.setDefaultTimeout(timeout);
  const agentReply = `Hi, this is Sam from the store: your parcel ${TRACKING} is on its way.`;
  await step("an agent signs in to the inbox, claims the handoff and replies", async () => {
    await agent.goto(BASE + "/inbox");
    await agent.getByLabel("Agent token").fill(env("AGENT_TOKEN"));
    await agent.getByLabel("Your name (shown to shoppers)").fill("Sam");
    await agent.getByRole("button", { name: "Open the inbox" }).click();
    const item = agent.locator("#queue button").filter({ hasText: ORDER.replace("#", "") }).first();
    await (await item.count() ? item : agent.locator("#queue button").first()).click();
    await agent.getByRole("button", { name: "Claim" }).click();
    await agent.getByLabel("Reply to the shopper").fill(agentReply);
    await agent.screenshot({ path: `${SHOTS}/inbox.png` });
    await agent.getByRole("button", { name: "Send reply" }).click();
    await agent.getByRole("log", { name: "Conversation history" }).getByText(agentReply).waitFor();
  });

  await step("the shopper sees the agent's reply, labelled as the support team", async () => {
    const bubble = log.locator(".sl-agent").filter({ hasText: agentReply });
    await bubble.waitFor({ timeout: 15000 });
    expect((await bubble.innerText()).includes("Support team"), "the agent's reply is labelled");
  });

  await step("a reload resumes the conversation", async () => {
    await shopper.reload();
    await shopper.getByRole("dialog", { name: "Store help" }).waitFor();
    await log.getByText(`where is my order ${ORDER}?`).waitFor();
    await log.getByText(agentReply).waitFor();
  });

  await step("when the agent resolves it, the shopper is asked for a rating, which is recorded", async () => {
    await agent.getByRole("button", { name: "Resolve" }).click();
    await shopper.getByRole("group", { name: /How did we do/ }).waitFor();
    await shopper.getByText("This conversation is closed.").waitFor();
    await shopper.getByRole("button", { name: "5 out of 5" }).click();
    await log.getByText("Thanks for your rating.").waitFor();
  });

  await step("at 360 px the widget fits the screen", async () => {
    const phone = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
    const page = await phone.newPage();
    page.setDefaultTimeout(timeout);
    await page.goto(BASE + "/");
    await page.getByRole("button", { name: "Chat with us" }).click();
    const dialog = page.getByRole("dialog", { name: "Store help" });
    await dialog.waitFor();
    const box = await dialog.boundingBox();
    expect(box && box.x >= 0 && box.x + box.width <= 360, `the dialog fits in 360 px: ${JSON.stringify(box)}`);
    await page.screenshot({ path: `${SHOTS}/widget-360.png` });
    await phone.close();
  });

  await step("an unreachable server gets a clear message, and the text is kept", async () => {
    const offline = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await offline.newPage();
    page.setDefaultTimeout(timeout);
    await page.goto(BASE + "/");
    // The widget names its shop in the query (`/v1/chat?shop=…`): match the path, any query.
    await page.route(/\/v1\/chat(\?|$)/, (route) => route.abort("connectionrefused"));
    await page.getByRole("button", { name: "Chat with us" }).click();
    await page.getByLabel("Your message").fill("do you ship to Canada?");
    await page.getByRole("button", { name: "Send" }).click();
    await page.getByRole("alert").filter({ hasText: "can't reach" }).waitFor();
    expect(await page.getByLabel("Your message").inputValue() === "do you ship to Canada?", "the unsent text stays in the box");
    await offline.close();
  });

  await step("the dashboard renders every report, with a chart where the report has one", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(60000);
    await page.goto(BASE + "/dashboard");
    await page.getByLabel("Analyst token").fill(env("ANALYST_TOKEN"));
    await page.getByRole("button", { name: "Open the dashboard" }).click();
    const articles = page.locator("article[data-report]");
    await articles.first().waitFor();
    const count = await articles.count();
    expect(count >= 7, `${count} reports on the dashboard`);
    await page.waitForFunction(() => [...document.querySelectorAll("article[data-report]")]
      .every((a) => a.getAttribute("data-loaded") === "true" || a.querySelector(".error")), null, { timeout: 120000 });
    const failed = await page.locator("article .error").allInnerTexts();
    expect(failed.length === 0, `reports failed: ${failed.join("; ")}`);
    const charts = await page.evaluate(() => [...document.querySelectorAll("article[data-report] iframe")]
      .map((f) => ({ report: f.closest("article").dataset.report, svg: !!(f.contentDocument && f.contentDocument.querySelector("svg")),
        rows: f.contentDocument ? f.contentDocument.querySelectorAll("tbody tr").length : 0 })));
    for (const c of charts) expect(c.rows > 0, `${c.report} has rows`);
    const withCharts = charts.filter((c) => c.svg).map((c) => c.report);
    for (const name of ["resolution", "escalations", "csat-by-path", "reopen", "unanswered-intents"]) {
      expect(withCharts.includes(name), `${name} draws its chart (charts: ${withCharts.join(", ")})`);
    }
    await page.screenshot({ path: `${SHOTS}/dashboard.png`, fullPage: false });
    await context.close();
  });
} finally {
  await browser.close();
}
