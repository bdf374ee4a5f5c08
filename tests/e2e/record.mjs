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
    requests.push((async () => ({ url: r.url(), method: r.method(), headers: await r.allHeaders(), body: r.postData() ?? '' }))());
  });
  await page.goto(url);
  return { page, requests: () => Promise.all(requests) };
}
