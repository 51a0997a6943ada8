"""The report's inline stylesheet: local font stacks only, nothing fetched, prints in colour."""

CSS = """
:root { --ok:#d7f0dc; --ok-ink:#0f5323; --bad:#fbd5d5; --bad-ink:#8e1b1b;
  --amb:#ffe8b8; --amb-ink:#6e4500; --err:#e2e2e2; --err-ink:#333; --line:#d9d9d9; }
* { box-sizing: border-box; }
html { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans",
  Arial, sans-serif; color: #1d1d1d; margin: 0 auto; max-width: 1280px; padding: 0 20px 60px; }
h1 { font-size: 22px; margin: 18px 0 4px; }
h2 { font-size: 18px; margin: 34px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #333; }
h3 { font-size: 16px; margin: 24px 0 6px; }
h4 { font-size: 14px; margin: 0 0 4px; font-family: ui-monospace, "DejaVu Sans Mono",
  monospace; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", "Liberation Mono", monospace;
  font-size: 12.5px; }
.sub { color: #555; margin: 0 0 10px; }
.note { color: #555; font-size: 13px; }
nav { margin: 8px 0 4px; font-size: 13px; }
nav a { margin-right: 14px; }
a { color: #0b57a4; }
.counts { display: flex; gap: 10px; flex-wrap: wrap; margin: 10px 0; }
.count { padding: 6px 12px; border-radius: 6px; font-weight: 600; }
.count b { font-size: 18px; margin-right: 6px; }
.kv { border-collapse: collapse; font-size: 13px; }
.kv th { text-align: left; padding: 2px 14px 2px 0; color: #444; font-weight: 600;
  vertical-align: top; }
.kv td { padding: 2px 0; }
.scroll { overflow-x: auto; }
table.grid { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
table.grid th, table.grid td { border: 1px solid var(--line); padding: 4px 7px;
  vertical-align: top; }
table.grid thead th { background: #f2f2f2; text-align: center; }
table.grid th[scope=row], table.grid th.paper { text-align: left; font-weight: normal; }
table.grid th[scope=row] { white-space: nowrap; }
/* Nothing may push a table past the page at laptop widths: long parameters, reasons and
   readings wrap (anywhere, if a token is longer than its column); numbers stay whole. */
table.grid { max-width: 100%; }
table.grid.wide { width: 100%; }
table.grid td.reason, table.grid td.pdiff, table.grid td.pcell, .chip, #protocol-fields-table td
  { overflow-wrap: anywhere; }
table.grid td.params { overflow-wrap: break-word; min-width: 12em; }
.nw { white-space: nowrap; }
#answer-table th.claim-line { white-space: normal; width: 50%; }
#answer-table td.answer-verdicts { white-space: nowrap; }
#answer-table td.answer-paper { width: 22%; font-size: 12.5px; }
#answer-table .ordinal { color: #555; font-style: italic; }
#answer-table small.ours { display: block; font-family: ui-monospace, "DejaVu Sans Mono",
  monospace; color: #333; }
#answer-table small.reading { display: block; }
table.grid td.num, table.grid td.verdict, td.pcell .stat, td.pcell .pverdict,
  #multiple-testing-table td:not(.params)
  { white-space: nowrap; }
table.results td.params { width: 24%; }
table.results td.reason { width: 28%; }
p.reading, small.reading { color: #5a2a2a; font-size: 12.5px; margin: 3px 0 0; }
p.power { color: #34465a; font-size: 12.5px; margin: 3px 0 0; }
tr.section-row th { background: #333; color: #fff; text-align: left; }
td.cell { text-align: center; min-width: 92px; }
.chip { display: inline-block; padding: 1px 6px; margin: 1px; border-radius: 4px;
  max-width: 100%; }
.chip small { opacity: 0.8; margin-right: 4px; }
#protocol-table td.pcell { width: 30%; }
#protocol-table td.pdiff { width: 18%; }
td.pcell .pverdict { font-weight: 600; display: block; }
td.pcell small { display: block; }
td.pdiff small { display: block; }
td.pdiff.differs { background: #fff3c4; }
ul.protocols { margin: 4px 0 8px; padding-left: 20px; }
ul.protocols li { margin: 3px 0; }
#protocol-fields-table tr.differs th, #protocol-fields-table tr.differs td { font-weight: 700; }
.v-REPRODUCED { background: var(--ok); color: var(--ok-ink); }
.v-REFUTED { background: var(--bad); color: var(--bad-ink); }
.v-INCONCLUSIVE { background: var(--amb); color: var(--amb-ink); }
.v-ERROR { background: var(--err); color: var(--err-ink); }
.v-PENDING { background: #dde7f3; color: #1f3b5c; }
.partial { border: 2px solid #4a6fa5; background: #eef3fa; border-radius: 8px;
  padding: 8px 12px; margin: 10px 0; }
.v-NONE { background: #fafafa; color: #b0b0b0; }
.v-MIXED { background: #fff; }
.claim { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; margin: 12px 0; }
.claim p.sentence { font-size: 15px; margin: 4px 0 8px; }
svg.plot { max-width: 100%; height: auto; display: block; margin: 6px 0; }
figure { margin: 10px 0 18px; }
figcaption { font-size: 12.5px; color: #444; max-width: 900px; }
.missing { color: #7a4b00; background: #fff6e0; padding: 6px 10px; border-radius: 6px;
  display: inline-block; }
.changed { font-weight: 600; }
.sig { font-weight: 700; }
.profile { display: grid; grid-template-columns: repeat(auto-fill, minmax(290px, 1fr));
  gap: 2px 18px; font-size: 13px; margin: 4px 0 0 16px; }
.profile b { color: #444; }
summary { cursor: pointer; font-size: 13px; }
.legend span { margin-right: 8px; }
"""
