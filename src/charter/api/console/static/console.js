// Charter console: the goal tree's keyboard and collapsing, the edit toggle, copying, and the
// live prompt and event streams (EventSource, authorised by the session cookie). No library.
"use strict";

(function () {
  // --- the goal tree: one tab stop, arrow keys (WAI-ARIA tree view pattern) ---------------------
  function visibleItems(tree) {
    return Array.from(tree.querySelectorAll('[role="treeitem"]')).filter(function (item) {
      var group = item.parentElement.closest('[role="treeitem"]');
      while (group) {
        if (group.getAttribute("aria-expanded") === "false") return false;
        group = group.parentElement.closest('[role="treeitem"]');
      }
      return true;
    });
  }

  function focusItem(tree, item) {
    tree.querySelectorAll('[role="treeitem"]').forEach(function (other) {
      other.tabIndex = other === item ? 0 : -1;
    });
    item.focus();
  }

  function setExpanded(item, open) {
    if (item.hasAttribute("aria-expanded")) item.setAttribute("aria-expanded", open ? "true" : "false");
  }

  function initTree(tree) {
    var first = tree.querySelector('[role="treeitem"]');
    if (first) first.tabIndex = 0;
    tree.addEventListener("click", function (event) {
      var twisty = event.target.closest(".twisty");
      if (!twisty) return;
      var item = twisty.closest('[role="treeitem"]');
      setExpanded(item, item.getAttribute("aria-expanded") === "false");
      focusItem(tree, item);
    });
    tree.addEventListener("keydown", function (event) {
      var item = event.target.closest('[role="treeitem"]');
      if (!item || event.altKey || event.ctrlKey || event.metaKey) return;
      var items = visibleItems(tree);
      var index = items.indexOf(item);
      var expanded = item.getAttribute("aria-expanded");
      var handled = true;
      switch (event.key) {
        case "ArrowDown": if (index < items.length - 1) focusItem(tree, items[index + 1]); break;
        case "ArrowUp": if (index > 0) focusItem(tree, items[index - 1]); break;
        case "Home": focusItem(tree, items[0]); break;
        case "End": focusItem(tree, items[items.length - 1]); break;
        case "ArrowRight":
          if (expanded === "false") setExpanded(item, true);
          else if (expanded === "true") focusItem(tree, item.querySelector('[role="treeitem"]'));
          break;
        case "ArrowLeft":
          if (expanded === "true") setExpanded(item, false);
          else {
            var parent = item.parentElement.closest('[role="treeitem"]');
            if (parent) focusItem(tree, parent);
          }
          break;
        case "Enter": {
          var link = item.querySelector("a");
          if (link) link.click();
          break;
        }
        default: handled = false;
      }
      if (handled) event.preventDefault();
    });
    tree.addEventListener("focusin", function (event) {
      var item = event.target.closest('[role="treeitem"]');
      if (item && event.target === item) {
        tree.querySelectorAll('[role="treeitem"]').forEach(function (other) {
          other.tabIndex = other === item ? 0 : -1;
        });
      }
    });
  }

  // --- show/hide a form (the Edit button) -------------------------------------------------------
  function initToggle(button) {
    var target = document.getElementById(button.getAttribute("data-toggle"));
    if (!target) return;
    button.addEventListener("click", function () {
      var open = target.hidden;
      target.hidden = !open;
      button.setAttribute("aria-expanded", open ? "true" : "false");
      if (open) {
        var field = target.querySelector("input:not([type=hidden]), textarea");
        if (field) field.focus();
      }
    });
  }

  // --- copy a read-only field's value -----------------------------------------------------------
  function initCopy(button) {
    var field = document.getElementById(button.getAttribute("data-copy"));
    var status = document.getElementById("copy-status");
    button.addEventListener("click", function () {
      function said(text) { if (status) status.textContent = text; }
      field.select();
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(function () { said("Copied."); },
          function () { said("Selected: press Ctrl+C to copy."); });
      } else {
        said("Selected: press Ctrl+C to copy.");
      }
    });
  }

  // --- live streams -------------------------------------------------------------------------------
  function liveStatus(state, text) {
    var status = document.getElementById("live-status");
    if (!status) return;
    status.setAttribute("data-state", state);
    status.textContent = text;
  }

  function follow(url, listeners) {
    var source = new EventSource(url);
    source.onopen = function () { liveStatus("live", "Live: updates as they happen."); };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        liveStatus("ended", "The live stream ended (signed out, or the key was revoked). Reload to sign in again.");
      } else {
        liveStatus("connecting", "Reconnecting to the live stream…");
      }
    };
    Object.keys(listeners).forEach(function (name) {
      source.addEventListener(name, function (event) { listeners[name](JSON.parse(event.data)); });
    });
    return source;
  }

  function cell(row, text, href) {
    var td = document.createElement("td");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
  }

  // A row made here names its cells after their columns, as the server's rows do: a `stacked`
  // table shows each cell beside its column's name on a narrow screen (console.css).
  function labelled(table, row) {
    var heads = table.querySelectorAll("thead th");
    Array.prototype.forEach.call(row.cells, function (td, index) {
      if (heads[index]) td.setAttribute("data-label", heads[index].textContent);
    });
    return row;
  }

  function initPrompt(region) {
    var realm = region.getAttribute("data-realm");
    follow(region.getAttribute("data-prompt-stream"), {
      prompt: function (doc) {
        document.getElementById("prompt-text").textContent = doc.text;
        document.getElementById("composition-id").value = doc.composition_id;
        document.getElementById("injection-mode").textContent = doc.injection_mode;
        document.getElementById("realm-revision").textContent = String(doc.realm_revision);
        var body = document.getElementById("layers");
        body.textContent = "";
        doc.layers.forEach(function (layer) {
          var row = document.createElement("tr");
          cell(row, String(layer.depth));
          cell(row, layer.level);
          cell(row, layer.title || layer.directive_id,
            "/console/realms/" + realm + "/directives/" + encodeURIComponent(layer.directive_id));
          cell(row, layer.version === null ? "none" : String(layer.version));
          cell(row, layer.arm || "\u2014");  // candidate, control, or none (no rollout)
          cell(row, String(layer.revision));
          body.appendChild(labelled(body.closest("table"), row));
        });
      }
    });
  }

  function initFeed(region) {
    var realm = region.getAttribute("data-realm");
    var body = document.getElementById("events");
    var listeners = {};
    region.getAttribute("data-types").split(" ").forEach(function (type) {
      listeners[type] = function (e) {
        var row = document.createElement("tr");
        cell(row, String(e.seq));
        cell(row, e.type);
        cell(row, e.directive_id, "/console/realms/" + realm + "/directives/" + encodeURIComponent(e.directive_id));
        cell(row, String(e.revision));
        cell(row, e.version === null ? "" : String(e.version));
        cell(row, e.actor_name || e.actor);
        cell(row, e.occurred_at.replace("T", " ").slice(0, 19));
        body.insertBefore(labelled(body.closest("table"), row), body.firstChild);
      };
    });
    follow(region.getAttribute("data-event-stream"), listeners);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll('[role="tree"]').forEach(initTree);
    document.querySelectorAll("[data-toggle]").forEach(initToggle);
    document.querySelectorAll("[data-copy]").forEach(initCopy);
    document.querySelectorAll("[data-prompt-stream]").forEach(initPrompt);
    document.querySelectorAll("[data-event-stream]").forEach(initFeed);
  });
})();
