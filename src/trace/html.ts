/**
 * The trace as one self-contained HTML page: the trace file is embedded as
 * JSON and drawn by inline script as SVG (no network, no external files):
 * a layer × head overview, an attention heatmap per layer and head with the
 * tokens on both axes, the logit lens as a table, probability bars for
 * each generated token, and for beam search a tree of the beams with each
 * step's ranked candidates and the finished hypotheses.
 */
import type { TraceFile } from './report.js';

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #1b1f24; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 6px; } .muted { color: #57606a; }
table { border-collapse: collapse; } td, th { border: 1px solid #d0d7de; padding: 2px 6px; text-align: left; font-size: 12px; }
.tok { font-family: ui-monospace, monospace; background: #f6f8fa; border-radius: 3px; padding: 0 3px; white-space: pre; }
.overview { display: grid; gap: 6px; align-items: center; } .overview .rowlabel { font-size: 12px; }
.maps { display: flex; flex-wrap: wrap; gap: 18px; } figure { margin: 0; } figcaption { font-size: 12px; font-weight: 600; }
svg text { font: 10px ui-monospace, monospace; fill: #1b1f24; }
.step { margin: 10px 0; padding: 6px 10px; border: 1px solid #d0d7de; border-radius: 6px; }
.barrow { display: flex; align-items: center; gap: 6px; font-size: 12px; } .barrow .name { width: 140px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar { height: 12px; background: #0969da; border-radius: 2px; } .bar.chosen { background: #1a7f37; }
.omitted { font-size: 12px; color: #9a6700; }
.scroll { overflow-x: auto; max-width: 100%; }
.beam-tree line { stroke: #8c959f; stroke-width: 1.5; } .beam-tree line.best { stroke: #1a7f37; stroke-width: 3; }
.beam-tree circle { fill: #0969da; } .beam-tree circle.finished { fill: #1a7f37; } .beam-tree circle.dropped { fill: #cf222e; }
tr.fate-continues td { background: #ddf4ff; } tr.fate-finished td { background: #dafbe1; } tr.fate-eos-late td, tr.fate-spare td { color: #57606a; }
tr.returned td { font-weight: 600; background: #dafbe1; }
`;

/* The renderer runs in the page; it reads the embedded trace and builds SVG as strings. */
const SCRIPT = `
(function () {
  var trace = JSON.parse(document.getElementById('trace-data').textContent);
  var root = document.getElementById('report');
  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return {'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]; }); }
  function f16(h) {
    var s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
    if (e === 31) return f ? NaN : s * Infinity;
    return s * Math.pow(2, e - 15) * (1 + f / 1024);
  }
  function decode(t) {
    if (!t || t.encoding === 'omitted') return null;
    var n = t.shape.reduce(function (a, b) { return a * b; }, 1), out = new Float32Array(n);
    if (t.encoding === 'topk') {
      var w = t.shape[t.shape.length - 1];
      t.indices.forEach(function (idx, r) { idx.forEach(function (i, j) { out[r * w + i] = t.values[r][j]; }); });
      return out;
    }
    var bin = atob(t.data), view = new DataView(new ArrayBuffer(bin.length));
    for (var i = 0; i < bin.length; i++) view.setUint8(i, bin.charCodeAt(i));
    for (var k = 0; k < n; k++) out[k] = t.dtype === 'f16' ? f16(view.getUint16(2 * k, true)) : view.getFloat32(4 * k, true);
    return out;
  }
  function rgb(v) {
    var x = Math.max(0, Math.min(1, v || 0));
    return [Math.round(255 - 246 * x), Math.round(255 - 150 * x), Math.round(255 - 37 * x)];
  }
  function colour(v) { return 'rgb(' + rgb(v).join(',') + ')'; }
  /* Long sequences: one pixel per cell in a bitmap, scaled up, instead of thousands of SVG rects. */
  var BITMAP_CELLS = 48 * 48;
  function bitmap(values, offset, queries, keys) {
    var canvas = document.createElement('canvas');
    canvas.width = keys;
    canvas.height = queries;
    var ctx = canvas.getContext('2d'), img = ctx.createImageData(keys, queries);
    for (var i = 0; i < queries * keys; i++) {
      var c = rgb(values[offset + i]);
      img.data[4 * i] = c[0]; img.data[4 * i + 1] = c[1]; img.data[4 * i + 2] = c[2]; img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return canvas.toDataURL('image/png');
  }
  function label(t) { var s = t.text; return s.length > 10 ? s.slice(0, 9) + '…' : s; }
  /* One head's [queries, keys] block of values as an SVG heatmap with the tokens on the axes. */
  function heatmap(values, offset, queries, keys, qTokens, kTokens, name, cell, withLabels) {
    var left = withLabels ? 78 : 0, top = withLabels ? 70 : 0;
    var w = left + keys * cell + 2, h = top + queries * cell + 2;
    var parts = ['<svg class="' + (withLabels ? 'heatmap' : 'thumb') + '" data-name="' + esc(name) + '" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + ' ' + h + '">'];
    if (queries * keys > BITMAP_CELLS) {
      parts.push('<image class="cells" href="' + bitmap(values, offset, queries, keys) + '" x="' + left + '" y="' + top + '" width="' + keys * cell + '" height="' + queries * cell + '" preserveAspectRatio="none" style="image-rendering: pixelated"></image>');
    } else {
      for (var q = 0; q < queries; q++) for (var k = 0; k < keys; k++) {
        var v = values[offset + q * keys + k];
        parts.push('<rect class="cell" x="' + (left + k * cell) + '" y="' + (top + q * cell) + '" width="' + cell + '" height="' + cell + '" fill="' + colour(v) + '"><title>' + esc(qTokens[q].text) + ' → ' + esc(kTokens[k].text) + ': ' + v.toFixed(3) + '</title></rect>');
      }
    }
    if (withLabels) {
      /* Every token is labelled while labels fit (about 10 px each); beyond that every n-th. */
      var every = Math.max(1, Math.ceil(10 / cell));
      for (var i = 0; i < queries; i += every) parts.push('<text class="ylabel" x="' + (left - 4) + '" y="' + (top + i * cell + cell / 2 + 3) + '" text-anchor="end">' + esc(label(qTokens[i])) + '</text>');
      for (var j = 0; j < keys; j += every) {
        var x = left + j * cell + cell / 2 + 3;
        parts.push('<text class="xlabel" x="' + x + '" y="' + (top - 4) + '" transform="rotate(-60 ' + x + ' ' + (top - 4) + ')">' + esc(label(kTokens[j])) + '</text>');
      }
    }
    parts.push('</svg>');
    return parts.join('');
  }
  function section(title) { var s = document.createElement('section'); s.innerHTML = '<h2>' + esc(title) + '</h2>'; root.appendChild(s); return s; }
  var m = trace.model;
  var head = document.createElement('header');
  head.innerHTML = '<h1>Trace of ' + esc(trace.source) + '</h1><div class="muted">' + esc(m.summary) + ' — ' + esc(m.family) + '</div>';
  root.appendChild(head);

  var tokSec = section('Tokens');
  function tokenTable(tokens, caption) {
    return '<h3>' + caption + '</h3><div class="scroll"><table class="tokens"><tr><th>position</th>' + tokens.map(function (t, p) { return '<td>' + p + '</td>'; }).join('') + '</tr><tr><th>token</th>' +
      tokens.map(function (t) { return '<td><span class="tok">' + esc(t.text) + '</span></td>'; }).join('') + '</tr><tr><th>id</th>' + tokens.map(function (t) { return '<td>' + t.id + '</td>'; }).join('') + '</tr></table></div>';
  }
  tokSec.innerHTML += tokenTable(trace.tokens.input, m.family === 'encoder-decoder' ? 'Input (encoder)' : 'Input');
  if (trace.tokens.decoder) tokSec.innerHTML += tokenTable(trace.tokens.decoder, 'Output (decoder)');

  var norms = section('Residual stream norms (per layer and position)');
  trace.stacks.forEach(function (stack) {
    var tokens = stack.tokens === 'decoder' ? trace.tokens.decoder : trace.tokens.input;
    var rows = [['embeddings', stack.inputNorm]].concat(stack.blocks.map(function (b) { return ['layer ' + b.layer, b.residNorm]; }));
    var top = Math.max.apply(null, rows.map(function (r) { return Math.max.apply(null, r[1]); }));
    var html = '<h3>' + esc(stack.prefix || 'model') + '</h3><p class="muted">positions: ' + esc(stack.positional.note) + '</p><div class="scroll"><table class="norms"><tr><th></th>' +
      tokens.map(function (t) { return '<th><span class="tok">' + esc(label(t)) + '</span></th>'; }).join('') + '</tr>';
    rows.forEach(function (r) {
      html += '<tr class="norm-row"><th>' + r[0] + '</th>' + r[1].map(function (v) { return '<td style="background:' + colour(0.55 * v / top) + '">' + v.toFixed(2) + '</td>'; }).join('') + '</tr>';
    });
    norms.innerHTML += html + '</table></div>';
  });

  var overview = section('Overview: layers × heads');
  var maps = section('Attention heatmaps (rows: queries, columns: keys)');
  trace.stacks.forEach(function (stack) {
    var qTokens = stack.tokens === 'decoder' ? trace.tokens.decoder : trace.tokens.input;
    var kinds = [['self', 'attn', qTokens]];
    if (stack.blocks.length && stack.blocks[0].patterns.cross) kinds.push(['cross', 'cross_attn', trace.tokens.input]);
    kinds.forEach(function (kind) {
      var title = (stack.prefix || '') + kind[1];
      var heads = m.stacks.filter(function (s) { return s.prefix === stack.prefix; })[0].heads;
      var grid = '<h3>' + esc(title) + '</h3><div class="overview" style="grid-template-columns: 70px repeat(' + heads + ', max-content)"><div></div>';
      for (var h = 0; h < heads; h++) grid += '<div class="rowlabel">head ' + h + '</div>';
      var big = '<h3>' + esc(title) + '</h3>';
      stack.blocks.forEach(function (block) {
        var key = block.patterns[kind[0]];
        var t = trace.tensors[key], values = decode(t);
        grid += '<div class="rowlabel">layer ' + block.layer + '</div>';
        var queries = qTokens.length, keys = kind[2].length;
        big += '<div class="maps">';
        for (var h = 0; h < heads; h++) {
          var name = stack.prefix + 'blocks.' + block.layer + '.' + kind[1] + '.pattern head ' + h;
          if (!values) { grid += '<div class="omitted">left out</div>'; big += '<div class="omitted">' + esc(name) + ': left out (size cap)</div>'; continue; }
          var off = h * queries * keys;
          grid += '<a href="#map-' + esc(name.replace(/[^a-z0-9]/gi, '-')) + '">' + heatmap(values, off, queries, keys, qTokens, kind[2], name, Math.max(2, Math.min(6, 60 / keys)), false) + '</a>';
          big += '<figure id="map-' + esc(name.replace(/[^a-z0-9]/gi, '-')) + '"><figcaption>layer ' + block.layer + ', head ' + h + '</figcaption>' +
            heatmap(values, off, queries, keys, qTokens, kind[2], name, Math.max(3, Math.min(26, 360 / Math.max(queries, keys))), true) + '</figure>';
        }
        big += '</div>';
      });
      overview.innerHTML += grid + '</div>';
      maps.innerHTML += big;
    });
  });

  if (trace.lens) {
    var lens = section('Logit lens: top token per layer and position');
    var positions = trace.lens.layers[0].positions.length;
    var lensTokens = m.family === 'encoder-decoder' ? trace.tokens.decoder : trace.tokens.input;
    var html = '<div class="scroll"><table class="lens"><tr><th>layer</th>';
    for (var p = 0; p < positions; p++) html += '<th><span class="tok">' + esc(lensTokens[p].text) + '</span></th>';
    html += '</tr>';
    trace.lens.layers.forEach(function (layer) {
      html += '<tr class="lens-row"><th>' + esc(layer.label) + '</th>' + layer.positions.map(function (top) {
        return '<td style="background:' + colour(0.55 * top[0].prob) + '"><span class="tok">' + esc(top[0].text) + '</span> ' + (100 * top[0].prob).toFixed(0) + '%</td>';
      }).join('') + '</tr>';
    });
    lens.innerHTML += html + '</table></div>';
  }

  if (trace.classification) {
    var cls = section('Classification: probability of each label');
    cls.innerHTML += trace.classification.map(function (c, i) {
      return '<div class="barrow label"><span class="name">' + esc(c.label) + '</span><div class="bar' + (i === 0 ? ' chosen' : '') + '" style="width:' + Math.max(1, Math.round(300 * c.prob)) + 'px"></div><span>' + (100 * c.prob).toFixed(1) + '%</span></div>';
    }).join('');
  }
  if (trace.attribution) {
    var a = trace.attribution;
    var att = section('Direct logit attribution of ' + JSON.stringify(a.token.text) + ' at the last position');
    var widest = Math.max.apply(null, a.components.map(function (c) { return Math.abs(c.value); }).concat([1e-9]));
    att.innerHTML += '<p class="muted">' + esc(a.note) + '</p>' + a.components.map(function (c) {
      return '<div class="barrow attribution"><span class="name">' + esc(c.label) + '</span><div class="bar" style="width:' + Math.max(1, Math.round(300 * Math.abs(c.value) / widest)) + 'px;background:' + (c.value >= 0 ? '#1a7f37' : '#cf222e') + '"></div><span>' + c.value.toFixed(3) + '</span></div>';
    }).join('') + '<p class="muted">biases ' + a.bias.toFixed(3) + '; sum ' + a.sum.toFixed(3) + '; logit ' + a.logit.toFixed(3) + '</p>';
  }
  if (trace.generation && !trace.generation.beam) {
    var gen = section('Generation: probabilities at each step');
    var g = trace.generation;
    gen.innerHTML += '<div class="muted">' + esc(g.mode) + (g.stages.length ? '; stages: ' + esc(g.stages.join(' → ')) : '') + '; stopped at ' + (g.reason === 'eos' ? 'the end-of-sequence token' : 'the token limit') + '</div>';
    g.steps.forEach(function (s) {
      var last = s.stages[s.stages.length - 1];
      var rows = last.top.map(function (t) {
        return '<div class="barrow"><span class="name"><span class="tok">' + esc(t.text) + '</span></span><div class="bar' + (t.id === s.token ? ' chosen' : '') + '" style="width:' + Math.max(1, Math.round(300 * t.prob)) + 'px"></div><span>' + (100 * t.prob).toFixed(1) + '%</span></div>';
      }).join('');
      gen.innerHTML += '<div class="step"><b>step ' + (s.step + 1) + '</b>: chose <span class="tok">' + esc(s.text) + '</span> (id ' + s.token + ', log-prob ' + s.logprob.toFixed(3) + ')' + rows + '</div>';
    });
  }
  if (trace.generation && trace.generation.beam) drawBeams(trace.generation.beam, trace.generation.reason);
  /* Beam search: a tree of the beams (columns: steps, rows: beam slots), then each step's beams and ranked candidates. */
  function drawBeams(beam, reason) {
    var sec = section('Beam search: ' + beam.numBeams + ' beams, length penalty ' + beam.lengthPenalty + ', early stopping ' + beam.earlyStopping);
    sec.innerHTML += '<p class="muted">Beam search keeps the ' + beam.numBeams + ' most likely sequences. At each step every beam proposes tokens; the score of a candidate is the sum of the log-probabilities of its beam plus that of the new token; the best ' + (2 * beam.numBeams) +
      ' are ranked, the first ' + beam.numBeams + ' that do not end the sequence become the next beams, and an end token ranked among the first ' + beam.numBeams + ' finishes a hypothesis scored sum / length^' + beam.lengthPenalty + '.</p>';
    var dx = 110, dy = 34, left = 20, top = 36, steps = beam.steps.length;
    var w = left + (steps + 1) * dx + 80, h = top + beam.numBeams * dy + 10;
    var best = beam.hypotheses.filter(function (x) { return x.returned; })[0];
    /* The returned hypothesis' path: at step s it extended beam beamIndices[s] with its s-th generated token. */
    function onBest(s, parent, token) { return !!best && best.beamIndices[s] === parent && best.generated[s].id === token; }
    var svg = ['<svg class="beam-tree" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + ' ' + h + '">'];
    beam.steps.forEach(function (s) {
      var x0 = left + s.step * dx, x1 = x0 + dx;
      svg.push('<text class="step-label" x="' + x0 + '" y="12" text-anchor="middle">step ' + (s.step + 1) + '</text>');
      s.next.forEach(function (n, j) {
        var y0 = top + n.parent * dy, y1 = top + j * dy;
        svg.push('<line class="beam-edge' + (onBest(s.step, n.parent, n.token.id) ? ' best' : '') + '" x1="' + x0 + '" y1="' + y0 + '" x2="' + x1 + '" y2="' + y1 + '"><title>beam ' + n.parent + ' + ' + esc(n.token.text) + ': sum ' + n.score.toFixed(3) + '</title></line>');
        svg.push('<text x="' + (x1 - 6) + '" y="' + (y1 - 6) + '" text-anchor="end">' + esc(label(n.token)) + '</text>');
      });
      s.finished.forEach(function (f) {
        var y0 = top + f.beam * dy, yEnd = y0 + dy / 2;
        svg.push('<line class="beam-edge' + (best && best.finishedAt === s.step && best.beamIndices[s.step] === f.beam ? ' best' : '') + '" x1="' + x0 + '" y1="' + y0 + '" x2="' + (x0 + dx / 2) + '" y2="' + yEnd + '"></line>');
        svg.push('<circle class="finished" cx="' + (x0 + dx / 2) + '" cy="' + yEnd + '" r="5"><title>finished: score ' + f.hypothesis.score.toFixed(3) + (f.kept ? '' : ' (discarded)') + '</title></circle>');
      });
      s.beams.forEach(function (b) {
        var dropped = s.dropped.indexOf(b.beam) >= 0;
        svg.push('<circle class="beam-node' + (dropped ? ' dropped' : '') + '" cx="' + x0 + '" cy="' + (top + b.beam * dy) + '" r="5"><title>step ' + (s.step + 1) + ', beam ' + b.beam + ': sum ' + b.score.toFixed(3) + '</title></circle>');
      });
      if (s.step === steps - 1) s.next.forEach(function (n, j) { svg.push('<circle class="beam-node" cx="' + x1 + '" cy="' + (top + j * dy) + '" r="5"></circle>'); });
    });
    svg.push('</svg>');
    sec.innerHTML += '<div class="scroll">' + svg.join('') + '</div>';
    beam.steps.forEach(function (s) {
      var html = '<div class="step beam-step"><b>step ' + (s.step + 1) + '</b>' + (s.done ? ' — done after this step' : '') + '<table class="beams"><tr><th>beam</th><th>tokens so far</th><th>sum</th><th>normalised</th><th>most likely next</th></tr>';
      s.beams.forEach(function (b) {
        var last = b.stages[b.stages.length - 1];
        html += '<tr class="beam-row"><td>' + b.beam + '</td><td>' + b.generated.map(function (t) { return '<span class="tok">' + esc(t.text) + '</span>'; }).join(' ') + '</td><td>' + b.score.toFixed(3) + '</td><td>' + (b.normalised === null ? '' : b.normalised.toFixed(3)) +
          '</td><td>' + last.top.slice(0, 3).map(function (t) { return '<span class="tok">' + esc(t.text) + '</span> ' + (100 * t.prob).toFixed(1) + '%'; }).join(', ') + '</td></tr>';
      });
      html += '</table><table class="beam-candidates"><tr><th>rank</th><th>beam</th><th>token</th><th>log-prob</th><th>sum</th><th>became</th></tr>';
      s.candidates.forEach(function (c, r) {
        var became = c.fate === 'continues' ? 'beam ' + c.slot : c.fate === 'finished' ? 'finished hypothesis' : c.fate === 'eos-late' ? 'ignored (end token ranked too low)' : 'spare';
        html += '<tr class="candidate fate-' + c.fate + '"><td>' + (r + 1) + '</td><td>' + c.beam + '</td><td><span class="tok">' + esc(c.token.text) + '</span></td><td>' + c.logprob.toFixed(3) + '</td><td>' + c.score.toFixed(3) + '</td><td>' + became + '</td></tr>';
      });
      sec.innerHTML += html + '</table></div>';
    });
    var hyp = '<h3>Finished hypotheses, best first</h3><table class="beam-hypotheses"><tr><th>rank</th><th>generated</th><th>score</th><th>sum / length^p</th><th>beams</th></tr>';
    beam.hypotheses.forEach(function (x, r) {
      hyp += '<tr class="hypothesis' + (x.returned ? ' returned' : '') + '"><td>' + (r + 1) + '</td><td>' + x.generated.map(function (t) { return '<span class="tok">' + esc(t.text) + '</span>'; }).join(' ') + '</td><td>' + x.score.toFixed(4) + '</td><td>' + x.sumLogprobs.toFixed(3) + ' / ' + x.length + '^' + beam.lengthPenalty + '</td><td>' + x.beamIndices.join(' → ') + '</td></tr>';
    });
    sec.innerHTML += hyp + '</table><p class="muted beam-stop">stopped: ' + (reason === 'done' ? beam.numBeams + ' hypotheses were finished' : 'the token limit') + '; generate() returns the first ' + beam.numReturnSequences + ' (sequence score ' + beam.sequencesScores.map(function (x) { return x.toFixed(4); }).join(', ') + ')</p>';
  }
  if (trace.budget.omitted.length || trace.budget.summarised.length) {
    var b = section('Size cap');
    b.innerHTML += '<p class="muted">' + trace.budget.summarised.length + ' tensors kept as top-k summaries and ' + trace.budget.omitted.length + ' left out to stay under ' + trace.budget.maxBytes + ' bytes.</p>';
  }
  document.body.setAttribute('data-rendered', 'true');
})();
`;

/** The JSON text made safe inside a <script> element. */
function embed(file: TraceFile): string {
  return JSON.stringify(file).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);
}

/** One self-contained HTML page drawing `file`. */
export function renderHtml(file: TraceFile): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>glassformer trace: ${escapeHtml(file.source)}</title>
<style>${STYLE}</style>
</head>
<body>
<main id="report"></main>
<script type="application/json" id="trace-data">${embed(file)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
