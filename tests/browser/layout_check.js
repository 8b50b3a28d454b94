// Injected into every page the browser test serves: after the page has loaded
// (and MathJax has typeset), it checks the three layout rules of the book and
// writes its findings, as JSON, into <pre id="ssfer-layout-check">, which the
// test reads back from Chromium's --dump-dom.
//   overflow: an element of the main column (article) reaches past the column's
//             edges and no scrolling box inside the column holds it (a table or
//             equation must scroll inside its own box, or fit);
//   images:   an <img> that did not load (not complete, or natural width 0);
//   nan:      a table cell that reads "nan" or "NaN" (or pandas' "<NA>");
//   clipped:  a table wider than the scrolling box that holds it: the reader sees
//             its right part only after scrolling sideways;
//   small:    a figure (an <img> in the column) shown at less than MIN_SCALE of
//             its own width, whose text then renders too small to read: the
//             book's figures draw 11-pt text at 100 dpi (about 15 px), so below
//             0.6 it falls under 9 px.
(function () {
  var MIN_SCALE = 0.6;
  function describe(el) {
    var s = el.tagName.toLowerCase();
    if (el.id) s += "#" + el.id;
    if (el.classList.length) s += "." + Array.prototype.slice.call(el.classList, 0, 3).join(".");
    var text = (el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 60);
    return text ? s + " \"" + text + "\"" : s;
  }
  function scrolls(el) {
    var cs = getComputedStyle(el);
    return cs.overflowX === "auto" || cs.overflowX === "scroll";
  }
  function check() {
    var main = document.querySelector("article.bd-article") || document.querySelector("article")
      || document.querySelector("main");
    var out = {column: null, overflow: [], images: [], nan: [], small: [], clipped: [], checked: 0};
    if (main) {
      var col = main.getBoundingClientRect();
      out.column = [Math.round(col.left), Math.round(col.right)];
      var all = main.querySelectorAll("*");
      for (var i = 0; i < all.length; i++) {
        var el = all[i], r = el.getBoundingClientRect();
        out.checked++;
        if (r.width === 0 || r.height === 0) continue;
        if (r.right <= col.right + 1 && r.left >= col.left - 1) continue;
        var held = false;
        for (var a = el.parentElement; a && a !== main.parentElement; a = a.parentElement) {
          var ar = a.getBoundingClientRect();
          if (scrolls(a) && ar.right <= col.right + 1 && ar.left >= col.left - 1) { held = true; break; }
        }
        if (!held) {
          // report the outermost offender only, not each of its children
          var parent = el.parentElement, pr = parent && parent.getBoundingClientRect();
          if (parent && parent !== main && (pr.right > col.right + 1 || pr.left < col.left - 1)) continue;
          out.overflow.push(describe(el) + " spans " + Math.round(r.left) + ".." + Math.round(r.right));
        }
      }
      var figs = main.querySelectorAll("img");
      for (var f = 0; f < figs.length; f++) {
        var img = figs[f], w = img.getBoundingClientRect().width;
        if (!img.naturalWidth || !w) continue;
        var scale = w / img.naturalWidth;
        if (scale < MIN_SCALE) {
          out.small.push((img.getAttribute("src") || "").slice(0, 80) + " shown at " + Math.round(100 * scale)
                         + " % of its " + img.naturalWidth + " px");
        }
      }
      var tables = main.querySelectorAll("table");
      for (var q = 0; q < tables.length; q++) {
        for (var box = tables[q].parentElement; box && box !== main.parentElement; box = box.parentElement) {
          if (!scrolls(box)) continue;
          if (box.scrollWidth > box.clientWidth + 1) {
            out.clipped.push(describe(tables[q]) + ": " + box.scrollWidth + " px in a " + box.clientWidth + " px box");
          }
          break;
        }
      }
      var cells = main.querySelectorAll("td, th");
      for (var j = 0; j < cells.length; j++) {
        var t = (cells[j].textContent || "").trim();
        if (/^(nan|<na>)$/i.test(t)) out.nan.push(describe(cells[j].closest("table") || cells[j]) + ": " + t);
      }
    }
    var imgs = document.images;
    for (var k = 0; k < imgs.length; k++) {
      if (!imgs[k].complete || imgs[k].naturalWidth === 0) out.images.push((imgs[k].getAttribute("src") || "").slice(0, 80));
    }
    var pre = document.createElement("pre");
    pre.id = "ssfer-layout-check";
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  // Wait for the images and MathJax, not for the window's load event: that waits for
  // every resource, and a page that names one this offline machine cannot reach
  // (a CDN script) would never report. Give up waiting after about 20 s.
  var tries = 0;
  function settled() {
    var imgs = document.images;
    for (var k = 0; k < imgs.length; k++) { if (!imgs[k].complete) return false; }
    return true;
  }
  function when_settled() {
    if (settled() || ++tries > 100) { setTimeout(check, 1000); } else { setTimeout(when_settled, 200); }
  }
  function start() {
    var mj = window.MathJax && window.MathJax.startup && window.MathJax.startup.promise;
    if (mj) { mj.then(when_settled, when_settled); } else { when_settled(); }
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
