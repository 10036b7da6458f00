// The widget on storefronts that are not the server, in real Chromium (Debian's
// /usr/bin/chromium driven by playwright-core), run by tests/e2e/browser.rs:
//
// 1. a shop page on another origin (http://localhost:PAGE_PORT, allowed for the shop) loads
//    the widget from the server (http://127.0.0.1:…) and calls it with CORS: chat,
//    verification, a handoff and the agent's reply;
// 2. a page on an origin the shop does not allow (http://localhost:OTHER_PORT) gets no CORS
//    headers, and the widget says it cannot reach the assistant from this page;
// 3. a stand-in for Shopify's app proxy (http://localhost:SHOPIFY_PORT) serves the shop's page
//    and forwards /apps/supportlake/… to the server's /proxy/…, signed as Shopify signs it,
//    with a logged-in customer, whose order question is answered without the order form.
//
// Every step throws on failure. Env: BASE, SHOP, AGENT_TOKEN, ORDER, EMAIL, TRACKING,
// CUSTOMER_ID, CLIENT_SECRET, PAGE_PORT, OTHER_PORT, SHOPIFY_PORT, SCREENSHOTS, CHROMIUM.
import { env, expect, launch, step } from "./harness.mjs";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { mkdirSync } from "node:fs";

const BASE = env("BASE");
const SHOP = env("SHOP");
const ORDER = env("ORDER");
const TRACKING = env("TRACKING");
const SHOTS = env("SCREENSHOTS");
mkdirSync(SHOTS, { recursive: true });

// A shop's page with the widget tag, as a theme would have it.
const page = (attributes) => `<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>A shop's storefront</title></head><body><h1>A shop's storefront</h1>
<script src="${BASE}/widget.js" data-shop="${SHOP}" ${attributes} defer></script></body></html>`;

const listen = (port, handler) => new Promise((resolve) => {
  const server = createServer(handler);
  server.listen(Number(port), "localhost", () => resolve(server));
});
const html = (body) => (request, response) => {
  response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  response.end(body);
};

// Shopify's app proxy signature: hex HMAC-SHA256 of the sorted `key=value` pairs joined
// with nothing between them (repeated keys' values joined by commas).
const proxySignature = (params, secret) => {
  const grouped = new Map();
  for (const [key, value] of params) grouped.set(key, [...(grouped.get(key) || []), value]);
  const message = [...grouped.keys()].sort().map((key) => `${key}=${grouped.get(key).join(",")}`).join("");
  return createHmac("sha256", secret).update(message).digest("hex");
};

// The stand-in for Shopify: its storefront page, and /apps/supportlake/* forwarded signed.
const shopify = (request, response) => {
  const url = new URL(request.url, `http://localhost:${env("SHOPIFY_PORT")}`);
  const prefix = "/apps/supportlake";
  if (!url.pathname.startsWith(prefix + "/")) {
    return html(page(`data-api="${prefix}" data-via="app-proxy"`))(request, response);
  }
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", async () => {
    const params = [...url.searchParams.entries()].filter(([key]) => key !== "signature");
    params.push(["shop", SHOP], ["logged_in_customer_id", env("CUSTOMER_ID")], ["path_prefix", prefix],
      ["timestamp", String(Math.floor(Date.now() / 1000))]);
    const query = new URLSearchParams(params);
    query.append("signature", proxySignature(params, env("CLIENT_SECRET")));
    const target = `${BASE}/proxy${url.pathname.slice(prefix.length)}?${query}`;
    const forwarded = await fetch(target, {
      method: request.method,
      headers: { "content-type": request.headers["content-type"] || "application/json" },
      body: ["GET", "HEAD"].includes(request.method) ? undefined : Buffer.concat(chunks),
    });
    response.writeHead(forwarded.status, { "content-type": forwarded.headers.get("content-type") || "application/json" });
    response.end(Buffer.from(await forwarded.arrayBuffer()));
  });
};

