// The appearance object of hosted fields, checked property by property. It is checked twice: by
// the loader in the merchant's page (so a mistake is an error at mountFields()) and again inside
// the frame, which trusts nothing from the page. No raw CSS crosses into the frame: each accepted
// value is set as one CSS custom property of the frame's own stylesheet (frame.css).

// Fonts the frame may name without loading anything: generic families and fonts that ship with
// the common systems. A brand font is self-hosted on the vault (`font: { family, file }`).
export const SAFE_FONTS = ['system-ui', 'sans-serif', 'serif', 'monospace', 'ui-sans-serif', 'ui-serif', 'ui-monospace',
  'ui-rounded', 'Arial', 'Helvetica', 'Helvetica Neue', 'Verdana', 'Tahoma', 'Trebuchet MS', 'Segoe UI', 'Roboto',
  'Georgia', 'Times New Roman', 'Courier New', 'Menlo', 'Consolas'];

const NAMED = ['transparent', 'currentcolor', 'black', 'white', 'gray', 'grey', 'red', 'green', 'blue', 'navy', 'teal'];
const BYTE = '\\s*(25[0-5]|2[0-4]\\d|1?\\d?\\d)\\s*';
const COLOR = new RegExp(`^(#([\\da-f]{3,4}|[\\da-f]{6}|[\\da-f]{8})|rgba?\\(${BYTE},${BYTE},${BYTE}(,\\s*(0|1|0?\\.\\d{1,3})\\s*)?\\)|${NAMED.join('|')})$`, 'i');
// A length in px, em or rem, at most `max` px (16 px an em).
const length = (max, min = 0) => (v) => {
  const m = /^(\d{1,3}(?:\.\d{1,2})?)(px|r?em)$/.exec(String(v));
  const px = m && (m[2] === 'px' ? Number(m[1]) : Number(m[1]) * 16);
  return m !== null && px >= min && px <= max;
};
// Generic families are keywords; a named font is quoted and falls back to the system's.
const family = (v) => (/^(ui-)?[a-z-]+$/.test(v) ? v : `"${v}", system-ui, sans-serif`);
const color = (v) => typeof v === 'string' && COLOR.test(v.trim());

// property -> [custom property of frame.css, check]
export const PROPERTIES = {
  __proto__: null,
  fontFamily: ['font-family', (v) => SAFE_FONTS.includes(v)],
  fontSize: ['font-size', length(32, 8)],
  fontWeight: ['font-weight', (v) => ['300', '400', '500', '600', '700', 'normal', 'bold'].includes(String(v))],
  lineHeight: ['line-height', (v) => (/^\d(\.\d{1,2})?$/.test(String(v)) && v >= 1 && v <= 3) || length(64)(v)],
  letterSpacing: ['letter-spacing', length(4)],
  color: ['color', color],
  backgroundColor: ['background-color', color],
  placeholderColor: ['placeholder-color', color],
  borderColor: ['border-color', color],
  borderWidth: ['border-width', length(4)],
  borderRadius: ['border-radius', length(24)],
  padding: ['padding', (v) => typeof v === 'string' && /^\S+( \S+){0,3}$/.test(v) && v.split(' ').every(length(32))],
  focusBorderColor: ['focus-border-color', color],
  focusRingColor: ['focus-ring-color', color],
  invalidColor: ['invalid-color', color],
  invalidBorderColor: ['invalid-border-color', color],
};

/**
 * Checks `appearance` and returns `{ vars, font }`: `vars` the custom properties to set
 * (`--fs-font-size` ...), `font` a self-hosted font `{ family, file, weight }` or null. Throws
 * `{ code: 'appearance_invalid', message }` naming the first property refused.
 */
export function checkAppearance(appearance) {
  const vars = {};
  let font = null;
  if (appearance === undefined || appearance === null) return { vars, font };
  const refuse = (prop) => {
    throw { code: 'appearance_invalid', message: `appearance.${prop}: value refused (see docs/hosted-fields.md for what each property accepts)` };
  };
  if (typeof appearance !== 'object' || Array.isArray(appearance)) refuse('(object)');
  for (const [prop, value] of Object.entries(appearance)) {
    if (prop === 'font') {
      const { family, file, weight = '400', ...rest } = value ?? {};
      if (Object.keys(rest).length || typeof family !== 'string' || !/^[\w -]{1,40}$/.test(family)
        || typeof file !== 'string' || !/^[\w.-]{1,64}\.woff2$/.test(file) || file.startsWith('.')
        || !/^[1-9]00$/.test(String(weight))) refuse('font');
      font = { family, file, weight: String(weight) };
      continue;
    }
    const spec = PROPERTIES[prop];
    if (!spec || (typeof value !== 'string' && typeof value !== 'number') || !spec[1](value)) refuse(prop);
    vars[`--fs-${spec[0]}`] = prop === 'fontFamily' ? family(value) : String(value).trim();
  }
  if (font) vars['--fs-font-family'] = `"${font.family}", ${vars['--fs-font-family'] ?? 'system-ui, sans-serif'}`;
  return { vars, font };
}
