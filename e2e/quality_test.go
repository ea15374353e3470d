package e2e

// qualityScript inspects the page on screen and returns what breaks the
// page rules: no inline script or style of any kind, a label for every
// input, and lang attributes that say which text is Japanese and which is
// English, with Japanese first (the manual's "日本語 / English").
const qualityScript = `(() => {
  const problems = [];
  const describe = (el) => {
    let d = el.tagName.toLowerCase();
    if (el.id) d += '#' + el.id;
    if (el.getAttribute('name')) d += '[name=' + el.getAttribute('name') + ']';
    return d;
  };

  // Inline code: the CSP forbids it, and a page must not need it.
  // A script file of our own (src, no body) is allowed; its CSP says so.
  for (const el of document.querySelectorAll('script')) {
    if (!el.getAttribute('src') || el.textContent.trim() !== '') problems.push('an inline script: ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('style')) problems.push('a <style> element');
  for (const el of document.querySelectorAll('[style]')) problems.push('an inline style attribute on ' + describe(el));
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (/^on/i.test(a.name)) problems.push('an event handler attribute ' + a.name + ' on ' + describe(el));
      if (['href', 'src', 'action', 'formaction'].includes(a.name) && /^\s*javascript:/i.test(a.value)) {
        problems.push('a javascript: URL on ' + describe(el));
      }
    }
  }

  // Every field has a label: <label for=id> with text, aria-label or aria-labelledby.
  const skip = ['hidden', 'submit', 'button', 'reset', 'image'];
  for (const el of document.querySelectorAll('input, select, textarea')) {
    if (skip.includes((el.getAttribute('type') || '').toLowerCase())) continue;
    const byFor = el.id !== '' && Array.from(document.querySelectorAll('label'))
      .some((l) => l.htmlFor === el.id && l.textContent.trim() !== '');
    const byAria = (el.getAttribute('aria-label') || '').trim() !== '';
    const byRef = (el.getAttribute('aria-labelledby') || '').split(/\s+/)
      .some((id) => id && document.getElementById(id) && document.getElementById(id).textContent.trim() !== '');
    if (!byFor && !byAria && !byRef) problems.push('an input without a label: ' + describe(el));
  }

  // Languages. Japanese text must sit in lang="ja", English prose (two
  // words or more) in lang="en"; IDs, addresses and codes are neither, nor
  // are names from the configuration (a service's name, marked translate=no).
  if (document.documentElement.getAttribute('lang') !== 'ja') {
    problems.push('<html lang> is "' + document.documentElement.getAttribute('lang') + '", want "ja"');
  }
  const japanese = /[\u3040-\u30ff\u3400-\u9fff\uff01-\uff60]/;
  const english = /\b[A-Za-z][a-z]{2,}[\s'’,-]+[A-Za-z][a-z]+\b/;
  const langOf = (node) => {
    const el = node.parentElement && node.parentElement.closest('[lang]');
    return el ? el.getAttribute('lang') : '';
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    // Addresses, IDs, DNs, URLs, times and codes are no language.
    const text = n.textContent.replace(/\S*[@\/:=\d]\S*/g, ' ').trim();
    if (!text || n.parentElement.closest('code, pre, [translate=no]')) continue;
    const lang = langOf(n);
    if (japanese.test(text)) {
      if (lang !== 'ja') problems.push('Japanese text in lang="' + lang + '": ' + text.slice(0, 60));
    } else if (english.test(text) && lang !== 'en') {
      problems.push('English text in lang="' + lang + '": ' + text.slice(0, 60));
    }
  }
  if (!document.querySelector('body [lang=ja]')) problems.push('no part marked lang="ja"');
  if (!document.querySelector('body [lang=en]')) problems.push('no part marked lang="en"');
  // Japanese first: in every element that holds both, the first lang="ja"
  // child comes before the first lang="en" child.
  for (const el of document.querySelectorAll('body *')) {
    const kids = Array.from(el.children);
    const ja = kids.findIndex((k) => k.getAttribute('lang') === 'ja');
    const en = kids.findIndex((k) => k.getAttribute('lang') === 'en');
    if (ja < 0 || en < 0) continue;
    if (en < ja) {
      problems.push('English before Japanese in ' + describe(el) + ': "' + kids[en].textContent.trim().slice(0, 40) + '"');
      continue;
    }
    // On screen too: the Japanese starts above the English, or on the same
    // line to its left. (Hidden parts have no boxes and are skipped.)
    const a = kids[ja].getClientRects()[0], b = kids[en].getClientRects()[0];
    if (a && b && !(a.top < b.top - 2 || (Math.abs(a.top - b.top) <= 2 && a.left < b.left))) {
      problems.push('English shown before Japanese in ' + describe(el) + ': "' + kids[en].textContent.trim().slice(0, 40) + '"');
    }
  }
  return problems;
})()`

// qualityProblems runs qualityScript on the tab's page.
func qualityProblems(tb *tab) []string {
	tb.t.Helper()
	return eval[[]string](tb, qualityScript)
}
