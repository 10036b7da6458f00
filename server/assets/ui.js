/* Helpers shared by the inbox and the dashboard (the widget stays standalone: it runs on
   the store's pages). */
window.supportlakeUi = (function () {
  "use strict";
  /* An element with attributes (`text` sets its text, `on…` adds a listener) and children. */
  function el(tag, attrs, children) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") n.textContent = attrs[k];
      else if (k.slice(0, 2) === "on") n.addEventListener(k.slice(2), attrs[k]);
      else n.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) n.appendChild(c); });
    return n;
  }
  /* fetch with a bearer token and a JSON body; a non-2xx answer becomes an Error carrying the
     API's stable message and the HTTP status. Resolves to the Response. */
  function request(path, options) {
    var o = options || {};
    var headers = { Authorization: "Bearer " + o.token };
    if (o.body) headers["Content-Type"] = "application/json";
    return fetch(path, { method: o.method || "GET", headers: headers, body: o.body ? JSON.stringify(o.body) : undefined })
      .then(function (r) {
        if (r.ok) return r;
        return r.json().catch(function () { return {}; }).then(function (j) {
          var e = new Error((j.error && j.error.message) || ("HTTP " + r.status));
          e.status = r.status;
          throw e;
        });
      });
  }
  return { el: el, request: request, $: function (id) { return document.getElementById(id); } };
})();
