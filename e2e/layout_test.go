package e2e

import "github.com/chromedp/chromedp"

// phoneLayoutScript lists layout defects at the current viewport (issue
// 14, item 7): a heading line that starts with the " : " colon of
// "Multi-Factor Authentication : App", and a notice that touches the form
// or button above it (less than 8 px apart).
const phoneLayoutScript = `(() => {
  const out = [];
  for (const h of document.querySelectorAll('h1, h2')) {
    const walker = document.createTreeWalker(h, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const s = n.data;
      for (let i = s.indexOf(' : '); i > 0; i = s.indexOf(' : ', i + 1)) {
        const r = document.createRange();
        r.setStart(n, i - 1); r.setEnd(n, i);
        const before = r.getBoundingClientRect();
        r.setStart(n, i + 1); r.setEnd(n, i + 2);
        const colon = r.getBoundingClientRect();
        if (colon.top >= before.bottom - 1) {
          out.push('the heading "' + s.trim() + '" breaks before its colon');
        }
      }
    }
  }
  for (const box of document.querySelectorAll('.notice')) {
    const prev = box.previousElementSibling;
    if (!prev) continue;
    const gap = box.getBoundingClientRect().top - prev.getBoundingClientRect().bottom;
    if (gap < 8) {
      out.push('the notice "' + box.textContent.trim().slice(0, 40) + '" is ' + gap + ' px below the ' + prev.tagName.toLowerCase() + ' above it');
    }
  }
  return out;
})()`

// phoneLayout checks the page at 375 px with phoneLayoutScript.
func (tb *tab) phoneLayout(step string) {
	tb.t.Helper()
	tb.do(chromedp.EmulateViewport(phoneWidth, phoneHeight, chromedp.EmulateMobile))
	problems := eval[[]string](tb, phoneLayoutScript)
	tb.do(chromedp.EmulateViewport(desktopWidth, desktopHeight))
	for _, p := range problems {
		tb.t.Errorf("%s at %d px: %s", step, phoneWidth, p)
	}
}
