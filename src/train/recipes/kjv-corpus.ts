/**
 * The King James Bible as Debian's `bible-kjv` package ships it (public
 * domain; the text is in `bible-kjv-text`, the `bible` program reads it):
 * one verse per line, with its book, chapter and verse number.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { FileNotFoundError } from '../../errors.js';

export interface Verse {
  book: string;
  chapter: number;
  verse: number;
  text: string;
}

/**
 * Parse `bible -l100000 gen1:1-rev22:21` output: "Book N" chapter headings,
 * then lines "  V text" (one line per verse at that line width).
 */
export function parseBibleOutput(output: string): Verse[] {
  const verses: Verse[] = [];
  let book = '';
  let chapter = 0;
  for (const line of output.split('\n')) {
    const heading = /^(\S.*) (\d+)$/.exec(line);
    if (heading) {
      book = heading[1];
      chapter = Number(heading[2]);
      continue;
    }
    const verse = /^\s+(\d+) (.*)$/.exec(line);
    if (verse && book) verses.push({ book, chapter, verse: Number(verse[1]), text: verse[2].trim() });
  }
  return verses;
}

/** All 31,102 verses, from a saved `bible` output file or by running Debian's `bible` program. */
export function readKjv(file?: string): Verse[] {
  let output: string;
  if (file) {
    output = readFileSync(file, 'utf8');
  } else {
    try {
      output = execFileSync('bible', ['-l100000', 'gen1:1-rev22:21'], { encoding: 'utf8', maxBuffer: 64 << 20 });
    } catch {
      throw new FileNotFoundError('bible (install Debian\'s bible-kjv and bible-kjv-text: apt-get install -y bible-kjv)');
    }
  }
  return parseBibleOutput(output);
}