const agent = async (method, path, body) => {
  const response = await fetch(BASE + path, {
    method,
    headers: { authorization: `Bearer ${env("AGENT_TOKEN")}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await response.json();
  expect(response.ok, `${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
};

const servers = [
  await listen(env("PAGE_PORT"), html(page(""))),
  await listen(env("OTHER_PORT"), html(page(""))),
  await listen(env("SHOPIFY_PORT"), shopify),
];
const browser = await launch();
const timeout = 20000;
const open = async (origin) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const tab = await context.newPage();
  tab.setDefaultTimeout(timeout);
  await tab.goto(origin + "/");
  await tab.getByRole("button", { name: "Chat with us" }).click();
  await tab.getByRole("dialog", { name: "Store help" }).waitFor();
  return { context, tab, log: tab.getByRole("log", { name: "Conversation" }) };
};
const send = async (tab, text) => {
  await tab.getByLabel("Your message").fill(text);
  await tab.getByRole("button", { name: "Send" }).click();
};
try {
  const allowed = `http://localhost:${env("PAGE_PORT")}`;
  await step("a page on the shop's own origin chats with the server on another origin", async () => {
    const { context, tab, log } = await open(allowed);
    expect(new URL(tab.url()).origin !== new URL(BASE).origin, "the page is not the server's");
    await send(tab, `where is my order ${ORDER}?`);
    await tab.getByRole("form", { name: "Verify your order" }).waitFor();
    expect(!(await log.innerText()).includes(TRACKING), "no tracking number before verification");
    await tab.getByLabel("Order number").fill(ORDER);
    await tab.getByLabel("Email").fill(env("EMAIL"));
    await tab.getByRole("button", { name: "Verify" }).click();
    await log.getByText(TRACKING).first().waitFor();
    await tab.getByRole("button", { name: "Talk to a person" }).click();
    await tab.getByText("A person from the store has your conversation").waitFor();
    const conversation = await tab.evaluate((shop) => JSON.parse(localStorage.getItem("supportlake:" + shop)).id, SHOP);
    const { handoffs } = await agent("GET", `/v1/handoffs?status=open&shop=${SHOP}`);
    const handoff = handoffs.find((h) => h.conversation_id === conversation);
    expect(handoff, `a handoff for ${conversation}`);
    await agent("POST", `/v1/handoffs/${handoff.id}/claim`, { agent: "Sam" });
    const reply = "Hi, Sam here: it is on its way.";
    await agent("POST", `/v1/handoffs/${handoff.id}/reply`, { text: reply });
    await log.locator(".sl-agent").filter({ hasText: reply }).waitFor({ timeout: 15000 });
    await tab.screenshot({ path: `${SHOTS}/widget-cross-origin.png` });
    await context.close();
  });

  await step("an origin the shop does not allow gets no CORS headers, and the widget says so", async () => {
    const other = `http://localhost:${env("OTHER_PORT")}`;
    const preflight = await fetch(`${BASE}/v1/chat?shop=${SHOP}`, {
      method: "OPTIONS",
      headers: { origin: other, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(!preflight.headers.get("access-control-allow-origin"), "no Access-Control-Allow-Origin for it");
    const welcome = await fetch(`${BASE}/v1/chat?shop=${SHOP}`, {
      method: "OPTIONS",
      headers: { origin: allowed, "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
    });
    expect(welcome.headers.get("access-control-allow-origin") === allowed, "the allowed origin is named, never *");
    const { context, tab } = await open(other);
    await send(tab, "do you ship to Canada?");
    await tab.getByRole("alert").filter({ hasText: "can't reach the store's assistant from this page" }).waitFor();
    expect(await tab.getByLabel("Your message").inputValue() === "do you ship to Canada?", "the unsent text stays");
    await context.close();
  });

  await step("through the app proxy, a logged-in customer's order is answered without the order form", async () => {
    const { context, tab, log } = await open(`http://localhost:${env("SHOPIFY_PORT")}`);
    await send(tab, `where is my order ${ORDER}?`);
    await log.getByText(TRACKING).first().waitFor();
    expect(await tab.getByRole("form", { name: "Verify your order" }).count() === 0, "no order form");
    await tab.screenshot({ path: `${SHOTS}/widget-app-proxy.png` });
    await context.close();
  });
} finally {
  await browser.close();
  for (const server of servers) server.close();
}
