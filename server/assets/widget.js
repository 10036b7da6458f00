/*
 * supportlake chat widget. One tag on the store's pages:
 *   <script src="https://SUPPORTLAKE-HOST/widget.js" data-shop="your-store.myshopify.com" defer></script>
 * Optional: data-api (where the chat API is: "/apps/supportlake" through Shopify's app
 * proxy, as the theme app embed sets it; default: the server the script came from, which
 * must then allow the page's origin), data-via="app-proxy" (the calls go through Shopify's
 * app proxy, which names the shop itself), data-customer-token (a signed storefront token, see
 * README "Signed-in shoppers"), data-open="true" (start open). No framework, no
 * dependencies. The conversation survives a page reload (localStorage).
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var shop = script.getAttribute("data-shop");
  var api_base = script.getAttribute("data-api");
  var via_proxy = script.getAttribute("data-via") === "app-proxy";
  var base = api_base
    ? new URL(api_base, location.href).href.replace(/\/$/, "")
    : new URL(script.src, location.href).origin;
  var token = script.getAttribute("data-customer-token") || undefined;
  var key = "supportlake:" + shop;
  var saved = {};
  try { saved = JSON.parse(localStorage.getItem(key) || "{}"); } catch (e) { saved = {}; }
  var state = { id: saved.id || null, shown: 0, pending: null, handoff: saved.handoff || null, rated: !!saved.rated, poll: null };

  function persist() {
    try {
      localStorage.setItem(key, JSON.stringify({ id: state.id, handoff: state.handoff, rated: state.rated, open: panel.hidden === false }));
    } catch (e) { /* private mode: the chat still works, it just does not survive a reload */ }
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") node.addEventListener(k.slice(2), attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  var css = [
    ".sl-root{position:fixed;right:16px;bottom:16px;z-index:2147483000;font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2330}",
    ".sl-root *{box-sizing:border-box}",
    ".sl-launch{background:#1f5f3f;color:#fff;border:0;border-radius:24px;padding:12px 18px;font:inherit;font-weight:600;cursor:pointer;box-shadow:0 2px 8px rgba(0,0,0,.25)}",
    ".sl-launch:focus-visible,.sl-root button:focus-visible,.sl-root input:focus-visible,.sl-root textarea:focus-visible{outline:3px solid #f2b134;outline-offset:2px}",
    ".sl-panel{width:min(380px,calc(100vw - 16px));height:min(600px,calc(100vh - 90px));background:#fff;border-radius:12px;box-shadow:0 6px 24px rgba(0,0,0,.3);display:flex;flex-direction:column;overflow:hidden;margin-bottom:10px}",
    ".sl-panel[hidden]{display:none}",
    ".sl-head{background:#1f5f3f;color:#fff;padding:10px 12px;display:flex;align-items:center;gap:8px}",
    ".sl-head h2{font-size:16px;margin:0;flex:1}",
    ".sl-head button{background:transparent;color:#fff;border:1px solid rgba(255,255,255,.6);border-radius:6px;padding:4px 8px;font:inherit;font-size:13px;cursor:pointer}",
    ".sl-log{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:8px;background:#f6f7f5}",
    ".sl-msg{max-width:88%;padding:8px 10px;border-radius:10px;white-space:pre-wrap;word-wrap:break-word}",
    ".sl-shopper{align-self:flex-end;background:#1f5f3f;color:#fff}",
    ".sl-ai,.sl-agent,.sl-system{align-self:flex-start;background:#fff;border:1px solid #dcdfd8}",
    ".sl-agent{border-color:#1f5f3f}",
    ".sl-label{display:block;font-size:12px;color:#5b6470;margin-bottom:2px}",
    ".sl-sources{margin:6px 0 0;padding-left:18px;font-size:13px}",
    ".sl-sources a{color:#1f5f3f}",
    ".sl-status{font-size:13px;color:#5b6470;padding:0 12px}",
    ".sl-alert{background:#fdecea;color:#7d1a12;border:1px solid #f5c2bc;border-radius:8px;padding:8px 10px;margin:8px 12px 0;font-size:14px}",
    ".sl-form{display:flex;flex-direction:column;gap:6px;padding:10px 12px;border-top:1px solid #dcdfd8;background:#fff}",
    ".sl-form label{font-size:13px;font-weight:600}",
    ".sl-form input,.sl-form textarea{font:inherit;padding:8px;border:1px solid #9aa19a;border-radius:6px;width:100%}",
    ".sl-row{display:flex;gap:6px;flex-wrap:wrap}",
    ".sl-row button,.sl-form button{font:inherit;padding:8px 12px;border-radius:6px;border:1px solid #1f5f3f;background:#1f5f3f;color:#fff;cursor:pointer}",
    ".sl-row button.sl-secondary{background:#fff;color:#1f5f3f}",
    ".sl-stars button{min-width:40px}",
    ".sl-visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}"
  ].join("\n");
  document.head.appendChild(el("style", { text: css }));

  var log = el("div", { "class": "sl-log", role: "log", "aria-live": "polite", "aria-label": "Conversation", tabindex: "0" });
  var status = el("p", { "class": "sl-status", role: "status", "aria-live": "polite" });
  var alertBox = el("div", { "class": "sl-alert", role: "alert", hidden: "" });
  var input = el("textarea", { id: "sl-input", rows: "2", maxlength: "2000", placeholder: "Ask about an order, a product, returns…" });
  var send = el("button", { type: "submit", text: "Send" });
  var person = el("button", { type: "button", "class": "sl-secondary", text: "Talk to a person", onclick: askForPerson });
  var end = el("button", { type: "button", "class": "sl-secondary", text: "End chat", onclick: endChat });
  var composer = el("form", { "class": "sl-form", onsubmit: function (e) { e.preventDefault(); submit(); } }, [
    el("label", { "for": "sl-input", text: "Your message" }), input, el("div", { "class": "sl-row" }, [send, person, end])
  ]);
  var extra = el("div");
  var close = el("button", { type: "button", "aria-label": "Close chat", text: "Close", onclick: function () { toggle(false); } });
  var panel = el("div", { "class": "sl-panel", role: "dialog", "aria-modal": "false", "aria-labelledby": "sl-title", hidden: "" }, [
    el("div", { "class": "sl-head" }, [el("h2", { id: "sl-title", text: "Store help" }), close]),
    alertBox, log, status, extra, composer
  ]);
  var launch = el("button", { type: "button", "class": "sl-launch", "aria-expanded": "false", "aria-controls": "sl-panel", text: "Chat with us", onclick: function () { toggle(panel.hidden); } });
  panel.id = "sl-panel";
  var root = el("div", { "class": "sl-root" }, [panel, launch]);
  document.body.appendChild(root);
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") toggle(false); });

  function toggle(open) {
    panel.hidden = !open;
    launch.setAttribute("aria-expanded", String(open));
    if (open) { input.focus(); } else { launch.focus(); }
    persist();
  }

  function showAlert(text) {
    alertBox.textContent = text;
    alertBox.hidden = !text;
  }

  function api(method, path, body) {
    // Every call names the shop: the server answers a conversation only within its shop.
    // Through the app proxy Shopify adds the signed shop, and a second one is refused.
    var url = via_proxy ? base + path
      : base + path + (path.indexOf("?") < 0 ? "?" : "&") + "shop=" + encodeURIComponent(shop);
    return fetch(url, {
      method: method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        showAlert("");
        if (!response.ok) {
          var error = new Error((json.error && json.error.message) || ("HTTP " + response.status));
          error.code = json.error && json.error.code;
          error.status = response.status;
          throw error;
        }
        return json;
      });
    }, function () {
      // A network failure and a page whose origin the server does not allow look the same
      // from here (the browser hides which), so the message covers both.
      showAlert("We can't reach the store's assistant from this page right now; your message was not sent. Check your connection and try again in a moment. If this keeps happening, the store has not enabled chat on this address.");
      var error = new Error("unreachable");
      error.code = "unreachable";
      throw error;
    });
  }

  function add(role, text, extraNodes) {
    var labels = { ai: "Automated answer", agent: "Support team", system: "Notice" };
    var bubble = el("div", { "class": "sl-msg sl-" + role }, [
      labels[role] ? el("span", { "class": "sl-label", text: labels[role] }) : el("span", { "class": "sl-visually-hidden", text: "You said:" }),
      document.createTextNode(text)
    ].concat(extraNodes || []));
    log.appendChild(bubble);
    log.scrollTop = log.scrollHeight;
    return bubble;
  }

  function sources(list) {
    if (!list || !list.length) return null;
    return el("ul", { "class": "sl-sources", "aria-label": "Sources" }, list.map(function (s) {
      var item = el("li");
      if (s.url) item.appendChild(el("a", { href: s.url, target: "_blank", rel: "noopener", text: s.title || s.doc_key }));
      else item.textContent = s.title || s.doc_key;
      return item;
    }));
  }

  function showReply(reply) {
    if (!reply) return;
    add(reply.automated === false ? "agent" : "ai", reply.text, [sources(reply.sources)]);
    if (reply.handoff) {
      state.handoff = reply.handoff.id;
      handoffState();
    }
    if (reply.needs_verification) askToVerify();
    persist();
  }

  function handoffState() {
    if (!state.handoff) { status.textContent = ""; return; }
    status.textContent = "A person from the store has your conversation and will reply here.";
    startPolling();
  }

  function startPolling() {
    if (state.poll || !state.id) return;
    state.poll = setInterval(refresh, 3000);
  }

  /* Shows messages the server has that this page has not (agent replies, or the whole
     history after a reload). */
  function refresh() {
    if (!state.id) return Promise.resolve();
    return api("GET", "/v1/conversations/" + encodeURIComponent(state.id)).then(function (c) {
      (c.messages || []).slice(state.shown).forEach(function (m) {
        add(m.role === "shopper" ? "shopper" : (m.role === "agent" ? "agent" : (m.role === "system" ? "system" : "ai")), m.text);
      });
      state.shown = Math.max(state.shown, (c.messages || []).length);
      if (c.status === "resolved") {
        status.textContent = "This conversation is closed.";
        if (state.poll) { clearInterval(state.poll); state.poll = null; }
        askForRating();
      }
    }).catch(function (error) {
      if (error.code === "unknown_conversation") { state.id = null; persist(); }
    });
  }

  function submit() {
    var text = input.value.trim();
    if (!text) return;
    input.value = "";
    add("shopper", text);
    send.disabled = true;
    var body = { shop: shop, message: text };
    if (state.id) body.conversation_id = state.id;
    if (token) body.customer_token = token;
    api("POST", "/v1/chat", body).then(function (r) {
      state.id = r.conversation_id;
      showReply(r.reply);
      return syncCount();
    }).catch(function (error) {
      if (error.code !== "unreachable") add("system", error.message);
      input.value = input.value || text;
    }).then(function () { send.disabled = false; input.focus(); });
  }

  /* Counts what the server holds, so polling shows only what came later. */
  function syncCount() {
    return api("GET", "/v1/conversations/" + encodeURIComponent(state.id)).then(function (c) {
      state.shown = (c.messages || []).length;
      persist();
    }).catch(function () {});
  }

  function askToVerify() {
    if (extra.querySelector(".sl-verify")) return;
    var order = el("input", { id: "sl-order", autocomplete: "off", inputmode: "text", placeholder: "#1001", required: "" });
    var email = el("input", { id: "sl-email", type: "email", autocomplete: "email", placeholder: "you@example.com", required: "" });
    var form = el("form", { "class": "sl-form sl-verify", "aria-label": "Verify your order" }, [
      el("p", { text: "To show order details, confirm the order number and the email used for it." }),
      el("label", { "for": "sl-order", text: "Order number" }), order,
      el("label", { "for": "sl-email", text: "Email" }), email,
      el("div", { "class": "sl-row" }, [el("button", { type: "submit", text: "Verify" })])
    ]);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      api("POST", "/v1/conversations/" + encodeURIComponent(state.id) + "/verify", { order_number: order.value.trim(), email: email.value.trim() })
        .then(function (r) {
          if (r.verified) {
            form.remove();
            add("system", "Thanks, you're verified.");
            showReply(r.reply);
            return syncCount();
          }
          add("system", r.message || "We couldn't verify that. Please check the order number and email.");
        })
        .catch(function (error) { if (error.code !== "unreachable") add("system", error.message); });
    });
    extra.appendChild(form);
    order.focus();
  }

  function askForPerson() {
    input.value = "I want to talk to a person";
    submit();
  }

  function endChat() {
    if (!state.id) { toggle(false); return; }
    api("POST", "/v1/conversations/" + encodeURIComponent(state.id) + "/resolve", {})
      .then(function () { return refresh(); })
      .then(askForRating)
      .catch(function (error) {
        // With a person on it, the person closes the conversation (then the rating comes).
        if (error.code === "handed_off") add("system", "A person from the store is looking after this conversation and will close it when you're done.");
        else if (error.code !== "unreachable") add("system", error.message);
      });
  }

  function askForRating() {
    if (state.rated || extra.querySelector(".sl-csat") || !state.id) return;
    var buttons = [1, 2, 3, 4, 5].map(function (n) {
      return el("button", { type: "button", "aria-label": n + " out of 5", text: String(n), onclick: function () { rate(n); } });
    });
    var box = el("div", { "class": "sl-form sl-csat", role: "group", "aria-labelledby": "sl-csat-q" }, [
      el("p", { id: "sl-csat-q", text: "How did we do? 1 is poor, 5 is great." }),
      el("div", { "class": "sl-row sl-stars" }, buttons)
    ]);
    function rate(n) {
      api("POST", "/v1/conversations/" + encodeURIComponent(state.id) + "/csat", { score: n }).then(function () {
        state.rated = true;
        persist();
        box.remove();
        add("system", "Thanks for your rating.");
      }).catch(function (error) { if (error.code !== "unreachable") add("system", error.message); });
    }
    extra.appendChild(box);
    buttons[4].focus();
  }

  if (state.id) {
    refresh().then(function () {
      handoffState();
    });
  } else {
    add("ai", "Hi! I can help with orders, returns, shipping and products. Ask me anything.");
    state.shown = 0;
  }
  if (saved.open || script.getAttribute("data-open") === "true") toggle(true);
})();
