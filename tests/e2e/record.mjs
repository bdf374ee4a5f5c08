// For the end-to-end tests: a page that records every request it makes (URL, method, all headers,
// body) and every CSP violation it sees (in window.cspViolations).
export async function openRecorded(browser, url) {
  const page = await browser.newPage();
  await page.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const requests = [];
  page.on('request', (r) => {
    // A request still starting while the page closes has no headers to read any more: recorded
    // with its URL and body (searched as well) rather than left as an unhandled rejection.
    const headers = () => r.allHeaders().catch(() => ({ unreadable: 'the page closed first' }));
    requests.push((async () => ({ url: r.url(), method: r.method(), headers: await headers(), body: r.postData() ?? '' }))());
  });
  await page.goto(url);
  return { page, requests: () => Promise.all(requests) };
}
