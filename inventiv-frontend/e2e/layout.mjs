// The layout and accessibility checks of the browser test (run.mjs): at a
// desktop and a phone viewport, no element of a page is wider than the
// viewport and nothing scrolls sideways, every row action is on screen (or
// in a closed row menu whose button is), the phone's navigation is a drawer
// with the content in the first screen; and axe-core (npm, loaded from
// node_modules: nothing fetched at run time) finds no serious or critical
// violation.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// Evaluated through the DevTools protocol: the app's Content-Security-Policy
// (script-src 'self') rightly refuses an injected <script>.
const AXE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

export const DESKTOP = { width: 1440, height: 900 };
export const PHONE = { width: 390, height: 844 };

/** What the page breaks of the layout rules, as sentences (none: it holds). */
export async function layoutProblems(page) {
  return page.evaluate(() => {
    const vw = document.documentElement.clientWidth;
    const problems = [];
    const describe = (el) => {
      const label = el.getAttribute('aria-label') || el.textContent?.trim().slice(0, 40) || '';
      return `<${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}${el.className && typeof el.className === 'string' ? `.${el.className.trim().split(/\s+/).join('.')}` : ''}> "${label}"`;
    };
    if (document.documentElement.scrollWidth > vw + 1) problems.push(`the page scrolls sideways: ${document.documentElement.scrollWidth} px in ${vw}`);
    let wide = 0;
    for (const el of document.querySelectorAll('body *')) {
      const { width } = el.getBoundingClientRect();
      if (width > vw + 1) {
        wide += 1;
        // The outermost offenders say enough.
        if (wide <= 5) problems.push(`${describe(el)} is ${Math.round(width)} px wide in ${vw}`);
      }
    }
    // Row actions: each button of a table row is inside the viewport and
    // inside every box that clips it, unless it waits in a closed row menu.
    for (const button of document.querySelectorAll('tbody button, tbody a.button, tbody summary')) {
      const menu = button.closest('details');
      if (menu && !menu.open && button.tagName !== 'SUMMARY') continue;
      const r = button.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      let left = 0;
      let right = vw;
      for (let a = button.parentElement; a && a !== document.body; a = a.parentElement) {
        if (getComputedStyle(a).overflowX !== 'visible') {
          const box = a.getBoundingClientRect();
          left = Math.max(left, box.left);
          right = Math.min(right, box.right);
        }
      }
      if (r.left < left - 1 || r.right > right + 1) {
        problems.push(`row action ${describe(button)} is cut: ${Math.round(r.left)}–${Math.round(r.right)} px, visible ${Math.round(left)}–${Math.round(right)}`);
      }
    }
    return problems;
  });
}

/** At a phone's width: the navigation is a drawer behind a menu button, the page's heading in the first screen. */
export async function phoneShellProblems(page) {
  const problems = [];
  const nav = page.getByRole('navigation', { name: 'Main' });
  const menu = page.getByRole('button', { name: 'Menu', exact: true });
  if (await nav.isVisible()) problems.push('the navigation is shown before the content');
  if (!(await menu.isVisible())) problems.push('no menu button');
  const h1 = await page.locator('h1').first().boundingBox();
  const screen = page.viewportSize()?.height ?? 0;
  if (!h1 || h1.y + h1.height > screen) problems.push(`the page's heading is not in the first screen (${h1 ? Math.round(h1.y) : 'none'} px)`);
  if (problems.length) return problems;
  await menu.click();
  await nav.waitFor({ state: 'visible' });
  if ((await menu.getAttribute('aria-expanded')) !== 'true') problems.push('the menu button does not say it is expanded');
  await page.keyboard.press('Escape');
  await nav.waitFor({ state: 'hidden' });
  return problems;
}

/** axe-core's serious and critical violations of the page, as sentences. */
export async function axeProblems(page) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.evaluate(AXE);
  const violations = await page.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length}×: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')})`);
  });
  return violations;
}
