/**
 * Character tables of older Unicode versions, for the parts of the Rust library
 * that classify characters with old tables:
 * - BERT (normalizer and pre-tokenizer) uses the `unicode_categories` crate, whose
 *   categories are those of Unicode 8.0;
 * - the StripAccents normalizer uses `unicode-normalization`'s combining-mark
 *   table, that of Unicode 9.0.
 * Node knows a newer Unicode, so characters assigned since then are excluded here.
 * The ranges are the code points whose current category is one BERT tests (P*, Mn,
 * Cc, Cf, Co) or any mark (M*), and that Unicode's DerivedAge data dates after 8.0
 * or 9.0 respectively. Characters whose category changed since are listed apart.
 */

/** Hex ranges `a-b` or single code points, separated by spaces, in increasing order. */
function parseRanges(text: string): Int32Array {
  const items = text.trim().split(/ +/);
  const out = new Int32Array(2 * items.length);
  items.forEach((item, i) => {
    const [a, b] = item.split('-');
    out[2 * i] = parseInt(a, 16);
    out[2 * i + 1] = parseInt(b ?? a, 16);
  });
  return out;
}

function inRanges(ranges: Int32Array, code: number): boolean {
  let lo = 0;
  let hi = ranges.length / 2;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ranges[2 * mid + 1] < code) lo = mid + 1;
    else hi = mid;
  }
  return lo < ranges.length / 2 && ranges[2 * lo] <= code;
}

const ASSIGNED_AFTER_UNICODE_8 = parseRanges(
  '61d 7fd 890-891 897-89f 8ca-8e2 9fd-9fe a76 afa-aff b55 c04 c3c c77 c84 d00 d3b-d3c d81 eba ece ' +
  '180f 1abf-1add 1ae0-1aeb 1b4e-1b4f 1b7d-1b7f 1df6-1dfb 2e43-2e4f 2e52-2e5d a82c a8c5 a8ff ' +
  '10d24-10d27 10d69-10d6e 10eab-10ead 10ed0 10efa-10eff 10f46-10f50 10f55-10f59 10f82-10f89 11070 ' +
  '11073-11074 110c2 110cd 111cf 1123e 11241 1133b 113bb-113c0 113ce 113d0 113d2 113d4-113d5 ' +
  '113d7-113d8 113e1-113e2 11438-1143f 11442-11444 11446 1144b-1144f 1145a-1145b 1145d-1145e ' +
  '11660-1166c 116b9 1182f-11837 11839-1183b 1193b-1193c 1193e 11943-11946 119d4-119d7 119da-119db ' +
  '119e0 119e2 11a01-11a0a 11a33-11a38 11a3b-11a47 11a51-11a56 11a59-11a5b 11a8a-11a96 11a98-11a9c ' +
  '11a9e-11aa2 11b00-11b09 11b60 11b62-11b64 11b66 11be1 11c30-11c36 11c38-11c3d 11c3f 11c41-11c45 ' +
  '11c70-11c71 11c92-11ca7 11caa-11cb0 11cb2-11cb3 11cb5-11cb6 11d31-11d36 11d3a 11d3c-11d3d ' +
  '11d3f-11d45 11d47 11d90-11d91 11d95 11d97 11ef3-11ef4 11ef7-11ef8 11f00-11f01 11f36-11f3a 11f40 ' +
  '11f42-11f4f 11f5a 11fff 12ff1-12ff2 13430-13440 13447-13455 1611e-16129 1612d-1612f 16d6d-16d6f ' +
  '16e97-16e9a 16f4f 16fe2 16fe4 1cf00-1cf2d 1cf30-1cf46 1e000-1e006 1e008-1e018 1e01b-1e021 ' +
  '1e023-1e024 1e026-1e02a 1e08f 1e130-1e136 1e2ae 1e2ec-1e2ef 1e4ec-1e4ef 1e5ee-1e5ef 1e5ff 1e6e3 ' +
  '1e6e6 1e6ee-1e6ef 1e6f5 1e944-1e94a 1e95e-1e95f ',
);

