#!/usr/bin/env python3
"""test_trace_viewer: tools/weft-trace renders tests/data/sample_trace.json (a
race of "fast" and "slow" where "slow" is interrupted, then a timeout of
"lookup") into one self-contained HTML page, and fails clearly on bad input.

Run by ctest (label test_trace_viewer), or directly:
    python3 tests/test_trace_viewer.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VIEWER = ROOT / "tools" / "weft-trace"
SAMPLE = ROOT / "tests" / "data" / "sample_trace.json"


def run_viewer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(VIEWER), *args],
                          capture_output=True, text=True, timeout=60)


def svg_of(page: str) -> ET.Element:
    """The timeline, parsed as XML: it must be well-formed on its own."""
    match = re.search(r"<svg .*?</svg>", page, re.S)
    assert match, "no <svg> element in the page"
    return ET.fromstring(match.group(0))


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def find_all(svg: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in svg.iter(tag) if cls in classes(e)]


class TraceViewerTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = Path(self.tmp.name)
        self.events = json.loads(SAMPLE.read_text())["traceEvents"]

    def tearDown(self) -> None:
        self.tmp.cleanup()

    def render(self, events_or_doc, *args: str) -> str:
        source = self.dir / "trace.json"
        source.write_text(json.dumps(events_or_doc))
        out = self.dir / "trace.html"
        result = run_viewer(str(source), "-o", str(out), *args)
        self.assertEqual(result.returncode, 0, result.stderr)
        return out.read_text(encoding="utf-8")

    def render_sample(self, *args: str) -> str:
        return self.render({"traceEvents": self.events}, *args)

    def slices(self) -> list[dict]:
        return [e for e in self.events if e.get("ph") == "X"]

    def test_trace_viewer_reads_a_trace_the_runtime_wrote(self) -> None:
        # tests/data/runtime_race_trace.json: RuntimeOptions::trace_path's
        # output for examples/trace_pictures' race (main #1; contestants #2,
        # which loses while waiting in Channel::receive, and #3).
        path = ROOT / "tests" / "data" / "runtime_race_trace.json"
        out = self.dir / "runtime.html"
        result = run_viewer(str(path), "-o", str(out))
        self.assertEqual(result.returncode, 0, result.stderr)
        page = out.read_text(encoding="utf-8")
        self.assertNotIn("ignored", page)
        self.assertNotIn("one end only", page)
        svg = svg_of(page)
        events = json.loads(path.read_text())["traceEvents"]
        self.assertEqual(len(find_all(svg, "rect", "run")),
                         sum(1 for e in events if e.get("ph") == "X"))
        flows = [g for g in find_all(svg, "g", "flow") if g.get("data-to")]
        self.assertEqual(len(flows),
                         sum(1 for e in events if e.get("ph") == "s"))
        interrupts = [(g.get("data-from"), g.get("data-to"))
                      for g in flows if "interrupt" in classes(g)]
        self.assertEqual(interrupts, [("1", "2")])
        self.assertIn('park: fiber 2 waits in Channel::receive', page)
        results = dict(re.findall(
            r"</span>(\d+)</td>.*?<td class=\"result \w+\">(\w+)</td>", page))
        self.assertEqual(results, {"1": "success", "2": "interrupted",
                                   "3": "success"})

    def test_trace_viewer_is_an_executable_script(self) -> None:
        self.assertTrue(os.access(VIEWER, os.X_OK), f"{VIEWER} not executable")
        first = VIEWER.read_text().splitlines()[0]
        self.assertEqual(first, "#!/usr/bin/env python3")

    def test_trace_viewer_names_each_fiber(self) -> None:
        page = self.render_sample()
        for fiber, name in ((1, "main"), (2, "fast"), (3, "slow"),
                            (4, "lookup")):
            row = re.search(rf"<tr><td>.*?</span>{fiber}</td><td>{name}</td>",
                            page)
            self.assertIsNotNone(row, f"no table row for fiber {fiber} {name}")
        svg = svg_of(page)
        labels = {t.text for t in find_all(svg, "text", "slice")}
        self.assertIn("main #1", labels)
        self.assertIn("slow #3", labels)
        self.assertIn("weft race_timeout", page)

    def test_trace_viewer_shows_exit_results(self) -> None:
        page = self.render_sample()
        results = dict(re.findall(
            r"</span>(\d+)</td>.*?<td class=\"result \w+\">(\w+)</td>", page))
        self.assertEqual(results, {"1": "success", "2": "success",
                                   "3": "interrupted", "4": "interrupted"})

    def test_trace_viewer_draws_one_rect_per_run_slice(self) -> None:
        svg = svg_of(self.render_sample())
        runs = find_all(svg, "rect", "run")
        self.assertEqual(len(self.slices()), 11)
        self.assertEqual(len(runs), 11)
        self.assertEqual(sorted(int(r.get("data-fiber")) for r in runs),
                         sorted(e["args"]["fiber"] for e in self.slices()))
        # A slice twice as long is drawn twice as wide.
        widths = {(int(r.get("data-fiber")), round(float(r.get("x")))):
                  float(r.get("width")) for r in runs}
        main_first = [w for (f, _), w in widths.items() if f == 1]
        self.assertAlmostEqual(max(main_first) / min(main_first), 5.0 / 1.1,
                               places=2)

    def test_trace_viewer_draws_lanes_per_worker_and_outside(self) -> None:
        svg = svg_of(self.render_sample())
        lanes = [t.text for t in find_all(svg, "text", "lane")]
        self.assertEqual(lanes, ["worker 0", "worker 1", "outside"])
        # Worker 1's runs lie in its lane, below worker 0's.
        ys = {int(r.get("data-fiber")): float(r.get("y"))
              for r in find_all(svg, "rect", "run")
              if r.get("data-fiber") in ("2", "4")}
        self.assertGreater(ys[4], ys[2])

    def test_trace_viewer_draws_the_interrupt_flows(self) -> None:
        svg = svg_of(self.render_sample())
        interrupts = [(g.get("data-from"), g.get("data-to"))
                      for g in find_all(svg, "g", "interrupt")
                      if g.get("data-from")]
        self.assertEqual(interrupts, [("1", "3"), ("1", "4")])
        wakes = [g for g in find_all(svg, "g", "wake") if g.get("data-from")]
        self.assertEqual(len(wakes), 6)
        first = find_all(svg, "g", "interrupt")[0]
        title = first.find("title").text
        self.assertIn('fiber 1 "main" interrupts fiber 3 "slow"', title)
        line = [p for p in first.iter("path") if "line" in classes(p)][0]
        self.assertEqual(line.get("marker-end"), "url(#arrow-interrupt)")
        # From worker 1 at 24.6 us up to worker 0 at 26.1 us.
        start, end = re.findall(r"[-\d.]+,[-\d.]+", line.get("d"))[::3]
        (x0, y0), (x1, y1) = ([float(v) for v in p.split(",")]
                              for p in (start, end))
        self.assertLess(x0, x1)
        self.assertGreater(y0, y1)

    def test_trace_viewer_links_a_flow_started_after_its_event(self) -> None:
        # The runtime may stamp a flow's start a few microseconds after the
        # "interrupt requested" or "wake" event it belongs to.
        for e in self.events:
            if e.get("ph") == "s":
                e["ts"] += 2.5
        svg = svg_of(self.render_sample())
        interrupts = [(g.get("data-from"), g.get("data-to"))
                      for g in find_all(svg, "g", "interrupt")
                      if g.get("data-from")]
        self.assertEqual(interrupts, [("1", "3"), ("1", "4")])
        wakes = [(g.get("data-from"), g.get("data-to"))
                 for g in find_all(svg, "g", "wake") if g.get("data-from")]
        self.assertEqual(wakes, [("0", "1"), ("0", "2"), ("2", "1"),
                                 ("3", "1"), ("0", "1"), ("4", "1")])

    def test_trace_viewer_counts_flows_with_one_end(self) -> None:
        # The interrupt of "lookup" never delivered: its flow has no finish.
        events = [e for e in self.events
                  if not (e.get("ph") == "f" and e.get("id") == 7)
                  and e.get("name") != "interrupt delivered"]
        page = self.render(events)
        self.assertIn("1 arrows have one end only", page)
        self.assertNotIn("not known to this viewer", page)
        arrows = [g for g in find_all(svg_of(page), "g", "interrupt")
                  if g.get("data-from")]
        self.assertEqual(len(arrows), 1)
        self.assertIn('<td class="result failure">not delivered</td>', page)

    def test_trace_viewer_marks_each_instant_with_hover_text(self) -> None:
        svg = svg_of(self.render_sample())
        markers = find_all(svg, "g", "marker")
        instants = [e for e in self.events if e.get("ph") == "i"]
        self.assertEqual(len(markers), len(instants))
        for kind in ("fork", "park", "wake", "steal", "interrupt-requested",
                     "interrupt-delivered", "finalizer-start",
                     "finalizer-end", "exit"):
            self.assertTrue(find_all(svg, "g", kind), f"no {kind} marker")
        parks = [g.find("title").text for g in find_all(svg, "g", "park")]
        self.assertIn('park: fiber 3 "slow" waits in Channel::receive at '
                      'race_timeout.cpp:16\n7.4 µs on worker 1', parks)

    def test_trace_viewer_page_is_self_contained(self) -> None:
        page = self.render_sample()
        self.assertNotRegex(page, r"(?i)<script|<link|<img|@import|https?:")
        self.assertNotRegex(page, r"url\((?!#)")
        self.assertNotRegex(page, r"(?i)\b(src|href)\s*=")

    def test_trace_viewer_reads_the_array_form(self) -> None:
        svg = svg_of(self.render(self.events))
        self.assertEqual(len(find_all(svg, "rect", "run")), 11)

    def test_trace_viewer_ignores_unknown_events(self) -> None:
        noisy = [{"ph": "C", "name": "counter", "pid": 1, "ts": 3.0,
                  "args": {"parks": 4}},
                 {"ph": "i", "name": "gc", "pid": 1, "tid": 1, "ts": 5.0},
                 {"ph": "X", "name": "no fiber", "tid": 1, "ts": 1, "dur": 2},
                 42, "text", None] + self.events
        page = self.render({"traceEvents": noisy, "otherData": {}})
        self.assertEqual(len(find_all(svg_of(page), "rect", "run")), 11)
        self.assertIn("6 events not known to this viewer were ignored", page)

    def test_trace_viewer_window_keeps_what_overlaps_it(self) -> None:
        svg = svg_of(self.render_sample("--from", "40", "--to", "60"))
        runs = find_all(svg, "rect", "run")
        expected = [e for e in self.slices()
                    if e["ts"] < 60 and e["ts"] + e["dur"] > 40]
        self.assertEqual(len(runs), len(expected))
        self.assertEqual(len(expected), 3)
        interrupts = [g.get("data-to") for g in find_all(svg, "g", "interrupt")
                      if g.get("data-from")]
        self.assertEqual(interrupts, ["4"])
        # No event in the window came from outside the runtime.
        lanes = [t.text for t in find_all(svg, "text", "lane")]
        self.assertEqual(lanes, ["worker 0", "worker 1"])

    def test_trace_viewer_window_leaves_out_runs_that_only_touch_it(self):
        # "slow" runs 26.0 to 29.0 us: it ends where the window starts.
        svg = svg_of(self.render_sample("--from", "29", "--to", "57"))
        fibers = [r.get("data-fiber") for r in find_all(svg, "rect", "run")]
        self.assertNotIn("3", fibers)
        self.assertEqual(sorted(fibers), ["1", "1", "1", "4", "4"])

    def test_trace_viewer_hides_markers_too_dense_to_read(self) -> None:
        # 2,000 runs of 0.1 us, each ending in a park, on one worker: far
        # more markers than pixels at the narrowest width.
        events = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 1,
                   "args": {"name": "worker 0"}}]
        for k in range(2000):
            events.append({"ph": "X", "name": "fiber 7 busy", "tid": 1,
                           "ts": k * 0.2, "dur": 0.1, "args": {"fiber": 7}})
            events.append({"ph": "i", "s": "t", "name": "park", "tid": 1,
                           "ts": k * 0.2 + 0.1, "args": {"fiber": 7}})
        dense = svg_of(page := self.render(events, "--width", "400"))
        self.assertEqual(len(find_all(dense, "rect", "run")), 2000)
        self.assertEqual(find_all(dense, "g", "park"), [])
        self.assertIn("2000 markers and arrows are not drawn", page)
        everything = svg_of(self.render(events, "--width", "400", "--all"))
        self.assertEqual(len(find_all(everything, "g", "park")), 2000)
        window = svg_of(self.render(events, "--from", "0", "--to", "20"))
        self.assertEqual(len(find_all(window, "g", "park")), 100)

    def test_trace_viewer_width_option(self) -> None:
        svg = svg_of(self.render_sample("--width", "800"))
        self.assertEqual(svg.get("width"), "800")

    def test_trace_viewer_fails_on_invalid_json(self) -> None:
        bad = self.dir / "broken.json"
        bad.write_text('{"traceEvents": [{"ph": "X",')
        result = run_viewer(str(bad), "-o", str(self.dir / "out.html"))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(str(bad), result.stderr)
        self.assertIn("not valid JSON", result.stderr)
        self.assertFalse((self.dir / "out.html").exists())

    def test_trace_viewer_fails_on_a_missing_file(self) -> None:
        missing = self.dir / "no-such-trace.json"
        result = run_viewer(str(missing))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"cannot read {missing}", result.stderr)

    def test_trace_viewer_fails_on_json_that_is_not_a_trace(self) -> None:
        other = self.dir / "other.json"
        other.write_text('{"events": []}')
        result = run_viewer(str(other))
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(f"{other} is not a Chrome trace", result.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