const MARKS_ASSIGNED_AFTER_UNICODE_9 = parseRanges(
  '7fd 897-89f 8ca-8d3 9fe afa-aff b55 c04 c3c cf3 d00 d3b-d3c d81 eba ece 1715 180f 1abf-1add ' +
  '1ae0-1aeb 1cf7 1df6-1dfa a82c a8ff 10d24-10d27 10d69-10d6d 10eab-10eac 10efa-10eff 10f46-10f50 ' +
  '10f82-10f85 11070 11073-11074 110c2 11145-11146 111ce-111cf 11241 1133b 113b8-113c0 113c2 113c5 ' +
  '113c7-113ca 113cc-113d0 113d2 113e1-113e2 1145e 1182c-1183a 11930-11935 11937-11938 1193b-1193e ' +
  '11940 11942-11943 119d1-119d7 119da-119e0 119e4 11a01-11a0a 11a33-11a39 11a3b-11a3e 11a47 ' +
  '11a51-11a5b 11a8a-11a99 11b60-11b67 11d31-11d36 11d3a 11d3c-11d3d 11d3f-11d45 11d47 11d8a-11d8e ' +
  '11d90-11d91 11d93-11d97 11ef3-11ef6 11f00-11f01 11f03 11f34-11f3a 11f3e-11f42 11f5a 13440 ' +
  '13447-13455 1611e-1612f 16f4f 16f7f-16f87 16fe4 16ff0-16ff1 1cf00-1cf2d 1cf30-1cf46 1e08f ' +
  '1e130-1e136 1e2ae 1e2ec-1e2ef 1e4ec-1e4ef 1e5ee-1e5ef 1e6e3 1e6e6 1e6ee-1e6ef 1e6f5 ',
);

/** True when Unicode 8.0 did not have `code` (among the categories BERT tests). */
export function isAfterUnicode8(code: number): boolean {
  return inRanges(ASSIGNED_AFTER_UNICODE_8, code);
}

/** True when a mark was not yet in Unicode 9.0. */
export function isMarkAfterUnicode9(code: number): boolean {
  return inRanges(MARKS_ASSIGNED_AFTER_UNICODE_9, code);
}

/** Punctuation (Po) in Unicode 8.0, another category today. */
export const UNICODE_8_PUNCTUATION = new Set([0x166d, 0x111c9]);

/** Nonspacing marks (Mn) in Unicode 8.0 that are spacing marks today, and the reverse. */
export const UNICODE_8_NONSPACING = new Set([0x1734, 0x1171e]);
export const UNICODE_8_NOT_NONSPACING = new Set([0x1885, 0x1886, 0xa9bd, 0x111c9]);

/** Combining marks in Unicode 9.0 that are letters or punctuation today, and the reverse. */
export const UNICODE_9_MARKS = new Set([0x1cf2, 0x1cf3]);
export const UNICODE_9_NOT_MARKS = new Set([0x111c9]);

/**
 * Letters, marks and digits of Unicode 17.0, which Node's regular expressions know
 * but the Oniguruma in Rust's `tokenizers` (Unicode 16) and its `regex` crate do not:
 * there they are unassigned, so `\p{L}` and `\w` must not match them.
 */
export const UNICODE_17_LETTERS_MARKS_DIGITS: readonly [number, number][] = [
  [0x088f, 0x088f], [0x0c5c, 0x0c5c], [0x0cdc, 0x0cdc], [0x1acf, 0x1add], [0x1ae0, 0x1aeb], [0xa7ce, 0xa7cf],
  [0xa7d2, 0xa7d2], [0xa7d4, 0xa7d4], [0xa7f1, 0xa7f1], [0x10940, 0x10959], [0x10ec5, 0x10ec7], [0x10efa, 0x10efb],
  [0x11b60, 0x11b67], [0x11db0, 0x11ddb], [0x11de0, 0x11de9], [0x16ea0, 0x16eb8], [0x16ebb, 0x16ed3], [0x16ff2, 0x16ff6],
  [0x187f8, 0x187ff], [0x18d09, 0x18d1e], [0x18d80, 0x18df2], [0x1e6c0, 0x1e6de], [0x1e6e0, 0x1e6f5], [0x1e6fe, 0x1e6ff],
  [0x2b73a, 0x2b73f], [0x2cea2, 0x2cead], [0x323b0, 0x33479],
];
